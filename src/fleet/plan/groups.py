"""Plan: turn the collected items into groups that a scheduler can run.

A *group* is an ordered list of tests that must run one after another, in
collection order. Different groups may run at the same time. A test belongs to
the groups named by its closest ``group`` (or ``xdist_group``) mark, else to
the automatic group of its ``--group-unit``; a bare ``group()`` mark puts it in
no group at all, so it may run whenever a worker is free.

Because the whole plan is known before the first test starts, each test's
``nextitem`` (the next test of its group) is known in advance: no worker ever
has to hold a test back to learn what comes after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

import pytest

from fleet import adapters
from fleet.state import internals
from fleet.front.options import GROUP_UNITS  # noqa: F401 (what unit may be)



@dataclass
class Plan:
    items: list[pytest.Item]
    # group key -> indices into ``items``, in collection order
    groups: dict[Hashable, list[int]] = field(default_factory=dict)
    # per item: the keys of the groups it belongs to (empty: free-running)
    memberships: list[tuple[Hashable, ...]] = field(default_factory=list)
    exclusive: list[bool] = field(default_factory=list)
    nextitem: list[pytest.Item | None] = field(default_factory=list)
    # per item: what a worker keeps to (its first group, else its module), so
    # a group's tests stay on one worker and a module's fixtures stay warm
    affinity: list[Hashable] = field(default_factory=list)
    # scope nodes (session, package, module, class) whose tests are all in one
    # group: one worker runs them one after another, as a serial run would
    sequential_nodes: set[Any] = field(default_factory=set)
    # session and package fixtures whose parameter changes between tests ->
    # how many tests use them: those run one after another, in pytest's order
    switched: dict[str, int] = field(default_factory=dict)
    # per item: its expected own seconds, from earlier runs (None: no history)
    expected: list[float] | None = None

    @property
    def runnable_groups(self) -> int:
        """How many units could run at once: groups plus free-running tests."""
        return len(self.groups) + sum(1 for m in self.memberships if not m)


# How wide each scope is, for comparing a shared event loop with the unit.
_WIDTH = {"function": 0, "class": 1, "module": 2, "package": 3, "session": 4}
_SCOPE_NODES = {"class": pytest.Class, "module": pytest.Module, "package": pytest.Package}


def shared_event_loop(item: pytest.Item) -> tuple[str, str] | None:
    """pytest-asyncio: (scope, node id) of the event loop the test shares with others.

    One loop runs one coroutine at a time, so tests sharing a loop wider than
    themselves must not run side by side. (``scope`` is the keyword of
    pytest-asyncio < 0.24, ``loop_scope`` of later ones.)
    """
    mark = item.get_closest_marker("asyncio")
    if mark is None:
        return None
    scope = mark.kwargs.get("loop_scope", mark.kwargs.get("scope")) or _default_loop_scope(item.config)
    if scope == "session":
        return (scope, "")
    node = item.getparent(_SCOPE_NODES[scope]) if scope in _SCOPE_NODES else None
    return (scope, node.nodeid) if node is not None else None


def _default_loop_scope(config: pytest.Config) -> str | None:
    """pytest-asyncio's ini ``asyncio_default_test_loop_scope``, where it has one."""
    try:
        return config.getini("asyncio_default_test_loop_scope") or None
    except ValueError:
        return None


def group_keys(item: pytest.Item, unit: str) -> tuple[Hashable, ...]:
    mark = item.get_closest_marker("group")
    if mark is not None:
        return tuple(("mark", name) for name in dict.fromkeys(mark.args))
    mark = item.get_closest_marker("xdist_group")
    if mark is not None:
        name = mark.kwargs.get("name", mark.args[0] if mark.args else None)
        return (("mark", name),) if name is not None else ()
    loop = shared_event_loop(item)
    if loop is not None and _WIDTH[loop[0]] > _WIDTH[unit]:
        return (("event loop", loop[1]),)
    if unit == "function":
        return ()
    node = None
    if unit == "class":
        node = item.getparent(pytest.Class)
    if node is None:
        node = item.getparent(pytest.Module) or item.parent
    return (("unit", node.nodeid if node is not None else item.nodeid),)


def make_plan(
    items: Sequence[pytest.Item],
    unit: str,
    units: Callable[[pytest.Item], tuple[Hashable, ...]] | None = None,
    exclusive: Callable[[pytest.Item], bool] | None = None,
    expected: list[float] | None = None,
    loose: frozenset[Hashable] = frozenset(),
) -> Plan:
    """Group ``items`` by marks and ``unit``, or by ``units`` (a division) if
    given; ``exclusive`` says which run alone (:mod:`fleet.plan.placement`);
    ``expected`` are their remembered times; the groups in ``loose`` (split
    modules, :mod:`fleet.plan.history`) are not formed."""
    plan = Plan(items=list(items), expected=expected)
    extra: dict[int, tuple[Hashable, ...]] = {}
    if plan.items:
        # each adapter answers {test index: group key}
        for index, key in adapters.gather(plan.items[0].config, "extra_groups", items=plan.items).items():
            extra[index] = (key,)
    for index, item in enumerate(plan.items):
        # Every report needs it, and computing it (a cached_property) from many
        # threads at once makes them queue on one lock on Python < 3.12.
        item.location
        keys = units(item) if units is not None else group_keys(item, unit)
        if index in extra:
            keys = tuple(dict.fromkeys(keys + extra[index]))
        if loose:
            keys = tuple(key for key in keys if key not in loose)
        plan.memberships.append(keys)
        plan.exclusive.append(exclusive(item) if exclusive is not None else False)
        plan.affinity.append(keys[0] if keys else ("module", item.nodeid.split("::", 1)[0]))
        for key in keys:
            plan.groups.setdefault(key, []).append(index)
    plan.switched = _keep_switches_in_order(plan)
    plan.sequential_nodes = _sequential_nodes(plan)
    plan.nextitem = [None] * len(plan.items)
    for members in plan.groups.values():
        for here, following in zip(members, members[1:]):
            if plan.nextitem[here] is None:
                plan.nextitem[here] = plan.items[following]
    return plan


def switched_fixtures(items: Sequence[pytest.Item]) -> dict[str, list[int]]:
    """Session and package fixtures the tests use with more than one parameter:
    name -> indices of the tests using it.

    pytest orders the tests so that one parameter's instance is torn down
    before the next one's is set up; a fixture that sets process-wide state
    per parameter (a backend switched on, a module global) relies on it.
    """
    users: dict[str, list[int]] = {}
    params: dict[str, set[int]] = {}
    for index, item in enumerate(items):
        callspec = getattr(item, "callspec", None)
        if callspec is None:
            continue
        definitions = internals.fixture_definitions(item)
        for name, param_index in callspec.indices.items():
            chain = definitions.get(name)
            if chain and chain[-1].scope in ("session", "package"):
                users.setdefault(name, []).append(index)
                params.setdefault(name, set()).add(param_index)
    return {name: users[name] for name in users if len(params[name]) > 1}


def _keep_switches_in_order(plan: Plan) -> dict[str, int]:
    """Put the tests of each switched fixture in one more group, so they run
    one after another in collection order (which is pytest's parameter
    order): one parameter's instance at a time, as in a serial run."""
    switched = switched_fixtures(plan.items)
    for name, indices in switched.items():
        key = ("parameters of", name)
        plan.groups[key] = indices
        for index in indices:
            plan.memberships[index] += (key,)
    return {name: len(indices) for name, indices in switched.items()}


def switched_notes(plan: Plan, workers: int) -> list[str]:
    """One line, when more than one worker could have run them side by side."""
    if workers < 2 or not plan.switched:
        return []
    parts = ", ".join(f"{name} ({count} tests)" for name, count in sorted(plan.switched.items()))
    return [
        f"run one after another, in pytest's parameter order: the tests of {parts}: "
        "a higher-scoped fixture whose parameter changes between tests has one instance at a time"
    ]


def _sequential_nodes(plan: Plan) -> set[Any]:
    """Nodes all of whose tests belong to the same one group (or that hold one test)."""
    memberships: dict[Any, Any] = {}
    mixed: set[Any] = set()
    for item, keys in zip(plan.items, plan.memberships):
        for node in item.listchain()[:-1]:
            if node in mixed:
                continue
            if node not in memberships:
                memberships[node] = keys if len(keys) == 1 else item
            elif memberships[node] != keys or len(keys) != 1:
                mixed.add(node)
    return set(memberships) - mixed
