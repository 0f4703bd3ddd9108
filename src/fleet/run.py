"""The run: what fleet does between collection and the end of the session.

Registered only for a parallel run. It keeps the tests some unit selects
(:mod:`fleet.plan.division`), takes over ``pytest_runtestloop``: plans the
collected items into groups (:mod:`fleet.plan.groups`), puts pytest's state
made safe to share in place (:mod:`fleet.state.install`), runs the plan on
threads or worker processes (:mod:`fleet.execute`) with the run's reports
watching (:mod:`fleet.report.run_report`), and puts pytest's own state back
once the session has finished.
"""

from __future__ import annotations

from typing import Any, Callable, Generator, Hashable, Mapping

import pytest

from fleet.execute.processes import launch, nodes
from fleet.execute.processes.controller import ProcessExecutor
from fleet.execute.processes.worker import run_spawned
from fleet.execute.threads import ThreadExecutor
from fleet.front import login
from fleet.front.options import max_worker_restart
from fleet.plan import history
from fleet.plan.division import Division
from fleet.plan.groups import Plan, make_plan, switched_notes
from fleet.plan.placement import Placement, caught_notes
from fleet.plan.workers import process_layout, thread_count
from fleet.report.run_report import RunReport
from fleet.state import internals, relay
from fleet.state.install import SharedScopes, ThreadOutput
from fleet.worker import testrun_uid_key


class ParallelRun:
    def __init__(
        self,
        config: pytest.Config,
        threads: int | str | None,
        unit: str,
        division: Division | None,
        processes: int | str | None = None,
        cluster: Any = None,
    ) -> None:
        self.config = config
        self.cluster = cluster  # a Ray cluster (fleet.execute.ray.cluster), with --ray
        self.threads = threads
        self.processes = processes
        self.unit = unit
        self.division = division
        self.report = RunReport(config)
        config.pluginmanager.register(self.report, "fleet-run-report")
        self._scopes: SharedScopes | None = None
        self._hook_units: Mapping[pytest.Item, Any] | None = None
        self.history: history.History | None = None
        self.splits: dict[Hashable, history.Split] = {}

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
        self.placement = Placement(session.config)
        plan = self._plan(session)
        internals.warm_tmp_path_factory(session.config)
        relay.tally(session.config)
        if self.processes is not None:
            self._run_processes(session, plan)
        else:
            self._run_threads(session, plan)
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)
        return True

    def _plan(self, session: pytest.Session) -> Plan:
        """Groups, with remembered durations if any; modules that would be the
        run's tail split when that pays (:mod:`fleet.plan.history`)."""
        units = self._units(session)
        self.history = history.load(session.config)
        expected = history.expected_times(self.history, session.items)
        plan = make_plan(session.items, self.unit, units, self.placement.exclusive, expected)
        if expected is None or self.history is None or self.unit != "module":
            return plan
        if self.processes is not None:
            processes, threads = process_layout(self._wanted_processes(), self.threads, len(plan.items))
        else:
            processes, threads = 1, thread_count(self.threads, len(plan.items))
        self.splits = history.modules_to_split(plan, self.history, expected, processes * threads, processes)
        if not self.splits:
            return plan
        return make_plan(session.items, self.unit, units, self.placement.exclusive, expected, frozenset(self.splits))

    def _wanted_processes(self) -> int | str | None:
        wanted = self.processes
        if wanted == "auto" and self.cluster is not None:
            wanted = self.cluster.cpus()
        elif wanted == "auto":
            wanted = nodes.auto_workers(self.config) or "auto"
        return wanted

    def _remember(self) -> list[str]:
        """Store what this run measured; the fleet section's lines about the plan."""
        if self.history is not None and self.report.monitor is not None:  # None: no cache
            history.remember(self.config, self.history, *self.report.monitor.durations())
        return history.describe_splits(self.splits, self.processes is not None)

    def _run_processes(self, session: pytest.Session, plan: Plan) -> None:
        processes, threads = process_layout(self._wanted_processes(), self.threads, plan.runnable_groups)
        restarts = max_worker_restart(self.config)
        self._scopes = SharedScopes(session, plan.sequential_nodes, plan.switched)
        self._scopes.install()
        uid = session.config.stash[testrun_uid_key]
        if launch.spawned_identity_present():
            run_spawned(session, plan, self._scopes.slots, uid)
        login.log_in_before_forking(self.config, plan.items)
        monitor = self.report.watch(plan.items)
        arguments = (
            session, plan, self._scopes.slots, processes, threads,
            4 * processes if restarts is None else restarts, uid, monitor,
            self.config.getoption("fleet_strict_threads"),
        )
        if self.cluster is not None:
            from fleet.execute.ray.executor import RayExecutor

            executor: ProcessExecutor = RayExecutor(*arguments, cluster=self.cluster, grow=self.processes == "auto")
        else:
            executor = ProcessExecutor(*arguments)
        try:
            with self.report.live():
                executor.run()
        finally:
            remembered = self.placement.remember(executor.caught)
            self.report.finished(
                executor.summary() + caught_notes(executor.caught, remembered) + self.placement.summary(threads > 1)
                + switched_notes(plan, processes * threads)
                + _lost_reports(session) + self._remember(),
                executor.per_process,
            )

    def _run_threads(self, session: pytest.Session, plan: Plan) -> None:
        monitor = self.report.watch(plan.items)
        threads = thread_count(self.threads, plan.runnable_groups)
        strict = self.config.getoption("fleet_strict_threads")
        executor = ThreadExecutor(session, plan, threads, monitor, strict)
        self._scopes = SharedScopes(session, plan.sequential_nodes, plan.switched)
        self._scopes.install(plan.items)
        try:
            with ThreadOutput(self.config), self.report.live():
                executor.run()
        finally:
            caught = executor.caught
            remembered = self.placement.remember(caught)
            self.report.finished(
                executor.notes + caught_notes(caught, remembered) + self.placement.summary(threads > 1)
                + switched_notes(plan, threads)
                + _lost_reports(session) + self._remember(), {}
            )

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """A project's ``pytest_fleet_units``, asked once and checked before any test runs."""
        if self.division is not None and self.division.explicit:
            return
        chosen = session.config.hook.pytest_fleet_units(config=session.config, items=session.items)
        if chosen is not None and not isinstance(chosen, Mapping):
            raise pytest.UsageError(
                "fleet: pytest_fleet_units must return a mapping of test to unit (or list of units) "
                f"or None, not {type(chosen).__name__}"
            )
        self._hook_units = chosen

    def _units(self, session: pytest.Session) -> Callable[[pytest.Item], tuple[Hashable, ...]] | None:
        """The division's units; else a project's ``pytest_fleet_units``; else None."""
        if self.division is not None and self.division.explicit:
            return self.division.units
        chosen = self._hook_units
        if chosen is not None:
            return lambda item: _as_units(chosen.get(item))
        return self.division.units if self.division is not None else None

    def pytest_unconfigure(self) -> None:
        if self.cluster is not None:
            self.cluster.close()  # --ray local: the throwaway cluster stops

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, None, None]:
        try:
            return (yield)
        finally:
            # Teardown of whatever a stopped run left set up happens inside the
            # hook (pytest's runner), still with fleet's state in place.
            if self._scopes is not None:
                self._scopes.uninstall()
                self._scopes = None


def _lost_reports(session: pytest.Session) -> list[str]:
    """Failed reports lost between a worker and pytest's reporting: never a
    green run. The run fails (exit 1) and fleet's section says what was lost."""
    problems = relay.tally(session.config).problems()
    if problems:
        session.testsfailed += 1
    return [f"FAILED REPORTS LOST: {problem}; the run is marked failed" for problem in problems]


def _as_units(value: Any) -> tuple[Hashable, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(("hook", v) for v in value)
    return (("hook", value),)
