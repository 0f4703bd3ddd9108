"""Noticing a test that changes process-wide state while tests run on threads.

Seen as it happens, on the thread that does it, so the test is known exactly:

* ``os.environ`` changed (a new ``TZ`` included) and the working directory
  changed: an audit hook (:func:`sys.addaudithook`) sees ``os.putenv``,
  ``os.unsetenv`` and ``os.chdir``;
* ``sys.stdin``/``sys.stdout``/``sys.stderr`` replaced (``redirect_stdout``,
  click's ``CliRunner``): the ``sys`` module's type is swapped for one whose
  ``__setattr__`` notices; one test at a time has them replaced (the next
  waits at its assignment), and fleet's streams are put back when it ends;
* the recursion limit changed: ``sys.setrecursionlimit`` is wrapped;
* a root logger handler the test did not add removed
  (``logging.basicConfig(force=True)``, ``dictConfig``).

Seen at each test's start and end (:meth:`StateWatch.look`), done by one of
the tests running at that moment: modules removed from ``sys.modules`` or
blocked there (set to None, so importing them fails), and the clock frozen
or mocked (freezegun replaces ``time.time`` for every thread).

Audit hooks cannot be removed, so the hook is added once per process and does
nothing while no watch is on. Everything else is put back at uninstall.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import types
from typing import Any, Callable

import pytest

from fleet.state.capture import repair_std_fds
from fleet.state.context import current
from fleet.state.logs import ThreadLogRouter

# fleet keeps PYTEST_CURRENT_TEST itself
_IGNORED_VARIABLES = {"PYTEST_CURRENT_TEST"}
_AUDITED = {"os.putenv", "os.unsetenv", "os.chdir"}
_STREAMS = {"stdin", "stdout", "stderr"}


def replaced(stream: str) -> str:
    """What a test that replaced ``sys.<stream>`` did."""
    return f"replaced sys.{stream}"

# (test, what it did): called on the test's own thread
Caught = Callable[[pytest.Item, str], None]


# How long a test that replaces the standard streams waits for the test that
# has them replaced to end, before it goes ahead anyway.
STREAM_TURN_WAIT = 60.0


class _WatchedSys(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        watch = _watch
        if watch is not None and name in _STREAMS:
            watch.did(replaced(name))
            watch.take_stream_turn()
        super().__setattr__(name, value)


class _Added(threading.local):
    item: Any = None
    handlers: set[Any] | None = None


class StateWatch:
    def __init__(self, caught: Caught) -> None:
        self._caught = caught
        self._modules = 0
        self._blocked = 0
        self._real_time = time.time  # an instance attribute: freezegun does not replace it
        self._frozen = False
        self._saved: dict[str, Any] = {}
        self._added = _Added()
        # the test that has the standard streams replaced, and the streams before
        self._turn = threading.Condition()
        self._stream_holder: Any = None
        self._streams: dict[str, Any] = {}

    def install(self) -> None:
        global _watch
        self._modules = len(sys.modules)
        self._blocked = sum(1 for module in list(sys.modules.values()) if module is None)
        _add_hook_once()
        logger = logging.Logger
        self._saved = {
            "sys": type(sys),
            "setrecursionlimit": sys.setrecursionlimit,
            "addHandler": logger.addHandler,
            "removeHandler": logger.removeHandler,
        }
        original_limit = self._saved["setrecursionlimit"]
        add, remove = self._saved["addHandler"], self._saved["removeHandler"]
        watch = self

        def setrecursionlimit(limit: int) -> None:
            watch.did(f"changed the recursion limit to {limit}")
            original_limit(limit)

        def add_handler(self: logging.Logger, handler: logging.Handler) -> None:
            if self is logging.root:
                watch._added_by_this_test().add(handler)
            add(self, handler)

        def remove_handler(self: logging.Logger, handler: logging.Handler) -> None:
            if (
                self is logging.root
                and handler in self.handlers
                and not isinstance(handler, ThreadLogRouter)
                and handler not in watch._added_by_this_test()
            ):
                watch.did("removed a root logger handler")
            remove(self, handler)

        self._streams = {name: getattr(sys, name) for name in _STREAMS}
        sys.setrecursionlimit = setrecursionlimit
        logger.addHandler, logger.removeHandler = add_handler, remove_handler  # type: ignore[method-assign]
        sys.__class__ = _WatchedSys
        _watch = self

    def uninstall(self) -> None:
        global _watch
        if _watch is not self:
            return
        _watch = None
        sys.__class__ = self._saved["sys"]
        sys.setrecursionlimit = self._saved["setrecursionlimit"]
        logging.Logger.addHandler = self._saved["addHandler"]  # type: ignore[method-assign]
        logging.Logger.removeHandler = self._saved["removeHandler"]  # type: ignore[method-assign]

    def take_stream_turn(self) -> None:
        """One test at a time has the standard streams replaced: a second test
        replacing them waits, at the assignment, until the first one ends.
        (click's ``CliRunner`` saves what it finds and puts it back on the way
        out; two overlapping would leave the first one's fakes, and the
        module attributes it patches after the streams, in place for good.)"""
        item = current.item
        if item is None or current.worker is None:
            return
        deadline = time.monotonic() + STREAM_TURN_WAIT
        with self._turn:
            while self._stream_holder not in (None, item):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._turn.wait(left)
            self._stream_holder = item

    def test_ended(self, item: Any) -> None:
        """A test has ended: if it had the streams, the streams fleet had are
        put back (as serial pytest sets its own at each test) and the next
        test waiting for them goes on."""
        with self._turn:
            if self._stream_holder is not item:
                return
            self._stream_holder = None
            for name, stream in self._streams.items():
                if getattr(sys, name) is not stream:
                    types.ModuleType.__setattr__(sys, name, stream)
            self._turn.notify_all()

    def _added_by_this_test(self) -> set[Any]:
        added = self._added
        if added.item is not current.item:
            added.item, added.handlers = current.item, set()
        assert added.handlers is not None
        return added.handlers

    def did(self, what: str) -> None:
        """The test on this thread did ``what`` (outside a test: fleet, or a
        thread a test started, nobody to blame)."""
        item = current.item
        if item is not None and current.worker is not None:
            self._caught(item, what)

    def look(self) -> list[str]:
        """What changed since the last look that no one was seen doing (file
        descriptors 1 and 2 closed or replaced are put back)."""
        changed = [f"closed or replaced file descriptor {fd}" for fd in repair_std_fds()]
        modules = len(sys.modules)
        if modules < self._modules:
            changed.append("removed modules from sys.modules")
        self._modules = modules
        blocked = sum(1 for module in list(sys.modules.values()) if module is None)
        if blocked > self._blocked:
            changed.append("blocked an import (a sys.modules entry set to None)")
        self._blocked = blocked
        frozen = time.time is not self._real_time
        if frozen and not self._frozen:
            changed.append("replaced time.time (a frozen or mocked clock)")
        self._frozen = frozen
        return changed

    def audited(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "os.chdir":
            self.did("changed the working directory")
            return
        name = args[0].decode("utf-8", "replace") if isinstance(args[0], bytes) else str(args[0])
        if name not in _IGNORED_VARIABLES:
            self.did(f"{'set' if event == 'os.putenv' else 'removed'} the environment variable {name}")


_watch: StateWatch | None = None
_hooked = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    watch = _watch
    if watch is not None and event in _AUDITED:
        watch.audited(event, args)


def _add_hook_once() -> None:
    global _hooked
    if not _hooked:
        sys.addaudithook(_audit)
        _hooked = True
