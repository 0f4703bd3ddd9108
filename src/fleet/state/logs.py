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
from fleet.state.internals import internal_frame


class _Handlers(threading.local):
    active: tuple[logging.Handler, ...] = ()
    # this thread's (caplog, report) handler pair, reset at every phase as
    # pytest resets its single pair
    pair: tuple[Any, Any] | None = None


_handlers = _Handlers()


class ThreadLogRouter(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        for handler in _handlers.active:
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

    def uninstall(self) -> None:
        plugin = self._plugin
        if plugin is None:
            return
        internals.restore_runtest_for(plugin)
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
            log = report_handler.stream.getvalue().strip()
            item.add_report_section(when, "log", log)
