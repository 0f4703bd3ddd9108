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


def translate(argv: list[str]) -> list[str]:
    """aomaker's flags in ``argv`` turned into pytest arguments."""
    args = list(argv)
    if args[:1] == ["run"] and not Path("run").exists():
        args = args[1:]
    out: list[str] = []
    processes: str | None = None  # "auto" or a count
    i = 0
    while i < len(args):
        arg = args[i]
        following = args[i + 1] if i + 1 < len(args) else None
        if arg in ("--mp", "--multi-process"):
            if following is not None and following.isdigit():
                processes = following
                i += 1
            else:
                processes = processes or "auto"
        elif arg.startswith(("--mp=", "--multi-process=")):
            processes = arg.split("=", 1)[1]
        elif arg == "-p" and following is not None and following.isdigit():
            processes = following
            i += 1
        elif arg.startswith("-p") and arg[2:].isdigit():
            processes = arg[2:]
        elif arg == "--env":
            if following is None or following.startswith("-"):
                raise CommandError("fleet: --env needs an environment name")
            out += ["--fleet-env", following]
            i += 1
        elif arg.startswith("--env="):
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
    project_hooks.load_hooks(Path.cwd())
    if "-h" in argv or "--help" in argv:
        sys.stdout.write(USAGE + "\n")
        sys.stdout.flush()
    try:
        args = translate(project_hooks.apply_commands(argv))
    except (CommandError, pytest.UsageError) as error:
        sys.stderr.write(f"ERROR: {error}\n")
        return int(pytest.ExitCode.USAGE_ERROR)
    plugins: list[Any] = [ProgramName()]
    if login_object is not None:
        plugins.append(login.LoginPlugin(login_object))
    with project_hooks.around_run():
        try:
            code = pytest.main(args, plugins=plugins)
            sys.stdout.flush()
        except BrokenPipeError:  # as pytest's console_main: output piped into `head`
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            code = 1
    return int(code)
