"""Log capture per thread.

pytest's logging plugin attaches one capture handler to the root logger and
resets it at every test phase, so under threads each test's records (and
``caplog``) would hold every other thread's records too. While fleet runs
threads, one :class:`ThreadLogRouter` on the root logger hands each record
only to the handlers of the test running on the thread that logged it. A test
or library that resets logging (``logging.basicConfig(force=True)``,
``dictConfig``) removes it; it is put back at the start of every test phase,
where pytest itself adds its handlers.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Generator

import pytest

from fleet.state import internals
from fleet.state.context import current
from fleet.state.internals import internal_frame


class _Handlers(threading.local):
    active: tuple[logging.Handler, ...] = ()
    # this thread's (caplog, report) handler pair, reset at every phase as
    # pytest resets its single pair
    pair: tuple[Any, Any] | None = None
    # handlers a test phase on this thread added to the root logger
    added: list[logging.Handler] | None = None


_handlers = _Handlers()


class ThreadLogRouter(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        for handler in _handlers.active:
            if record.levelno >= handler.level:
                handler.handle(record)
        for handler in _handlers.added or ():
            if record.levelno >= handler.level:
                handler.handle(record)


class ThreadLogCapture:
    def __init__(self, config: pytest.Config) -> None:
        self._plugin = internals.logging_plugin(config)
        self._formatter, self._level = (
            internals.log_settings(self._plugin) if self._plugin is not None else (None, None)
        )
        self._router = ThreadLogRouter()
        self._root_level: int | None = None

    def install(self) -> None:
        plugin = self._plugin
        if plugin is None:
            return
        root = logging.getLogger()
        root.addHandler(self._router)
        if self._level is not None:
            self._root_level = root.level
            root.setLevel(min(root.level, self._level))
        internals.override_runtest_for(plugin, self._runtest_for)
        self._add, self._remove = logging.Logger.addHandler, logging.Logger.removeHandler
        add, remove = self._add, self._remove
        router = self._router

        def add_handler(logger: logging.Logger, handler: logging.Handler) -> None:
            if logger is logging.root and handler is not router and current.item is not None and current.worker:
                added = _handlers.added
                if added is None:
                    added = _handlers.added = []
                if handler not in added:
                    added.append(handler)  # sees this thread's records only
                return
            add(logger, handler)

        def remove_handler(logger: logging.Logger, handler: logging.Handler) -> None:
            added = _handlers.added
            if logger is logging.root and added and handler in added:
                added.remove(handler)
                return
            remove(logger, handler)

        logging.Logger.addHandler, logging.Logger.removeHandler = add_handler, remove_handler  # type: ignore[method-assign]

    def uninstall(self) -> None:
        plugin = self._plugin
        if plugin is None:
            return
        internals.restore_runtest_for(plugin)
        logging.Logger.addHandler, logging.Logger.removeHandler = self._add, self._remove  # type: ignore[method-assign]
        root = logging.getLogger()
        root.removeHandler(self._router)
        if self._root_level is not None:
            root.setLevel(self._root_level)

    @internal_frame
    def _runtest_for(self, item: pytest.Item, when: str) -> Generator[None, None, None]:
        __tracebackhide__ = True
        root = logging.getLogger()
        if self._router not in root.handlers:
            root.addHandler(self._router)
        if self._level is not None and root.level > self._level:
            root.setLevel(self._level)
        if _handlers.pair is None:
            _handlers.pair = (internals.log_capture_handler(), internals.log_capture_handler())
            for handler in _handlers.pair:
                handler.setFormatter(self._formatter)
        caplog_handler, report_handler = _handlers.pair
        for handler in _handlers.pair:
            handler.reset()
            handler.setLevel(self._level if self._level is not None else logging.NOTSET)
        internals.publish_caplog_handler(item, when, caplog_handler)
        _handlers.active = (caplog_handler, report_handler)
        try:
            yield
        finally:
            _handlers.active = ()
            if _handlers.added:  # still there after the phase: on the root logger, as serially
                for handler in _handlers.added:
                    self._add(logging.root, handler)
                _handlers.added = None
            log = report_handler.stream.getvalue().strip()
            item.add_report_section(when, "log", log)
