"""pytest-randomly: its seeds reproduce per test on threads, and workers shuffle alike.

pytest-randomly reseeds Python's global random generator (and numpy's,
faker's, ...) before each test's set-up, call and teardown. Threads share those
generators, so one test's reseed would move another's draws. While fleet runs
tests on threads, the ``random`` module's functions draw from a generator of
the calling worker thread's own, which pytest-randomly's reseed then seeds as
it would in a serial run; numpy's and faker's generators, and functions
imported with ``from random import ...`` before the run, stay shared (said at
the end of the run). A spawned worker gets the controller's seed, so it
shuffles the suite the same way.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

PLUGIN = "randomly"

_FUNCTIONS = [
    name for name in dir(random.Random)
    if not name.startswith("_") and callable(getattr(random, name, None))
    and getattr(getattr(random, name), "__self__", None) is getattr(random, "_inst", None)
]


class _PerThread(threading.local):
    generator: random.Random | None = None


_per_thread = _PerThread()
_installed: dict[str, Any] = {}


def _generator() -> Any:
    from fleet.state.context import current

    if current.worker is None or threading.current_thread() is threading.main_thread():
        return random._inst  # type: ignore[attr-defined]
    if _per_thread.generator is None:
        _per_thread.generator = random.Random()
    return _per_thread.generator


def _dispatching(name: str) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(_generator(), name)(*args, **kwargs)

    call.__name__ = name
    return call


def configure(config: pytest.Config, processes: bool) -> None:
    if _installed or not config.getoption("randomly_reset_seed", True):
        return
    for name in _FUNCTIONS:
        _installed[name] = getattr(random, name)
        setattr(random, name, _dispatching(name))
    config.add_cleanup(_uninstall)


def _uninstall() -> None:
    for name, function in _installed.items():
        setattr(random, name, function)
    _installed.clear()


def spawn_arguments(config: pytest.Config) -> dict[str, list[str]]:
    seed = config.getoption("randomly_seed", None)
    return {"pytest-randomly": [f"--randomly-seed={seed}"]} if isinstance(seed, int) else {}


def notes(config: pytest.Config) -> dict[str, list[str]]:
    if not _installed:
        return {}
    return {"pytest-randomly": [
        "pytest-randomly: on threads, random's functions draw from a generator per worker thread, "
        "reseeded per test as in a serial run; numpy's and faker's generators are shared by the threads of a process"
    ]}
