"""Worker identity, as pytest-xdist offers it: ``worker_id`` and ``testrun_uid``.

A pytest plugin module, registered while fleet runs threads and whenever
pytest-xdist is absent (so xdist's own fixtures serve xdist's workers).
"""

from __future__ import annotations

import pytest

from fleet.context import current

testrun_uid_key = pytest.StashKey[str]()


@pytest.fixture
def worker_id() -> str:
    """``t0``, ``t1``, ... on fleet's worker threads; ``master`` otherwise.

    Function-scoped: under threads, the worker is a property of each test.
    """
    return current.worker or "master"


@pytest.fixture(scope="session")
def testrun_uid(request: pytest.FixtureRequest) -> str:
    """One id for the whole run, shared by every worker."""
    return request.config.stash[testrun_uid_key]
