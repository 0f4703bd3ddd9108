"""pytest-order: the order it sorted the tests into, kept where it matters.

pytest-order only sorts the collected tests (by ``order`` indexes and
``before``/``after`` relations, across modules too); a suite that uses it
relies on that order. fleet runs groups side by side, so every test with an
``order`` mark, and every test a relation names, joins one more group:
those tests run one after another in pytest-order's order (each still in its
turn in its module's group), the others beside them.
"""

from __future__ import annotations

from typing import Any, Sequence

import pytest

PLUGIN = "pytest_order"
GROUP = ("pytest-order", "")


def configure(config: pytest.Config, processes: bool) -> None:
    pass


def _names(value: Any) -> list[str]:
    if not value:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _targets(item: pytest.Item, names: list[str], items: Sequence[pytest.Item]) -> list[int]:
    module = item.nodeid.split("::", 1)[0]
    found = []
    for name in names:
        for index, other in enumerate(items):
            nodeid = other.nodeid
            if nodeid == name or nodeid.endswith("/" + name) or nodeid == f"{module}::{name}":
                found.append(index)
    return found


def extra_groups(config: pytest.Config, items: Sequence[pytest.Item]) -> dict[int, tuple[Any, ...]]:
    ordered: set[int] = set()
    for index, item in enumerate(items):
        mark = item.get_closest_marker("order")
        if mark is None:
            continue
        ordered.add(index)
        names = _names(mark.kwargs.get("before")) + _names(mark.kwargs.get("after"))
        ordered.update(_targets(item, names, items))
    return {index: GROUP for index in ordered}


def notes(config: pytest.Config) -> dict[str, list[str]]:
    return {}
