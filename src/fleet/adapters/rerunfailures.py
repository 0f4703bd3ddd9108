"""pytest-rerunfailures: reruns, counted as in a serial run.

Its own ``pytest_runtest_protocol`` reruns a failing test and logs each
attempt itself; the log relay (:mod:`fleet.state.relay`) delivers those
calls in order, and fleet's SetupState keeps a test's scopes set up for its
next attempt when the plugin takes them off the stack. What a worker
process must still hand back is ``item.execution_count``, which the
controller's ``pytest_sessionfinish`` reads for ``--fail-on-flaky``.
"""

from __future__ import annotations

from typing import Any

import pytest

PLUGIN = "rerunfailures"


def configure(config: pytest.Config, processes: bool) -> None:
    pass


def carry(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    count = getattr(item, "execution_count", None)
    return {"rerunfailures execution_count": count} if count is not None else {}


def carried(config: pytest.Config, item: pytest.Item, data: dict[str, Any]) -> None:
    count = data.get("rerunfailures execution_count")
    if count is not None:
        item.execution_count = count
