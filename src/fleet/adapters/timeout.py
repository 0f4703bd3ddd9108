"""pytest-timeout: its timeouts, enforced by fleet's watchdog, reported in its words.

pytest-timeout's own timer is SIGALRM on the main thread and, elsewhere, a
thread that ends the whole process with ``os._exit(1)`` at the first timeout
(under threads: the run, without a summary). It lets another plugin provide
the timer (``pytest_timeout_set_timer``/``pytest_timeout_cancel_timer``,
documented as the extension point): fleet does, with the watchdog of
``--test-timeout``. On a thread the test fails with pytest-timeout's
message; in a worker process the worker is killed and replaced, and the test
fails with that message and where it was.
"""

from __future__ import annotations

from typing import Any

import pytest

PLUGIN = "timeout"


class TimeoutTimer:
    def __init__(self, config: pytest.Config) -> None:
        self._config = config

    def _watchdog(self) -> Any:
        return self._config.pluginmanager.get_plugin("fleet-timeouts").watchdog

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_timeout_set_timer(self, item: pytest.Item, settings: Any) -> bool | None:
        from fleet.state.context import current

        if current.worker is None:
            return None  # not on a fleet worker: pytest-timeout's own timer
        timeout = settings.timeout
        if timeout and timeout > 0:
            self._watchdog().start(item, timeout, "Timeout (>%ss) from pytest-timeout." % timeout)
        return True

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_timeout_cancel_timer(self, item: pytest.Item) -> bool | None:
        from fleet.execute.timeouts import cancel_here
        from fleet.state.context import current

        if current.worker is None:
            return None
        cancel_here(self._watchdog())
        return True


def configure(config: pytest.Config, processes: bool) -> None:
    config.pluginmanager.register(TimeoutTimer(config), "fleet-pytest-timeout-timer")
