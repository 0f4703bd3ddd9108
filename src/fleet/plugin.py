"""The pytest plugin: options, marks, fixtures, and the switch into fleet's run.

Without ``--mt``/``--mp`` (or with ``--mt 1``) and without a ``--dist-*``
option, this module only registers its options, marks, hooks and fixtures
(``worker_id``, ``testrun_uid``, ``fleet_env``, ``fleet_login``); pytest runs
as usual.
"""

from __future__ import annotations

import os
import uuid

import pytest

from fleet import worker
from fleet.front import environment, login, options
from fleet.plan.division import from_options, from_strategy_file


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from fleet import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    options.add_options(parser, pluginmanager)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    from fleet.execute.timeouts import Timeouts

    for line in options.MARKS:
        config.addinivalue_line("markers", line)
    config.stash[worker.testrun_uid_key] = os.environ.get("FLEET_TESTRUNUID") or uuid.uuid4().hex
    options.check_values(config)  # every value fleet reads; a bad one: one line, exit 4
    threads = options.requested_threads(config)
    processes = options.requested_processes(config)
    ray_address = config.getoption("fleet_ray")  # checked: a valid address, or None
    if ray_address is not None and processes is None:
        processes = "auto"  # --mp N across the cluster; by default one per CPU it offers
    if config.getoption("fleet_env"):
        environment.environment(config)  # an unknown --env: a usage error before anything runs
    options.take_back_paths_from_marks(config)
    division = from_options(config)
    parallel = threads is not None or processes is not None
    if division is not None and not parallel:
        threads = "auto"  # aomaker's rule: one worker per unit
        parallel = True
    elif parallel and division is None:
        division = from_strategy_file(config)
    unit = options.group_unit(config, parallel)
    options.check_for_parallel(config, parallel, processes)
    if config.getoption("fleet_timeline") is not None:
        from fleet.report import timeline

        timeline.check_path(config.getoption("fleet_timeline"))  # before the run, not after it
    config.pluginmanager.register(Timeouts(config), "fleet-timeouts")
    if parallel:
        _start_parallel(config, threads, processes, unit, division, ray_address)
    config.pluginmanager.register(environment, "fleet-environment")
    config.pluginmanager.register(login, "fleet-login")
    # Registered after pytest-xdist's, so fleet's win while fleet runs.
    if parallel or not config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(worker, "fleet-worker")


def _start_parallel(config: pytest.Config, threads, processes, unit, division, ray_address=None) -> None:
    from fleet import adapters
    from fleet.execute.processes.launch import quiet_if_spawned, spawned_identity_present
    from fleet.report.monitor import FixtureTimes
    from fleet.run import ParallelRun
    from fleet.state import internals
    from fleet.state.capture import CaptureFixtures
    from fleet.state.setupstate import SharedSetupState

    flag = "--mp" if processes is not None else "--mt"
    problem = internals.check(SharedSetupState.INTERFACE)
    if problem:
        raise pytest.UsageError(problem.replace("without --mt", f"without {flag}"))
    if config.getoption("usepdb", False):
        raise pytest.UsageError(f"fleet: --pdb needs one test at a time; run it without {flag}")
    if config.getoption("numprocesses", None) and config.getoption("dist", "no") != "no":
        raise pytest.UsageError(
            f"fleet: {flag} and pytest-xdist's -n both parallelise the run; use one of them"
        )
    if processes is not None and not hasattr(os, "fork"):
        raise pytest.UsageError("fleet: --mp needs os.fork (Linux, macOS); use --mt here")
    config.pluginmanager.register(FixtureTimes(), "fleet-fixture-times")
    adapters.configure(config, processes is not None)
    config.pluginmanager.register(CaptureFixtures(), "fleet-capture-fixtures")
    cluster = None
    if ray_address is not None and not spawned_identity_present():  # a worker never joins
        from fleet.front import ray_options

        ray_options.check_installed()
        from fleet.execute.ray.cluster import connect

        cluster = connect(ray_address, config.rootpath, ray_options.excludes(config))
    config.pluginmanager.register(ParallelRun(config, threads, unit, division, processes, cluster), "fleet-run")
    if processes is not None:
        quiet_if_spawned(config)


def pytest_collection_finish(session: pytest.Session) -> None:
    """The marks fleet reads on the tests that will run, checked before any runs."""
    options.check_items(session.config, session.items, session.config.pluginmanager.has_plugin("fleet-run"))
    login.check_login_provided(session.config, session.items)


@pytest.hookimpl(wrapper=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    """In verbose output, name the worker that ran the test: ``[t3] PASSED``
    (``[r1@10.0.0.2] PASSED`` on a Ray node)."""
    result = yield
    worker = getattr(report, "fleet_worker", None)
    if worker and getattr(report, "fleet_node", None):
        worker = f"{worker}@{report.fleet_node}"
    if worker and config.get_verbosity() > 0 and isinstance(result, tuple) and len(result) == 3:
        category, letter, word = result
        if isinstance(word, tuple):
            word = (f"[{worker}] {word[0]}", word[1])
        elif word:
            word = f"[{worker}] {word}"
        result = (category, letter, word)
    return result
