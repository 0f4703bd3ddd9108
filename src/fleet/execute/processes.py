"""Run a plan in worker processes (each with one or more threads).

The controller (this process) collected and planned; it forks the workers
(:mod:`fleet.execute.process_worker`), so they start with the same items
without collecting again. The first worker sets up the session fixtures
(:mod:`fleet.sessionfixtures`), the others are forked once their values are
in place. From then on the controller hands out *chains* from the scheduler
(a group's tests in order, or a batch of free tests), logs every report it
gets back, and keeps each worker fed: up to one chain per thread plus one in
reserve. A worker with nothing to do while another holds tests it has not
started gets some of them: the other gives back its reserve and half of its
free tests; a group is never split.

A worker that dies (a signal, ``os._exit``, a timeout kill) is replaced, up
to ``--max-worker-restart`` times. The test it was running fails with the
cause; with several threads in the dead worker, each test that was running
there runs again alone, and only the one that dies alone is reported as the
crash. Tests it had not started go to the other workers.
"""

from __future__ import annotations

import gc
import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing import Pipe
from multiprocessing.connection import Connection, wait
from typing import Any, Hashable

import pytest

from fleet import project, sessionfixtures
from fleet.execute import wire
from fleet.execute.process_worker import WorkerProcess, fork_worker, spawn_worker, thread_names
from fleet.plan import Plan
from fleet.report.monitor import RunMonitor
from fleet.schedule import Scheduler
from fleet.scopes import FixtureSlots
from fleet.timeouts import describe as describe_timeout

# Chains a worker holds beyond one per thread, so no thread waits for a round trip.
RESERVE = 1
# Free tests (in no group) per chain, at most.
MAX_FREE_CHAIN = 32
# How long Ctrl-C waits for running tests before the workers are killed.
INTERRUPT_GRACE = 10.0


@dataclass
class Worker:
    name: str
    pid: int
    conn: Connection
    # chain number -> its tests not yet finished, in order
    chains: dict[int, list[int]] = field(default_factory=dict)
    affinity: Hashable | None = None
    alone: int | None = None  # the one test it runs, to find out whether it crashes
    asked_back: bool = False
    may_give_back: bool = True
    timed_out: tuple[int, str, float, str] | None = None
    bye: bool = False
    shutting_down: bool = False
    process: Any = None  # the Popen of a spawned worker

    def unfinished(self) -> list[int]:
        return [index for chain in self.chains.values() for index in chain]

    def unstarted(self, threads: int) -> int:
        return sum(len(c) for c in self.chains.values()) - min(len(self.chains), threads)


# How long a spawned worker may take to collect the suite.
SPAWN_COLLECT_TIMEOUT = 600.0


def start_method() -> str:
    """Fork, unless threads already run here (a forked child would inherit
    their locks, held) or ``FLEET_START_METHOD=spawn`` asks for fresh interpreters."""
    chosen = os.environ.get("FLEET_START_METHOD")
    if chosen in ("fork", "spawn"):
        return chosen
    return "fork" if threading.active_count() == 1 else "spawn"


def _collection_difference(name: str, mine: list[str], theirs: list[str] | None) -> str:
    if theirs is None:
        return f"fleet: worker {name} did not report its collection (see its output above)"
    for index, (a, b) in enumerate(zip(mine, theirs)):
        if a != b:
            return (
                f"fleet: worker {name} collected a different suite: test {index + 1} is "
                f"{b} there but {a} here (parametrize ids must not change between runs)"
            )
    return (
        f"fleet: worker {name} collected a different suite: {len(theirs)} tests there, "
        f"{len(mine)} here"
    )


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        return f"signal {number} ({signal_name(number)})"
    return f"exit code {os.WEXITSTATUS(status)}"


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
        monitor: RunMonitor,
    ) -> None:
        self.session = session
        self.config = session.config
        self.plan = plan
        self.slots = slots
        self.names = [f"p{i}" for i in range(processes)]
        self.threads = threads
        self.max_restarts = max_restarts
        self.testrun_uid = testrun_uid
        self.monitor = monitor
        self.scheduler = Scheduler(plan, exclusive_within_process=True)
        self.workers: dict[str, Worker] = {}
        self.restarts = 0
        self.notes: list[str] = []
        self.per_process: dict[str, str] = {}  # session fixture -> why it ran per process
        self._made_sections: dict[int, list[tuple[str, str]]] = {}
        self._owner: str | None = None  # the worker holding the real session fixtures
        self._made_names: set[str] = set()
        self._made: list[sessionfixtures.Made] | None = None
        self.start_method = start_method()
        self._others_started = False
        # why a session fixture a worker made while running tests was not made first
        self._late_reason = "it was requested while a test ran"
        self._chain_numbers = 0
        self._undispatched: Counter[Any] = Counter()
        for item in plan.items:
            for node in item.listchain()[1:-1]:
                self._undispatched[node] += 1
        self._logged = [False] * len(plan.items)
        self._isolate: list[int] = []
        self._raised: BaseException | None = None
        self._stopping = False

    # -- the run ---------------------------------------------------------------

    def run(self) -> None:
        previous_term = signal.signal(signal.SIGTERM, _terminated)
        gc.collect()
        gc.freeze()  # forked workers share the collected suite's pages
        try:
            self._start("p0", make_session_fixtures=True)
            self._owner = "p0"
            self._loop()
        except KeyboardInterrupt as interrupt:
            self._interrupt(graceful=not isinstance(interrupt, _Terminated))
            raise KeyboardInterrupt from None
        finally:
            self._kill_all()
            signal.signal(signal.SIGTERM, previous_term)
            gc.unfreeze()
        if self._raised is not None:
            raise self._raised
        if not self._stopping:
            self._report_never_run()

    def _start(self, name: str, make_session_fixtures: bool = False) -> Worker:
        self.monitor.use_workers(thread_names(name, self.threads))
        if self.start_method == "spawn":
            return self._spawn(name, make_session_fixtures)
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
        controller = os.getpid()
        others = [w.conn for w in self.workers.values()]

        def start() -> Any:
            parent_end.close()
            for conn in others:
                conn.close()
            process.main(controller)

        pid = fork_worker(start)
        child_end.close()
        worker = Worker(name, pid, parent_end)
        self.workers[name] = worker
        return worker

    def _spawn(self, name: str, make_session_fixtures: bool) -> Worker:
        """A fresh interpreter: it collects, and must collect what the controller did."""
        process, conn = spawn_worker(
            self.config, name, self.threads, make_session_fixtures, self.testrun_uid, len(self.names)
        )
        worker = Worker(name, process.pid, conn, process=process)
        self.workers[name] = worker
        collected = None
        if conn.poll(SPAWN_COLLECT_TIMEOUT):
            try:
                (message,) = conn.recv()
                collected = message[1]
            except (EOFError, OSError, ValueError):
                pass
        mine = [item.nodeid for item in self.plan.items]
        if collected != mine:
            pytest.exit(_collection_difference(name, mine, collected), returncode=pytest.ExitCode.USAGE_ERROR)
        if project.login_key in self.config.stash:
            self._send(worker, ("login", self.config.stash[project.login_key]))
        if self._made is not None and not make_session_fixtures:
            self._send(worker, ("made", self._made))
        return worker

    def _start_the_others(self) -> None:
        self._others_started = True
        for name in self.names[1:]:
            self._start(name)

    def _loop(self) -> None:
        while True:
            if self._others_started:
                self._dispatch()
            if self._done():
                break
            self._receive(timeout=1.0)
            self.monitor.tick()
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
        return self.scheduler.remaining == 0 and not self._isolate and not busy

    # -- messages --------------------------------------------------------------

    def _take_made(self, made: list[sessionfixtures.Made]) -> None:
        self._made = made
        sessionfixtures.hand_over(self.session, self.plan, self.slots, made)
        self._made_names = {entry.argname for entry in made}
        for entry in made:
            if entry.value is None:
                self.per_process.setdefault(entry.argname, entry.reason)
            sections = [(f"Captured {k} setup", v) for k, v in entry.output.items() if v]
            self._made_sections.setdefault(entry.index, []).extend(sections)
        self.per_process.update(sessionfixtures.worker_bound(self.plan, self.config.rootpath))
        self._start_the_others()

    def _handle(self, worker: Worker, message: tuple[Any, ...]) -> None:
        tag = message[0]
        if tag == "made":
            self._take_made(message[1])
        elif tag == "started":
            _, index, name, at = message
            self.monitor.started(name, self.plan.items[index].nodeid, at)
        elif tag == "result":
            _, index, name, reports, warnings = message
            for data in warnings:
                wire.replay_warning(self.config, data)
            self._finish(worker, index)
            self._log(index, name, [wire.load_report(self.config, r) for r in reports])
        elif tag == "timeout":
            _, index, name, seconds, stack = message
            if index in worker.unfinished() and worker.timed_out is None:
                worker.timed_out = (index, name, seconds, stack)
                _kill(worker.pid)
        elif tag == "returned":
            self._returned(worker, message[1])
        elif tag == "raised":
            _, index, name, returncode, text = message
            self._finish(worker, index)
            if self._raised is None:
                self._raised = (
                    pytest.exit.Exception(text, returncode)
                    if returncode is not None
                    else RuntimeError(f"fleet: worker {name} failed running a test:\n{text}")
                )
            self._stop()
        elif tag == "bye":
            _, extra, made_here = message
            worker.bye = True
            for index, reports in extra:
                self._log(index, worker.name, [wire.load_report(self.config, r) for r in reports], extra=True)
            for argname in made_here:
                if argname not in self._made_names:
                    self.per_process.setdefault(argname, self._late_reason)

    def _finish(self, worker: Worker, index: int) -> None:
        for number, chain in worker.chains.items():
            if index in chain:
                chain.remove(index)
                if not chain:
                    del worker.chains[number]
                break
        if worker.alone == index:
            worker.alone = None
        worker.affinity = self.plan.affinity[index]
        self.scheduler.done(index)

    def _returned(self, worker: Worker, indices: list[int]) -> None:
        worker.asked_back = False
        if not indices:
            worker.may_give_back = False
            return
        returned = set(indices)
        for number in list(worker.chains):
            worker.chains[number] = [i for i in worker.chains[number] if i not in returned]
            if not worker.chains[number]:
                del worker.chains[number]
        for index in indices:
            for node in self.plan.items[index].listchain()[1:-1]:
                self._undispatched[node] += 1
        self.scheduler.give_back(indices)

    # -- logging ---------------------------------------------------------------

    def _log(self, index: int, worker: str, reports: list[pytest.TestReport], extra: bool = False) -> None:
        item = self.plan.items[index]
        if not extra and self._logged[index]:
            return
        self._logged[index] = True
        sections = self._made_sections.pop(index, None)
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        for report in reports:
            report.fleet_worker = worker
            if sections and report.when == "setup":
                report.sections[:0] = sections
            ihook.pytest_runtest_logreport(report=report)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        if self.session.shouldfail or self.session.shouldstop:
            self._stop()

    def _log_failure(self, index: int, worker: str, text: str, kind: str) -> None:
        self.scheduler.done(index)
        item = self.plan.items[index]
        started = self.monitor.since(worker, item.nodeid)
        self._log(index, worker, [wire.failed_report(item, text, kind, started)])

    def _report_never_run(self) -> None:
        """Every collected test ends with an outcome, even with no worker left."""
        for index, logged in enumerate(self._logged):
            if not logged:
                self._log(index, "-", [wire.failed_report(
                    self.plan.items[index],
                    "not run: every worker process crashed and --max-worker-restart "
                    f"({self.max_restarts}) allows no more",
                    "not run",
                )])

    # -- handing out work ------------------------------------------------------

    def _dispatch(self) -> None:
        if self._stopping or self._raised is not None:
            return
        workers = sorted(
            (w for w in self.workers.values() if not w.shutting_down and w.timed_out is None),
            key=lambda w: len(w.chains),
        )
        for worker in workers:
            if self._isolate and worker.alone is None and not worker.chains:
                index = self._isolate.pop(0)
                worker.alone = index
                self._send_chain(worker, [index], alone=True)
        if self._isolate:
            return
        # One chain per worker per round, so the first workers do not take it all.
        open_workers = [w for w in workers if w.alone is None]
        while open_workers:
            for worker in list(open_workers):
                chain = []
                if len(worker.chains) < self.threads + RESERVE:
                    chain = self.scheduler.take_chain(worker.affinity, self._free_chain_length())
                if chain:
                    self._send_chain(worker, chain)
                else:
                    open_workers.remove(worker)
        if any(len(w.chains) < self.threads for w in workers if w.alone is None):
            self._ask_back(workers)

    def _free_chain_length(self) -> int:
        slots = len(self.workers) * self.threads
        return max(1, min(MAX_FREE_CHAIN, self.scheduler.remaining // (slots * 4)))

    def _send_chain(self, worker: Worker, chain: list[int], alone: bool = False) -> None:
        entries = []
        for index in chain:
            closing = []
            for depth, node in enumerate(self.plan.items[index].listchain()[1:-1], start=1):
                if alone:
                    closing.append(depth)
                    continue
                self._undispatched[node] -= 1
                if self._undispatched[node] == 0:
                    closing.append(depth)
            entries.append((index, tuple(closing)))
        self._chain_numbers += 1
        worker.chains[self._chain_numbers] = list(chain)
        worker.may_give_back = True
        self._send(worker, ("run", entries))

    def _ask_back(self, workers: list[Worker]) -> None:
        victims = [
            w for w in workers
            if not w.asked_back and w.may_give_back and w.alone is None and w.unstarted(self.threads) > 1
        ]
        if victims:
            victim = max(victims, key=lambda w: w.unstarted(self.threads))
            victim.asked_back = True
            self._send(victim, ("give back",))

    def _send(self, worker: Worker, message: tuple[Any, ...]) -> None:
        try:
            worker.conn.send(message)
        except (BrokenPipeError, OSError):
            pass  # it died; its end of the pipe reports that

    def _stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self.scheduler.stop()
        self._isolate.clear()
        for worker in self.workers.values():
            self._send(worker, ("stop",))

    # -- a worker died -----------------------------------------------------------

    def _lost(self, worker: Worker) -> None:
        del self.workers[worker.name]
        worker.conn.close()
        status = _reap(worker)
        cause = describe_exit(status)
        if worker.bye:
            return
        if not self._others_started:
            # it died making the session fixtures: every process makes its own
            self.notes.append(f"worker {worker.name} died ({cause}) making the session fixtures")
            self._late_reason = "the first worker died making the session fixtures"
            self._start_the_others()
        if worker.name == self._owner:
            self._owner = None
            if self._made_names:
                self.notes.append(
                    f"worker {worker.name} died ({cause}); the session fixtures it made "
                    "were not torn down"
                )
        unfinished = worker.unfinished()
        if worker.timed_out is not None:
            index, _, seconds, stack = worker.timed_out
            name = self._thread_running(worker.name, index)
            text = f"{describe_timeout(seconds)}; worker {worker.name} was killed and replaced"
            self.monitor.marker(name, "timeout", f"{self.plan.items[index].nodeid}: {text}")
            if stack:
                text += f"\n\nWhere it was:\n{stack}"
            self._log_failure(index, name, text, "timeout")
            unfinished.remove(index)
            self._requeue(unfinished)
        elif worker.shutting_down and not unfinished:
            self.notes.append(f"worker {worker.name} crashed while tearing down ({cause})")
            return
        else:
            suspects = [chain[0] for chain in list(worker.chains.values())[: self.threads]]
            if worker.alone is not None:
                suspects = [worker.alone]
            if not suspects:
                pass  # it died between tests
            elif len(suspects) == 1:
                index = suspects[0]
                thread = self._thread_running(worker.name, index)
                text = f"worker {worker.name} crashed: {cause} while running {self.plan.items[index].nodeid}"
                self.monitor.marker(thread, "crash", text)
                self._log_failure(index, thread, text, "crash")
            else:
                for index in suspects:
                    self.monitor.lost_attempt(
                        self.plan.items[index],
                        self._thread_running(worker.name, index),
                        f"worker {worker.name} crashed ({cause}) while it ran this test and "
                        f"{len(suspects) - 1} more on threads; it runs again alone",
                    )
                self._isolate.extend(suspects)
                self.notes.append(
                    f"worker {worker.name} crashed ({cause}) running {len(suspects)} tests "
                    "on threads; each ran again alone to find the one that crashed"
                )
            self._requeue([i for i in unfinished if i not in suspects])
        if self._stopping or self._raised is not None:
            return
        if self.restarts < self.max_restarts and (self.scheduler.remaining or self._isolate):
            self.restarts += 1
            what = "was killed after a timeout" if worker.timed_out else f"crashed ({cause})"
            self.notes.append(
                f"worker {worker.name} {what} and was replaced "
                f"({self.restarts} of --max-worker-restart {self.max_restarts})"
            )
            self._start(worker.name)
            self.monitor.marker(thread_names(worker.name, self.threads)[0], "restart", f"worker {worker.name} replaced")

    def _thread_running(self, process: str, index: int) -> str:
        """The worker thread of ``process`` that was running test ``index``."""
        nodeid = self.plan.items[index].nodeid
        for name in thread_names(process, self.threads):
            if self.monitor.since(name, nodeid) is not None:
                return name
        return process

    def _requeue(self, indices: list[int]) -> None:
        for index in indices:
            for node in self.plan.items[index].listchain()[1:-1]:
                self._undispatched[node] += 1
        if indices:
            self.scheduler.give_back(indices)

    # -- the end ---------------------------------------------------------------

    def _shutdown(self, deadline: float | None = None) -> None:
        """Shut the workers down; the one holding the session fixtures last."""
        last = [w for w in self.workers.values() if w.name == self._owner]
        first = [w for w in self.workers.values() if w.name != self._owner]
        for group in (first, last):
            for worker in group:
                worker.shutting_down = True
                self._send(worker, ("shutdown",))
            self._wait_gone(group, deadline)

    def _wait_gone(self, group: list[Worker], deadline: float | None = None) -> None:
        while any(w.name in self.workers for w in group):
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            received = self._receive(timeout, group)
            self.monitor.tick()
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
            _kill(worker.pid)
            _reap(worker)
            worker.conn.close()
        self.workers.clear()

    def summary(self) -> list[str]:
        return list(self.notes)


class _Terminated(KeyboardInterrupt):
    """SIGTERM to the controller: stop at once."""


def _terminated(signum: int, frame: Any) -> None:
    raise _Terminated()


def _reap(worker: Worker) -> int:
    try:
        _, status = os.waitpid(worker.pid, 0)
    except ChildProcessError:
        status = 0
    if worker.process is not None:
        worker.process.returncode = os.waitstatus_to_exitcode(status)
    return status


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
