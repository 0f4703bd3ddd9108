"""A project's ``hooks.py``: its own options for the ``fleet`` command, and code around the run.

``hooks.py`` (next to where ``fleet`` runs) is imported before the run::

    from fleet import command, hook

    @command("--tag", help="what to tag the run with")
    def tag(value):          # called with the option's value when it is given
        ...

    @hook
    def prepare():           # runs once before the workers start
        ...
        yield                # what follows runs once after all workers finished,
        ...                  # always: failures, crashes, Ctrl-C included

It is imported by the ``fleet`` command and ``main_run`` only, never by plain
pytest, so a file that happens to be called ``hooks.py`` is safe.

A broken ``hooks.py`` is one line naming the file, its line and the
exception, never a traceback: a syntax error, an exception while importing
it, a ``@command`` that takes an option fleet or pytest already has (or that
raises), and a ``@hook`` that raises before its ``yield`` stop the run with
a usage error (exit code 4) before any test runs; the ``@hook`` parts after
``yield`` that started still run. A ``@hook`` that raises after its
``yield`` fails the run (exit code 1 unless the run already failed worse)
and every other hook's end still runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import pytest

HOOKS_FILE = "hooks.py"
HOOKS_MODULE = "fleet_project_hooks"

_commands: list[tuple[tuple[str, ...], dict[str, Any], Callable[[Any], Any]]] = []
_hooks: list[Callable[[], Any]] = []
_path: Path | None = None  # the hooks.py imported


class HooksError(pytest.UsageError):
    """A broken hooks.py, in one line."""


def command(*flags: str, **options: Any) -> Callable[[Callable], Callable]:
    """Add an option to the ``fleet`` command; its value is passed to the function."""
    if not flags or not all(isinstance(f, str) and f.startswith("-") and f.strip("-") for f in flags):
        raise TypeError(f"@command needs option names such as '--tag', not {', '.join(map(repr, flags)) or 'none'}")

    def register(function: Callable[[Any], Any]) -> Callable[[Any], Any]:
        if not callable(function):
            raise TypeError(f"@command({', '.join(map(repr, flags))}) decorates a function, not {function!r}")
        _commands.append((flags, options, function))
        return function

    return register


def hook(function: Callable[[], Any]) -> Callable[[], Any]:
    """Run ``function`` once before the workers start (a generator: also after)."""
    if not callable(function):
        raise TypeError(f"@hook decorates a function, not {function!r}")
    _hooks.append(function)
    return function


def _line_of(function: Any) -> str:
    line = getattr(getattr(function, "__code__", None), "co_firstlineno", None)
    return f"{HOOKS_FILE} line {line}" if line else HOOKS_FILE


def _name_of(function: Any) -> str:
    return getattr(function, "__name__", None) or repr(function)


def _where(error: BaseException, fallback: Any = None) -> str:
    """``hooks.py line N``: the deepest line of hooks.py in the error's traceback."""
    line = None
    if isinstance(error, SyntaxError) and error.filename and _path is not None \
            and Path(error.filename).resolve() == _path.resolve():
        line = error.lineno
    else:
        for frame in traceback.extract_tb(error.__traceback__):
            if _path is not None and Path(frame.filename).resolve() == _path.resolve():
                line = frame.lineno
    if line is None and fallback is not None:
        code = getattr(fallback, "__code__", None)
        line = getattr(code, "co_firstlineno", None)
    return f"{HOOKS_FILE} line {line}" if line else HOOKS_FILE


def _exception(error: BaseException) -> str:
    if isinstance(error, SyntaxError):
        return f"{type(error).__name__}: {error.msg}"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def load_hooks(directory: Path) -> None:
    """Import ``directory/hooks.py`` once, if there is one."""
    global _path
    path = directory / HOOKS_FILE
    if not path.is_file() or HOOKS_MODULE in sys.modules:
        return
    _path = path
    spec = importlib.util.spec_from_file_location(HOOKS_MODULE, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[spec.name]
        _commands.clear()
        _hooks.clear()
        what = "" if isinstance(error, SyntaxError) else "importing it raised "
        raise HooksError(f"fleet: {_where(error)}: {what}{_exception(error)}") from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise HooksError(f"fleet: {HOOKS_FILE}: {message}")


def _flags_taken(taken: Iterable[str]) -> None:
    """Refuse a project option that takes one fleet, the fleet command or pytest has."""
    taken = set(taken)
    for flags, _options, function in _commands:
        for flag in flags:
            if flag in taken:
                raise HooksError(
                    f"fleet: {_line_of(function)}: @command({flag!r}) "
                    f"takes an option fleet or pytest already has; choose another name"
                )


def fleet_flags() -> set[str]:
    """Every option name the fleet command and fleet's pytest plugin know."""
    from fleet.front import options

    class Recorder:
        names: set[str] = {"--env", "-p"}

        def getgroup(self, *args: Any, **kwargs: Any) -> "Recorder":
            return self

        def addoption(self, *names: str, **attrs: Any) -> None:
            self.names.update(names)

        _addoption = addoption

        def addini(self, *args: Any, **kwargs: Any) -> None:
            pass

    recorder = Recorder()

    class NoPlugins:
        def has_plugin(self, name: str) -> bool:
            return False

        def is_blocked(self, name: str) -> bool:
            return True

    options.add_options(recorder, NoPlugins())  # type: ignore[arg-type]
    return recorder.names


def apply_commands(args: Sequence[str]) -> list[str]:
    """Hand the project's own options to their functions; return the rest for pytest."""
    if not _commands:
        return list(args)
    _flags_taken(fleet_flags())
    parser = _Parser(add_help=False, allow_abbrev=False, prog="fleet")
    actions = []
    for flags, options, function in _commands:
        try:
            actions.append((parser.add_argument(*flags, **options), function))
        except (TypeError, ValueError, argparse.ArgumentError) as error:
            raise HooksError(
                f"fleet: {_line_of(function)}: @command({', '.join(map(repr, flags))}): {error}"
            ) from None
    known, rest = parser.parse_known_args(list(args))
    for action, function in actions:
        value = getattr(known, action.dest)
        if value is not None and value is not False:
            try:
                function(value)
            except Exception as error:
                raise HooksError(
                    f"fleet: {_where(error, function)}: @command {action.option_strings[0]} "
                    f"({_name_of(function)}) raised {_exception(error)}"
                ) from None
    return rest


class CommandOptionsCheck:
    """In the pytest run: a project option that pytest or a plugin also has is refused.

    fleet's own options are refused before anything runs (:func:`apply_commands`);
    pytest's and its plugins' are known only once pytest has loaded them, so
    this check runs at configure, still before any test.
    """

    def __init__(self) -> None:
        self._parser: Any = None

    def pytest_addoption(self, parser: pytest.Parser) -> None:
        self._parser = parser

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        if self._parser is None:
            return
        taken = []
        for flags, _options, _function in _commands:
            for flag in flags:
                try:
                    _, unknown = self._parser.parse_known_and_unknown_args([flag])
                except pytest.UsageError:  # pytest's, wanting a value
                    taken.append(flag)
                    continue
                if flag not in unknown:
                    taken.append(flag)
        _flags_taken(taken)


def failed_worse(code: int) -> int:
    """A run's exit code once a hook failed after it: 1, unless the run failed worse."""
    if code in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR):
        return int(code)
    return int(pytest.ExitCode.TESTS_FAILED)


class _Around:
    """Runs the project's @hook functions around a run, their ends always."""

    def __init__(self) -> None:
        self._running: list[tuple[Callable[[], Any], Iterator[Any]]] = []
        self.failed_after = False

    def __enter__(self) -> "_Around":
        for function in _hooks:
            try:
                result = function()
                if inspect.isgenerator(result):
                    next(result, None)
                    self._running.append((function, result))
            except Exception as error:
                self.finish()
                raise HooksError(
                    f"fleet: {_where(error, function)}: @hook {_name_of(function)} "
                    f"raised before the run: {_exception(error)}"
                ) from None
        return self

    def finish(self) -> None:
        """Every started hook's part after ``yield``, last started first."""
        while self._running:
            function, generator = self._running.pop()
            try:
                next(generator)
            except StopIteration:
                continue
            except Exception as error:
                self.failed_after = True
                sys.stdout.flush()
                sys.stderr.write(
                    f"ERROR: fleet: {_where(error, function)}: @hook {_name_of(function)} "
                    f"raised after the run: {_exception(error)}\n"
                )
                continue
            generator.close()
            self.failed_after = True
            sys.stderr.write(
                f"ERROR: fleet: {_line_of(function)}: @hook {_name_of(function)} "
                "yields more than once; it must yield once\n"
            )

    def __exit__(self, *exc: object) -> None:
        self.finish()


def around_run() -> _Around:
    return _Around()
