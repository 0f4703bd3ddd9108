"""pytest-benchmark: benchmarks measured in worker processes reach the table and JSON.

pytest-benchmark collects each benchmark's statistics in the process that ran
it and writes its table, ``--benchmark-json`` and saved runs from them at the
end of the session. A worker process hands each test's new statistics back
with its result (without the fixture object they point to, which cannot
travel), and the controller adds them to its session's. Tests that use the
``benchmark`` fixture run alone in their process (:mod:`fleet.plan.placement`),
so other tests on threads do not slow what they measure.
"""

from __future__ import annotations

import copy
import pickle
from types import SimpleNamespace
from typing import Any

import pytest

PLUGIN = "benchmark"

_sent = 0  # statistics of this worker process already handed back


def configure(config: pytest.Config, processes: bool) -> None:
    pass


def _session(config: pytest.Config) -> Any:
    return getattr(config, "_benchmarksession", None)


def _travelling(bench: Any) -> Any:
    moved = copy.copy(bench)
    moved.fixture = SimpleNamespace(has_error=getattr(bench.fixture, "has_error", False))
    try:
        pickle.dumps(moved.cprofile_stats)
    except Exception:
        moved.cprofile_stats = None
    return moved


def carry(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    global _sent
    session = _session(config)
    if session is None or len(session.benchmarks) <= _sent:
        return {}
    new = session.benchmarks[_sent:]
    _sent = len(session.benchmarks)
    return {"pytest-benchmark": [_travelling(bench) for bench in new]}


def carried(config: pytest.Config, item: pytest.Item, data: dict[str, Any]) -> None:
    session = _session(config)
    if session is not None:
        session.benchmarks.extend(data.get("pytest-benchmark", ()))
