"""Division: which tests run, and the unit each belongs to (aomaker's --dist-*).

A *unit* is a group in the plan's sense: its tests run one after another, in
collection order, and units run side by side. Units come from

* ``--dist-mark M ...``: one unit per mark, holding the tests carrying it;
* ``--dist-file DIR``: one unit per test module under DIR;
* ``--dist-suite DIR``: one unit per immediate sub-directory of DIR, plus one
  for the modules directly in DIR;
* a strategy file (``conf/dist_strategy.yaml``) naming marks, used with
  ``--mt`` when no ``--dist-*`` option is given.

Only the tests of some unit run; the user's own ``-m``/``-k`` narrow that
selection further. A mark or directory that selects no collected test is a
usage error naming it, never a silent run of other tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Hashable, Sequence

import pytest

from fleet.front.yamlfile import load_yaml

STRATEGY_FILES = ("conf/dist_strategy.yaml", "conf/aomaker.yaml")


@dataclass(frozen=True)
class Division:
    kind: str  # "mark", "file" or "suite"
    marks: tuple[str, ...] = ()
    directory: Path | None = None
    source: str = ""  # how the user asked for it, for messages

    @property
    def explicit(self) -> bool:
        """Asked for on the command line (not read from a strategy file)."""
        return self.source.startswith("--dist-")

    def units(self, item: pytest.Item) -> tuple[Hashable, ...]:
        """The units ``item`` belongs to; empty: it does not run."""
        if self.kind == "mark":
            names = {mark.name for mark in item.iter_markers()}
            return tuple(("mark", m) for m in self.marks if m in names)
        path = Path(item.path)
        assert self.directory is not None
        try:
            relative = path.relative_to(self.directory)
        except ValueError:
            return ()
        if self.kind == "file":
            return (("file", str(relative)),)
        top = relative.parts[0] if len(relative.parts) > 1 else "."
        return (("suite", top),)

    def check_selects(self, collected: Sequence[pytest.Item]) -> None:
        """Refuse a mark or directory that selects none of the collected tests."""
        if self.kind == "mark":
            carried = {mark.name for item in collected for mark in item.iter_markers()}
            for mark in self.marks:
                if mark not in carried:
                    where = f"{self.source} {mark}" if self.explicit else f"{self.source}: mark {mark}"
                    raise pytest.UsageError(f"fleet: {where}: no collected test has this mark")
        elif not any(self.units(item) for item in collected):
            raise pytest.UsageError(f"fleet: {self.source} {self.directory}: no collected test is under it")

    def describe(self, items: Sequence[pytest.Item]) -> list[str]:
        counts: dict[Hashable, int] = {}
        shared: list[tuple[str, list[str]]] = []
        for item in items:
            units = self.units(item)
            for unit in units:
                counts[unit] = counts.get(unit, 0) + 1
            if len(units) > 1:
                shared.append((item.nodeid, [u[1] for u in units]))
        listed = ", ".join(f"{key[1]} ({n})" for key, n in counts.items())
        lines = [f"fleet: {len(counts)} units by {self.kind} ({self.source}): {listed}"]
        lines += [
            f"fleet: {nodeid} has marks {_and(marks)}: it runs once, "
            f"when {'both' if len(marks) == 2 else 'all'} units have reached it"
            for nodeid, marks in shared
        ]
        return lines


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def split_marks(values: Sequence[str]) -> tuple[str, ...]:
    """``--dist-mark a b`` and ``--dist-mark "a b"`` mean the same."""
    return tuple(dict.fromkeys(name for value in values for name in value.split()))


def from_options(config: pytest.Config) -> Division | None:
    """The division the command line asks for (--dist-mark/-file/-suite/-strategy), or None."""
    marks = config.getoption("fleet_dist_mark")
    file_dir = config.getoption("fleet_dist_file")
    suite_dir = config.getoption("fleet_dist_suite")
    strategy = config.getoption("fleet_dist_strategy")
    given = [name for name, value in
             (("--dist-mark", marks), ("--dist-file", file_dir), ("--dist-suite", suite_dir),
              ("--dist-strategy", strategy)) if value is not None]
    if len(given) > 1:
        raise pytest.UsageError(f"fleet: {' and '.join(given)} each divide the run; use one of them")
    if marks is not None:
        names = split_marks(marks)
        if not names:
            raise pytest.UsageError(f"fleet: --dist-mark {' '.join(marks)!r}: no mark name given")
        return Division("mark", marks=names, source="--dist-mark")
    for kind, value in (("file", file_dir), ("suite", suite_dir)):
        if value is not None:
            if not str(value).strip():
                raise pytest.UsageError(f"fleet: --dist-{kind} needs a directory, not {value!r}")
            directory = (config.invocation_params.dir / value).resolve()
            if directory.exists() and not directory.is_dir():
                raise pytest.UsageError(f"fleet: --dist-{kind} {value}: not a directory")
            if not directory.is_dir():
                raise pytest.UsageError(f"fleet: --dist-{kind} {value}: no such directory")
            return Division(kind, directory=directory, source=f"--dist-{kind}")
    if strategy is not None:
        return from_strategy_file(config)
    return None


def from_strategy_file(config: pytest.Config) -> Division | None:
    """``--dist-strategy FILE``, else the project's strategy file, if it has one."""
    explicit = config.getoption("fleet_dist_strategy")
    if explicit is not None:
        if not str(explicit).strip():
            raise pytest.UsageError(f"fleet: --dist-strategy needs a strategy file, not {explicit!r}")
        path = (config.invocation_params.dir / explicit).resolve()
        if not path.is_file():
            problem = "not a file" if path.exists() else "no such file"
            raise pytest.UsageError(f"fleet: --dist-strategy {explicit}: {problem}")
    else:
        found = [config.rootpath / name for name in STRATEGY_FILES if (config.rootpath / name).is_file()]
        if not found:
            return None
        path = found[0]
    shown = _shown(path, config)
    return Division("mark", marks=read_strategy(path, shown), source=shown)


def _shown(path: Path, config: pytest.Config) -> str:
    try:
        return str(path.relative_to(config.rootpath))
    except ValueError:
        return str(path)


def read_strategy(path: Path, shown: str) -> tuple[str, ...]:
    """The marks a strategy file's ``target`` yields, in order."""

    def fail(message: str) -> pytest.UsageError:
        return pytest.UsageError(f"fleet: {shown}: {message}")

    data = load_yaml(path, shown)
    if not isinstance(data, dict):
        raise fail(f"expected a mapping with 'target' and 'marks', not {_kind(data)}")
    target, marks = data.get("target"), data.get("marks")
    if isinstance(target, str):
        target = target.split()
    if (not isinstance(target, list) or not target
            or not all(isinstance(t, str) and t.strip() for t in target)):
        raise fail(f"'target' must be a list of category or category.strategy names, not {_kind(data.get('target'))}")
    if not isinstance(marks, dict):
        raise fail(f"'marks' must be a mapping of categories, not {_kind(marks)}")
    known: dict[str, list[str]] = {}
    for category, body in marks.items():
        if isinstance(body, list):
            known[str(category)] = _mark_list(body, f"marks.{category}", fail)
        elif isinstance(body, dict):
            every: list[str] = []
            for strategy, names in body.items():
                listed = _mark_list(names, f"marks.{category}.{strategy}", fail)
                known[f"{category}.{strategy}"] = listed
                every += listed
            known[str(category)] = every
        else:
            raise fail(f"'marks.{category}' must be a list of marks or a mapping of strategies, not {_kind(body)}")
    chosen: list[str] = []
    for name in target:
        if name not in known:
            raise fail(f"target {name!r} is not in 'marks' (known: {', '.join(known) or 'none'})")
        if not known[name]:
            raise fail(f"target {name!r} names no marks")
        chosen += known[name]
    return tuple(dict.fromkeys(chosen))


def _mark_list(value: Any, key: str, fail: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fail(f"'{key}' must be a list of mark names, not {_kind(value)}")
    for name in value:
        if not name.strip() or len(name.split()) != 1 or name.startswith("-"):
            raise fail(f"'{key}': {name!r} is not a mark name")
    return [name.strip() for name in value]


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"[:80]
