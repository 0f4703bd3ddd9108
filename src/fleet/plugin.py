"""The pytest plugin: options, marks, fixtures, and the switch into fleet's run.

Without ``--mt`` (or with ``--mt 1``) and without a ``--dist-*`` option, this
module only registers its options, marks, hooks and fixtures (``worker_id``,
``testrun_uid``, ``fleet_env``, ``fleet_login``); pytest runs as usual.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from fleet import environment, internals, project, worker
from fleet.division import from_options, from_strategy_file
from fleet.plan import GROUP_UNITS

MARKS = (
    "group(*names): run this test in the named groups; tests of one group run one "
    "after another in collection order. group() with no names: in no group.",
    "exclusive: run this test while no other test runs in its process.",
    "xdist_group(name): read by fleet as group(name).",
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from fleet import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fleet", "fleet: run tests in parallel")
    group.addoption(
        "--mt",
        "--multi-thread",
        dest="fleet_threads",
        nargs="?",
        const="auto",
        default=None,
        metavar="N",
        help="run tests on N threads in one process after one collection "
        "(N a positive integer or 'auto', the default when N is left out).",
    )
    group.addoption(
        "--group-unit",
        dest="fleet_group_unit",
        choices=GROUP_UNITS,
        default=None,
        help="tests of one module/class run one after another; 'function': no "
        "automatic grouping (default: the group_unit ini option, else module).",
    )
    group.addoption(
        "--dist-mark",
        dest="fleet_dist_mark",
        nargs="+",
        metavar="M",
        help="one unit per mark (also one quoted, space-separated string): its "
        "tests run in order on one worker; only tests carrying one of the marks run.",
    )
    group.addoption(
        "--dist-file",
        dest="fleet_dist_file",
        metavar="DIR",
        help="one unit per test module under DIR; only those tests run.",
    )
    group.addoption(
        "--dist-suite",
        dest="fleet_dist_suite",
        metavar="DIR",
        help="one unit per sub-directory of DIR (modules directly in DIR: one "
        "more); only those tests run.",
    )
    group.addoption(
        "--dist-strategy",
        dest="fleet_dist_strategy",
        metavar="FILE",
        help="strategy file naming the marks to divide by (default with --mt: "
        "conf/dist_strategy.yaml, else conf/aomaker.yaml, when present).",
    )
    group.addoption(
        "--fleet-env",
        dest="fleet_env",
        metavar="NAME",
        help="environment section of conf/config.yaml for this run (the file is "
        "not changed); the fleet command spells it --env.",
    )
    parser.addini("group_unit", "fleet: default --group-unit (module, class or function).")
    parser.addini("group-unit", "fleet: alias of group_unit.")


def parse_thread_count(value: str) -> int | str:
    """'auto' or a positive integer; anything else raises ValueError."""
    if value == "auto":
        return value
    count = int(value)
    if count < 1:
        raise ValueError(value)
    return count


def group_unit(config: pytest.Config) -> str:
    unit = config.getoption("fleet_group_unit")
    if unit is None:
        unit = config.getini("group_unit") or config.getini("group-unit") or "module"
    unit = str(unit).strip()
    if unit not in GROUP_UNITS:
        raise pytest.UsageError(
            f"fleet: group_unit = {unit!r} in the ini file is not one of {', '.join(GROUP_UNITS)}"
        )
    return unit


def requested_threads(config: pytest.Config) -> int | str | None:
    """The --mt value, or None when fleet should not parallelise."""
    raw = config.getoption("fleet_threads")
    if raw is None:
        return None
    try:
        count = parse_thread_count(raw)
    except ValueError:
        if Path(raw.split("::", 1)[0]).exists():
            # `pytest --mt tests/`: argparse took the path for N.
            _take_back_path(config, raw)
            count = "auto"
        else:
            raise pytest.UsageError(
                f"fleet: --mt takes a positive integer or 'auto', not {raw!r}"
            ) from None
    return None if count == 1 else count


def _take_back_paths_from_marks(config: pytest.Config) -> None:
    """`pytest --dist-mark a b tests/`: argparse took the path for a mark."""
    marks = config.getoption("fleet_dist_mark")
    if marks:
        paths = [m for m in marks if Path(m.split("::", 1)[0]).exists()]
        for path in reversed(paths):
            _take_back_path(config, path)
        config.option.fleet_dist_mark = [m for m in marks if m not in paths] or None


def _take_back_path(config: pytest.Config, path: str) -> None:
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        config.args.insert(0, path)
    else:
        config.args[:] = [path]
        config.args_source = pytest.Config.ArgsSource.ARGS


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    for line in MARKS:
        config.addinivalue_line("markers", line)
    config.stash[worker.testrun_uid_key] = os.environ.get("FLEET_TESTRUNUID") or uuid.uuid4().hex
    threads = requested_threads(config)
    unit = group_unit(config)
    if config.getoption("fleet_env"):
        environment.environment(config)  # an unknown --env: a usage error before anything runs
    _take_back_paths_from_marks(config)
    division = from_options(config)
    if division is not None and threads is None:
        threads = "auto"  # aomaker's rule: one worker per unit
    elif threads is not None and division is None:
        division = from_strategy_file(config)
    if threads is not None:
        from fleet.scopes import SharedSetupState

        problem = internals.check(SharedSetupState.INTERFACE)
        if problem:
            raise pytest.UsageError(problem)
        if config.getoption("usepdb", False):
            raise pytest.UsageError("fleet: --pdb needs one test at a time; run it without --mt")
        if config.getoption("numprocesses", None) and config.getoption("dist", "no") != "no":
            raise pytest.UsageError(
                "fleet: --mt and pytest-xdist's -n both parallelise the run; use one of them"
            )
        from fleet.capture import CaptureFixtures
        from fleet.run import ThreadRun

        config.pluginmanager.register(CaptureFixtures(), "fleet-capture-fixtures")
        config.pluginmanager.register(ThreadRun(config, threads, unit, division), "fleet-run")
    config.pluginmanager.register(environment, "fleet-environment")
    config.pluginmanager.register(project, "fleet-project")
    # Registered after pytest-xdist's, so fleet's win while fleet runs threads.
    if threads is not None or not config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(worker, "fleet-worker")


@pytest.hookimpl(wrapper=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    """In verbose output, name the worker that ran the test: ``[t3] PASSED``."""
    result = yield
    worker = getattr(report, "fleet_worker", None)
    if worker and config.get_verbosity() > 0 and isinstance(result, tuple) and len(result) == 3:
        category, letter, word = result
        if isinstance(word, tuple):
            word = (f"[{worker}] {word[0]}", word[1])
        elif word:
            word = f"[{worker}] {word}"
        result = (category, letter, word)
    return result
