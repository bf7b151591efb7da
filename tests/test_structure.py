"""The package's layers import one way: no package (or top-level module) imports one that imports it back."""

from __future__ import annotations

import ast
import itertools
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _unit(module: str) -> str:
    """blazestream.pipeline.stage -> blazestream.pipeline; blazestream.config -> blazestream.config."""
    return ".".join(module.split(".")[:2])


def _imports() -> dict[str, set[str]]:
    """Unit -> units it imports (at module level or inside functions alike)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in (SRC / "blazestream").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("blazestream.") and _unit(name) != _unit(module):
                    edges[_unit(module)].add(_unit(name))
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Pairs of units that reach each other (through any path)."""

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reachable = {unit: reach(unit) for unit in list(edges)}
    return [(a, b) for a, b in itertools.combinations(sorted(reachable), 2) if b in reachable[a] and a in reachable[b]]


def test_no_package_imports_one_that_imports_it_back() -> None:
    assert _cycles(_imports()) == []


def test_the_pose_core_imports_nothing_else_of_blazestream() -> None:
    assert _imports().get("blazestream.pose", set()) == set()


def test_the_cycle_check_can_fail() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [("a", "b"), ("a", "c"), ("b", "c")]
