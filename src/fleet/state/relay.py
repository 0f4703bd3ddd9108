"""The log relay: a test's logging hooks, kept on its worker and replayed by the main thread.

pytest's runner, and plugins that run their own protocol (pytest-rerunfailures)
or log extra reports (pytest 9's subtests, unittest's ``subTest``), call
``pytest_runtest_logstart``, ``pytest_runtest_logreport`` and
``pytest_runtest_logfinish`` from inside the test's run. On a worker thread,
or in a worker process, those calls are recorded instead of delivered (every
hook call passes through pluggy's one hook executor, whatever proxy made it);
the main thread of the run (the controller) then makes the same calls, in the
same order, one test at a time. Every reporting plugin sees the event stream
of a serial run, and none needs to be thread-safe.
"""

from __future__ import annotations

from typing import Any

import pytest

from fleet.state import internals
from fleet.state.context import current

RELAYED = frozenset({"pytest_runtest_logstart", "pytest_runtest_logreport", "pytest_runtest_logfinish"})

# (hook name, keyword arguments): delivered again through the test's hook proxy
Event = tuple[str, dict[str, Any]]


class LogRelay:
    def __init__(self, config: pytest.Config) -> None:
        self._pluginmanager = config.pluginmanager
        self._original: Any = None

    def install(self) -> None:
        original = self._original = internals.hook_executor(self._pluginmanager)

        @internals.internal_frame
        def hookexec(hook_name: str, methods: Any, kwargs: dict[str, Any], firstresult: bool) -> Any:
            __tracebackhide__ = True
            events = current.events
            if events is not None and hook_name in RELAYED:
                events.append((hook_name, kwargs))
                return []
            return original(hook_name, methods, kwargs, firstresult)

        internals.set_hook_executor(self._pluginmanager, hookexec)

    def uninstall(self) -> None:
        internals.set_hook_executor(self._pluginmanager, self._original)


def reports(events: list[Event]) -> list[pytest.TestReport]:
    """The test reports among the events."""
    return [kwargs["report"] for name, kwargs in events if name == "pytest_runtest_logreport"]


def failed_count(test_reports: list[Any]) -> int:
    return sum(1 for report in test_reports if report.failed)


class Tally:
    """Failed reports, counted where they are made and where pytest's
    reporting receives them, so that none is lost on the way unnoticed: how
    many worker processes sent and the controller received, and how many fleet
    replayed and ``pytest_runtest_logreport`` saw. Reports fleet deliberately
    drops (a failure run again alone, whose second result is the one reported)
    are never replayed, so they count on neither side."""

    def __init__(self) -> None:
        self.sent = self.received = self.replayed = self.seen = 0

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Any:
        if report.failed:
            self.seen += 1
        return (yield)

    def problems(self) -> list[str]:
        lines = []
        if self.sent != self.received:
            lines.append(f"worker processes sent {self.sent} failed reports and the controller received {self.received}")
        if self.replayed != self.seen:
            lines.append(f"fleet logged {self.replayed} failed reports and pytest's reporting saw {self.seen}")
        return lines


_tally_key = pytest.StashKey[Tally]()


def tally(config: pytest.Config) -> Tally:
    """The run's tally of failed reports (registered as a plugin when first asked for)."""
    if _tally_key not in config.stash:
        config.stash[_tally_key] = Tally()
        config.pluginmanager.register(config.stash[_tally_key], "fleet-failed-report-tally")
    return config.stash[_tally_key]


def replay(item: pytest.Item, events: list[Event]) -> None:
    """Make the recorded calls, in order, through the item's hook proxy (on the
    main thread, or in the controller), as pytest's runner makes them."""
    tally(item.config).replayed += failed_count(reports(events))
    ihook = item.ihook
    for hook_name, kwargs in events:
        getattr(ihook, hook_name)(**kwargs)


def standard_events(item: pytest.Item, test_reports: list[pytest.TestReport]) -> list[Event]:
    """What pytest's runner logs for a test with these reports."""
    location = {"nodeid": item.nodeid, "location": item.location}
    return [
        ("pytest_runtest_logstart", location),
        *(("pytest_runtest_logreport", {"report": report}) for report in test_reports),
        ("pytest_runtest_logfinish", location),
    ]


def with_teardown(events: list[Event], extra: list[pytest.TestReport]) -> tuple[list[Event], bool]:
    """A test's events with the error of a later teardown (its worker's end,
    of scopes it was the last test of) as its own teardown report, as a serial
    run reports it; False when its teardown had failed already (the error is
    then not in its report)."""
    failing = [report for report in extra if report.failed]
    if not failing:
        return events, True
    merged: list[Event] = []
    placed = False
    for name, kwargs in events:
        report = kwargs.get("report")
        if name == "pytest_runtest_logreport" and report is not None and report.when == "teardown" and report.passed:
            kwargs = {"report": failing[0]}
            placed = True
        merged.append((name, kwargs))
    return merged, placed
