"""The datastore's modules import each other without a cycle, counting the imports made
inside functions too (only ``if TYPE_CHECKING:`` blocks are left out)."""

from __future__ import annotations

import ast
from pathlib import Path

import siftlm.datastore

PACKAGE = "siftlm.datastore"


def _imports(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []  # ast.walk has not entered it yet
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    folder = Path(siftlm.datastore.__file__).parent
    modules = {f"{PACKAGE}.{p.stem}": p for p in folder.glob("*.py") if p.stem != "__init__"}
    return {
        name: _imports(ast.parse(path.read_text())) & (set(modules) - {name})
        for name, path in modules.items()
    }


def test_no_import_cycle():
    graph = _graph()
    assert "siftlm.datastore.layout" in graph["siftlm.datastore.build"]
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            assert state.get(target) != "open", " -> ".join([*path, module, target])
            if target not in state:
                visit(target, [*path, module])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
