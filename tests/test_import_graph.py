"""No import cycle among triage's modules: a cycle works only while its import lines stand where they
do, and breaks the day someone sorts them (issue 12). Module-level imports are read with `ast`, so
a new cycle fails here whichever module a process happens to import first."""

from __future__ import annotations

import ast
from pathlib import Path

import triage

ROOT = Path(triage.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def run_time_imports(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """The import statements a module runs when it is imported: at module level, inside module-level
    `if`/`try`/`with` blocks, never inside functions or classes, never under `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If):
            if not is_type_checking(node.test):
                found += run_time_imports(node.body)
            found += run_time_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, *(h.body for h in node.handlers), node.orelse, node.finalbody):
                found += run_time_imports(block)
        elif isinstance(node, ast.With):
            found += run_time_imports(node.body)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the triage modules (and the packages above them) it imports at run time."""
    modules = {module_name(path): path for path in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in run_time_imports(ast.parse(path.read_text(encoding="utf-8")).body):
            if isinstance(node, ast.Import):
                wanted = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                wanted = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            for target in wanted:
                while target and target not in modules:  # `import triage.x.y` names a module; trim attributes
                    target = target.rpartition(".")[0]
                if not target.startswith("triage"):
                    continue
                parts = target.split(".")
                for depth in range(1, len(parts) + 1):  # importing a.b.c first runs a and a.b
                    step = ".".join(parts[:depth])
                    if step in modules and step != name and not name.startswith(step + "."):
                        targets.add(step)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle (as a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_triage_has_no_import_cycle() -> None:
    """Every module of triage imports the others in one direction only."""
    graph = import_graph()
    assert len(graph) > 50 and "triage.ingest.pipeline" in graph["triage.bootstrap"]  # the walk sees the code
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checker_finds_a_cycle() -> None:
    """The checker itself: a cycle of three modules is found, a chain is not."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_type_checking_imports_are_not_run_time_imports() -> None:
    """An import under `if TYPE_CHECKING:` or inside a function runs no module at import time."""
    body = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import x\n"
                     "def f():\n    import y\ntry:\n    import z\nexcept ImportError:\n    pass\n").body
    assert [ast.unparse(node) for node in run_time_imports(body)] == ["from typing import TYPE_CHECKING", "import z"]
