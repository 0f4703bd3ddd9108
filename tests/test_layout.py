"""The tree shows the data path: front end -> plan -> execute -> report, over shared state.

docs/design.md names the rules this checks on fleet's own source:

* no import circles between fleet's modules (imports inside functions count);
* a stage imports from its own stage, earlier stages and the base (``state``,
  ``worker``, ``hookspecs``), never from a later one;
* the base imports only the base;
* stages reach adapters only through ``fleet.adapters`` itself (its
  ``configure``/``notify``), never an adapter module;
* only the top (``plugin``, ``run``, the package itself) ties everything together.
"""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "src" / "fleet"
STAGES = {"front": 0, "plan": 1, "execute": 2, "report": 3}
BASE = {"state", "worker", "hookspecs"}
TOP = {"", "plugin", "run", "__main__"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Every fleet module ``path`` imports, at any depth of its code."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("fleet"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fleet"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in MODULES else node.module)
    return found


MODULES = {module_name(p): p for p in SOURCE.rglob("*.py")}


def room(module: str) -> str:
    """The first name under ``fleet``: a stage, a base module, or the top."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_there_are_no_import_circles() -> None:
    graph = {name: imports(path) & set(MODULES) for name, path in MODULES.items()}
    graph["fleet"] -= {"fleet"}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(target):] + [target]))
            if target not in state:
                visit(target)
        stack.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_stages_import_only_earlier_stages_and_the_base() -> None:
    wrong = []
    for name, path in sorted(MODULES.items()):
        here = room(name)
        for target in sorted(imports(path)):
            there = room(target)
            if here in TOP or there == here or there in BASE:
                continue
            if there == "adapters":
                if here != "adapters" and target != "fleet.adapters":
                    wrong.append(f"{name} imports the adapter {target} (use fleet.adapters.notify)")
                continue
            if here in BASE:
                wrong.append(f"{name} (base) imports {target}")
            elif there in TOP:
                wrong.append(f"{name} imports the top-level {target}")
            elif here == "adapters":
                continue  # an adapter may use any stage it adapts
            elif STAGES[there] > STAGES[here]:
                wrong.append(f"{name} ({here}) imports {target}, a later stage ({there})")
    assert wrong == []


def test_every_module_is_in_a_room() -> None:
    rooms = {room(name) for name in MODULES}
    assert rooms <= set(STAGES) | BASE | TOP | {"adapters"}, rooms
