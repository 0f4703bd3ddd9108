"""What the user asked for: fleet's options, ini keys and marks, read and checked.

Every option fleet adds is declared here, and every value fleet reads from the
command line, the ini file or a mark is turned into what the run uses here, so
a bad value is refused in one line (a usage error, exit code 4) before any
test runs.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import pytest

from fleet.state import internals

GROUP_UNITS = ("module", "class", "function")

# --slow-after's default, in seconds
DEFAULT_SLOW_AFTER = 60.0

TIMEOUT_MARK = "test_timeout(seconds): fail this test when it runs longer than seconds (0: no limit)."

MARKS = (
    "group(*names): run this test in the named groups; tests of one group run one "
    "after another in collection order. group() with no names: in no group.",
    "exclusive: run this test while no other test runs in its process.",
    "xdist_group(name): read by fleet as group(name).",
    TIMEOUT_MARK,
)


# pytest-xdist's --dist modes as fleet group units
XDIST_DIST = {"load": "function", "loadfile": "module", "loadscope": "class", "loadgroup": "function", "no": None}


def _xdist_expected(pluginmanager: pytest.PytestPluginManager) -> bool:
    """Whether pytest-xdist is (or will be) loaded, so its -n/--dist are its own."""
    if pluginmanager.has_plugin("xdist") or pluginmanager.has_plugin("xdist.plugin"):
        return True
    if pluginmanager.is_blocked("xdist") or os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    return any(ep.name == "xdist" for ep in importlib.metadata.entry_points(group="pytest11"))


def add_options(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
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
        "--mp",
        "--multi-process",
        dest="fleet_processes",
        nargs="?",
        const="auto",
        default=None,
        metavar="N",
        help="run tests in N worker processes forked after one collection (N a "
        "positive integer or 'auto' = CPU count, the default when N is left out); "
        "with --mt M, M threads in each.",
    )
    if not _xdist_expected(pluginmanager):
        # With pytest-xdist these are its options, read by fleet the same way.
        group.addoption(
            "--max-worker-restart",
            dest="maxworkerrestart",
            default=None,
            metavar="N",
            help="replace at most N crashed worker processes (default: 4 per process).",
        )
        # pytest-xdist's spellings, so existing commands keep working without it
        internals.add_short_option(
            group,
            "-n",
            "--numprocesses",
            dest="fleet_xdist_numprocesses",
            default=None,
            metavar="N",
            help="as --mp N (pytest-xdist's spelling; 0 runs in this process).",
        )
        group.addoption(
            "--dist",
            dest="fleet_xdist_dist",
            choices=tuple(XDIST_DIST),
            default=None,
            help="pytest-xdist's --dist, read as a fleet --group-unit: "
            + ", ".join(f"{k}={v}" for k, v in XDIST_DIST.items() if v),
        )
    group.addoption(
        "--test-timeout",
        dest="fleet_test_timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="fail a test that runs longer than SECONDS; in worker processes its "
        "worker is killed and replaced (default: ini test_timeout, else none).",
    )
    parser.addini("test_timeout", "fleet: default --test-timeout in seconds (0: none).")
    group.addoption(
        "--slow-after", dest="fleet_slow_after", type=float, default=DEFAULT_SLOW_AFTER, metavar="SECONDS",
        help=f"flag a test still running after SECONDS as SLOW (default {DEFAULT_SLOW_AFTER:g}).",
    )
    group.addoption(
        "--no-live", dest="fleet_no_live", action="store_true", default=False,
        help="no live view on a terminal: pytest's usual progress, plus a line per SLOW test.",
    )
    group.addoption(
        "--timeline",
        dest="fleet_timeline",
        default=None,
        metavar="FILE",
        help="write what each worker ran and when: FILE.json, a Chrome/Perfetto trace, "
        "or FILE.html, a self-contained chart.",
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
    group.addoption(
        "--strict-threads",
        dest="fleet_strict_threads",
        action="store_true",
        default=False,
        help="report a test that failed beside one caught changing process-wide state "
        "as it failed, instead of running it again alone.",
    )
    parser.addini(
        "thread_safe_fixtures",
        "fleet: fixtures this project declares safe to use on several threads at once "
        "(tests using them need not run alone).",
        type="linelist",
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
        unit = XDIST_DIST.get(getattr(config.option, "fleet_xdist_dist", None) or "no")
    if unit is None:
        unit = config.getini("group_unit") or config.getini("group-unit") or "module"
    unit = str(unit).strip()
    if unit not in GROUP_UNITS:
        raise pytest.UsageError(
            f"fleet: group_unit = {unit!r} in the ini file is not one of {', '.join(GROUP_UNITS)}"
        )
    return unit


def _count_option(config: pytest.Config, dest: str, spelling: str) -> int | str | None:
    raw = config.getoption(dest)
    if raw is None:
        return None
    try:
        return parse_thread_count(raw)
    except ValueError:
        if Path(raw.split("::", 1)[0]).exists():
            # `pytest --mt tests/`: argparse took the path for N.
            _take_back_path(config, raw)
            return "auto"
        raise pytest.UsageError(
            f"fleet: {spelling} takes a positive integer or 'auto', not {raw!r}"
        ) from None


def requested_threads(config: pytest.Config) -> int | str | None:
    """The --mt value, or None when fleet should not run threads."""
    count = _count_option(config, "fleet_threads", "--mt")
    return None if count == 1 else count


def requested_processes(config: pytest.Config) -> int | str | None:
    """The --mp value (or xdist's -n when xdist is absent), or None: no processes."""
    count = _count_option(config, "fleet_processes", "--mp")
    if count is not None:
        return count
    raw = getattr(config.option, "fleet_xdist_numprocesses", None)
    if raw is None:
        return None
    raw = "auto" if raw == "logical" else raw
    if raw == "0":
        return None
    try:
        return parse_thread_count(raw)
    except ValueError:
        raise pytest.UsageError(
            f"fleet: -n takes a positive integer or 'auto', not {raw!r}"
        ) from None


def take_back_paths_from_marks(config: pytest.Config) -> None:
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


def default_timeout(config: pytest.Config) -> float:
    value = config.getoption("fleet_test_timeout")
    if value is None:
        raw = str(config.getini("test_timeout") or "0").strip()
        try:
            value = float(raw)
        except ValueError:
            raise pytest.UsageError(
                f"fleet: test_timeout = {raw!r} in the ini file is not a number of seconds"
            ) from None
    if value < 0:
        raise pytest.UsageError(f"fleet: --test-timeout must be 0 or more seconds, not {value:g}")
    return float(value)


def timeout_for(item: pytest.Item, default: float) -> float:
    mark = item.get_closest_marker("test_timeout")
    if mark is None:
        return default
    value = mark.args[0] if mark.args else mark.kwargs.get("seconds", 0)
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return default
