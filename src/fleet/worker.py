"""Worker identity, as pytest-xdist offers it: ``worker_id`` and ``testrun_uid``.

A pytest plugin module, registered while fleet runs threads and whenever
pytest-xdist is absent (so xdist's own fixtures serve xdist's workers).
"""

from __future__ import annotations

import pytest

from fleet.context import current

testrun_uid_key = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def worker_id() -> str:
    """``t0``, ``t1``, ... on fleet's worker threads; ``master`` otherwise.

    Session-scoped, as in pytest-xdist, so session fixtures may use it; fleet
    keeps it, and every fixture that depends on it, per worker.
    """
    return current.worker or "master"


@pytest.fixture(scope="session")
def testrun_uid(request: pytest.FixtureRequest) -> str:
    """One id for the whole run, shared by every worker."""
    return request.config.stash[testrun_uid_key]
