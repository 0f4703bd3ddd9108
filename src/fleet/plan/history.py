"""Durations remembered across runs, and what the plan makes of them.

Every parallel run with pytest's cache on stores, under :data:`CACHE_KEY`,
each test's own duration (set-up, call and teardown, less the set-up of the
module, class, package and session fixtures made inside it) and, for each
module and class, how long its fixtures took to set up. A run merges what it
measured into what earlier runs stored; with ``-p no:cacheprovider`` nothing
is read or written.

With durations known the scheduler hands out the longest work first
(:mod:`fleet.plan.schedule`), and a module that would otherwise be the run's
tail may be *split*: its tests stop being one group and run as free tests on
several workers (:func:`modules_to_split`). A test the history does not know
is expected to take the median of the ones it knows; a run none of whose
tests is known is planned as without history.
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass, field
from typing import Any, Hashable, Sequence

import pytest

CACHE_KEY = "fleet/durations"
# Scopes whose set-up is counted apart from the test that happened to make it.
WIDER_SCOPES = ("session", "package", "module", "class")
# Scopes whose set-up a split module repeats in every worker process taking part.
REPEATED_SCOPES = ("module", "class")
# A split must shorten the expected run by this much (seconds, share of it) ...
MIN_GAIN_S = 0.1
MIN_GAIN_SHARE = 0.02
# ... and the fixture set-ups it repeats may cost at most this share of the
# module's own test time ("cheap" module fixtures).
CHEAP_FIXTURES_SHARE = 0.1


@dataclass
class History:
    # test node id -> seconds of its own
    tests: dict[str, float] = field(default_factory=dict)
    # module or class node id -> seconds its fixtures took to set up
    fixtures: dict[str, float] = field(default_factory=dict)


def load(config: pytest.Config) -> History | None:
    """What earlier runs stored; None when the run has no cache."""
    cache = getattr(config, "cache", None)
    if cache is None:
        return None
    stored = cache.get(CACHE_KEY, {})
    history = History()
    if isinstance(stored, dict):
        history.tests = _seconds(stored.get("tests"))
        history.fixtures = _seconds(stored.get("fixtures"))
    return history


def _seconds(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        return {}
    return {
        str(k): float(v) for k, v in value.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
    }


def remember(config: pytest.Config, history: History | None, tests: dict[str, float], fixtures: dict[str, float]) -> bool:
    """Merge one run's measurements into the stored ones (the newest measure of
    a test wins; tests of modules that no longer exist are dropped)."""
    cache = getattr(config, "cache", None)
    if cache is None or history is None or not tests:
        return False
    root = config.rootpath
    exists: dict[str, bool] = {}

    def still_there(nodeid: str) -> bool:
        path = nodeid.split("::", 1)[0]
        if path not in exists:
            exists[path] = os.path.exists(root / path)
        return exists[path]

    merged_tests = {k: v for k, v in history.tests.items() if still_there(k)}
    merged_tests.update(tests)
    merged_fixtures = {k: v for k, v in history.fixtures.items() if still_there(k)}
    merged_fixtures.update(fixtures)
    cache.set(CACHE_KEY, {"tests": merged_tests, "fixtures": merged_fixtures})
    return True


def expected_times(history: History | None, items: Sequence[pytest.Item]) -> list[float] | None:
    """Each test's expected own time; None when the history knows none of them."""
    if history is None or not history.tests:
        return None
    known = [history.tests.get(item.nodeid) for item in items]
    measured = [t for t in known if t is not None]
    if not measured:
        return None
    guess = statistics.median(measured)
    return [guess if t is None else t for t in known]


def fixture_cost(history: History | None, item: pytest.Item) -> float:
    """Set-up seconds of the module and class fixtures above ``item``."""
    if history is None or not history.fixtures:
        return 0.0
    return sum(history.fixtures.get(node.nodeid, 0.0) for node in _scope_nodes(item))


def _scope_nodes(item: pytest.Item) -> list[Any]:
    return [node for node in item.listchain()[1:-1] if isinstance(node, (pytest.Module, pytest.Class))]


@dataclass
class Split:
    """A module run as free tests on several workers instead of as one group."""

    nodeid: str
    expected: float  # seconds: its tests and its fixtures, as one group
    fixtures: float  # seconds its module and class fixtures take to set up
    processes: int  # worker processes expected to take part (each sets them up)


def modules_to_split(
    plan: Any, history: History, expected: list[float], workers: int, processes: int
) -> dict[Hashable, Split]:
    """The module groups worth splitting, by their group key.

    A module is split when, as one group, it would be the run's tail: its
    expected time exceeds the ideal run length ``max(total / workers,
    longest test)``; when splitting shortens the expected run length by at
    least :data:`MIN_GAIN_S` and :data:`MIN_GAIN_SHARE`; and when its
    fixtures are cheap: under worker processes, each process taking part
    sets the module's (and its classes') fixtures up again, and those extra
    set-ups may cost at most :data:`CHEAP_FIXTURES_SHARE` of the module's
    own test time (they are also added to the run's total). Threads of one
    process share one instance, so nothing repeats there.
    """
    workers = max(1, workers)
    costs = {node.nodeid: history.fixtures.get(node.nodeid, 0.0) for item in plan.items for node in _scope_nodes(item)}
    total = sum(expected) + sum(costs.values())
    longest = max(expected, default=0.0)
    candidates = []
    for key, members in plan.groups.items():
        if not (isinstance(key, tuple) and key[:1] == ("unit",)) or len(members) < 2:
            continue
        if any(plan.memberships[i] != (key,) or plan.exclusive[i] for i in members):
            continue  # a test also in another group, or run alone: keep the group whole
        items = [plan.items[i] for i in members]
        module = items[0].getparent(pytest.Module)
        if module is None or any(item.getparent(pytest.Module) is not module for item in items):
            continue
        nodes = {node.nodeid for item in items for node in _scope_nodes(item)}
        own = sum(expected[i] for i in members)
        fixtures = sum(costs[n] for n in nodes)
        candidates.append((own + fixtures, own, fixtures, key, module.nodeid, max(expected[i] for i in members)))
    splits: dict[Hashable, Split] = {}
    for whole, own, fixtures, key, nodeid, slowest in sorted(candidates, key=lambda c: c[0], reverse=True):
        ideal = max(total / workers, longest)
        if whole <= ideal:
            break  # sorted: no smaller module is a tail either
        taking_part = min(processes, math.ceil(whole / ideal)) if processes > 1 else 1
        repeated = (taking_part - 1) * fixtures
        if repeated > CHEAP_FIXTURES_SHARE * own:
            continue
        split_length = max((total + repeated) / workers, longest, slowest + fixtures)
        gain = max(ideal, whole) - split_length
        if gain < max(MIN_GAIN_S, MIN_GAIN_SHARE * whole):
            continue
        splits[key] = Split(nodeid, whole, fixtures, taking_part)
        total += repeated
    return splits


def describe_splits(splits: dict[Hashable, Split], processes: bool) -> list[str]:
    """The fleet section's line about split modules."""
    if not splits:
        return []
    shown = []
    for split in sorted(splits.values(), key=lambda s: s.expected, reverse=True):
        repeated = f"; its {split.fixtures:.2f}s of module fixtures once per worker process taking part" if processes and split.fixtures else ""
        shown.append(f"{split.nodeid} ({split.expected:.2f}s expected{repeated})")
    count = len(shown)
    return [
        f"split across workers (from remembered durations, {'it' if count == 1 else 'each'} "
        f"would have been the run's tail): {'; '.join(shown)}"
    ]
