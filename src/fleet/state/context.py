"""What the current thread is doing: which worker it is and which test it runs.

Every piece of per-thread state fleet keeps (fixture values, captured output,
log handlers) is looked up through this one thread-local, so a thread that is
not a fleet worker (the main thread, a thread a test started) sees pytest
behave as usual.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest


class _Current(threading.local):
    worker: str | None = None
    item: pytest.Item | None = None
    # fixturedef -> slot holding that fixture's value for the current item
    item_slots: dict[Any, Any] | None = None
    # fixturedef -> slot, pinned while that fixture is being set up or torn down
    pinned: dict[Any, Any] | None = None
    # the logging hook calls of the test running on this thread (state.relay)
    events: list[Any] | None = None
    # in a worker process: warnings recorded during the current test, for its result
    warnings: list[Any] | None = None
    # fixture instances the current test uses that another parameter could replace
    counted: list[Any] | None = None
    # the current test runs with no other test beside it in this process
    alone = False
    # fixtures set up by the current test's set-up, with their times (report.monitor)
    fixture_times: list[Any] | None = None


current = _Current()
