"""An aomaker-style project around a run: hooks.py, run.py and a shared login.

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

``run.py`` calls :func:`main_run` (or the older :func:`threads_run` and
:func:`processes_run`), which does what the command line does and returns the
exit code. A login object (``login=``, or a project's ``pytest_fleet_login``
hook) is asked once, in the controller, for ``login()`` and
``make_headers()``; every test reads the headers through ``fleet_login``.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import pytest

HOOKS_FILE = "hooks.py"
HOOKS_MODULE = "fleet_project_hooks"

_commands: list[tuple[tuple[str, ...], dict[str, Any], Callable[[Any], Any]]] = []
_hooks: list[Callable[[], Any]] = []


def command(*flags: str, **options: Any) -> Callable[[Callable], Callable]:
    """Add an option to the ``fleet`` command; its value is passed to the function."""

    def register(function: Callable[[Any], Any]) -> Callable[[Any], Any]:
        _commands.append((flags, options, function))
        return function

    return register


def hook(function: Callable[[], Any]) -> Callable[[], Any]:
    """Run ``function`` once before the workers start (a generator: also after)."""
    _hooks.append(function)
    return function


def load_hooks(directory: Path) -> None:
    """Import ``directory/hooks.py`` once, if there is one."""
    path = directory / HOOKS_FILE
    if not path.is_file() or HOOKS_MODULE in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(HOOKS_MODULE, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)


def apply_commands(args: Sequence[str]) -> list[str]:
    """Hand the project's own options to their functions; return the rest for pytest."""
    if not _commands:
        return list(args)
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    actions = [(parser.add_argument(*flags, **options), function) for flags, options, function in _commands]
    known, rest = parser.parse_known_args(list(args))
    for action, function in actions:
        value = getattr(known, action.dest)
        if value is not None and value is not False:
            function(value)
    return rest


class _Around:
    """Runs the project's @hook functions around a run, their ends always."""

    def __enter__(self) -> None:
        self._running: list[Iterator[Any]] = []
        for function in _hooks:
            result = function()
            if inspect.isgenerator(result):
                next(result, None)
                self._running.append(result)

    def __exit__(self, *exc: object) -> None:
        for generator in reversed(self._running):
            next(generator, None)


def around_run() -> _Around:
    return _Around()


# --- the shared login ------------------------------------------------------------

login_key = pytest.StashKey[Any]()


class LoginPlugin:
    """Answers ``pytest_fleet_login`` with the object given to main_run."""

    def __init__(self, login: Any) -> None:
        self._login = login

    def pytest_fleet_login(self, config: pytest.Config) -> Any:
        return self._login


_login_lock = threading.Lock()


def login_headers(config: pytest.Config) -> Any:
    """Log in once for the whole run and return the headers every test shares."""
    with _login_lock:
        if login_key not in config.stash:
            login = config.hook.pytest_fleet_login(config=config)
            if login is None:
                raise pytest.UsageError(
                    "fleet: fleet_login needs a login object: pass login= to main_run, "
                    "or return one from a pytest_fleet_login(config) hook"
                )
            response = login.login()
            wants_response = len(inspect.signature(login.make_headers).parameters) > 0
            config.stash[login_key] = (
                login.make_headers(response) if wants_response else login.make_headers()
            )
        return config.stash[login_key]


def log_in_before_forking(config: pytest.Config, items: Sequence[pytest.Item]) -> None:
    """Worker processes inherit the controller's login: log in here, once, first.

    A failure is left to the tests that use ``fleet_login``, which report it.
    """
    if any("fleet_login" in getattr(item, "fixturenames", ()) for item in items):
        try:
            login_headers(config)
        except Exception:
            pass


@pytest.fixture(scope="session")
def fleet_login(request: pytest.FixtureRequest) -> Any:
    """The headers of the run's one login."""
    return login_headers(request.config)


# --- run.py ------------------------------------------------------------------------


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
    from fleet.cli import run_command

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
    return run_command([*argv, *pytest_args], login=login)


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
