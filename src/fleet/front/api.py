"""``run.py``: the fleet command as a Python call, and aomaker's older forms.

``sys.exit(main_run(env="mock", mt=True, d_mark="m1 m2 m3", login=Login()))``
does what ``fleet --mt --dist-mark m1 m2 m3 --env mock`` does and returns the
exit code.

Arguments are checked before anything runs. A wrong Python type is a
``TypeError`` and a value of the right type that cannot mean anything (a
negative process count, an empty mark name, two divisions at once) a
``ValueError``, each naming the function and the argument, as any Python
function would; the call then runs nothing. What can only be judged against
the project (a mark no test carries, a directory that does not exist, an
unknown environment) is the run's usage error, exit code 4, as on the
command line.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from fleet.front.cli import run_command


def _shown(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


def _flag(function: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{function}({name}=...) takes True or False, not {_shown(value)}")
    return value


def _text(function: str, name: str, value: Any, what: str, paths: bool = False) -> str | None:
    if value is None:
        return None
    if paths and isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise TypeError(f"{function}({name}=...) takes {what}, not {_shown(value)}")
    if not value.strip():
        raise ValueError(f"{function}({name}={value!r}) is empty; give {what} (or leave it out)")
    if value.startswith("-"):
        raise ValueError(f"{function}({name}={value!r}): {what} cannot start with '-'")
    return value


def _marks(function: str, value: Any) -> list[str] | None:
    what = "a mark name, a space-separated string of them, or a list of mark names"
    if value is None:
        return None
    entries = [value] if isinstance(value, str) else value
    if not isinstance(entries, (list, tuple)) or not all(isinstance(e, str) for e in entries):
        raise TypeError(f"{function}(d_mark=...) takes {what}, not {_shown(value)}")
    names = [name for entry in entries for name in entry.split()]
    if not names:
        raise ValueError(f"{function}(d_mark={value!r}) names no mark; give {what}")
    for name in names:
        if not name.isidentifier():
            raise ValueError(f"{function}(d_mark={value!r}): {name!r} is not a mark name")
    return list(entries)


def _processes(function: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{function}(processes=...) takes a positive int, not {_shown(value)}")
    if value < 1:
        raise ValueError(f"{function}(processes={value!r}) must be 1 or more")
    return value


def _pytest_args(function: str, value: Any) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise TypeError(
            f"{function}(pytest_args=...) takes a list of strings such as ['-x', 'tests/'], not {_shown(value)}"
        )
    args = []
    for arg in value:
        if isinstance(arg, os.PathLike):
            arg = os.fspath(arg)
        if not isinstance(arg, str):
            raise TypeError(f"{function}(pytest_args=...): every argument is a string, not {_shown(arg)}")
        args.append(arg)
    return args


def _ray(function: str, value: Any) -> list[str]:
    """``ray=True``: ``--ray`` (its address from RAY_ADDRESS, the ini or ``auto``);
    ``ray="local"`` or an address: ``--ray=ADDRESS``, checked by the run."""
    if value is None or value is False:
        return []
    if value is True:
        return ["--ray"]
    return [f"--ray={_text(function, 'ray', value, 'a Ray address (auto, local, HOST:PORT or ray://HOST:10001) or True')}"]


def _login(function: str, value: Any) -> Any:
    if value is not None:
        for method in ("login", "make_headers"):
            if not callable(getattr(value, method, None)):
                raise TypeError(
                    f"{function}(login=...) takes an object with login() and make_headers() "
                    f"methods; {_shown(value)} has no {method}()"
                )
    return value


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
    ray: str | bool | None = None,
) -> int:
    """Run as ``fleet`` would with the equivalent flags; return the exit code.

    ``ray`` is ``--ray``: True, or an address such as ``"local"``.
    Raises TypeError or ValueError, naming the argument, before anything runs
    when an argument cannot be used.
    """
    return _main("main_run", env, mt, mp, processes, d_mark, d_file, d_suite, pytest_args, login, ray)


_PARAMETERS = ("env", "mt", "mp", "processes", "d_mark", "d_file", "d_suite", "pytest_args", "login", "ray")


def _main(
    name: str, env: Any = None, mt: Any = False, mp: Any = False, processes: Any = None, d_mark: Any = None,
    d_file: Any = None, d_suite: Any = None, pytest_args: Any = (), login: Any = None, ray: Any = None,
) -> int:
    mt = _flag(name, "mt", mt)
    mp = _flag(name, "mp", mp)
    processes = _processes(name, processes)
    marks = _marks(name, d_mark)
    d_file = _text(name, "d_file", d_file, "a directory", paths=True)
    d_suite = _text(name, "d_suite", d_suite, "a directory", paths=True)
    env = _text(name, "env", env, "an environment name")
    args = _pytest_args(name, pytest_args)
    login = _login(name, login)
    argv: list[str] = _ray(name, ray)
    divisions = [n for n, v in (("d_mark", marks), ("d_file", d_file), ("d_suite", d_suite)) if v is not None]
    if len(divisions) > 1:
        raise ValueError(f"{name}(): {' and '.join(divisions)} each divide the run; give one of them")
    if mt:
        argv.append("--mt")
    if mp:
        argv.append("--mp")
    if processes is not None:
        argv += ["-p", str(processes)]
    if marks is not None:
        argv += [f"--dist-mark={mark}" for mark in marks]
    if d_file is not None:
        argv += [f"--dist-file={d_file}"]
    if d_suite is not None:
        argv += [f"--dist-suite={d_suite}"]
    if env is not None:
        argv += [f"--env={env}"]
    return run_command([*argv, *args], login_object=login)


def _older_form(function: str, target: Any) -> dict[str, Any]:
    """aomaker's older first argument: ['-m a', ...], {"path": DIR} or "DIR"."""
    expected = "['-m mark', ...], {'path': DIR} or 'DIR'"
    if isinstance(target, dict):
        if set(target) != {"path"}:
            raise ValueError(f"{function}({target!r}): a dict has one key, 'path'; expected {expected}")
        return {"d_file": target["path"]}
    if isinstance(target, (str, os.PathLike)):
        return {"d_suite": target}
    if isinstance(target, (list, tuple)):
        if not target:
            raise ValueError(f"{function}([]) names no mark; expected {expected}")
        marks = []
        for entry in target:
            if not isinstance(entry, str):
                raise TypeError(f"{function}({target!r}): each entry is a string '-m mark', not {_shown(entry)}")
            name = entry.strip().removeprefix("-m").strip()
            if not name.isidentifier():
                raise ValueError(f"{function}({target!r}): {entry!r}: give one mark per entry, as '-m name'")
            marks.append(name)
        return {"d_mark": marks}
    raise TypeError(f"{function}() takes {expected} as its first argument, not {_shown(target)}")


def _older_run(name: str, target: Any, fixed: dict[str, Any], options: dict[str, Any]) -> int:
    given = {**fixed, **_older_form(name, target)}
    for key in options:
        if key not in _PARAMETERS:
            raise TypeError(f"{name}() got an unexpected keyword argument {key!r} (it takes {', '.join(_PARAMETERS)})")
        if key in given and key != "mt" and key != "mp":
            raise TypeError(f"{name}() got {key}= and a first argument that sets it too; give one of them")
    return _main(name, **{**given, **options})


def threads_run(target: Any, login: Any = None, **options: Any) -> int:
    """aomaker's ``threads_run``: ``main_run(mt=True)`` with the older first argument."""
    return _older_run("threads_run", target, {"mt": True, "login": login}, options)


def processes_run(target: Any, login: Any = None, **options: Any) -> int:
    """aomaker's ``processes_run``: ``main_run(mp=True)`` with the older first argument."""
    return _older_run("processes_run", target, {"mp": True, "login": login}, options)
