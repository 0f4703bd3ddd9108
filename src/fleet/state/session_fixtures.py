"""Session fixtures made once for a run of several worker processes.

The first worker process sets up, before any test, every session-scoped
fixture the selected tests use (one instance per parameter) and sends each
value back pickled. The controller gives those values to the fixtures'
instances before it starts the other workers, which inherit them: a worker
that needs the fixture finds it made. Only the first worker holds the real
instance, so the teardown runs once, there, when that worker is shut down
last, after every other worker has finished.

A value that cannot be handed over is made again in each worker process
that needs it: one that cannot be pickled, one whose set-up raised (each
process then reports the error, as a serial run reports it on every test),
one that depends on ``worker_id``, one whose parameter changes between tests
(it is set up in its tests' order, one parameter at a time), and one made for what it does in its
process (it returns None, or changes ``os.environ``, the working directory
or ``sys.path``): the first worker keeps its own, and each other process
makes its own as its tests need it. Session fixtures of pytest and of plugins
(``tmp_path_factory``, ``worker_id``, ...) are always per process.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import pickle
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest

from fleet.state import internals
from fleet.state.capture import collect_output
from fleet.state.fixtures import FixtureSlots, depends_on_worker, running
from fleet.state.setupstate import SharedSetupState


@dataclass
class Made:
    """One session fixture instance made by the first worker."""

    index: int  # the first test that uses it
    argname: str
    value: bytes | None  # pickled; None when it is not handed over
    reason: str = ""  # why not
    output: dict[str, str] = field(default_factory=dict)
    start: float = 0.0  # when its set-up began and ended (time.time())
    stop: float = 0.0


def is_project_fixture(fixturedef: Any, rootpath: Path) -> bool:
    """Defined by the project under test, not by pytest or a plugin."""
    return _is_project_function(getattr(fixturedef, "func", None), rootpath)


@functools.lru_cache(maxsize=None)
def _is_project_function(function: Any, rootpath: Path) -> bool:
    try:
        source = Path(inspect.getfile(function)).resolve()
    except (TypeError, OSError):
        return False
    return source.is_relative_to(rootpath) and "site-packages" not in source.parts


def wanted(
    items: Sequence[pytest.Item], rootpath: Path, slots: FixtureSlots
) -> Iterator[tuple[int, str, Any]]:
    """(index of the first test using it, name, definition) per instance to make:
    one per parameter (compared as pytest compares them) and per parameter of
    the fixtures it depends on."""
    seen: dict[tuple[Any, Any], list[Any]] = {}
    bound: dict[Any, bool] = {}
    for index, item in enumerate(items):
        if not isinstance(item, pytest.Function):
            continue
        definitions = internals.fixture_definitions(item)
        for name in item.fixturenames:
            chain = definitions.get(name)
            if not chain:
                continue
            fixturedef = chain[-1]
            if fixturedef.scope != "session" or not is_project_fixture(fixturedef, rootpath):
                continue
            if fixturedef not in bound:
                bound[fixturedef] = depends_on_worker(fixturedef, item)
            if bound[fixturedef]:
                continue
            dependencies = slots.dependency_params(fixturedef, item)
            if is_switched(name, dependencies, slots.switched):
                continue
            param = internals.fixture_cache_key(item, fixturedef, name)
            made = seen.setdefault((fixturedef, dependencies), [])
            if not any(internals.same_parameter(other, param) for other in made):
                made.append(param)
                yield index, name, fixturedef


def is_switched(name: str, dependencies: Sequence[tuple[str, Any]], switched: frozenset[str]) -> bool:
    """Whether the fixture's parameter, or that of one it depends on, changes
    between tests (:func:`fleet.plan.groups.switched_fixtures`): each process
    then makes it in its turn, one parameter's instance at a time."""
    return name in switched or any(dependency in switched for dependency, _ in dependencies)


def per_process_by_plan(items: Sequence[pytest.Item], rootpath: Path, slots: FixtureSlots) -> dict[str, str]:
    """Session fixtures made per process whatever their values: name -> why
    (their parameter changes between tests, or they depend on ``worker_id``)."""
    found: dict[str, str] = {}
    checked: set[Any] = set()  # for worker_id, once per definition
    for item in items:
        definitions = internals.fixture_definitions(item)
        for name in getattr(item, "fixturenames", ()):
            chain = definitions.get(name)
            if name in found or not chain or chain[-1].scope != "session":
                continue
            fixturedef = chain[-1]
            if not is_project_fixture(fixturedef, rootpath):
                continue
            if is_switched(name, slots.dependency_params(fixturedef, item), slots.switched):
                found[name] = "its parameter changes between tests: set up in each process in a serial run's order"
            elif fixturedef not in checked:
                checked.add(fixturedef)
                if depends_on_worker(fixturedef, item):
                    found[name] = "it depends on worker_id"
    return found


def make(
    session: pytest.Session,
    items: Sequence[pytest.Item],
    slots: FixtureSlots,
    setupstate: SharedSetupState,
    live: bool,
) -> list[Made]:
    """In the first worker: set the fixtures up and pickle what can be handed over."""
    setupstate.setup_session(session)
    made: list[Made] = []
    for index, name, fixturedef in wanted(items, session.config.rootpath, slots):
        item = items[index]
        value: bytes | None = None
        reason = ""
        start = time.time()
        with collect_output() if not live else contextlib.nullcontext({}) as output, running(item):
            before = _process_state()
            try:
                with setupstate.active(item):
                    result = internals.make_fixture_value(item, name)
            except BaseException as exc:  # a failing fixture, pytest.skip(), ...
                if not isinstance(exc, internals.test_outcome_types()):
                    raise
                reason = f"its set-up raised {type(exc).__name__}"
            else:
                reason = _made_for_its_effects(result, before, _process_state())
                if not reason:
                    try:
                        value = pickle.dumps(result)
                    except Exception as exc:
                        reason = f"its value cannot be pickled ({type(exc).__name__}: {exc})"
                if value is not None:
                    slots.share(fixturedef)
        made.append(Made(index, name, value, reason, output, start, time.time()))
    return made


def _process_state() -> tuple[dict[str, str], str, list[str]]:
    return dict(os.environ), os.getcwd(), list(sys.path)


def _made_for_its_effects(value: Any, before: Any, after: Any) -> str:
    """Why a session fixture is made in every worker process for what its
    set-up does there, or "": it returns nothing (it exists for its effects,
    such as configuring a library), or it changed the environment, the
    working directory or ``sys.path``, which the other processes would lack."""
    if value is None:
        return "it returns None: it is made in every worker process, for what it does there"
    changed = [what for what, old, new in zip(("os.environ", "the working directory", "sys.path"), before, after)
               if old != new]
    if changed:
        return f"its set-up changed {' and '.join(changed)}, which every worker process needs"
    return ""


def hand_over(session: pytest.Session, items: Sequence[pytest.Item], slots: FixtureSlots, made: list[Made]) -> None:
    """In the controller, before the other workers start: give them the values.

    A value that pickled but does not unpickle (``anyio.CapacityLimiter``) is
    not handed over either: each process makes its own, and the entry says why.
    """
    for entry in made:
        if entry.value is None:
            continue
        try:
            value = pickle.loads(entry.value)
        except Exception as exc:
            entry.value = None
            entry.reason = f"its value cannot be unpickled ({type(exc).__name__}: {exc})"
            continue
        item = items[entry.index]
        fixturedef = internals.fixture_definitions(item)[entry.argname][-1]
        slots.preset(fixturedef, item, entry.argname, value)
