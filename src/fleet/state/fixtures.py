"""Fixture values per scope instance, shared by threads.

pytest keeps one live value per fixture definition (``FixtureDef.cached_result``
and its finalizers), replaced when a test of another module or parameter
needs it. :class:`FixtureSlots` gives each definition one value per *scope
instance* (the node its scope resolves to, plus its parameter), so two threads
in two modules each get their module's value of a conftest fixture, and two
threads in one module share one. A lock per slot makes a second thread wait
for the first one's set-up instead of running it again.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import pytest

from fleet.state import internals
from fleet.state.context import current


class _Slot:
    """One live instance of a fixture: its value and its finalizers."""

    __slots__ = ("cached_result", "_finalizers", "lock")

    def __init__(self) -> None:
        self.cached_result: Any = None
        self._finalizers: list[Callable[[], object]] = []
        self.lock = threading.RLock()


def instance_of(fixturedef: Any) -> _Slot | None:
    """The instance of ``fixturedef`` the current thread is setting up, tearing
    down or using; None outside a fleet run."""
    pinned = current.pinned
    if pinned:
        slot = pinned.get(fixturedef)
        if slot is not None:
            return slot
    item_slots = current.item_slots
    if item_slots:
        return item_slots.get(fixturedef)
    return None


class _SlotAttribute:
    """Data descriptor routing a FixtureDef attribute to the current slot.

    With no slot in context (collection, the main thread, a ``request``
    pseudo-fixture) the attribute lives on the instance as usual.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, fixturedef: Any, owner: Any = None) -> Any:
        if fixturedef is None:
            return self
        slot = instance_of(fixturedef)
        if slot is None:
            return internals.fixture_storage(fixturedef)[self.name]
        return getattr(slot, self.name)

    def __set__(self, fixturedef: Any, value: Any) -> None:
        slot = instance_of(fixturedef)
        if slot is None:
            internals.fixture_storage(fixturedef)[self.name] = value
        else:
            setattr(slot, self.name, value)


WORKER_FIXTURE = "worker_id"


def _depends_on_worker(names: Any, definitions: dict[str, Any], seen: set[str]) -> bool:
    for name in names:
        if name == WORKER_FIXTURE:
            return True
        if name in seen:
            continue
        seen.add(name)
        if any(_depends_on_worker(d.argnames, definitions, seen) for d in definitions.get(name, ())):
            return True
    return False


def depends_on_worker(fixturedef: Any, item: pytest.Item | None) -> bool:
    """Whether the fixture needs ``worker_id``, itself or through another fixture."""
    definitions = internals.fixture_definitions(item) if item is not None else {}
    return fixturedef.argname == WORKER_FIXTURE or _depends_on_worker(
        fixturedef.argnames, definitions, set()
    )


class FixtureSlots:
    """Installs per-scope-instance fixture state on ``pytest.FixtureDef``.

    A fixture that needs ``worker_id`` (itself or through another fixture)
    cannot be shared by workers: its instances are kept per worker as well.
    """

    def __init__(self) -> None:
        self._slots: dict[tuple[Any, ...], _Slot] = {}
        self._worker_bound: dict[Any, bool] = {}
        # request -> key of a worker-bound instance: whichever thread tears it
        # down, it must find the instance the request's worker set up
        self._bound_keys: dict[Any, tuple[Any, ...]] = {}
        self._lock = threading.Lock()
        self._originals: dict[str, Any] = {}
        # session fixtures this process set up itself
        self.made_here: set[Any] = set()

    def preset(self, fixturedef: Any, node: Any, cache_key: Any, value: Any) -> None:
        """Give a fixture instance a value made elsewhere, with no teardown here."""
        slot = self._get(self._key(fixturedef, node, cache_key))
        slot.cached_result = (value, cache_key, None)
        slot._finalizers = []

    def install(self) -> None:
        cls = pytest.FixtureDef
        self._originals = {"execute": cls.execute, "finish": cls.finish}
        original_execute, original_finish = cls.execute, cls.finish
        slots = self

        def execute(fixturedef: Any, request: Any) -> Any:
            key = slots._instance_key(fixturedef, request)
            if slots._is_worker_bound(fixturedef):
                slots._bound_keys[request] = key
            slot = slots._get(key)
            if current.item_slots is not None:
                current.item_slots[fixturedef] = slot
            with _pinned(fixturedef, slot), slot.lock:
                if slot.cached_result is None and fixturedef.scope == "session":
                    slots.made_here.add(fixturedef)
                return original_execute(fixturedef, request)

        def finish(fixturedef: Any, request: Any) -> None:
            key = slots._bound_keys.pop(request, None) or slots._instance_key(fixturedef, request)
            with slots._lock:
                slot = slots._slots.pop(key, None) or _Slot()
            with _pinned(fixturedef, slot):
                original_finish(fixturedef, request)

        cls.execute = execute
        cls.finish = finish
        for name in internals.FIXTUREDEF_SLOT_ATTRIBUTES:
            setattr(cls, name, _SlotAttribute(name))

    def uninstall(self) -> None:
        cls = pytest.FixtureDef
        for name, value in self._originals.items():
            setattr(cls, name, value)
        for name in internals.FIXTUREDEF_SLOT_ATTRIBUTES:
            if isinstance(cls.__dict__.get(name), _SlotAttribute):
                delattr(cls, name)
        self._originals = {}

    def _instance_key(self, fixturedef: Any, request: Any) -> tuple[Any, ...]:
        return self._key(fixturedef, request.node, fixturedef.cache_key(request))

    def _key(self, fixturedef: Any, node: Any, cache_key: Any) -> tuple[Any, ...]:
        try:
            hash(cache_key)
        except TypeError:
            cache_key = ("unhashable", id(cache_key))
        if self._is_worker_bound(fixturedef):
            return (fixturedef, node, cache_key, current.worker)
        return (fixturedef, node, cache_key)

    def _is_worker_bound(self, fixturedef: Any, item: pytest.Item | None = None) -> bool:
        bound = self._worker_bound.get(fixturedef)
        if bound is None:
            bound = depends_on_worker(fixturedef, item or current.item)
            self._worker_bound[fixturedef] = bound
        return bound

    def _get(self, key: tuple[Any, ...]) -> _Slot:
        slot = self._slots.get(key)
        if slot is None:
            with self._lock:
                slot = self._slots.setdefault(key, _Slot())
        return slot


class _pinned:
    __slots__ = ("fixturedef", "slot", "previous")

    def __init__(self, fixturedef: Any, slot: _Slot) -> None:
        self.fixturedef = fixturedef
        self.slot = slot

    def __enter__(self) -> None:
        if current.pinned is None:
            current.pinned = {}
        self.previous = current.pinned.get(self.fixturedef)
        current.pinned[self.fixturedef] = self.slot

    def __exit__(self, *exc: object) -> None:
        if self.previous is None:
            del current.pinned[self.fixturedef]
        else:
            current.pinned[self.fixturedef] = self.previous
