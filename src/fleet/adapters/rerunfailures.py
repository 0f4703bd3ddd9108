"""pytest-rerunfailures: reruns, counted as in a serial run.

Its own ``pytest_runtest_protocol`` reruns a failing test and logs each
attempt itself; the log relay (:mod:`fleet.state.relay`) delivers those
calls in order, and fleet's SetupState keeps a test's scopes set up for its
next attempt when the plugin takes them off the stack. What a worker
process must still hand back is ``item.execution_count``, which the
controller's ``pytest_sessionfinish`` reads for ``--fail-on-flaky``; and in
a worker the plugin must not hold back intermediate reports for an old
pytest-xdist.
"""

from __future__ import annotations

from typing import Any

import pytest

PLUGIN = "rerunfailures"


def configure(config: pytest.Config, processes: bool) -> None:
    pass


def worker_started(config: pytest.Config) -> None:
    """In a worker (``config.workerinput`` set), pytest-rerunfailures logs an
    attempt's intermediate reports only if it trusts the xdist it sees; the
    relay delivers them in order whatever is installed."""
    import pytest_rerunfailures

    if hasattr(pytest_rerunfailures, "works_with_current_xdist"):
        pytest_rerunfailures.works_with_current_xdist = lambda: True


def carry(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    count = getattr(item, "execution_count", None)
    return {"rerunfailures execution_count": count} if count is not None else {}


def carried(config: pytest.Config, item: pytest.Item, data: dict[str, Any]) -> None:
    count = data.get("rerunfailures execution_count")
    if count is not None:
        item.execution_count = count
