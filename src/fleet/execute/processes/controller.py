"""Run a plan in worker processes (each with one or more threads): the controller.

The controller (this process) collected and planned. It starts the workers
(:mod:`.launch`); the first one sets up the session fixtures
(:mod:`fleet.state.session_fixtures`), and the others start once their
values are in place. From then on the controller hands out work
(:mod:`.dispatch`), logs every report it gets back, one test at a time, so
every reporting plugin sees a serial event stream, and replaces workers that
die (:mod:`.crashes`), up to ``--max-worker-restart`` times. Messages are
those of :mod:`.wire`.
"""

from __future__ import annotations

import gc
import os
import signal
import time
from multiprocessing import Pipe
from multiprocessing.connection import wait
from typing import Any

import pytest

from fleet import adapters
from fleet.execute.events import RunEvents
from fleet.execute.interference import again_note, describe_beside
from fleet.execute.processes import crashes, nodes, wire
from fleet.execute.processes.nodes import WorkerNode
from fleet.execute.processes.dispatch import RESERVE, Dispatcher, Worker
from fleet.execute.processes.launch import (
    SPAWN_COLLECT_TIMEOUT,
    collection_difference,
    fork_worker,
    spawn_worker,
    spawn_reason,
    start_method,
)
from fleet.execute.processes.worker import WorkerProcess
from fleet.front import login
from fleet.plan.groups import Plan
from fleet.plan.schedule import Scheduler
from fleet.state import internals, relay, session_fixtures
from fleet.state.fixtures import FixtureSlots
from fleet.worker import thread_names

# How long Ctrl-C waits for running tests before the workers are killed.
INTERRUPT_GRACE = 10.0


class ProcessExecutor:
    def __init__(
        self,
        session: pytest.Session,
        plan: Plan,
        slots: FixtureSlots,
        processes: int,
        threads: int,
        max_restarts: int,
        testrun_uid: str,
        events: RunEvents,
        strict: bool = False,
    ) -> None:
        self.session = session
        self.config = session.config
        self.plan = plan
        self.slots = slots
        self.names = [f"p{i}" for i in range(processes)]
        self.threads = threads
        self.max_restarts = max_restarts
        self.testrun_uid = testrun_uid
        self.events = events
        self.scheduler = Scheduler(plan, exclusive_within_process=True)
        self.dispatcher = Dispatcher(plan, self.scheduler, threads, self._send, self.reserve(threads))
        self.workers: dict[str, Worker] = {}
        self.nodes: dict[str, WorkerNode] = {}  # pytest-xdist's view of each worker
        self.restarts = 0
        self.notes: list[str] = []
        self.per_process: dict[str, str] = {}  # session fixture -> why it ran per process
        self._made_sections: dict[int, list[tuple[str, str]]] = {}
        self._owner: str | None = None  # the worker holding the real session fixtures
        self._made_names: set[str] = set()
        self._made: list[session_fixtures.Made] | None = None
        self.start_method = start_method()
        if self.start_method == "spawn":
            self.notes.append(f"workers were spawned (each collected the suite itself): {spawn_reason()}")
        self._others_started = False
        # why a session fixture a worker made while running tests was not made first
        self._late_reason = "it was requested while a test ran"
        self._logged = [False] * len(plan.items)
        self._raised: BaseException | None = None
        self._stopped_by = ""  # why tests were not run, when the run stopped at an internal error
        self._stopping = False
        self.strict = strict
        self.caught: dict[str, str] = {}  # tests caught changing process-wide state
        self._held: dict[int, tuple[str, str, list[relay.Event]]] = {}
        self._early: dict[int, Any] = {}  # settled before its result came: what ran beside it
        # failed beside a caught test, running again alone: what ran beside it, the failed run
        self._again_for: dict[int, tuple[str, str, list[relay.Event]]] = {}

    # -- the run ---------------------------------------------------------------

    def run(self) -> None:
        previous_term = signal.signal(signal.SIGTERM, _terminated)
        gc.collect()
        gc.freeze()  # forked workers share the collected suite's pages
        try:
            # With one worker nothing is shared: it makes its session fixtures
            # as it needs them, in a serial run's order.
            shared = len(self.names) > 1
            self._owner = self.names[0]
            self._start(self._owner, make_session_fixtures=shared)
            if not shared:
                self._others_started = True
            self._loop()
        except KeyboardInterrupt as interrupt:
            terminated = isinstance(interrupt, _Terminated)
            self.events.interrupted("Terminated (SIGTERM)" if terminated else "KeyboardInterrupt")
            self._interrupt(graceful=not terminated)
            raise KeyboardInterrupt from None
        finally:
            self._kill_all()
            signal.signal(signal.SIGTERM, previous_term)
            gc.unfreeze()
        self._log_held()
        if self._stopped_by:
            self._report_never_run(self._stopped_by)  # every test ends with an outcome
        if self._raised is not None:
            raise self._raised
        if not self._stopping:
            self._report_never_run()

    def _start(self, name: str, make_session_fixtures: bool = False) -> Worker:
        self.events.use_workers(thread_names(name, self.threads))
        node = self.nodes[name] = WorkerNode(self.config, name, len(self.names), self.testrun_uid)
        nodes.configure_node(self.config, node)
        return self._launch(name, make_session_fixtures, node)

    def _launch(self, name: str, make_session_fixtures: bool, node: WorkerNode) -> Worker:
        """Start the worker's process (forked or spawned) and tell plugins it runs."""
        if self.start_method == "spawn":
            worker = self._spawn(name, make_session_fixtures, node)
            nodes.node_ready(self.config, node)
            return worker
        parent_end, child_end = Pipe()
        environment = {
            "FLEET_WORKER": name,
            "FLEET_WORKER_COUNT": str(len(self.names)),
            "FLEET_TESTRUNUID": self.testrun_uid,
        }
        process = WorkerProcess(
            self.session, self.plan, self.slots, name, self.threads, environment,
            child_end, make_session_fixtures,
        )
        process.made = self._made or []
        process.workerinput = node.workerinput
        controller = os.getpid()
        others = [w.conn for w in self.workers.values()]

        def start() -> Any:
            parent_end.close()
            for conn in others:
                conn.close()
            process.main(controller)

        handle = fork_worker(start)
        child_end.close()
        worker = Worker(name, handle, parent_end)
        self.workers[name] = worker
        nodes.node_ready(self.config, node)
        return worker

    def _spawn(self, name: str, make_session_fixtures: bool, node: WorkerNode) -> Worker:
        """A fresh interpreter: it collects, and must collect what the controller did."""
        handle, conn = spawn_worker(
            self.config, name, self.threads, make_session_fixtures, self.testrun_uid, len(self.names)
        )
        worker = Worker(name, handle, conn)
        self.workers[name] = worker
        collected = None
        if conn.poll(SPAWN_COLLECT_TIMEOUT):
            try:
                (message,) = conn.recv()
                collected = message[1]
            except (EOFError, OSError, ValueError):
                pass
        self._welcome(worker, node, collected, make_session_fixtures)
        return worker

    def _welcome(
        self, worker: Worker, node: WorkerNode, collected: list[str] | None, make_session_fixtures: bool
    ) -> None:
        """A spawned worker collected: if it collected what the controller did, it
        is sent what a forked one inherits; otherwise the run stops, naming the
        first difference."""
        mine = [item.nodeid for item in self.plan.items]
        if collected != mine:
            pytest.exit(collection_difference(worker.label, mine, collected), returncode=pytest.ExitCode.USAGE_ERROR)
        self._send(worker, ("workerinput", node.workerinput))
        if login.login_key in self.config.stash:
            self._send(worker, ("login", self.config.stash[login.login_key]))
        if self._made is not None and not make_session_fixtures:
            self._send(worker, ("made", self._made))

    def _start_the_others(self) -> None:
        self._others_started = True
        for name in self.names[1:]:
            self._start(name)

    def _loop(self) -> None:
        while True:
            if self._others_started and not (self._stopping or self._raised is not None):
                self.dispatcher.dispatch(
                    [w for w in self.workers.values() if w.ready and not w.shutting_down and w.timed_out is None]
                )
            if self._done():
                break
            self._receive(timeout=1.0)
            self.events.tick()
            self._tend()
        self._shutdown()

    def _receive(self, timeout: float | None, among: list[Worker] | None = None) -> bool:
        """Handle what the workers (or ``among`` them) sent; False if nothing came in time."""
        by_conn = {w.conn: w for w in (among or self.workers.values()) if w.name in self.workers}
        ready = wait(list(by_conn), timeout=timeout)
        for conn in ready:
            worker = by_conn[conn]
            try:
                batch = conn.recv()
            except (EOFError, OSError):
                self._lost(worker)
                continue
            for message in batch:
                self._handle(worker, message)
        return bool(ready)

    def _done(self) -> bool:
        busy = any(w.chains for w in self.workers.values())
        if self._raised is not None or self._stopping:
            return not busy
        if not self.workers:
            return True  # no worker left to run anything: _report_never_run
        return (
            self.scheduler.remaining == 0 and not self.dispatcher.isolate and not self.dispatcher.at_end
            and not busy and not self._held
        )

    # -- messages --------------------------------------------------------------

    def _take_made(self, made: list[session_fixtures.Made]) -> None:
        session_fixtures.hand_over(self.session, self.plan.items, self.slots, made)
        self._made = made  # as handed over: a value that would not unpickle is not
        self._made_names = {entry.argname for entry in made if entry.value is not None}
        for entry in made:
            if entry.value is None:
                self.per_process.setdefault(entry.argname, entry.reason)
            sections = [(f"Captured {k} setup", v) for k, v in entry.output.items() if v]
            self._made_sections.setdefault(entry.index, []).extend(sections)
        self.per_process.update(session_fixtures.per_process_by_plan(self.plan.items, self.config.rootpath, self.slots))
        self._start_the_others()

    def _handle(self, worker: Worker, message: tuple[Any, ...]) -> None:
        tag = message[0]
        if tag == "made":
            self._take_made(message[1])
        elif tag == "started":
            _, index, name, at = message
            worker.making.pop(name, None)
            self.events.started(name, self.plan.items[index].nodeid, at)
        elif tag == "making":
            _, name, argname = message
            worker.making[name] = argname
        elif tag == "result":
            _, index, name, events, warnings, carried, *held = message
            worker.making.pop(name, None)
            relay.tally(self.config).sent += carried.pop("failed reports", 0)
            self._carried(index, carried)
            for data in warnings:
                wire.replay_warning(self.config, data)
            self._finish(worker, index)
            loaded = wire.load_events(self.config, events)
            relay.tally(self.config).received += relay.failed_count(relay.reports(loaded))
            self._flush_last(worker)
            if held and held[0] and index not in self._again_for:
                self._held[index] = (worker.name, name, loaded)
                self._apply_settled()
            elif not worker.chains:
                # perhaps its last test: what the worker's own end tears down
                # belongs in this test's teardown, as in a serial run
                worker.last = (index, name, loaded)
            else:
                self._log(index, name, loaded)
        elif tag == "caught":
            _, index, reason = message
            self.caught.setdefault(self.plan.items[index].nodeid, reason)
        elif tag == "settled":
            _, index, beside = message
            self._early[index] = beside
            self._apply_settled()
        elif tag == "timeout":
            _, index, name, seconds, stack, text = message
            if index in worker.unfinished() and worker.timed_out is None:
                worker.timed_out = (index, name, seconds, stack, text)
                worker.process.kill()
        elif tag == "returned":
            self.dispatcher.returned(worker, message[1])
        elif tag == "raised":
            _, index, name, kind, returncode, text = message
            self._finish(worker, index)
            if self._raised is None:
                nodeid = self.plan.items[index].nodeid
                if kind == "exit":
                    self._raised = pytest.exit.Exception(text, returncode)
                elif kind == "interrupt":
                    self._raised = KeyboardInterrupt(f"in {nodeid} (worker {name})")
                    self.events.interrupted("KeyboardInterrupt", raised_in=nodeid)
                else:
                    self._raised = RuntimeError(f"fleet: worker {name} failed running {nodeid}:\n{text}")
                    self._stopped_by = f"not run: the run stopped at an internal error in {nodeid} (worker {name})"
            self._stop()
        elif tag == "bye":
            _, extra, made_here, workeroutput = message
            worker.bye = True
            self.nodes[worker.name].workeroutput = workeroutput
            for index, reports in extra:
                loaded = [wire.load_report(self.config, r) for r in reports]
                self._end_of_worker(worker, index, loaded)
            for argname in made_here if len(self.names) > 1 else ():
                if argname not in self._made_names:
                    self.per_process.setdefault(argname, self._late_reason)

    def _flush_last(self, worker: Worker) -> None:
        if worker.last is not None:
            index, name, events = worker.last
            worker.last = None
            self._log(index, name, events)

    def _end_of_worker(self, worker: Worker, index: int, reports: list[pytest.TestReport]) -> None:
        """Errors of a worker's own end (tearing down what it still held), on
        the last test it ran: in that test's teardown if it is still held."""
        if worker.last is not None and worker.last[0] == index:
            _, name, events = worker.last
            worker.last = None
            events, placed = relay.with_teardown(events, reports)
            self._log(index, name, events)
            if not placed:
                for report in reports:
                    self.notes.append(f"after {self.plan.items[index].nodeid} (whose teardown had failed already): {report.longrepr}")
        else:
            item = self.plan.items[index]
            self._log(index, worker.name, relay.standard_events(item, reports), extra=True)

    def _carried(self, index: int, carried: dict[str, Any]) -> None:
        """What a worker's test left on its item and the config that the
        controller's plugins read when they log it."""
        item = self.plan.items[index]
        internals.set_failed_subtests(self.config, item, carried.pop("failed subtests", 0))
        for flag in ("shouldfail", "shouldstop"):  # set by a plugin in the worker (pytest-timeout's session timeout)
            value = carried.pop(flag, False)
            if value and not getattr(self.session, flag):
                setattr(self.session, flag, value)
        adapters.notify(self.config, "carried", item=item, data=carried)

    def _apply_settled(self) -> None:
        """Held failures whose fate is known: logged, or run again alone at the end."""
        for index in [i for i in self._early if i in self._held]:
            beside = self._early.pop(index)
            process, name, events = self._held.pop(index)
            if not beside:
                self._log(index, name, events)
                continue
            described = describe_beside(self.plan.items, beside)
            if self.strict:
                self.notes.append(again_note(self.plan.items[index].nodeid, relay.reports(events), described))
                self._log(index, name, events)
            else:
                self._again_for[index] = (described, name, events)
                self.dispatcher.at_end.append(index)

    def _log_held(self, process: str | None = None) -> None:
        """Failures whose fate cannot be known now (their worker died, or the run
        stopped): reported as they were."""
        for index in sorted(self._held):
            if process is None or self._held[index][0] == process:
                _, name, events = self._held.pop(index)
                self._log(index, name, events)
        if process is None:
            for index in list(self._again_for):
                if not self._logged[index]:
                    _, name, events = self._again_for.pop(index)
                    self._log(index, name, events)

    def _finish(self, worker: Worker, index: int) -> None:
        worker.finished(index, self.plan.affinity[index])
        self._scheduled_done(index)

    def _scheduled_done(self, index: int) -> None:
        if index in self.dispatcher.rerunning:
            self.dispatcher.rerunning.discard(index)  # the scheduler was done with it before
        else:
            self.scheduler.done(index)

    # -- logging ---------------------------------------------------------------

    def _log(self, index: int, worker: str, events: list[relay.Event], extra: bool = False) -> None:
        """Make a test's logging calls here, as the worker made them."""
        item = self.plan.items[index]
        if not extra and self._logged[index]:
            return
        self._logged[index] = True
        reports = relay.reports(events)
        again = self._again_for.pop(index, None)
        if again is not None:
            described, _, first = again
            self.notes.append(again_note(item.nodeid, relay.reports(first), described, reports))
        sections = self._made_sections.pop(index, None)
        for report in reports:
            report.fleet_worker = worker
            if sections and report.when == "setup":
                report.sections[:0] = sections
                sections = None
        relay.replay(item, events)
        if self.session.shouldfail or self.session.shouldstop:
            self._stop()

    def _log_failure(self, index: int, worker: str, text: str, kind: str) -> None:
        self._scheduled_done(index)
        item = self.plan.items[index]
        started = self.events.since(worker, item.nodeid)
        self._log(index, worker, relay.standard_events(item, [wire.failed_report(item, text, kind, started)]))

    def _never_run_reason(self) -> str:
        return f"not run: every worker process crashed and --max-worker-restart ({self.max_restarts}) allows no more"

    def _report_never_run(self, text: str = "") -> None:
        """Every collected test ends with an outcome, even with no worker left."""
        text = text or self._never_run_reason()
        for index, logged in enumerate(self._logged):
            if not logged:
                item = self.plan.items[index]
                self._log(index, "-", relay.standard_events(item, [wire.failed_report(item, text, "not run")]))

    @staticmethod
    def reserve(threads: int) -> int:
        """Chains a worker holds beyond one per thread (:mod:`.dispatch`)."""
        return RESERVE

    def _send(self, worker: Worker, message: tuple[Any, ...]) -> None:
        if message[0] == "run":
            self._flush_last(worker)  # more work: its last result was not its last
        try:
            worker.conn.send(message)
        except (BrokenPipeError, OSError):
            pass  # it died; its end of the pipe reports that

    def _stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self.scheduler.stop()
        self.dispatcher.isolate.clear()
        for worker in self.workers.values():
            self._send(worker, ("stop",))

    # -- a worker died -----------------------------------------------------------

    def _lost(self, worker: Worker) -> None:
        del self.workers[worker.name]
        worker.conn.close()
        cause = worker.process.ended()
        how = worker.process.how
        self._log_held(worker.name)
        if worker.last is not None and worker.shutting_down and not worker.bye:
            index = worker.last[0]
            item = self.plan.items[index]
            text = f"worker {worker.label} {how}: {cause} while tearing down what it held after its last test, {item.nodeid}"
            self.notes.append(text)
            self._end_of_worker(worker, index, [wire.failed_report(item, text, "crash", when="teardown")])
        self._flush_last(worker)
        node = self.nodes.pop(worker.name, None)
        if node is not None:
            nodes.node_down(self.config, node, None if worker.bye else f"worker {worker.label} ({node.gateway.id}) ended: {cause}")
        if worker.bye:
            return
        if not self._others_started:
            # it died making the session fixtures: every process makes its own
            making = next(iter(worker.making.values()), None)
            what = f"the session fixture {making}" if making else "the session fixtures"
            self.notes.append(f"worker {worker.label} died ({cause}) making {what} for every worker")
            self._late_reason = f"the first worker died making {what}"
            self._start_the_others()
        if worker.name == self._owner:
            self._owner = None
            if self._made_names:
                self.notes.append(
                    f"worker {worker.label} died ({cause}); the session fixtures it made "
                    "were not torn down"
                )
        verdict = crashes.judge(worker, cause, self.threads, self.plan, self._thread_running)
        for thread, kind, text in verdict.markers:
            self.events.marker(thread, kind, text)
        for index, thread, text, kind in verdict.failures:
            self._log_failure(index, thread, text, kind)
        for index, thread, text in verdict.lost_attempts:
            self.events.lost_attempt(self.plan.items[index], thread, text)
        self.dispatcher.isolate.extend(verdict.isolate)
        self.notes.extend(verdict.notes)
        self.dispatcher.requeue(verdict.requeue)
        if self._stopping or self._raised is not None:
            return
        if (
            self.restarts < self.max_restarts and (self.scheduler.remaining or self.dispatcher.isolate)
            and self._can_replace(worker)
        ):
            self.restarts += 1
            what = "was killed after a timeout" if worker.timed_out else f"{how} ({cause})"
            self.notes.append(
                f"worker {worker.label} {what} and was replaced "
                f"({self.restarts} of --max-worker-restart {self.max_restarts})"
            )
            self._start(worker.name)
            self.events.marker(thread_names(worker.name, self.threads)[0], "restart", f"worker {worker.name} replaced")

    def _can_replace(self, worker: Worker) -> bool:
        """Whether a lost worker can be replaced now (a remote one: a node has room)."""
        return True

    def _tend(self) -> None:
        """Between two looks at the workers' messages (a remote run: watch the nodes)."""

    def _thread_running(self, process: str, index: int) -> str:
        """The worker thread of ``process`` that was running test ``index``."""
        nodeid = self.plan.items[index].nodeid
        for name in thread_names(process, self.threads):
            if self.events.since(name, nodeid) is not None:
                return name
        return process

    # -- the end ---------------------------------------------------------------

    def _shutdown(self, deadline: float | None = None) -> None:
        """Shut the workers down; the one holding the session fixtures last."""
        last = [w for w in self.workers.values() if w.name == self._owner]
        first = [w for w in self.workers.values() if w.name != self._owner]
        for group in (first, last):
            for worker in group:
                worker.shutting_down = True
                if worker.ready:
                    self._send(worker, ("shutdown",))
                else:  # still starting: it has nothing to tear down
                    worker.process.kill()
            self._wait_gone(group, deadline)

    def _wait_gone(self, group: list[Worker], deadline: float | None = None) -> None:
        while any(w.name in self.workers for w in group):
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            received = self._receive(timeout, group)
            self.events.tick()
            if not received and deadline is not None:
                return

    def _interrupt(self, graceful: bool) -> None:
        """Ctrl-C: running tests finish and are logged (a second Ctrl-C kills)."""
        if not graceful:
            return
        self._stopping = True
        self.scheduler.stop()
        try:
            for worker in self.workers.values():
                self._send(worker, ("stop",))
            deadline = time.monotonic() + INTERRUPT_GRACE
            while any(w.chains for w in self.workers.values()) and time.monotonic() < deadline:
                self._receive(max(0.0, deadline - time.monotonic()))
            self._shutdown(deadline)
        except KeyboardInterrupt:
            pass

    def _kill_all(self) -> None:
        """No worker outlives the run."""
        for worker in list(self.workers.values()):
            worker.process.kill()
            worker.process.reap()
            worker.conn.close()
        self.workers.clear()

    def summary(self) -> list[str]:
        return list(self.notes) + nodes.problems(self.config)


class _Terminated(KeyboardInterrupt):
    """SIGTERM to the controller: stop at once."""


def _terminated(signum: int, frame: Any) -> None:
    raise _Terminated()
