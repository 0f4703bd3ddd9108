"""``--sw`` (pytest's stepwise): the test to continue from is the first that failed.

Serially the run stops at the first failure in collection order, and
stepwise remembers it. In parallel, tests after it may have run and failed
too, and be logged later; stepwise would remember the last failure logged,
so the next run would skip a test still failing. fleet keeps stepwise's
choice on the failed test that comes first in collection order.
"""

from __future__ import annotations

from typing import Any

import pytest

from fleet.state import internals

PLUGIN = "stepwiseplugin"


class FirstFailure:
    def __init__(self, config: pytest.Config) -> None:
        self._config = config
        self._index: dict[str, int] | None = None
        self._failed: dict[str, Any] = {}  # nodeid -> its failed report

    def _position(self, nodeid: str) -> int:
        if self._index is None:
            session = self._config.pluginmanager.get_plugin("session")
            self._index = {item.nodeid: i for i, item in enumerate(getattr(session, "items", []))}
        return self._index.get(nodeid, len(self._index))

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        plugin = self._config.pluginmanager.get_plugin(PLUGIN)
        if plugin is None or getattr(plugin, "skip", False):
            return
        if report.failed:
            self._failed.setdefault(report.nodeid, report)
        elif report.when == "call":
            self._failed.pop(report.nodeid, None)
            return
        else:
            return
        first = min(self._failed, key=self._position)
        internals.set_stepwise_failure(plugin, self._failed[first])


def configure(config: pytest.Config, processes: bool) -> None:
    config.pluginmanager.register(FirstFailure(config), "fleet-stepwise-first-failure")
