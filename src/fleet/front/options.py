"""What the user asked for: fleet's options, ini keys and marks, read and checked.

Every option fleet adds is declared here (``--ray``'s in :mod:`.ray_options`),
and every value fleet reads from the
command line, the ini file or a mark is turned into what the run uses here, so
a bad value is refused in one line (a usage error, exit code 4) before any
test runs.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import re
import shlex
from pathlib import Path
from typing import Any, Sequence

import pytest

from fleet.front import ray_options
from fleet.state import internals

GROUP_UNITS = ("module", "class", "function")

# --slow-after's default, in seconds
DEFAULT_SLOW_AFTER = 60.0

# The longest time limit fleet arms, in seconds (about three years). A longer
# one (1e300) would overflow the interval timer and the watchdog's wait; a
# limit that long is, in practice, no limit.
MAX_TIMEOUT = 1e8

# FLEET_START_METHOD: how worker processes start (unset or empty: fleet decides)
START_METHOD_VARIABLE = "FLEET_START_METHOD"
START_METHODS = ("fork", "spawn")

TIMEOUT_MARK = "test_timeout(seconds): fail this test when it runs longer than seconds (0: no limit)."

MARKS = (
    "group(*names): run this test in the named groups; tests of one group run one "
    "after another in collection order. group() with no names: in no group.",
    "exclusive: run this test while no other test runs in its process.",
    "xdist_group(name): read by fleet as group(name).",
    TIMEOUT_MARK,
)


# pytest-xdist's --dist modes as fleet group units ("each" has none: not supported)
XDIST_DIST = {
    "load": "function", "loadfile": "module", "loadscope": "class", "loadgroup": "function",
    "worksteal": "function", "no": None,
}


def _xdist_expected(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> bool:
    """Whether pytest-xdist is (or will be) loaded, so its -n/--dist are its own."""
    if pluginmanager.has_plugin("xdist") or pluginmanager.has_plugin("xdist.plugin"):
        return True
    if {"xdist", "xdist.plugin"} & set(internals.plugins_asked_for(parser)):
        return True  # -p xdist.plugin after -p fleet.plugin (plugin autoloading off)
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
    if not _xdist_expected(parser, pluginmanager):
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
            default=None,
            metavar="MODE",
            help="pytest-xdist's --dist, read as a fleet --group-unit: "
            + ", ".join(f"{k}={v}" for k, v in XDIST_DIST.items() if v) + " (and no).",
        )
    group.addoption(
        "--test-timeout",
        dest="fleet_test_timeout",
        default=None,
        metavar="SECONDS",
        help="fail a test that runs longer than SECONDS (0 or inf: no limit); in worker "
        "processes its worker is killed and replaced (default: ini test_timeout, else none).",
    )
    parser.addini("test_timeout", "fleet: default --test-timeout in seconds (0: none).")
    group.addoption(
        "--slow-after", dest="fleet_slow_after", default=DEFAULT_SLOW_AFTER, metavar="SECONDS",
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
        default=None,
        metavar="{module,class,function}",
        help="tests of one module/class run one after another; 'function': no "
        "automatic grouping (default: the group_unit ini option, else module).",
    )
    group.addoption(
        "--dist-mark",
        dest="fleet_dist_mark",
        action="extend",
        nargs="+",
        metavar="M",
        help="one unit per mark (also one quoted, space-separated string; repeated: "
        "the marks add up): its tests run in order on one worker; only tests "
        "carrying one of the marks run.",
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
        help="strategy file naming the marks to divide by, as --dist-mark would "
        "(default with --mt/--mp: conf/dist_strategy.yaml, else conf/aomaker.yaml, "
        "when present).",
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
    ray_options.add(group, parser)
    parser.addini("group_unit", "fleet: default --group-unit (module, class or function).")
    parser.addini("group-unit", "fleet: alias of group_unit.")


def _usage(message: str) -> pytest.UsageError:
    return pytest.UsageError(f"fleet: {message}")


# what argparse would also read as a number: "-3", "2.5", "1e3"
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _given_args(config: pytest.Config) -> list[str]:
    """The command-line arguments as the user wrote them, with both addopts."""
    args = [str(a) for a in config.invocation_params.args]
    try:
        args += shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
    except ValueError:
        pass
    try:
        args += [str(a) for a in config.getini("addopts")]
    except (ValueError, KeyError):
        pass
    return args


def _written_with_equals(config: pytest.Config, *spellings: str) -> list[str]:
    """The values given as ``--option=VALUE`` (argparse cannot have taken a path for those)."""
    return [
        arg.split("=", 1)[1]
        for arg in _given_args(config)
        if "=" in arg and arg.split("=", 1)[0] in spellings
    ]


def parse_thread_count(value: str) -> int | str:
    """'auto' or a positive integer; anything else raises ValueError."""
    if value == "auto":
        return value
    count = int(value)
    if count < 1:
        raise ValueError(value)
    return count


def _count_option(config: pytest.Config, dest: str, spellings: tuple[str, ...]) -> int | str | None:
    raw = config.getoption(dest)
    if raw is None:
        return None
    try:
        return parse_thread_count(raw)
    except ValueError:
        pass
    if raw and not _NUMBER.match(raw) and raw not in _written_with_equals(config, *spellings):
        # `pytest --mt tests/`: argparse took the path for N. It goes back to
        # pytest's paths, and pytest says so if it does not exist.
        _take_back_path(config, raw)
        return "auto"
    raise _usage(f"{spellings[0]} takes a positive integer or 'auto', not {raw!r}")


def requested_threads(config: pytest.Config) -> int | str | None:
    """The --mt value, or None when fleet should not run threads."""
    count = _count_option(config, "fleet_threads", ("--mt", "--multi-thread"))
    return None if count == 1 else count


def requested_processes(config: pytest.Config) -> int | str | None:
    """The --mp value (or xdist's -n when xdist is absent), or None: no processes."""
    count = _count_option(config, "fleet_processes", ("--mp", "--multi-process"))
    raw = getattr(config.option, "fleet_xdist_numprocesses", None)
    if raw is None:
        return count
    if count is not None:
        raise _usage("--mp and -n both give the number of worker processes; use one of them")
    raw = "auto" if raw == "logical" else raw
    if raw == "0":
        return None
    try:
        return parse_thread_count(raw)
    except ValueError:
        raise _usage(f"-n takes a positive integer or 'auto', not {raw!r}") from None


def _choice(raw: Any, choices: Sequence[str], what: str) -> str:
    value = str(raw).strip()
    if value not in choices:
        raise _usage(f"{what} takes {', '.join(choices[:-1])} or {choices[-1]}, not {raw!r}")
    return value


def _xdist_dist(config: pytest.Config, parallel: bool) -> str | None:
    """pytest-xdist's --dist mode as fleet reads it, when it applies to fleet's run."""
    own = getattr(config.option, "fleet_xdist_dist", None)
    if own is not None:  # fleet's spelling: pytest-xdist is not loaded
        if str(own).strip() == "each":
            raise _usage("--dist each (every test on every worker) is not supported")
        return _choice(own, tuple(XDIST_DIST), "--dist")
    dist = getattr(config.option, "dist", None)
    if not parallel or dist in (None, "no") or getattr(config.option, "numprocesses", None):
        return None  # pytest-xdist's own business
    if dist == "each":
        raise _usage("--dist each (every test on every worker) is not supported with --mt/--mp")
    return dist if dist in XDIST_DIST else None


def _ini_group_unit(config: pytest.Config) -> str | None:
    found: dict[str, str] = {}
    for key in ("group_unit", "group-unit"):
        raw = config.getini(key)
        if raw:
            value = str(raw).strip()
            if value not in GROUP_UNITS:
                raise _usage(f"{key} = {raw!r} in the ini file is not one of {', '.join(GROUP_UNITS)}")
            found[key] = value
    if len(set(found.values())) > 1:
        raise _usage(
            f"group_unit = {found['group_unit']} and group-unit = {found['group-unit']} in the ini "
            "file disagree; keep one of them"
        )
    return next(iter(found.values()), None)


def group_unit(config: pytest.Config, parallel: bool = True) -> str:
    """--group-unit, else --dist (pytest-xdist's spelling), else the ini file, else module."""
    given = config.getoption("fleet_group_unit")
    unit = None if given is None else _choice(given, GROUP_UNITS, "--group-unit")
    dist = _xdist_dist(config, parallel)
    from_dist = XDIST_DIST.get(dist) if dist else None
    if unit and from_dist and unit != from_dist:
        raise _usage(f"--group-unit {unit} and --dist {dist} (--group-unit {from_dist}) disagree; use one of them")
    return unit or from_dist or _ini_group_unit(config) or "module"


def registered_marks(config: pytest.Config) -> set[str]:
    """Marks registered in the ini file's ``markers`` or by plugins."""
    names = set()
    for line in config.getini("markers"):
        names.add(str(line).split(":", 1)[0].split("(", 1)[0].strip())
    return names


def _looks_like_path(value: str) -> bool:
    return "/" in value or os.sep in value or "::" in value or value.endswith(".py")


def take_back_paths_from_marks(config: pytest.Config) -> None:
    """`pytest --dist-mark a b tests/`: argparse took the path for a mark.

    A value is taken back as a path when it looks like one (``tests/``,
    ``./m1``, ``test_x.py``, ``a.py::test``). A bare name is a mark, unless it
    names a file or directory here and no registered mark: then it is refused
    as ambiguous, never guessed. ``--dist-mark=NAME`` is always a mark.
    """
    given = config.getoption("fleet_dist_mark")
    if given is None:
        return
    written = _written_with_equals(config, "--dist-mark")
    registered = registered_marks(config)
    marks: list[str] = []
    paths: list[str] = []
    for value in given:
        if value in written:
            written.remove(value)
            marks.append(value)
        elif _looks_like_path(value):
            paths.append(value)
        elif value.strip() == value and value and Path(value).exists() and value not in registered:
            kind, as_path = ("directory", f"{value}/") if Path(value).is_dir() else ("file", f"./{value}")
            raise _usage(
                f"--dist-mark {value}: {value} is a {kind} here and not a registered mark; write "
                f"{as_path} to run the {kind}, or --dist-mark={value} (or register the mark) to divide by it"
            )
        else:
            marks.append(value)
    for path in reversed(paths):
        _take_back_path(config, path)
    if not marks:
        raise _usage(f"--dist-mark {' '.join(given)}: no mark name given ({', '.join(paths)}: a path)")
    for value in marks:
        if not value.strip():
            raise _usage(f"--dist-mark {value!r}: no mark name given")
        for name in value.split():
            if "," in name:
                raise _usage(f"--dist-mark {name}: not a mark name (separate marks with spaces)")
            if name.startswith("-") or "(" in name:
                raise _usage(f"--dist-mark {name}: not a mark name")
    config.option.fleet_dist_mark = marks


def _take_back_path(config: pytest.Config, path: str) -> None:
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        config.args.insert(0, path)
    else:
        config.args[:] = [path]
        config.args_source = pytest.Config.ArgsSource.ARGS


def _owns_max_worker_restart(config: pytest.Config) -> bool:
    """Whether --max-worker-restart is fleet's option (pytest-xdist not loaded)."""
    return hasattr(config.option, "fleet_xdist_numprocesses")


def max_worker_restart(config: pytest.Config) -> int | None:
    """``--max-worker-restart`` (fleet's, or pytest-xdist's when it is loaded)."""
    raw = getattr(config.option, "maxworkerrestart", None)
    if raw is None:
        return None
    try:
        value = int(str(raw).strip())
    except ValueError:
        value = -1
    if value < 0:
        raise _usage(f"--max-worker-restart takes a whole number, not {raw!r}")
    return value


def _number(raw: Any) -> float:
    """A float from a command-line string or a number; ValueError for anything else."""
    if isinstance(raw, bool):
        raise ValueError(raw)
    if isinstance(raw, (int, float)):
        return float(raw)
    if isinstance(raw, str):
        return float(raw.strip())
    raise ValueError(raw)


def _shown(value: float) -> str:
    return f"{value:g}"


def seconds_limit(raw: Any) -> float:
    """A time limit in seconds, 0 for none (0, inf); ValueError naming the problem."""
    try:
        value = _number(raw)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("is not a number of seconds") from None
    if math.isnan(value):
        raise ValueError("is not a number of seconds")
    if value < 0:
        raise ValueError("must be 0 or more seconds")
    if math.isinf(value):
        return 0.0
    return min(value, MAX_TIMEOUT)


def _option_timeout(config: pytest.Config) -> float | None:
    raw = config.getoption("fleet_test_timeout")
    if raw is None:
        return None
    try:
        return seconds_limit(raw)
    except ValueError as problem:
        if str(problem).startswith("must"):
            raise _usage(f"--test-timeout must be 0 or more seconds, not {_shown(_number(raw))}") from None
        raise _usage(f"--test-timeout takes a number of seconds (0: no limit), not {raw!r}") from None


def _ini_timeout(config: pytest.Config) -> float:
    raw = str(config.getini("test_timeout") or "").strip()
    try:
        return seconds_limit(raw or "0")
    except ValueError as problem:
        raise _usage(f"test_timeout = {raw!r} in the ini file {problem}") from None


def default_timeout(config: pytest.Config) -> float:
    """--test-timeout, else the ini option test_timeout, else 0 (none)."""
    value = _option_timeout(config)
    return _ini_timeout(config) if value is None else value


def mark_seconds(mark: Any) -> float:
    """The limit a ``test_timeout`` mark sets; ValueError saying what is wrong with it."""
    unknown = set(mark.kwargs) - {"seconds"}
    if unknown:
        raise ValueError(f"unknown argument {sorted(unknown)[0]}; it takes seconds")
    values = list(mark.args) + ([mark.kwargs["seconds"]] if "seconds" in mark.kwargs else [])
    if len(values) != 1:
        raise ValueError("takes one number of seconds (0: no limit)")
    try:
        value = values[0]
        if isinstance(value, str):
            raise ValueError("is not a number of seconds")
        return seconds_limit(value)
    except ValueError as problem:
        raise ValueError(f"{values[0]!r} {problem} (0: no limit)") from None


def _mark_call(mark: Any) -> str:
    args = [repr(a) for a in mark.args] + [f"{k}={v!r}" for k, v in mark.kwargs.items()]
    return f"@pytest.mark.{mark.name}({', '.join(args)})"


def timeout_for(item: pytest.Item, default: float) -> float:
    mark = item.get_closest_marker("test_timeout")
    if mark is None:
        return default
    try:
        return mark_seconds(mark)
    except ValueError:  # refused at collection (check_items); never here
        return default


def _group_names(mark: Any) -> None:
    if mark.kwargs:
        raise ValueError(f"unknown argument {sorted(mark.kwargs)[0]}; it takes group names")
    for name in mark.args:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{name!r} is not a group name (a non-empty string)")


def _xdist_group_name(mark: Any) -> None:
    unknown = set(mark.kwargs) - {"name"}
    if unknown:
        raise ValueError(f"unknown argument {sorted(unknown)[0]}; it takes name")
    names = list(mark.args) + ([mark.kwargs["name"]] if "name" in mark.kwargs else [])
    if len(names) != 1:
        raise ValueError("takes one group name")
    if not isinstance(names[0], str) or not names[0].strip():
        raise ValueError(f"{names[0]!r} is not a group name (a non-empty string)")


def _no_arguments(mark: Any) -> None:
    if mark.args or mark.kwargs:
        raise ValueError("takes no arguments")


# the marks fleet reads, each with what checks its arguments: test_timeout in
# every run, the others in a parallel run (the only one that reads them)
MARK_CHECKS = {"test_timeout": mark_seconds}
PARALLEL_MARK_CHECKS = {"group": _group_names, "xdist_group": _xdist_group_name, "exclusive": _no_arguments}


def check_items(config: pytest.Config, items: Sequence[pytest.Item], parallel: bool) -> None:
    """The marks fleet reads on the tests that will run, checked before any runs."""
    checks = {**MARK_CHECKS, **PARALLEL_MARK_CHECKS} if parallel else MARK_CHECKS
    for item in items:
        for name, check in checks.items():
            for mark in item.iter_markers(name):
                try:
                    check(mark)
                except ValueError as problem:
                    raise _usage(f"{item.nodeid}: {_mark_call(mark)}: {problem}") from None


def slow_after(config: pytest.Config) -> float:
    raw = config.getoption("fleet_slow_after")
    try:
        value = _number(raw)
    except (TypeError, ValueError, OverflowError):
        raise _usage(f"--slow-after takes a number of seconds above 0, not {raw!r}") from None
    if not value > 0:  # nan too
        raise _usage(f"--slow-after takes a number of seconds above 0, not {_shown(value)}")
    return value


def start_method() -> str | None:
    """FLEET_START_METHOD, checked: fork, spawn, or unset."""
    chosen = os.environ.get(START_METHOD_VARIABLE)
    if not chosen:
        return None
    if chosen not in START_METHODS:
        raise _usage(f"{START_METHOD_VARIABLE}={chosen!r}: expected fork or spawn (or unset: fleet decides)")
    return chosen


_NEEDS_VALUE = (
    ("fleet_dist_file", "--dist-file", "a directory"),
    ("fleet_dist_suite", "--dist-suite", "a directory"),
    ("fleet_dist_strategy", "--dist-strategy", "a strategy file"),
    ("fleet_env", "--fleet-env", "an environment name"),
    ("fleet_timeline", "--timeline", "a file name, FILE.json or FILE.html"),
    ("fleet_group_unit", "--group-unit", "module, class or function"),
)


def check_values(config: pytest.Config) -> None:
    """Every value fleet reads, checked (and normalised) at configure, before anything runs.

    The first bad one is a usage error of one line; what the run uses is put back
    in ``config.option`` (seconds as floats), so every reader sees checked values.
    """
    start_method()
    for dest, spelling, expected in _NEEDS_VALUE:
        value = config.getoption(dest)
        if value is not None and not str(value).strip():
            raise _usage(f"{spelling} needs {expected}, not {value!r}")
    _ini_timeout(config)  # checked even where --test-timeout overrides it
    config.option.fleet_test_timeout = _option_timeout(config)
    config.option.fleet_slow_after = slow_after(config)
    if _owns_max_worker_restart(config):
        max_worker_restart(config)
    config.option.fleet_ray = ray_options.address(config, _take_back_path)
    for name in config.getini("thread_safe_fixtures"):
        if not str(name).isidentifier():
            raise _usage(f"thread_safe_fixtures in the ini file: {name!r} is not a fixture name")


def check_for_parallel(config: pytest.Config, parallel: bool, processes: int | str | None) -> None:
    """Options that only mean something in some runs: refused where they would do nothing.

    (The --timeline path itself is checked by report.timeline.check_path, at configure.)
    """
    path = config.getoption("fleet_timeline")
    if path is not None and not parallel:
        raise _usage(f"--timeline {path}: records what each worker ran; it needs --mt or --mp")
    if getattr(config.option, "maxworkerrestart", None) is not None:
        if processes is not None:
            max_worker_restart(config)
        elif _owns_max_worker_restart(config) or parallel:
            raise _usage("--max-worker-restart: replaces crashed worker processes; it needs --mp (or -n)")
