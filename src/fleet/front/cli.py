"""The ``fleet`` command: pytest with fleet loaded, and aomaker's ``arun`` flags.

``fleet [run] [--mt|--multi-thread [N]] [--mp|--multi-process [N]] [-p N]
[--dist-mark M ...] [--dist-file DIR] [--dist-suite DIR] [--env NAME]
[pytest arguments ...]``. Every argument fleet
does not know goes to pytest unchanged, so ``-p no:cacheprovider`` still
loads and unloads plugins: ``-p`` followed by a whole number is aomaker's
process count, anything else is pytest's.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from fleet.front import login, project_hooks

USAGE = """\
usage: fleet [run] [fleet options] [pytest options] [file_or_dir ...]

fleet options (aomaker's arun flags):
  --mt, --multi-thread [N]   run tests on threads (N, or one per unit when left out)
  --mp, --multi-process [N]  run tests in worker processes (N, or one per CPU)
  -p N                       number of worker processes (a whole number)
  --mt with --mp             threads in each worker process
  --dist-mark M [M ...]      one unit per mark (also one quoted string "m1 m2")
  --dist-file DIR            one unit per test module under DIR
  --dist-suite DIR           one unit per sub-directory of DIR
  --env NAME                 environment from conf/config.yaml, for this run only

All other arguments are pytest's; pytest's help follows.
"""


class CommandError(Exception):
    pass


# what argparse would read as a number, so never a path or a plugin name
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _process_count(value: str, spelling: str) -> str:
    """'auto' or a positive integer, as the user wrote it; CommandError otherwise."""
    if value == "auto" or (value.isdigit() and int(value) > 0):
        return value
    if spelling == "-p":
        raise CommandError(f"fleet: -p takes a positive number of worker processes, not {value!r}")
    raise CommandError(f"fleet: {spelling} takes a positive integer or 'auto', not {value!r}")


def translate(argv: list[str]) -> list[str]:
    """aomaker's flags in ``argv`` turned into pytest arguments."""
    args = list(argv)
    if args[:1] == ["run"] and not Path("run").exists():
        args = args[1:]
    out: list[str] = []
    processes: str | None = None  # "auto" or a count
    counted: tuple[str, str] | None = None  # (spelling, count) of the count given
    i = 0

    def count(value: str, spelling: str) -> None:
        nonlocal processes, counted
        value = _process_count(value, spelling)
        if counted is not None and counted[1] != value:
            raise CommandError(
                f"fleet: {counted[0]} {counted[1]} and {spelling} {value} both give the number of "
                "worker processes; use one of them"
            )
        counted = (spelling, value)
        processes = value

    while i < len(args):
        arg = args[i]
        following = args[i + 1] if i + 1 < len(args) else None
        if arg in ("--mp", "--multi-process"):
            if following is not None and (following == "auto" or _NUMBER.match(following)):
                count(following, arg)
                i += 1
            else:
                processes = processes or "auto"
        elif arg.startswith(("--mp=", "--multi-process=")):
            count(arg.split("=", 1)[1], arg.split("=", 1)[0])
        elif arg == "-p" and following is not None and _NUMBER.match(following):
            count(following, "-p")
            i += 1
        elif arg.startswith("-p") and _NUMBER.match(arg[2:]):
            count(arg[2:], "-p")
        elif arg == "--env":
            if following is None or following.startswith("-") or not following.strip():
                raise CommandError("fleet: --env needs an environment name")
            out += ["--fleet-env", following]
            i += 1
        elif arg.startswith("--env="):
            if not arg.split("=", 1)[1].strip():
                raise CommandError("fleet: --env needs an environment name")
            out.append("--fleet-env=" + arg.split("=", 1)[1])
        else:
            out.append(arg)
        i += 1
    if processes is not None:
        out.insert(0, f"--mp={processes}")
    return out


def main(argv: list[str] | None = None) -> int:
    return run_command(sys.argv[1:] if argv is None else argv)


PROGRAM = "fleet"


class ProgramName:
    """Names the program ``fleet`` in pytest's usage line and argument errors
    (pytest would name it after ``sys.argv[0]``, or ``pytest.main()``)."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_addoption(self, parser: pytest.Parser) -> None:
        parser.prog = PROGRAM


def version_line() -> str:
    from importlib.metadata import version

    return f"{PROGRAM} {version('pytest-fleet')} (pytest {pytest.__version__})"


def run_command(argv: list[str], login_object: Any = None) -> int:
    """The fleet command: the project's hooks.py around a pytest run."""
    if argv.count("--version") + argv.count("-V") == 1:
        sys.stdout.write(version_line() + "\n")
        return 0
    try:
        project_hooks.load_hooks(Path.cwd())
        if "-h" in argv or "--help" in argv:
            sys.stdout.write(USAGE + "\n")
            sys.stdout.flush()
        args = translate(project_hooks.apply_commands(argv))
    except (CommandError, pytest.UsageError) as error:
        return _usage_error(error)
    plugins: list[Any] = [ProgramName(), project_hooks.CommandOptionsCheck()]
    if login_object is not None:
        plugins.append(login.LoginPlugin(login_object))
    around = project_hooks.around_run()
    try:
        around.__enter__()
    except pytest.UsageError as error:
        return _usage_error(error)
    try:
        code = pytest.main(args, plugins=plugins)
        sys.stdout.flush()
    except BrokenPipeError:  # as pytest's console_main: output piped into `head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 1
    finally:
        around.finish()
    if around.failed_after:
        code = project_hooks.failed_worse(int(code))
    return int(code)


def _usage_error(error: Exception) -> int:
    sys.stdout.flush()
    sys.stderr.write(f"ERROR: {error}\n")
    return int(pytest.ExitCode.USAGE_ERROR)
