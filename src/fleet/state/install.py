"""pytest's process-wide state made safe to share, put in place for a run and put back.

Two lifetimes:

* :class:`SharedScopes`, the scope nodes and fixture values shared by
  threads (and the fixture values handed between processes), from the first
  test until the session's end (leftover teardown happens inside pytest's
  ``pytest_sessionfinish``);
* :class:`ThreadOutput`, output, log capture, warnings and
  ``PYTEST_CURRENT_TEST`` per thread, and ``ast.parse`` one at a time, while
  tests run on threads.
"""

from __future__ import annotations

from typing import Any, Iterable

import pytest

from fleet.state import internals
from fleet.state.capture import ThreadCapture
from fleet.state.fixtures import FixtureSlots
from fleet.state.logs import ThreadLogCapture
from fleet.state.parsing import SerialParse
from fleet.state.relay import LogRelay
from fleet.state.setupstate import SharedSetupState
from fleet.state.thread_warnings import ThreadWarnings


class SharedScopes:
    def __init__(
        self, session: pytest.Session, sequential_nodes: Iterable[Any] = (), switched: Iterable[str] = ()
    ) -> None:
        self.session = session
        self.slots = FixtureSlots(session)
        self.slots.sequential_nodes = frozenset(sequential_nodes)
        self.slots.switched = frozenset(switched)
        self._saved_setupstate: Any = None

    def install(self, items: Iterable[pytest.Item] | None = None) -> None:
        """Fixture values per scope instance; with ``items``, also the shared
        SetupState (worker processes install their own, as work arrives)."""
        self.slots.install()
        if items is not None:
            self._saved_setupstate = internals.get_setupstate(self.session)
            internals.set_setupstate(self.session, SharedSetupState(items))

    def uninstall(self) -> None:
        self.slots.uninstall()
        if self._saved_setupstate is not None:
            internals.set_setupstate(self.session, self._saved_setupstate)
            self._saved_setupstate = None


class ThreadOutput:
    def __init__(self, config: pytest.Config) -> None:
        self.capture = ThreadCapture(config)
        self._parts = [
            self.capture, ThreadLogCapture(config), ThreadWarnings(), internals.CurrentTestVariable(), SerialParse(),
            LogRelay(config),
        ]
        self._installed: list[Any] = []

    def install(self) -> None:
        for part in self._parts:
            part.install()
            self._installed.append(part)

    def uninstall(self) -> None:
        while self._installed:
            self._installed.pop().uninstall()

    def __enter__(self) -> ThreadOutput:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.uninstall()
