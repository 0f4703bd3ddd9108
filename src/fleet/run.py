"""The run: what fleet does between collection and the end of the session.

Registered only when ``--mt`` asks for more than one thread. It takes over
``pytest_runtestloop``: plans the collected items into groups, installs the
thread-safe replacements for pytest's per-test state, runs the plan on worker
threads, and puts pytest's own state back once the session has finished.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Callable, Generator, Hashable

import pytest

from fleet import internals, project
from fleet.capture import ThreadCapture
from fleet.context import current
from fleet.division import Division
from fleet.execute import process_worker
from fleet.execute.processes import ProcessExecutor
from fleet.execute.threads import ThreadExecutor
from fleet.logs import ThreadLogCapture
from fleet.plan import make_plan
from fleet.report import allure, timeline, utilisation
from fleet.report.live import Progress
from fleet.report.monitor import RunMonitor
from fleet.scopes import FixtureSlots, SharedSetupState
from fleet.threadwarnings import ThreadWarnings
from fleet.worker import testrun_uid_key

# Threads for ``--mt auto``: one per group that can run, up to this many.
AUTO_THREADS_CAP = 64


class ThreadRun:
    def __init__(
        self,
        config: pytest.Config,
        threads: int | str | None,
        unit: str,
        division: Division | None,
        processes: int | str | None = None,
    ) -> None:
        self.config = config
        self.requested = threads
        self.processes = processes
        self.unit = unit
        self.division = division
        self._slots: FixtureSlots | None = None
        self._saved_setupstate = None
        self._notes: list[str] = []
        self._per_process: dict[str, str] = {}
        self.monitor: RunMonitor | None = None

    def worker_count(self, runnable_groups: int) -> int:
        if self.requested == "auto":
            return max(1, min(runnable_groups, AUTO_THREADS_CAP))
        assert isinstance(self.requested, int)
        return max(1, min(self.requested, runnable_groups))

    def process_layout(self, runnable_groups: int) -> tuple[int, int]:
        """(processes, threads in each) for ``--mp`` [``--mt``]."""
        if self.processes == "auto":
            wanted = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        else:
            wanted = int(self.processes or 1)
        processes = max(1, min(wanted, runnable_groups))
        if self.requested is None:
            return processes, 1
        if self.requested == "auto":
            per_process = -(-runnable_groups // processes)
            return processes, max(1, min(per_process, AUTO_THREADS_CAP))
        assert isinstance(self.requested, int)
        return processes, self.requested

    @pytest.hookimpl(wrapper=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> Generator[None, None, None]:
        """Keep only the tests of some unit, after the user's -m/-k narrowed them."""
        if self.division is not None:
            self.division.check_selects(items)
        result = yield
        if self.division is not None:
            runs = [bool(self.division.units(item)) for item in items]
            kept = [item for item, run in zip(items, runs) if run]
            dropped = [item for item, run in zip(items, runs) if not run]
            if dropped:
                config.hook.pytest_deselected(items=dropped)
                items[:] = kept
        return result

    def pytest_report_collectionfinish(self, items: list[pytest.Item]) -> list[str]:
        return self.division.describe(items) if self.division is not None else []

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        if session.testsfailed and not session.config.option.continue_on_collection_errors:
            raise session.Interrupted(
                f"{session.testsfailed} error{'s' if session.testsfailed != 1 else ''}"
                " during collection"
            )
        if session.config.option.collectonly:
            return True
        plan = make_plan(session.items, self.unit, self._units(session))
        internals.warm_tmp_path_factory(session.config)
        if self.processes is not None:
            self._run_processes(session, plan)
        else:
            self._run_threads(session, plan)
        self._write_timeline()
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)
        return True

    def _run_processes(self, session: pytest.Session, plan: Any) -> None:
        processes, threads = self.process_layout(plan.runnable_groups)
        restarts = max_worker_restart(self.config)
        self._slots = FixtureSlots()
        self._slots.install()
        if process_worker.spawned_identity_present():
            process_worker.run_spawned(session, plan, self._slots, session.config.stash[testrun_uid_key])
        project.log_in_before_forking(self.config, plan.items)
        monitor = self._watch(plan)
        executor = ProcessExecutor(
            session,
            plan,
            self._slots,
            processes,
            threads,
            4 * processes if restarts is None else restarts,
            session.config.stash[testrun_uid_key],
            monitor,
        )
        try:
            with self._progress(monitor):
                executor.run()
        finally:
            monitor.finish()
            self._notes = executor.summary()
            self._per_process = executor.per_process

    def _run_threads(self, session: pytest.Session, plan: Any) -> None:
        monitor = self._watch(plan)
        executor = ThreadExecutor(session, plan, self.worker_count(plan.runnable_groups), monitor)
        self._slots = FixtureSlots()
        self._slots.install()
        self._saved_setupstate = internals.get_setupstate(session)
        internals.set_setupstate(session, SharedSetupState(plan.items))
        per_thread = [
            ThreadCapture(session.config),
            ThreadLogCapture(session.config),
            ThreadWarnings(),
            internals.CurrentTestVariable(),
        ]
        installed = []
        try:
            for state in per_thread:
                state.install()
                installed.append(state)
            with self._progress(monitor):
                executor.run()
        finally:
            monitor.finish()
            for state in reversed(installed):
                state.uninstall()

    def _watch(self, plan: Any) -> RunMonitor:
        """The run's monitor, and the reports that read it as the run goes."""
        monitor = self.monitor = RunMonitor(len(plan.items))
        self.config.pluginmanager.register(monitor, "fleet-monitor")
        if allure.listener(self.config) is not None:
            results = allure.ControllerResults(monitor, plan.items)
            self.config.pluginmanager.register(results, "fleet-allure-results")
        return monitor

    @contextlib.contextmanager
    def _progress(self, monitor: RunMonitor) -> Generator[None, None, None]:
        progress = Progress(self.config, monitor)
        progress.start()
        try:
            yield
        finally:
            progress.stop()

    def _write_timeline(self) -> None:
        path = self.config.getoption("fleet_timeline")
        if path and self.monitor is not None:
            timeline.write(Path(path), self.monitor)  # checked at configure

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.monitor is None:
            return
        terminalreporter.section("fleet", sep="-")
        for line in self._notes + utilisation.summary(self.monitor, self._per_process):
            terminalreporter.line(line)
        path = self.config.getoption("fleet_timeline")
        if path:
            terminalreporter.line(f"timeline: {path}")

    def _units(self, session: pytest.Session) -> Callable[[pytest.Item], tuple[Hashable, ...]] | None:
        """The division's units; else a project's ``pytest_fleet_units``; else None."""
        if self.division is not None and self.division.explicit:
            return self.division.units
        chosen = session.config.hook.pytest_fleet_units(config=session.config, items=session.items)
        if chosen is not None:
            return lambda item: _as_units(chosen.get(item))
        return self.division.units if self.division is not None else None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        if current.worker is None:
            return None
        current.reports = internals.runtestprotocol(item, nextitem)
        return True

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, None, None]:
        try:
            return (yield)
        finally:
            # Teardown of whatever a stopped run left set up happens inside the
            # hook (pytest's runner), still with fleet's state in place.
            if self._slots is not None:
                self._slots.uninstall()
                self._slots = None
            if self._saved_setupstate is not None:
                internals.set_setupstate(session, self._saved_setupstate)
                self._saved_setupstate = None


def max_worker_restart(config: pytest.Config) -> int | None:
    """``--max-worker-restart`` (fleet's, or pytest-xdist's when it is loaded)."""
    raw = getattr(config.option, "maxworkerrestart", None)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise pytest.UsageError(f"fleet: --max-worker-restart takes a whole number, not {raw!r}")
    return value


def _as_units(value: Any) -> tuple[Hashable, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(("hook", v) for v in value)
    return (("hook", value),)
