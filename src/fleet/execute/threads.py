"""Run a plan on worker threads inside this process.

Each worker thread takes the next ready test from the scheduler and runs
pytest's own test protocol for it (set-up, call, teardown, with every
plugin's hooks) without logging the reports. The main thread logs them: it
fires ``pytest_runtest_logstart``/``logreport``/``logfinish`` for one test at
a time, so the terminal, JUnit XML, ``--lf`` and every other reporting plugin
see the same event sequence as in a serial run.
"""

from __future__ import annotations

import os
import queue
import sys
from collections import deque
from contextlib import nullcontext
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from fleet.execute.events import RunEvents
from fleet.execute.interference import SideBySide, Settled, again_note, describe_beside, held_back, import_halted
from fleet.plan.groups import Plan
from fleet.plan.schedule import Scheduler
from fleet.execute.lost import describe_exception, failed_report
from fleet.execute.timeouts import describe as describe_timeout
from fleet.execute.timeouts import stack_of
from fleet.state import internals, relay
from fleet.state.capture import repair_std_fds
from fleet.state.context import current
from fleet.state.relay import Event
from fleet.state.fixtures import running
from fleet.worker import thread_worker_names


@dataclass
class Finished:
    """A test that ran, with the logging calls it made, or an exception to re-raise."""

    item: pytest.Item
    worker: str
    events: list[Event] = field(default_factory=list)
    raised: BaseException | None = None
    index: int = -1
    held: bool = False  # failed: reported once it is known no caught test ran beside it
    settled: list[Settled] = field(default_factory=list)

    @property
    def reports(self) -> list[pytest.TestReport]:
        return relay.reports(self.events)


_WORKER_EXITED = object()


@dataclass
class _Stuck:
    """A test past its timeout that did not end: its thread is blocked where no
    exception reaches it."""

    ident: int
    item: pytest.Item
    seconds: float
    message: str

# How long a thread may hold the GIL before it must hand it over (Python's
# default is 5 ms). Threads waiting on I/O release it on their own, so this
# only paces CPU-bound work, where every forced hand-over wakes a thread on
# another core: on many tiny tests 5 ms costs ~15% over a serial run, 50 ms
# nothing measurable; I/O-bound suites are unaffected (benchmarks/README.md).
SWITCH_INTERVAL = 0.05


class ThreadExecutor:
    def __init__(
        self, session: pytest.Session, plan: Plan, workers: int, monitor: RunEvents, strict: bool = False
    ) -> None:
        self.session = session
        self.monitor = monitor
        self.plan = plan
        self.names = thread_worker_names(workers)
        monitor.use_workers(self.names)
        self.scheduler = Scheduler(plan)
        self._finished: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # taken from the queue, not yet logged
        self._pending: deque[Any] = deque()
        self._maxfail = session.config.getoption("maxfail", 0) or 0
        self._failures = 0
        self._failures_lock = threading.Lock()
        # Held by the main thread while it writes reports, and by a worker for
        # the whole of an exclusive test: a test capturing file descriptor 1
        # must not capture the progress output of other tests.
        self._terminal = threading.Lock()
        self.side_by_side = SideBySide(plan.items) if len(self.names) > 1 else None
        self._strict = strict
        self._held: dict[int, Finished] = {}
        self._alive = 0
        self._idents: dict[int, str] = {}  # thread ident -> worker name
        self._index = {id(item): i for i, item in enumerate(plan.items)}
        self._retired: set[str] = set()  # workers given up on
        self._logged: set[int] = set()
        self._given_up: set[int] = set()  # their tests
        self._early: dict[int, Settled] = {}
        # failed beside a caught test, to run again alone: (why, the failed run)
        self._again: list[tuple[Settled, Finished]] = []
        self.notes: list[str] = []

    @property
    def caught(self) -> dict[str, str]:
        """Tests caught changing process-wide state: node id -> what they did."""
        if self.side_by_side is None:
            return {}
        return {
            self.plan.items[i].nodeid: why
            for i, why in self.side_by_side.tracker.caught_so_far().items()
            if not self.plan.exclusive[i]  # alone already: nothing ran beside it
        }

    def run(self) -> None:
        began = os.times()  # not time.*: a test may mock those
        previous_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        if self.side_by_side is not None:
            self.side_by_side.install()
        watchdog = self._watchdog()
        if watchdog is not None:
            watchdog.on_stuck = self._stuck
        for name in list(self.names):
            self._start_thread(name)
        raised: BaseException | None = None
        stopped_at: Any = None
        try:
            while self._alive:
                self._take_finished()
                while self._pending:
                    event = self._pending.popleft()
                    if event is _WORKER_EXITED:
                        self._alive -= 1
                    elif isinstance(event, _Stuck):
                        self._give_up(event)
                    elif event.worker in self._retired and event.index in self._given_up:
                        pass  # its thread woke after all: it was reported already
                    elif event.raised is not None:
                        if raised is None:
                            raised = event.raised
                            stopped_at = event.item
                        self.scheduler.stop()
                    else:
                        self._take(event)
                        if self.session.shouldfail or self.session.shouldstop:
                            self.scheduler.stop()
                self.monitor.tick()
            if raised is None and not (self.session.shouldfail or self.session.shouldstop):
                self._run_again_alone()
            self._log_held()
            if raised is not None and not isinstance(raised, (KeyboardInterrupt, pytest.exit.Exception)):
                self._report_never_run(f"not run: the run stopped at an internal error in {stopped_at.nodeid}")
        except KeyboardInterrupt:
            self.monitor.interrupted("KeyboardInterrupt")
            self.scheduler.stop()
            self._drain(self._alive)
            self._log_held()
            raise
        finally:
            ended = os.times()
            self.monitor.cpu_used(ended.user + ended.system - began.user - began.system, ended.elapsed - began.elapsed)
            sys.setswitchinterval(previous_interval)
            if watchdog is not None:
                watchdog.on_stuck = None
            if self.side_by_side is not None:
                self.side_by_side.uninstall()
        if raised is not None:
            raise raised

    def _start_thread(self, name: str) -> None:
        threading.Thread(target=self._work, args=(name,), name=f"fleet-{name}", daemon=True).start()
        self._alive += 1

    def _watchdog(self) -> Any:
        timeouts = self.session.config.pluginmanager.get_plugin("fleet-timeouts")
        return getattr(timeouts, "watchdog", None)

    def _stuck(self, ident: int, item: pytest.Item, seconds: float, message: str) -> None:
        """The watchdog's thread: a test did not end after its timeout."""
        self._finished.put(_Stuck(ident, item, seconds, message))

    def _give_up(self, stuck: _Stuck) -> None:
        """Report a stuck test as timed out, let its scopes go on without it,
        and put a new thread in its thread's place; the stuck one is never joined."""
        name = self._idents.get(stuck.ident)
        index = self._index.get(id(stuck.item))
        if name is None or index is None or name in self._retired:
            return
        self._retired.add(name)
        self._given_up.add(index)
        self._alive -= 1
        item = stuck.item
        where = stack_of(stuck.ident)
        text = (
            f"{stuck.message or describe_timeout(stuck.seconds)}; its thread ({name}) is blocked where no "
            "exception reaches it (outside Python) and was given up on; the fixtures it holds were not torn down"
        )
        if where:
            text += f"\n\nWhere it was:\n{where}"
        errors = internals.get_setupstate(self.session).abandon(item)
        if self.plan.exclusive[index] and self._terminal.locked():
            self._terminal.release()  # the stuck test held it, as exclusive tests do
        self.scheduler.done(index)
        started = self.monitor.since(name, item.nodeid)
        self.monitor.marker(name, "timeout", f"{item.nodeid}: given up on after its timeout")
        self._log(Finished(item, name, relay.standard_events(item, [failed_report(item, text, "timeout", started)]), index=index))
        replacement = f"t{len(self.names)}"
        self.names.append(replacement)
        self.monitor.use_workers([replacement])
        self.notes.append(f"{item.nodeid} did not end after its timeout: thread {name} was given up on, {replacement} took its place")
        for error in errors:
            self.notes.append(f"tearing down what {item.nodeid} left: {type(error).__name__}: {error}")
        self._start_thread(replacement)

    def _take(self, event: Finished) -> None:
        """Log a finished test, or hold a failure until it is known whether a
        caught test ran beside it."""
        if event.held:
            self._held[event.index] = event
        else:
            self._log(event)
        for settled in event.settled:
            self._early[settled.index] = settled  # its own event may come after this one
        for index in [i for i in self._early if i in self._held]:
            settled = self._early.pop(index)
            held = self._held.pop(index)
            if not settled.beside:
                self._log(held)
                continue
            if self._strict:
                beside = describe_beside(self.plan.items, settled.beside)
                self.notes.append(again_note(held.item.nodeid, held.reports, beside))
                self._log(held)
            else:
                self._again.append((settled, held))

    def _log_held(self) -> None:
        """Failures not settled or not run again (a stopped run): reported as they are."""
        left = [event for _, event in self._again] + list(self._held.values())
        self._again.clear()
        self._held.clear()
        for event in sorted(left, key=lambda e: e.index):
            self._log(event)

    def _run_again_alone(self) -> None:
        """Failures beside a caught test: each runs again with nothing beside it,
        and that result is the one reported."""
        name = self.names[0]
        setupstate = internals.get_setupstate(self.session)
        while self._again and not (self.session.shouldfail or self.session.shouldstop):
            settled, first = self._again.pop(0)
            item = self.plan.items[settled.index]
            setupstate.expect(item, closing=range(len(item.listchain()) - 1))
            internals.set_failed_subtests(self.session.config, item, 0)  # the first run's are not this one's
            outcome: list[Finished] = []
            thread = threading.Thread(
                target=lambda: outcome.append(self._run_alone(settled.index, name)), name=f"fleet-{name}-alone"
            )
            thread.start()
            thread.join()
            finished = outcome[0]
            if finished.raised is not None:
                raise finished.raised
            beside = describe_beside(self.plan.items, settled.beside)
            self.notes.append(again_note(item.nodeid, first.reports, beside, finished.reports))
            self._log(finished)

    def _run_alone(self, index: int, name: str) -> Finished:
        current.worker = name
        try:
            return self._run_one(index, name, watched=False)
        finally:
            current.worker = None
            if self.side_by_side is not None:  # the streams' turn, if it took it
                self.side_by_side.watch.test_ended(self.plan.items[index])

    def _take_finished(self) -> None:
        """Wait for one finished test, then take all that are waiting."""
        while True:
            try:
                self._pending.append(self._finished.get(timeout=1.0))
                break
            except queue.Empty:
                self.monitor.tick()
        while True:
            try:
                self._pending.append(self._finished.get_nowait())
            except queue.Empty:
                return

    def _drain(self, alive: int) -> None:
        """After Ctrl-C: log the tests still running as they finish.

        A second Ctrl-C stops waiting at once.
        """
        while alive:
            event = self._pending.popleft() if self._pending else self._finished.get()
            if event is _WORKER_EXITED:
                alive -= 1
            elif event.raised is None:
                self._log(event)

    def _work(self, name: str) -> None:
        current.worker = name
        self._idents[threading.get_ident()] = name
        affinity = finished = None
        try:
            while True:
                index = self.scheduler.next(affinity, finished)
                finished = None  # marked done by that call
                if index is None:
                    break
                event = self._run_one(index, name)
                if name in self._retired:
                    return  # given up on while it ran: reported, and its place taken
                if event.raised is not None:
                    self.scheduler.stop()  # Ctrl-C, pytest.exit(): no thread starts another test
                self._finished.put(event)
                affinity, finished = self.plan.affinity[index], index
        finally:
            try:
                if finished is not None:
                    self.scheduler.done(finished)
            finally:  # whatever failed above, the main thread must hear the thread is gone
                current.worker = None
                if name not in self._retired:
                    self._finished.put(_WORKER_EXITED)

    def _run_one(self, index: int, name: str, watched: bool = True) -> Finished:
        """Run one test; whatever happens, say how it ended (never raise)."""
        item = self.plan.items[index]
        side_by_side = self.side_by_side if watched else None
        try:
            self.monitor.started(name, item.nodeid, time.time())
            if side_by_side is not None:
                side_by_side.starting(index)
            if watched and self.plan.exclusive[index] and len(self.names) > 1:
                self.scheduler.until_parked(len(self.names) - 1 - len(self._retired), timeout=0.2)
            try:
                alone = self._terminal if self.plan.exclusive[index] else nullcontext()
                by_itself = self.plan.exclusive[index] or len(self.names) == 1
                with alone, running(item, by_itself) as events:
                    self.session.config.hook.pytest_runtest_protocol(item=item, nextitem=self.plan.nextitem[index])
            except BaseException as exc:  # pytest.exit(), internal errors
                return Finished(item, name, raised=exc, index=index)
            reports = relay.reports(events)
            self._count_failures(reports)
            if side_by_side is None:
                return Finished(item, name, events, index=index)
            held = held_back(item, reports)
            settled = side_by_side.ended(index, held, import_halted(reports))
            return Finished(item, name, events, index=index, held=held, settled=settled)
        except BaseException as exc:  # fleet's own code failed around the test
            text = f"fleet failed around this test on {name}: {describe_exception(exc)}"
            return Finished(item, name, relay.standard_events(item, [failed_report(item, text, "internal")]), index=index)

    def _count_failures(self, reports: list[pytest.TestReport]) -> None:
        """Stop handing out tests the moment --maxfail is reached."""
        if not self._maxfail:
            return
        if any(r.failed and not hasattr(r, "wasxfail") for r in reports):
            with self._failures_lock:
                self._failures += 1
                reached = self._failures >= self._maxfail
            if reached:
                self.scheduler.stop()

    def _log(self, event: Finished) -> None:
        with self._terminal:
            try:
                self._log_now(event)
            except OSError:
                if not repair_std_fds():
                    raise
                self._log_now(event)  # a test closed the terminal's file descriptor

    def _report_never_run(self, text: str) -> None:
        """Every collected test ends with an outcome."""
        for index, item in enumerate(self.plan.items):
            if index not in self._logged:
                self._log(Finished(item, "-", relay.standard_events(item, [failed_report(item, text, "not run")]), index=index))

    def _log_now(self, event: Finished) -> None:
        self._logged.add(event.index)
        for report in event.reports:
            report.fleet_worker = event.worker
        relay.replay(event.item, event.events)
