"""pytest-asyncio: an async fixture set up by one thread at a time.

pytest-asyncio sets up an async fixture by swapping ``fixturedef.func`` for a
wrapper that runs it on the right event loop, for the length of the set-up.
The fixture definition is one object for every test, so two threads setting
up instances of it at once would each see the other's wrapper. Under fleet,
the set-up of an async fixture holds a lock of that definition's. (Tests
sharing an event loop wider than themselves never run side by side:
:func:`fleet.plan.groups.shared_event_loop`.)
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

import pytest

PLUGIN = "asyncio"


class OneSetUpAtATime:
    def __init__(self) -> None:
        self._locks: dict[Any, threading.RLock] = {}
        self._lock = threading.Lock()

    @pytest.hookimpl(tryfirst=True, wrapper=True)
    def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Any:
        # unwrapped: while another thread sets it up, func is pytest-asyncio's wrapper
        function = inspect.unwrap(getattr(fixturedef, "func", None))
        if not (inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)):
            return (yield)
        with self._lock:
            lock = self._locks.setdefault(fixturedef, threading.RLock())
        with lock:
            return (yield)


def configure(config: pytest.Config, processes: bool) -> None:
    config.pluginmanager.register(OneSetUpAtATime(), "fleet-asyncio-fixture-setup")
