"""A worker process: forked from the controller after collection, it runs chains.

The process starts as a copy of the controller right after planning, so it
has the session, the collected items and the plan without collecting again.
It puts fleet's per-thread state in place (the same as in threads mode), then
runs the chains the controller sends on its worker threads and sends each
test's reports back (see :mod:`fleet.execute.wire`). It never writes
progress itself; the controller logs every report.

Its threads take the chains in the order they arrive; a thread runs its
chain's tests one after another. A test marked exclusive waits until no other
test runs in this process, and holds the others back while it runs.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from multiprocessing.connection import Connection
from typing import Any, NoReturn

import pytest

from fleet import adapters
from fleet.execute import timeouts
from fleet.execute.interference import SideBySide, held_back, import_halted
from fleet.execute.processes import nodes, wire
from fleet.execute.processes.launch import spawned_identity
from fleet.front import login
from fleet.plan.groups import Plan
from fleet.state import internals, relay, session_fixtures
from fleet.state.context import current
from fleet.state.fixtures import FixtureSlots, running
from fleet.state.install import ThreadOutput
from fleet.state.setupstate import SharedSetupState
from fleet.worker import thread_names

PR_SET_PDEATHSIG = 1


class _Chain:
    __slots__ = ("indices", "free")

    def __init__(self, indices: list[int], free: bool) -> None:
        self.indices = deque(indices)
        self.free = free  # no test in a group: its tail may go to another worker


class _Gate:
    """Ordinary tests run side by side; an exclusive one runs alone."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running = 0
        self._exclusive_waiting = 0
        self._exclusive_running = False

    def enter(self, exclusive: bool) -> None:
        with self._cond:
            if exclusive:
                self._exclusive_waiting += 1
                self._cond.wait_for(lambda: self._running == 0 and not self._exclusive_running)
                self._exclusive_waiting -= 1
                self._exclusive_running = True
            else:
                self._cond.wait_for(
                    lambda: not self._exclusive_running and not self._exclusive_waiting
                )
                self._running += 1

    def leave(self, exclusive: bool) -> None:
        with self._cond:
            if exclusive:
                self._exclusive_running = False
            else:
                self._running -= 1
            self._cond.notify_all()


class WorkerProcess:
    def __init__(
        self,
        session: pytest.Session,
        plan: Plan,
        slots: FixtureSlots,
        name: str,
        threads: int,
        environment: dict[str, str],
        conn: Any,
        make_session_fixtures: bool,
    ) -> None:
        self.session = session
        self.config = session.config
        self.plan = plan
        self.slots = slots
        self.name = name
        self.thread_names = thread_names(name, threads)
        self.environment = environment
        self.conn = conn
        self.make_session_fixtures = make_session_fixtures
        # session fixture values the first worker made, handed to this one
        self.made: list[session_fixtures.Made] = []
        # pytest-xdist's worker interface (.nodes): set by the controller
        self.workerinput: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._queued: deque[_Chain] = deque()
        self._started: list[_Chain] = []
        self._stopping = False
        self._shutdown = False
        self._send_lock = threading.Lock()
        self._gate = _Gate() if threads > 1 else None
        self._index = {id(item): i for i, item in enumerate(plan.items)}
        self._last_index: int | None = None
        self.side_by_side = SideBySide(plan.items) if threads > 1 else None
        self._caught_sent: set[int] = set()

    # -- the process ----------------------------------------------------------

    def main(self, controller_pid: int) -> NoReturn:
        code = 0
        try:
            _become_worker(controller_pid, self.environment)
            self._run()
        except BaseException:
            traceback.print_exc()
            code = 3
        finally:
            for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
                try:
                    stream.flush()
                except Exception:
                    pass
        os._exit(code)

    def _run(self) -> None:
        nodes.become_worker(self.config, self.workerinput)
        adapters.notify(self.config, "worker_started")
        setupstate = SharedSetupState(())
        internals.set_setupstate(self.session, setupstate)
        self.setupstate = setupstate
        output = ThreadOutput(self.config)
        output.install()  # never uninstalled: the process ends with os._exit
        self.slots.on_session_setup = self._making
        if self.side_by_side is not None:
            self.side_by_side.install()
        self.config.pluginmanager.register(_WarningForwarder(), "fleet-warning-forwarder")
        timeout_plugin = self.config.pluginmanager.get_plugin("fleet-timeouts")
        if timeout_plugin is not None:
            timeout_plugin.watchdog = timeouts.Watchdog(self._timed_out)
        if self.make_session_fixtures:
            made = session_fixtures.make(self.session, self.plan.items, self.slots, setupstate, output.capture.live)
            self._send(("made", made))
        if len(self.thread_names) == 1:
            # One test at a time: on the main thread, as in a serial run (signal
            # handlers, main-thread checks), with the messages handled beside it.
            receiver = threading.Thread(target=self._receive_loop, name=f"fleet-{self.name}-receiver", daemon=True)
            receiver.start()
            self._runner(self.thread_names[0])
            receiver.join()
        else:
            runners = [
                threading.Thread(target=self._runner, args=(name,), name=f"fleet-{name}", daemon=True)
                for name in self.thread_names
            ]
            for runner in runners:
                runner.start()
            self._receive_loop()
            for runner in runners:
                runner.join()
        extra = self._final_teardown()
        adapters.notify(self.config, "worker_finishing", made=self.made)
        rootpath = self.config.rootpath
        made_here = sorted(
            {f.argname for f in self.slots.made_here if session_fixtures.is_project_fixture(f, rootpath)}
        )
        self._send(("bye", extra, made_here, getattr(self.config, "workeroutput", {})))

    def _receive_loop(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                os._exit(1)  # the controller is gone
            tag = message[0]
            if tag == "run":
                self._take_chain(message[1])
            elif tag == "made":  # a spawned worker: the values forked ones inherit
                session_fixtures.hand_over(self.session, self.plan.items, self.slots, message[1])
                self.made = message[1]
            elif tag == "login":  # a spawned worker: the controller's login
                self.config.stash[login.login_key] = message[1]
            elif tag == "give back":
                self._send(("returned", self._give_back(everything=False)))
            elif tag == "stop":
                self._send(("returned", self._give_back(everything=True)))
            elif tag == "shutdown":
                with self._work:
                    self._shutdown = True
                    self._work.notify_all()
                return

    def _take_chain(self, entries: list[tuple[int, tuple[int, ...]]]) -> None:
        items = self.plan.items
        for index, closing in entries:
            self.setupstate.expect(items[index], closing)
        indices = [index for index, _ in entries]
        free = not any(self.plan.memberships[i] for i in indices)
        with self._work:
            self._queued.append(_Chain(indices, free))
            self._work.notify()

    def _give_back(self, everything: bool) -> list[int]:
        """Tests not yet started: all of them, or about half, by count or by
        expected time (never a group's tail)."""
        expected = self.plan.expected
        weight = (lambda i: 1.0) if expected is None else expected.__getitem__  # by count, or by expected time
        with self._work:
            if everything:
                self._stopping = True
                self._work.notify_all()
            pending = sum(weight(i) for c in self._queued for i in c.indices) + sum(
                weight(i) for c in self._started if everything or c.free for i in c.indices
            )
            wanted = pending if everything else (pending // 2 if expected is None else pending / 2)
            returned: list[int] = []
            given = 0.0
            while self._queued and (everything or given < wanted):
                chain = self._queued.pop()
                returned[:0] = chain.indices
                given += sum(weight(i) for i in chain.indices)
            for chain in self._started:
                while (everything or chain.free) and chain.indices and (everything or given < wanted):
                    index = chain.indices.pop()
                    returned.append(index)
                    given += weight(index)
        for index in returned:
            self.setupstate.unexpect(self.plan.items[index])
        return sorted(returned)

    # -- the worker threads ---------------------------------------------------

    def _runner(self, name: str) -> None:
        current.worker = name
        while True:
            with self._work:
                self._work.wait_for(lambda: self._queued or self._shutdown)
                if not self._queued:
                    return
                chain = self._queued.popleft()
                self._started.append(chain)
            unsent: list[Any] = []  # the last test's result
            try:
                while True:
                    with self._work:
                        if self._stopping or not chain.indices:
                            break
                        index = chain.indices.popleft()
                    # one write: the last test's result, and which test starts now
                    self._send_all([*unsent, ("started", index, name, time.time())])
                    unsent = self._run_test_guarded(index, name)
                    if unsent[0][0] == "raised":  # Ctrl-C, pytest.exit(): no thread starts another test
                        self._send_all(unsent)
                        unsent = []
                        with self._work:  # until the controller's stop takes the rest of the chain back
                            self._work.wait_for(lambda: self._stopping or self._shutdown)
            finally:
                if unsent:
                    self._send_all(unsent)
                with self._work:
                    self._started.remove(chain)

    def _run_test_guarded(self, index: int, name: str) -> list[tuple[Any, ...]]:
        """:meth:`_run_test`, whose own failure is the test's internal error:
        the thread lives on to run the rest of its chain, so nothing waits for
        tests that would never be reported."""
        try:
            return self._run_test(index, name)
        except BaseException as exc:
            item = self.plan.items[index]
            text = f"fleet failed around this test on {name}: {wire.describe_exception(exc)}"
            report = wire.failed_report(item, text, "internal")
            return [("result", index, name, wire.dump_events(self.config, relay.standard_events(item, [report])), [], {})]

    def _run_test(self, index: int, name: str) -> list[tuple[Any, ...]]:
        """Run one test; whatever happens, the messages that say how it ended
        (with what is known of tests running beside it). Which tests ran beside
        it is counted inside the gate, so a test waiting for an exclusive one
        is never counted beside it."""
        side_by_side = self.side_by_side
        exclusive = self._gate is not None and self.plan.exclusive[index]
        if self._gate is not None:
            self._gate.enter(exclusive)
        try:
            if side_by_side is None:
                return [self._run_one(index, name, exclusive)]
            side_by_side.starting(index)
            message = self._run_one(index, name, exclusive)
            sent = wire.report_data(message[3]) if message[0] == "result" else []
            held = message[0] == "result" and held_back(self.plan.items[index], sent)
            settled = side_by_side.ended(index, held, import_halted(sent))
        finally:
            if self._gate is not None:
                self._gate.leave(exclusive)
        messages = [(*message, held) if message[0] == "result" else message]
        caught = side_by_side.tracker.caught_so_far()
        for culprit in [i for i in caught if i not in self._caught_sent and not self.plan.exclusive[i]]:
            self._caught_sent.add(culprit)
            messages.append(("caught", culprit, caught[culprit]))
        messages += [("settled", s.index, s.beside) for s in settled]
        return messages

    def _run_one(self, index: int, name: str, exclusive: bool) -> tuple[Any, ...]:
        item = self.plan.items[index]
        try:
            current.warnings = []
            internals.set_failed_subtests(self.config, item, 0)  # an earlier run's (this one runs again alone)
            try:
                with running(item, self._gate is None or exclusive) as events:
                    self.config.hook.pytest_runtest_protocol(item=item, nextitem=self.plan.nextitem[index])
            except BaseException as exc:  # pytest.exit(), Ctrl-C in the test, an internal error
                if isinstance(exc, pytest.exit.Exception):
                    return ("raised", index, name, "exit", exc.returncode, str(exc))
                kind = "interrupt" if isinstance(exc, KeyboardInterrupt) else "internal"
                return ("raised", index, name, kind, None, wire.describe_exception(exc))
            self._last_index = index
            warnings, current.warnings = current.warnings, None
            carried = adapters.gather(self.config, "carry", item=item)
            carried["failed subtests"] = internals.failed_subtests(self.config, item)
            carried["failed reports"] = relay.failed_count(relay.reports(events))
            carried["shouldfail"], carried["shouldstop"] = self.session.shouldfail, self.session.shouldstop
            return ("result", index, name, wire.dump_events(self.config, events), warnings, carried)
        except BaseException as exc:  # fleet's own code failed around the test
            text = f"fleet failed around this test on {name}: {wire.describe_exception(exc)}"
            report = wire.failed_report(item, text, "internal")
            return ("result", index, name, wire.dump_events(self.config, relay.standard_events(item, [report])), [], {})

    def _making(self, argname: str) -> None:
        self._send(("making", current.worker or self.name, argname))

    def _timed_out(self, ident: int, item: pytest.Item, seconds: float, message: str) -> None:
        index = self._index.get(id(item))
        if index is not None:
            name = current.worker or self.name
            self._send(("timeout", index, name, seconds, timeouts.stack_of(ident), message))

    def _final_teardown(self) -> list[tuple[int, list[Any]]]:
        """Tear down what is still set up here; an error goes on the last test run."""
        call = pytest.CallInfo.from_call(lambda: self.setupstate.teardown_exact(None), "teardown")
        if call.excinfo is None or self._last_index is None:
            return []
        item = self.plan.items[self._last_index]
        report = item.ihook.pytest_runtest_makereport(item=item, call=call)
        return [(self._last_index, [wire.dump_report(self.config, report)])]

    # -- sending --------------------------------------------------------------

    def _send(self, message: Any) -> None:
        self._send_all([message])

    def _send_all(self, messages: list[Any]) -> None:
        """Send at once: a test's result must be out before the next test starts,
        which may kill this process. A result that cannot be pickled goes as a
        failure naming why."""
        with self._send_lock:
            try:
                self.conn.send(messages)
            except (BrokenPipeError, OSError):
                os._exit(1)  # the controller is gone
            except Exception as exc:
                self.conn.send([wire.unpicklable(self.plan.items, message, exc) for message in messages])


class _WarningForwarder:
    """Keeps the warnings of the test running on this thread, for its result."""

    @pytest.hookimpl
    def pytest_warning_recorded(self, warning_message: Any, when: str, nodeid: str, location: Any) -> None:
        if current.warnings is not None:
            current.warnings.append(wire.dump_warning(warning_message, when, nodeid, location))


def _become_worker(controller_pid: int, environment: dict[str, str]) -> None:
    """Ctrl-C is the controller's to handle; die with the controller."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except Exception:
            pass
    if os.getppid() != controller_pid:
        os._exit(1)
    try:
        os.setpgid(0, 0)  # a group of its own: what its tests start goes with it
    except OSError:
        pass
    os.environ.update(environment)


def run_spawned(session: pytest.Session, plan: Plan, slots: FixtureSlots, uid: str) -> NoReturn:
    """In a spawned worker, after its own collection: report it, then work."""
    identity = spawned_identity()
    assert identity is not None
    name, fd, controller, threads, make = identity
    conn = Connection(fd)
    conn.send([("collected", [item.nodeid for item in plan.items])])
    tag, workerinput = conn.recv()
    assert tag == "workerinput", tag
    environment = {
        "FLEET_WORKER": name,
        "FLEET_WORKER_COUNT": os.environ.get("FLEET_WORKER_COUNT", "1"),
        "FLEET_TESTRUNUID": uid,
    }
    process = WorkerProcess(session, plan, slots, name, threads, environment, conn, make)
    process.workerinput = workerinput
    process.main(controller)
