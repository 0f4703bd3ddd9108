"""pytest-json-report: its tests in collection order, as a serial run lists them.

pytest-json-report lists tests in the order they are logged, which in a
parallel run is the order they finish. Its own hook lets a plugin change the
report before it is written: fleet puts the tests back in collection order.
(Each test's log records are its own through fleet's log routing.)
"""

from __future__ import annotations

from typing import Any

import pytest

PLUGIN = "pytest_jsonreport"


class CollectionOrder:
    def __init__(self, config: pytest.Config) -> None:
        self._config = config

    @pytest.hookimpl(optionalhook=True)
    def pytest_json_modifyreport(self, json_report: dict[str, Any]) -> None:
        session = self._config.pluginmanager.get_plugin("session")
        items = getattr(session, "items", None) or []
        order = {item.nodeid: index for index, item in enumerate(items)}
        tests = json_report.get("tests")
        if isinstance(tests, list):
            tests.sort(key=lambda test: order.get(test.get("nodeid"), len(order)))


def configure(config: pytest.Config, processes: bool) -> None:
    config.pluginmanager.register(CollectionOrder(config), "fleet-json-report-order")
