"""Reports for tests that could not report themselves, and exceptions described safely.

A test whose worker died, timed out or was never reached, or around which
fleet's own code failed, still ends with exactly one outcome: a failed report
made here, naming the cause.
"""

from __future__ import annotations

import time
import traceback
from typing import Any

import pytest


def describe_exception(exc: BaseException) -> str:
    """The exception with its traceback, or as much of it as can be had: the
    traceback module itself fails when a test left ``linecache`` broken."""
    try:
        return "".join(traceback.format_exception(exc))
    except BaseException:
        pass
    try:
        return f"{type(exc).__name__}: {exc!r} (its traceback could not be formatted)"
    except BaseException:
        return f"{type(exc).__name__} (unprintable)"


def failed_report(
    item: pytest.Item, text: str, kind: str, start: float | None = None, when: str = "call"
) -> pytest.TestReport:
    """A report for a test that could not report itself (its worker died),
    timed from ``start`` (when it started, if it did) to now.

    ``kind`` (``crash``, ``timeout``, ``not run``, ``internal``) is kept as ``fleet_lost``.
    """
    stop = time.time()
    start = stop if start is None else start
    report = pytest.TestReport(
        nodeid=item.nodeid,
        location=item.location,
        keywords={name: 1 for name in item.keywords},
        outcome="failed",
        longrepr=text,
        when=when,
        duration=stop - start,
        start=start,
        stop=stop,
    )
    report.fleet_lost = kind
    return report
