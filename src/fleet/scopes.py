"""Scope instances shared by threads: set up once, torn down after their last test.

pytest keeps two pieces of state that assume one test at a time:

* ``SetupState``, a stack of the collection nodes (session, package, module,
  class) the current test lives in, popped as soon as the next test lives
  elsewhere;
* ``FixtureDef.cached_result`` and its finalizers, one live value per fixture
  definition, replaced when a test of another module or parameter needs it.

:class:`SharedSetupState` replaces the stack by reference counts: each node is
set up by the first test that needs it and torn down by the last test below it
to finish, in whichever thread that happens; no node is torn down while
another thread still runs a test below it.

:class:`FixtureSlots` gives each fixture definition one value per *scope
instance* (the node its scope resolves to, plus its parameter), so two threads
in two modules each get their module's value of a conftest fixture, and two
threads in one module share one. A lock per slot makes a second thread wait
for the first one's set-up instead of running it again.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections import Counter
from typing import Any, Callable, Iterable, Iterator

import pytest

from fleet import internals
from fleet.context import current

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup


class _NodeState:
    __slots__ = ("lock", "finalizers", "error", "ready")

    def __init__(self, node: Any) -> None:
        self.lock = threading.Lock()
        self.finalizers: list[Callable[[], object]] = [node.teardown]
        self.error: tuple[BaseException, Any] | None = None
        self.ready = False


class _ActiveNodes:
    __slots__ = ("_state",)

    def __init__(self, state: SharedSetupState) -> None:
        self._state = state

    def __contains__(self, node: Any) -> bool:
        return self._state.is_node_active(node)


class SharedSetupState:
    """Drop-in for ``session._setupstate`` while tests run on several threads."""

    INTERFACE = frozenset({"setup", "addfinalizer", "teardown_exact", "is_node_active", "stack"})

    def __init__(self, items: Iterable[pytest.Item]) -> None:
        self._remaining: Counter[Any] = Counter()
        for item in items:
            for node in item.listchain()[:-1]:
                self._remaining[node] += 1
        self._lock = threading.Lock()
        self._nodes: dict[Any, _NodeState] = {}
        self._items: dict[pytest.Item, list[Callable[[], object]]] = {}
        self._outcomes = internals.test_outcome_types()
        # nodes that may still get tests (a worker process learns its tests as they come)
        self._open: set[Any] = set()

    # A worker process does not know in advance which tests it will run: it
    # counts each test as it arrives, and keeps a node open (counted once
    # more) until the controller says the node's last test has been handed out.

    def expect(self, item: pytest.Item, closing: Iterable[int] = ()) -> None:
        """A test is coming; after it, no test under the nodes at depths ``closing``."""
        chain = item.listchain()[:-1]
        with self._lock:
            for node in chain:
                if node not in self._open and self._remaining[node] == 0:
                    self._open.add(node)
                    self._remaining[node] += 1
                self._remaining[node] += 1
            for depth in closing:
                node = chain[depth]
                if node in self._open:
                    self._open.discard(node)
                    self._remaining[node] -= 1

    def unexpect(self, item: pytest.Item) -> None:
        """A test given back unstarted; what it leaves set up goes at the end."""
        with self._lock:
            for node in item.listchain()[:-1]:
                self._remaining[node] -= 1
                if self._remaining[node] == 0 and node not in self._open:
                    self._open.add(node)  # torn down with everything else, at the end
                    self._remaining[node] += 1

    @contextlib.contextmanager
    def active(self, item: pytest.Item) -> Iterator[None]:
        """Count ``item`` as set up meanwhile, to make fixtures for it outside its run."""
        self._items[item] = []
        try:
            yield
        finally:
            self._items.pop(item, None)

    def setup_session(self, session: pytest.Session) -> None:
        """Set up the session node alone (to make session fixtures before any test)."""
        with self._lock:
            state = self._nodes.setdefault(session, _NodeState(session))
            self._remaining[session] += 1
            self._open.add(session)
        with state.lock:
            if not state.ready:
                state.ready = True
                session.setup()

    def setup(self, item: pytest.Item) -> None:
        current.item = item
        *ancestors, _ = chain = item.listchain()
        for node in ancestors:
            state = self._nodes.get(node)
            if state is None:
                with self._lock:
                    state = self._nodes.setdefault(node, _NodeState(node))
            with state.lock:
                if state.error is not None:
                    raise state.error[0].with_traceback(state.error[1])
                if not state.ready:
                    state.ready = True
                    try:
                        node.setup()
                    except self._outcomes as exc:
                        state.error = (exc, exc.__traceback__)
                        raise
        self._items[item] = [item.teardown]
        chain[-1].setup()

    def is_node_active(self, node: Any) -> bool:
        """Set up and not yet torn down (pytest >= 9.2 asks before a fixture lookup)."""
        if node in self._items:
            return True
        state = self._nodes.get(node)
        return state is not None and state.ready

    @property
    def stack(self) -> _ActiveNodes:
        """What pytest's stack answers to ``node in stack``: the active nodes."""
        return _ActiveNodes(self)

    def addfinalizer(self, finalizer: Callable[[], object], node: Any) -> None:
        assert callable(finalizer)
        own = self._items.get(node)
        if own is not None:
            own.append(finalizer)
            return
        state = self._nodes.get(node)
        assert state is not None, f"{node!r} is not set up"
        state.finalizers.append(finalizer)

    def teardown_exact(self, nextitem: pytest.Item | None) -> None:
        """Tear down the current thread's test, and every node it was last in."""
        item = current.item
        if item is None:
            self._teardown_everything()
            return
        current.item = None
        errors: list[BaseException] = []
        _run_finalizers(item, self._items.pop(item, []), errors, self._outcomes)
        for node in reversed(item.listchain()[:-1]):
            with self._lock:
                self._remaining[node] -= 1
                state = self._nodes.pop(node, None) if self._remaining[node] == 0 else None
            if state is not None:
                _run_finalizers(node, state.finalizers, errors, self._outcomes)
        _raise(errors)

    def _teardown_everything(self) -> None:
        """End of session: whatever is still set up (a run stopped early)."""
        errors: list[BaseException] = []
        for item, finalizers in reversed(list(self._items.items())):
            _run_finalizers(item, finalizers, errors, self._outcomes)
        self._items.clear()
        with self._lock:
            leftovers = list(self._nodes.items())
            self._nodes.clear()
        for node, state in reversed(leftovers):
            _run_finalizers(node, state.finalizers, errors, self._outcomes)
        _raise(errors)


def _run_finalizers(
    node: Any, finalizers: list, errors: list[BaseException], outcomes: tuple[type[BaseException], ...]
) -> None:
    these: list[BaseException] = []
    while finalizers:
        fin = finalizers.pop()
        try:
            fin()
        except outcomes as exc:
            these.append(exc)
    if len(these) == 1:
        errors.extend(these)
    elif these:
        errors.append(BaseExceptionGroup(f"errors while tearing down {node!r}", these[::-1]))


def _raise(errors: list[BaseException]) -> None:
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise BaseExceptionGroup("errors during test teardown", errors[::-1])


# --- fixture values per scope instance ----------------------------------------


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
