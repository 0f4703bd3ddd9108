"""Noticing a test that changes process-wide state while tests run on threads.

Seen as it happens, on the thread that does it, so the test is known exactly:

* ``os.environ`` changed (a new ``TZ`` included) and the working directory
  changed: an audit hook (:func:`sys.addaudithook`) sees ``os.putenv``,
  ``os.unsetenv`` and ``os.chdir``;
* ``sys.stdin``/``sys.stdout``/``sys.stderr`` replaced (``redirect_stdout``,
  click's ``CliRunner``): the ``sys`` module's type is swapped for one whose
  ``__setattr__`` notices;
* the recursion limit changed: ``sys.setrecursionlimit`` is wrapped;
* a root logger handler the test did not add removed
  (``logging.basicConfig(force=True)``, ``dictConfig``).

Seen at each test's start and end (:meth:`StateWatch.look`), done by one of
the tests running at that moment: modules removed from ``sys.modules``.

Audit hooks cannot be removed, so the hook is added once per process and does
nothing while no watch is on. Everything else is put back at uninstall.
"""

from __future__ import annotations

import logging
import sys
import threading
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

# (test, what it did): called on the test's own thread
Caught = Callable[[pytest.Item, str], None]


class _WatchedSys(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        watch = _watch
        if watch is not None and name in _STREAMS:
            watch.did(f"replaced sys.{name}")
        super().__setattr__(name, value)


class _Added(threading.local):
    item: Any = None
    handlers: set[Any] | None = None


class StateWatch:
    def __init__(self, caught: Caught) -> None:
        self._caught = caught
        self._modules = 0
        self._saved: dict[str, Any] = {}
        self._added = _Added()

    def install(self) -> None:
        global _watch
        self._modules = len(sys.modules)
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
