"""``run.py``: the fleet command as a Python call, and aomaker's older forms.

``sys.exit(main_run(env="mock", mt=True, d_mark="m1 m2 m3", login=Login()))``
does what ``fleet --mt --dist-mark m1 m2 m3 --env mock`` does and returns the
exit code.
"""

from __future__ import annotations

from typing import Any, Sequence

import pytest

from fleet.front.cli import run_command


def main_run(
    env: str | None = None,
    mt: bool = False,
    mp: bool = False,
    processes: int | None = None,
    d_mark: str | Sequence[str] | None = None,
    d_file: str | None = None,
    d_suite: str | None = None,
    pytest_args: Sequence[str] = (),
    login: Any = None,
) -> int:
    """Run as ``fleet`` would with the equivalent flags; return the exit code."""
    argv: list[str] = []
    if mt:
        argv.append("--mt")
    if mp:
        argv.append("--mp")
    if processes is not None:
        argv += ["-p", str(int(processes))]
    if d_mark:
        argv += ["--dist-mark", *([d_mark] if isinstance(d_mark, str) else d_mark)]
    if d_file:
        argv += ["--dist-file", d_file]
    if d_suite:
        argv += ["--dist-suite", d_suite]
    if env:
        argv += ["--env", env]
    return run_command([*argv, *pytest_args], login_object=login)


def _older_form(target: Any) -> dict[str, Any]:
    """aomaker's older first argument: ['-m a', ...], {"path": DIR} or "DIR"."""
    if isinstance(target, dict) and "path" in target:
        return {"d_file": str(target["path"])}
    if isinstance(target, str):
        return {"d_suite": target}
    if isinstance(target, (list, tuple)):
        marks = []
        for entry in target:
            name = str(entry).strip().removeprefix("-m").strip()
            if not name.isidentifier():
                raise pytest.UsageError(f"fleet: {entry!r}: give one mark per entry, as '-m name'")
            marks.append(name)
        return {"d_mark": marks}
    raise pytest.UsageError(f"fleet: cannot divide by {target!r}: expected ['-m mark', ...], {{'path': DIR}} or 'DIR'")


def threads_run(target: Any, login: Any = None, **options: Any) -> int:
    return main_run(mt=True, login=login, **_older_form(target), **options)


def processes_run(target: Any, login: Any = None, **options: Any) -> int:
    return main_run(mp=True, login=login, **_older_form(target), **options)
