"""Scope nodes shared by threads: set up once, torn down after their last test.

pytest's ``SetupState`` is a stack of the collection nodes (session, package,
module, class) the current test lives in, popped as soon as the next test
lives elsewhere. :class:`SharedSetupState` replaces the stack by reference
counts: each node is set up by the first test that needs it and torn down by
the last test below it to finish, in whichever thread that happens; no node
is torn down while another thread still runs a test below it.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections import Counter
from typing import Any, Callable, Iterable, Iterator

import pytest

from fleet.state import internals
from fleet.state.context import current
from fleet.state.internals import internal_frame

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup


class _NodeState:
    __slots__ = ("lock", "finalizers", "error", "ready")

    def __init__(self, node: Any) -> None:
        self.lock = threading.Lock()
        self.finalizers: list[Callable[[], object]] = [node.teardown]
        self.error: tuple[BaseException, Any] | None = None
        self.ready = False


class _Stack:
    """What pytest's ``SetupState.stack`` answers, for the test on this thread.

    pytest asks ``node in stack`` (is it set up?). pytest-rerunfailures also
    walks the running test's entries and deletes its scopes from the stack
    before a teardown that a rerun will follow, so that teardown keeps them:
    here that means the test's next teardown leaves its scopes set up (and
    uncounted), and deleting the test itself drops its own finalizers, as
    deleting it from pytest's stack does. Putting entries back (``update``)
    needs nothing: the keeping lasts for one teardown.
    """

    __slots__ = ("_state",)

    def __init__(self, state: SharedSetupState) -> None:
        self._state = state

    def __contains__(self, node: Any) -> bool:
        return self._state.is_node_active(node)

    def keys(self) -> list[Any]:
        item = current.item
        if item is None:
            return []
        return [node for node in item.listchain() if self._state.is_node_active(node)]

    def __iter__(self) -> Any:
        return iter(self.keys())

    def __getitem__(self, node: Any) -> tuple[Any, ...]:
        return (node,)

    def __delitem__(self, node: Any) -> None:
        item = current.item
        if node is item:
            self._state.forget(node)
        elif item is not None:
            self._state.keep_for_next_attempt(item, node)

    def update(self, entries: Any) -> None:
        pass


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
        # test -> nodes its next teardown keeps (it runs again)
        self._kept: dict[Any, set[Any]] = {}
        # tests whose thread was given up on: their teardown, if it ever comes, does nothing
        self._abandoned: set[Any] = set()

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

    @internal_frame
    def setup(self, item: pytest.Item) -> None:
        __tracebackhide__ = True
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
    def stack(self) -> _Stack:
        """What pytest's stack answers (``node in stack``, and what
        pytest-rerunfailures does with it)."""
        return _Stack(self)

    @stack.setter
    def stack(self, value: Any) -> None:
        """pytest-rerunfailures clears the stack (``stack = {}``) after a failed
        attempt's teardown, so that the next attempt sets its scopes up again
        as needed. Here the attempt's teardown has already kept the scopes the
        rerun needs and dropped the test's own: there is nothing to forget."""

    def abandon(self, item: pytest.Item) -> list[BaseException]:
        """A test whose thread was given up on (stuck past its timeout): it
        counts as ended for its scopes, which are torn down once their other
        tests end; its own fixtures are left as they are. The errors of
        scopes torn down here."""
        with self._lock:
            self._abandoned.add(item)
        self._items.pop(item, None)
        errors: list[BaseException] = []
        for node in reversed(item.listchain()[:-1]):
            with self._lock:
                self._remaining[node] -= 1
                state = self._nodes.pop(node, None) if self._remaining[node] == 0 else None
            if state is not None:
                _run_finalizers(node, state.finalizers, errors, self._outcomes)
        return errors

    def forget(self, item: pytest.Item) -> None:
        """Drop a test's own finalizers without running them."""
        self._items.pop(item, None)

    def keep_for_next_attempt(self, item: pytest.Item, node: Any) -> None:
        """The test runs again: its next teardown leaves ``node`` set up."""
        self._kept.setdefault(item, set()).add(node)

    def addfinalizer(self, finalizer: Callable[[], object], node: Any) -> None:
        assert callable(finalizer)
        own = self._items.get(node)
        if own is not None:
            own.append(finalizer)
            return
        state = self._nodes.get(node)
        assert state is not None, f"{node!r} is not set up"
        state.finalizers.append(finalizer)

    @internal_frame
    def teardown_exact(self, nextitem: pytest.Item | None) -> None:
        """Tear down the current thread's test, and every node it was last in.

        With no test running on this thread (the session's end, a worker
        process shutting down): everything still set up. A test skipped by a
        mark before its set-up ran is still the test running: it tears down
        only what its end leaves unused.
        """
        __tracebackhide__ = True
        item = current.item
        if item is None:
            self._teardown_everything()
            return
        if item in self._abandoned:
            return
        errors: list[BaseException] = []
        _run_finalizers(item, self._items.pop(item, []), errors, self._outcomes)
        kept = self._kept.pop(item, ())
        for node in reversed(item.listchain()[:-1]):
            if node in kept:
                continue
            with self._lock:
                self._remaining[node] -= 1
                state = self._nodes.pop(node, None) if self._remaining[node] == 0 else None
            if state is not None:
                _run_finalizers(node, state.finalizers, errors, self._outcomes)
        _raise(errors)

    @internal_frame
    def _teardown_everything(self) -> None:
        """End of session: whatever is still set up (a run stopped early)."""
        __tracebackhide__ = True
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


@internal_frame
def _run_finalizers(
    node: Any, finalizers: list, errors: list[BaseException], outcomes: tuple[type[BaseException], ...]
) -> None:
    __tracebackhide__ = True
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


@internal_frame
def _raise(errors: list[BaseException]) -> None:
    __tracebackhide__ = True
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise BaseExceptionGroup("errors during test teardown", errors[::-1])
