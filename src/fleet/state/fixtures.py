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

import itertools
import threading
from typing import Any, Callable

import pytest

from fleet.state import internals
from fleet.state.context import current
from fleet.state.internals import internal_frame


class _Slot:
    """One live instance of a fixture: its value and its finalizers.

    ``param`` is its own parameter (kept to compare an unhashable one as
    pytest does); ``request`` the request that set it up (to tear it down
    when another parameter takes its place); ``users`` the running tests
    using it, counted only where another parameter may take its place.
    """

    __slots__ = (
        "cached_result", "_finalizers", "lock", "key", "group", "param", "request", "users", "preset", "shared",
        "made_at",
    )

    def __init__(self, key: tuple[Any, ...] = (), group: tuple[Any, ...] = (), param: Any = None) -> None:
        self.cached_result: Any = None
        self._finalizers: list[Callable[[], object]] = []
        self.lock = threading.RLock()
        self.key = key
        self.group = group
        self.param = param
        self.request: Any = None
        self.users = 0
        self.preset = False  # its value was made in another process
        self.shared = False  # made here and handed to other processes: torn down only at the end
        self.made_at = 0  # when it was set up, in set-up order


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

    An instance is keyed by the fixture, the node its scope resolves to, its
    own parameter and the parameters of the fixtures it depends on (a module
    fixture using a parametrized one has one instance per parameter, as
    serial pytest rebuilds it when the parameter changes). A fixture that
    needs ``worker_id`` (itself or through another fixture) is kept per worker
    as well.

    Where one worker runs every test under a scope node in order
    (``sequential_nodes``, from the plan), a parametrized instance is torn
    down when the next parameter's is set up, as in a serial run; elsewhere
    both stay alive until their scope ends, since other threads may still use
    the first.

    Only fixtures of ``session`` are routed: an in-process pytest run inside
    a test (``pytester``) sees plain pytest.
    """

    def __init__(self, session: pytest.Session) -> None:
        self.session = session
        self._slots: dict[tuple[Any, ...], _Slot] = {}
        # (fixturedef, node[, worker]) -> its live instances, where several parameters may be
        self._groups: dict[tuple[Any, ...], list[_Slot]] = {}
        self._worker_bound: dict[Any, bool] = {}
        # (fixturedef, fixture info) -> names it depends on, directly or not
        self._closures: dict[tuple[Any, int], tuple[str, ...]] = {}
        # request that set an instance up -> its key: whichever thread tears it
        # down later finds the instance that request made
        self._request_keys: dict[Any, tuple[Any, ...]] = {}
        self._lock = threading.Lock()
        self._originals: dict[str, Any] = {}
        # scope nodes whose tests one worker runs one after another
        self.sequential_nodes: frozenset[Any] = frozenset()
        # fixtures whose tests run one after another in pytest's parameter order
        self.switched: frozenset[str] = frozenset()
        # session fixtures this process set up itself
        self.made_here: set[Any] = set()
        # told the name of each session fixture about to be set up here (a
        # worker process says so first: if the set-up kills it, the cause is known)
        self.on_session_setup: Callable[[str], None] | None = None

    # -- keys ------------------------------------------------------------------

    def _closure(self, fixturedef: Any, item: pytest.Item) -> tuple[str, ...]:
        info = internals.fixture_info(item)
        cache = (fixturedef, id(info))
        names = self._closures.get(cache)
        if names is None:
            definitions = internals.fixture_definitions(item)
            found: set[str] = set()
            todo = list(fixturedef.argnames)
            while todo:
                name = todo.pop()
                if name in found:
                    continue
                found.add(name)
                for definition in definitions.get(name, ()):
                    todo.extend(definition.argnames)
            found.discard(fixturedef.argname)
            names = self._closures[cache] = tuple(sorted(found))
        return names

    def _dependency_params(self, fixturedef: Any, item: pytest.Item | None) -> tuple[Any, ...]:
        """Which parameters of the fixtures this one depends on ``item`` runs with."""
        if item is None or fixturedef.scope == "function":
            return ()
        callspec = getattr(item, "callspec", None)
        if callspec is None:
            return ()
        indices = callspec.indices
        return tuple((name, indices[name]) for name in self._closure(fixturedef, item) if name in indices)

    def _group(self, fixturedef: Any, node: Any, item: pytest.Item | None) -> tuple[Any, ...]:
        if self._is_worker_bound(fixturedef, item):
            return (fixturedef, node, current.worker)
        return (fixturedef, node)

    def _own_key(self, group: tuple[Any, ...], param: Any) -> Any:
        """A hashable stand-in for an instance's own parameter; an unhashable
        one matches a live instance whose parameter pytest would call equal."""
        try:
            hash(param)
            return param
        except TypeError:
            pass
        with self._lock:
            candidates = list(self._groups.get(group, ()))
        for slot in candidates:
            if internals.same_parameter(slot.param, param):
                return slot.key[2]
        return ("unhashable", id(param))

    def _key(
        self, fixturedef: Any, node: Any, item: pytest.Item | None, param: Any, request: Any = None
    ) -> tuple[tuple[Any, ...], tuple[Any, ...], bool]:
        """(key, group, whether other parameters' instances may stand beside it)."""
        group = self._group(fixturedef, node, item)
        dependencies = self._dependency_params(fixturedef, item)
        key = (group, dependencies, self._own_key(group, param))
        counted = fixturedef.scope != "function" and (
            bool(dependencies) or request is None or internals.has_param(request)
        )
        return key, group, counted

    def dependency_params(self, fixturedef: Any, item: pytest.Item) -> tuple[Any, ...]:
        return self._dependency_params(fixturedef, item)

    def preset(self, fixturedef: Any, item: pytest.Item, argname: str, value: Any) -> None:
        """Give a session fixture's instance for ``item`` a value made elsewhere,
        with no teardown here."""
        param = internals.fixture_cache_key(item, fixturedef, argname)
        key, group, _ = self._key(fixturedef, self.session, item, param)
        slot = self._get(key, group, param, counted=True)
        slot.cached_result = (value, param, None)
        slot._finalizers = []
        slot.preset = True

    # -- the slot table ----------------------------------------------------------

    def _get(self, key: tuple[Any, ...], group: tuple[Any, ...], param: Any, counted: bool) -> _Slot:
        slot = self._slots.get(key)
        if slot is None:
            with self._lock:
                slot = self._slots.get(key)
                if slot is None:
                    slot = self._slots[key] = _Slot(key, group, param)
                    if counted:
                        self._groups.setdefault(group, []).append(slot)
        return slot

    def _forget(self, slot: _Slot) -> None:
        with self._lock:
            if self._slots.get(slot.key) is slot:
                del self._slots[slot.key]
            siblings = self._groups.get(slot.group)
            if siblings is not None and slot in siblings:
                siblings.remove(slot)
                if not siblings:
                    del self._groups[slot.group]
            if slot.request is not None:
                self._request_keys.pop(slot.request, None)

    def _in_serial_order(self, slot: _Slot) -> bool:
        """Whether instances of this fixture may replace one another as in a
        serial run: one worker runs every test under its node in order, the
        tests of a switched fixture (or one depending on it) run one after
        another, or the current test runs with nothing beside it in this process."""
        if slot.group[1] in self.sequential_nodes or current.alone:
            return True
        return slot.group[0].argname in self.switched or any(name in self.switched for name, _ in slot.key[1])

    def _replaceable(self, fixturedef: Any, slot: _Slot) -> list[_Slot]:
        """Other parameters' instances that this one takes the place of, as in
        a serial run: unused, made here for this process only."""
        if not self._in_serial_order(slot):
            return []
        with self._lock:
            return [
                other for other in self._groups.get(slot.group, ())
                if other is not slot and other.users == 0 and not (other.preset or other.shared)
                and other.cached_result is not None
            ]

    def _superseded(self, slot: _Slot) -> bool:
        """A live instance that a serial run would have torn down when another
        parameter's was set up after it: it is set up again before its use
        (a fixture that sets process-wide state per parameter sets it anew)."""
        if slot.preset or slot.shared or slot.users > 1 or not self._in_serial_order(slot):
            return False
        with self._lock:
            return any(
                other.made_at > slot.made_at and other.cached_result is not None
                for other in self._groups.get(slot.group, ()) if other is not slot
            )

    # -- installed on FixtureDef -------------------------------------------------

    def install(self) -> None:
        cls = pytest.FixtureDef
        self._originals = {"execute": cls.execute, "finish": cls.finish}
        original_execute, original_finish = cls.execute, cls.finish
        slots = self
        ours = self.session

        @internal_frame
        def execute(fixturedef: Any, request: Any) -> Any:
            __tracebackhide__ = True
            if request.session is not ours:
                return original_execute(fixturedef, request)
            param = fixturedef.cache_key(request)
            key, group, counted = slots._key(fixturedef, request.node, current.item, param, request)
            slot = slots._get(key, group, param, counted)
            item_slots = current.item_slots
            if item_slots is not None:
                if counted and fixturedef not in item_slots:
                    with _users_lock:
                        slot.users += 1
                    if current.counted is not None:
                        current.counted.append(slot)
                item_slots[fixturedef] = slot
            with _pinned(fixturedef, slot), slot.lock:
                if counted and slot.cached_result is not None and slots._superseded(slot):
                    slots._finish_slot(fixturedef, slot, original_finish, forget=False)
                if slot.cached_result is None:
                    slot.made_at = next(_made)
                    if counted:
                        for other in slots._replaceable(fixturedef, slot):
                            slots._finish_slot(fixturedef, other, original_finish)
                    slot.request = request
                    slots._request_keys[request] = key
                    if fixturedef.scope == "session":
                        slots.made_here.add(fixturedef)
                        if slots.on_session_setup is not None:
                            slots.on_session_setup(fixturedef.argname)
                return original_execute(fixturedef, request)

        @internal_frame
        def finish(fixturedef: Any, request: Any) -> None:
            __tracebackhide__ = True
            if request.session is not ours:
                return original_finish(fixturedef, request)
            key = slots._request_keys.get(request)
            if key is None:
                pinned = current.pinned.get(fixturedef) if current.pinned else None
                if pinned is None:
                    return  # not set up by this request: already torn down
                slot = pinned  # pytest replaces the instance being set up, in place
            else:
                slot = slots._slots.get(key)
                if slot is None:
                    return
                slots._forget(slot)
            with _pinned(fixturedef, slot):
                original_finish(fixturedef, request)

        cls.execute = execute
        cls.finish = finish
        for name in internals.FIXTUREDEF_SLOT_ATTRIBUTES:
            setattr(cls, name, _SlotAttribute(name))

    @internal_frame
    def _finish_slot(self, fixturedef: Any, slot: _Slot, original_finish: Any, forget: bool = True) -> None:
        __tracebackhide__ = True
        request = slot.request
        if forget:
            self._forget(slot)
        else:
            self._request_keys.pop(request, None)
        with _pinned(fixturedef, slot):
            original_finish(fixturedef, request)

    def share(self, fixturedef: Any) -> None:
        """The current test's instance of ``fixturedef`` is handed to other
        worker processes: never replaced or set up again here."""
        slot = (current.item_slots or {}).get(fixturedef)
        if slot is not None:
            slot.shared = True

    def uninstall(self) -> None:
        cls = pytest.FixtureDef
        for name, value in self._originals.items():
            setattr(cls, name, value)
        for name in internals.FIXTUREDEF_SLOT_ATTRIBUTES:
            if isinstance(cls.__dict__.get(name), _SlotAttribute):
                delattr(cls, name)
        self._originals = {}

    def _is_worker_bound(self, fixturedef: Any, item: pytest.Item | None = None) -> bool:
        bound = self._worker_bound.get(fixturedef)
        if bound is None:
            bound = depends_on_worker(fixturedef, item or current.item)
            self._worker_bound[fixturedef] = bound
        return bound


class running:
    """One test on this thread: which item, the fixture instances it uses
    (counted while it runs, so no other parameter replaces them meanwhile),
    and the logging calls it makes."""

    __slots__ = ("item", "alone")

    def __init__(self, item: pytest.Item, alone: bool = False) -> None:
        self.item = item
        self.alone = alone

    def __enter__(self) -> list[Any]:
        """The list its logging hook calls are recorded in (:mod:`fleet.state.relay`)."""
        current.item = self.item
        current.alone = self.alone
        current.item_slots = {}
        current.counted = []
        current.events = events = []
        return events

    def __exit__(self, *exc: object) -> None:
        counted = current.counted
        if counted:
            with _users_lock:
                for slot in counted:
                    slot.users -= 1
        current.item = current.item_slots = current.counted = current.events = None
        current.alone = False


_users_lock = threading.Lock()
_made = itertools.count(1)


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
