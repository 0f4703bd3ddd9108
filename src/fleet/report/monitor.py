"""What a parallel run did, recorded as it happens, in the controller.

The executors tell the monitor when a worker starts a test and when a worker
crashes or is replaced; the monitor reads everything else from the reports
the controller logs (each carries its worker, its phases' times and, from
:class:`FixtureTimes`, the fixtures set up inside it). The live view, the
timeline, the utilisation summary and the Allure bridge all read this one
record, so they cannot disagree about what happened.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

from fleet.plan.history import REPEATED_SCOPES, WIDER_SCOPES
from fleet.state.context import current
from fleet.state.session_fixtures import is_project_fixture
from fleet.state.internals import internal_frame

TICK = 0.25  # seconds between two looks at what is running


@dataclass(slots=True)  # one per test or phase: 100k tests keep them all
class Phase:
    when: str  # setup, call, teardown
    start: float
    stop: float
    outcome: str


@dataclass(slots=True)
class FixtureRun:
    """One fixture set up inside a test's set-up."""

    argname: str
    scope: str
    start: float
    stop: float
    instance: str  # the scope node and parameter it was set up for
    project: bool  # defined by the project under test, not by pytest or a plugin
    defined: str = ""  # where (its base node id): two fixtures may share a name


@dataclass(slots=True)  # one per test or phase: 100k tests keep them all
class TestRecord:
    nodeid: str
    worker: str
    phases: list[Phase] = field(default_factory=list)
    fixtures: list[FixtureRun] = field(default_factory=list)
    xfail: bool = False  # its call was an xfail (or xpass)
    outcome: str = ""  # once all its reports are in
    earlier: float = 0.0  # seconds its earlier attempts took

    # pytest's reports of unittest subTests carry no times (start and stop 0)
    @property
    def start(self) -> float:
        return min((p.start for p in self.phases if p.start), default=0.0)

    @property
    def stop(self) -> float:
        return max((p.stop for p in self.phases if p.start), default=0.0)


@dataclass(slots=True)
class Attempt:
    """A run of a test that ended in its worker's crash and is run again."""

    worker: str
    nodeid: str
    start: float
    stop: float
    text: str


@dataclass(slots=True)
class Marker:
    """A moment on a worker's track: a crash, a timeout, a restart."""

    worker: str
    kind: str
    text: str
    at: float


@dataclass
class Interruption:
    """The run was stopped from outside (Ctrl-C, SIGTERM)."""

    cause: str  # as the banner's title says it: KeyboardInterrupt, Terminated (SIGTERM)
    at: float
    running: dict[str, tuple[str, float]]  # worker -> (nodeid, since), at that moment
    raised_in: str | None  # the test that raised KeyboardInterrupt itself, in a worker process


def outcome_of(record: TestRecord) -> str:
    """A test's single outcome from its phases, as pytest's summary counts it
    (an attempt pytest-rerunfailures reran counts as nothing)."""
    phases = [p for p in record.phases if p.outcome != "rerun"]
    for phase in phases:
        if phase.outcome == "failed":
            return "failed" if phase.when == "call" else "error"
    if record.xfail:
        call = next(p for p in phases if p.when == "call")
        return "xfailed" if call.outcome == "skipped" else "xpassed"
    if any(p.outcome == "skipped" for p in phases):
        return "skipped"
    return "passed"


class _RealClock:
    """The wall clock, out of reach of a test that mocks time: freezegun
    replaces ``time.time`` and the module attributes that name it, a test may
    patch ``_pytest.timing``; neither touches a class attribute kept here."""

    now = staticmethod(time.time)


class RunMonitor:
    def __init__(self, total: int) -> None:
        self.total = total
        self.begin = _RealClock.now()
        self.end: float | None = None
        self.workers: list[str] = []
        self.hosts: dict[str, str] = {}  # worker -> the machine it runs on, when not this one
        self.records: dict[str, TestRecord] = {}
        self.markers: list[Marker] = []
        self.attempts: list[Attempt] = []
        self.counts: Counter[str] = Counter()
        self.done = 0
        self.interruption: Interruption | None = None
        self.cpu: tuple[float, float] | None = None  # (CPU s, wall s) of a threads run's process
        # worker -> (nodeid, since); written by worker threads or the controller
        self._running: dict[str, tuple[str, float]] = {}
        self._tickers: list[Callable[[], None]] = []
        self._last_tick = 0.0
        self._attempt_listeners: list[Callable[[pytest.Item, str, str, float, float], None]] = []

    # -- told by the executors -----------------------------------------------

    def use_workers(self, names: list[str]) -> None:
        self.workers += [name for name in names if name not in self.workers]

    def placed(self, workers: list[str], host: str) -> None:
        self.hosts.update(dict.fromkeys(workers, host))

    def started(self, worker: str, nodeid: str, at: float) -> None:
        self._running[worker] = (nodeid, at)

    def stopped(self, worker: str) -> None:
        self._running.pop(worker, None)

    def marker(self, worker: str, kind: str, text: str) -> None:
        self.markers.append(Marker(worker, kind, text, _RealClock.now()))

    def lost_attempt(self, item: pytest.Item, worker: str, text: str) -> None:
        """A test was running where a worker crashed and will run again: an
        attempt with no report of its own, kept for the timeline and Allure."""
        now = _RealClock.now()
        since = self.since(worker, item.nodeid) or now
        self.stopped(worker)
        self.attempts.append(Attempt(worker, item.nodeid, since, now, text))
        self.markers.append(Marker(worker, "crash", f"{item.nodeid}: {text}", now))
        for listener in self._attempt_listeners:
            listener(item, worker, text, since, now)

    def interrupted(self, cause: str, raised_in: str | None = None) -> None:
        if self.interruption is None:  # the first one: a second Ctrl-C only stops the waiting
            self.interruption = Interruption(cause, time.time(), dict(self._running), raised_in)

    def cpu_used(self, cpu: float, wall: float) -> None:
        self.cpu = (cpu, wall)

    def finish(self) -> None:
        self.end = _RealClock.now()
        self._running.clear()

    def tick(self) -> None:
        """Called often by the executor's main loop, at least once a second."""
        now = time.monotonic()
        if now - self._last_tick < TICK:
            return
        self._last_tick = now
        for ticker in self._tickers:
            ticker()

    # -- read by the views ---------------------------------------------------

    def on_tick(self, ticker: Callable[[], None]) -> None:
        self._tickers.append(ticker)

    def on_lost_attempt(self, listener: Callable[[pytest.Item, str, str, float, float], None]) -> None:
        self._attempt_listeners.append(listener)

    def running(self) -> dict[str, tuple[str, float]]:
        return dict(self._running)

    def since(self, worker: str, nodeid: str) -> float | None:
        entry = self._running.get(worker)
        return entry[1] if entry is not None and entry[0] == nodeid else None

    def durations(self) -> tuple[dict[str, float], dict[str, float]]:
        """What this run measured, for :func:`fleet.plan.history.remember`:
        each test's own seconds (less the wider-scoped fixtures set up inside
        it), and each module's and class's fixture set-up seconds."""
        tests: dict[str, float] = {}
        setups: dict[tuple[str, str], float] = {}  # (instance, fixture) -> seconds
        for record in self.records.values():
            if record.worker == "-" or not record.start:
                continue  # never ran
            wider = 0.0
            for fixture in record.fixtures:
                if fixture.scope in WIDER_SCOPES:
                    wider += fixture.stop - fixture.start
                    if fixture.scope in REPEATED_SCOPES:
                        key = (fixture.instance, fixture.argname)
                        setups[key] = max(setups.get(key, 0.0), fixture.stop - fixture.start)
            tests[record.nodeid] = round(max(0.0, record.stop - record.start - wider), 6)
        fixtures: dict[str, float] = {}
        for (instance, _), seconds in setups.items():
            node = instance.rsplit("[", 1)[0]
            fixtures[node] = round(fixtures.get(node, 0.0) + seconds, 6)
        return tests, fixtures

    # -- from the reports the controller logs --------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        worker = getattr(report, "fleet_worker", None) or "-"
        record = self.records.get(report.nodeid)
        if record is None:
            record = self.records[report.nodeid] = TestRecord(report.nodeid, worker)
        elif record.outcome and report.when == "setup":
            # another attempt (rerunfailures, or run again alone): its times are the test's
            record.earlier += record.stop - record.start
            record.phases.clear()
            record.worker = worker
        record.phases.append(Phase(report.when, *self._within_run(report.start, report.stop), report.outcome))
        record.fixtures.extend(FixtureRun(*entry) for entry in getattr(report, "fleet_fixtures", ()))
        if report.when == "call" and hasattr(report, "wasxfail"):
            record.xfail = True

    def _within_run(self, start: float, stop: float) -> tuple[float, float]:
        """A phase's times, or none where they never were: a test that mocked
        the clock (freezegun, pytest's own ``mock_timing``) reports a start or
        stop outside the run, and that phase counts as taking no time (at its
        stop, if that one is true). 0 stays 0: a report that carries no times."""
        if not start:
            return start, stop
        now = _RealClock.now()
        if self.begin <= start <= stop <= now:
            return start, stop
        end = stop if self.begin <= stop <= now else now
        return end, end

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        """A test (or one of its attempts, pytest-rerunfailures) is logged:
        it counts once, with the outcome of its last attempt."""
        record = self.records.get(nodeid)
        if record is None:
            return
        if record.outcome:
            self.counts[record.outcome] -= 1
        else:
            self.done += 1
        record.outcome = outcome_of(record)
        self.counts[record.outcome] += 1
        if self.since(record.worker, nodeid) is not None:
            self.stopped(record.worker)


class FixtureTimes:
    """Where tests run: the fixtures each test's set-up made, and when.

    They travel on the set-up report as ``fleet_fixtures``, a plain list, so
    they survive pickling and pytest's serializable report form.
    """

    @pytest.hookimpl(wrapper=True)
    @internal_frame
    def pytest_runtest_setup(self, item: pytest.Item) -> Any:
        __tracebackhide__ = True
        current.fixture_times = []
        return (yield)

    @pytest.hookimpl(wrapper=True)
    @internal_frame
    def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Any:
        __tracebackhide__ = True
        start = time.time()
        try:
            return (yield)
        finally:
            times = current.fixture_times
            if times is not None:
                instance = f"{request.node.nodeid}[{getattr(request, 'param_index', 0)}]"
                project = is_project_fixture(fixturedef, request.config.rootpath)
                times.append(
                    (fixturedef.argname, fixturedef.scope, start, time.time(), instance, project, fixturedef.baseid)
                )

    @pytest.hookimpl(wrapper=True)
    @internal_frame
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        __tracebackhide__ = True
        report = yield
        if call.when == "setup" and current.fixture_times is not None:
            report.fleet_fixtures = current.fixture_times
            current.fixture_times = None
        return report
