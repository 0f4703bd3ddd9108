"""Worker identity: the names of workers, and ``worker_id``/``testrun_uid`` as
pytest-xdist offers them.

A pytest plugin module, registered while fleet runs threads and whenever
pytest-xdist is absent (so xdist's own fixtures serve xdist's workers).
Workers are named ``t0``, ``t1``, ... (threads of this process), ``p0``,
``p1``, ... (worker processes) and ``p1t3`` (thread 3 of process 1).
"""

from __future__ import annotations

import pytest

from fleet.state.context import current

testrun_uid_key = pytest.StashKey[str]()


def thread_worker_names(count: int) -> list[str]:
    """The worker threads of this process: ``t0``, ``t1``, ..."""
    return [f"t{i}" for i in range(count)]


def thread_names(process: str, threads: int) -> list[str]:
    """The workers of one process: ``p1``, or ``p1t0``, ``p1t1``, ... with threads."""
    return [f"{process}t{i}" for i in range(threads)] if threads > 1 else [process]


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    """``t0``, ``t1``, ... on fleet's worker threads; in a pytest-xdist worker,
    xdist's (``gw0``); ``master`` otherwise.

    Session-scoped, as in pytest-xdist, so session fixtures may use it; fleet
    keeps it, and every fixture that depends on it, per worker.
    """
    workerinput = getattr(request.config, "workerinput", None)
    return current.worker or (workerinput or {}).get("workerid") or "master"


@pytest.fixture(scope="session")
def testrun_uid(request: pytest.FixtureRequest) -> str:
    """One id for the whole run, shared by every worker (pytest-xdist's in its workers)."""
    workerinput = getattr(request.config, "workerinput", None)
    return (workerinput or {}).get("testrunuid") or request.config.stash[testrun_uid_key]
