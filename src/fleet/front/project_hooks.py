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
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

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
