"""No import circles among the modules of editbench, baselines and evaluation.

Imports are read with `ast` from every module, at any depth (function-level imports count too, and
so do `importlib.import_module("<literal>")` calls). `from pkg import name` points at the submodule
`pkg.name` when it is one, else at `pkg` itself. A parent package that Python runs first is not an
edge: it would make every package with re-exports in its `__init__` look circular.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"editbench": REPO / "src" / "editbench", "baselines": REPO / "baselines", "evaluation": REPO / "evaluation"}


def module_files() -> dict[str, Path]:
    """Module name -> source file for the three top-level packages."""
    modules = {}
    for package, root in ROOTS.items():
        for path in sorted(root.rglob("*.py")):
            parts = [package, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _absolute(module: str | None, level: int, importer: str, is_package: bool) -> str:
    if level == 0:
        return module or ""
    base = importer.split(".")
    base = base[: len(base) - level + (1 if is_package else 0)]
    return ".".join(base + ([module] if module else []))


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports anywhere in its source."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"

    def add(target: str) -> None:
        # `import a.b.c` names a.b.c; keep the longest prefix that is a project module.
        parts = target.split(".")
        for end in range(len(parts), 0, -1):
            if ".".join(parts[:end]) in known:
                found.add(".".join(parts[:end]))
                return

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, name, is_package)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                add(sub if sub in known else base)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            add(node.args[0].value)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imported_modules(name, path, set(files)) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def describe(component: list[str], graph: dict[str, set[str]]) -> str:
    """The component's modules with the imports that stay inside it."""
    inside = set(component)
    edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a] & inside)]
    return "{" + ", ".join(component) + "}: " + "; ".join(edges)


def test_the_checker_sees_every_kind_of_import(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg import b\n")
    (pkg / "b.py").write_text("from . import c\n")
    (pkg / "c.py").write_text("import importlib\nimportlib.import_module('pkg.a')\n")
    known = {"pkg", "pkg.a", "pkg.b", "pkg.c"}
    graph = {m: imported_modules(m, pkg / (m.split(".")[-1] + ".py") if "." in m else pkg / "__init__.py", known)
             for m in known}
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.c"} and graph["pkg.c"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_no_import_cycles_among_project_modules():
    graph = import_graph()
    assert {"editbench.runner", "editbench.api", "baselines.memit", "evaluation.downstream"} <= set(graph)
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(describe(c, graph) for c in found)


# The layers, ground first; a module may import its own layer and those below, never one above.
# Longest matching prefix wins; a module no rule names fails the test (a new module picks its floor).
LAYER_NAMES = ("ground", "model/data", "locate", "editors/baselines", "runner/api", "report")
LAYER_RULES: dict[str, int] = {
    # ground: settings, errors, file IO, the cache policy, numerical helpers, clocks, paths
    "editbench.errors": 0, "editbench.schema": 0, "editbench.config": 0, "editbench.io": 0,
    "editbench.cache": 0, "editbench.numerics": 0, "editbench.timing": 0, "editbench.guard": 0,
    "editbench.demo": 0,
    # the model and the data
    "editbench.models": 1, "editbench.model": 1, "editbench.shapes": 1, "editbench.data": 1, "evaluation": 1,
    # where and what to write: the shared key/value machinery
    "editbench.locate": 2,
    # the methods, and the scores (which read the model through locate's prompt/forward helpers)
    "editbench.editors": 3, "baselines": 3, "editbench.methods": 3, "editbench.scoring": 3,
    # what assembles, drives and measures a run, and the entry points
    "editbench": 4, "editbench.telemetry": 4, "editbench.build": 4, "editbench.loop": 4, "editbench.runner": 4, "editbench.api": 4,
    "editbench.posthoc": 4, "editbench.bench": 4, "editbench.checkpoint": 4, "editbench.sinks": 4,
    "editbench.__main__": 4,
    # the tables and figures read from run directories, their command line, and the experiment runner
    "editbench.results": 5, "editbench.report": 5, "editbench.cells": 5,
}


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in LAYER_RULES:
            return LAYER_RULES[".".join(parts[:end])]
    return None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import from a module to one in a higher layer, as 'a (layer) -> b (layer)'."""
    found = []
    for a in sorted(graph):
        for b in sorted(graph[a]):
            la, lb = layer_of(a), layer_of(b)
            if la is not None and lb is not None and lb > la:
                found.append(f"{a} ({LAYER_NAMES[la]}) -> {b} ({LAYER_NAMES[lb]})")
    return found


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in import_graph() if layer_of(m) is None)
    assert not unplaced, f"modules with no layer (add them to LAYER_RULES): {unplaced}"


def test_no_import_runs_from_a_lower_layer_to_a_higher_one():
    found = upward_imports(import_graph())
    assert not found, f"{len(found)} upward imports:\n" + "\n".join(found)


if __name__ == "__main__":  # `python tests/test_imports.py`: the counts for a closing note
    graph = import_graph()
    ups, circles = upward_imports(graph), cycles(graph)
    print(f"{len(graph)} modules, {sum(map(len, graph.values()))} imports, {len(ups)} upward, "
          f"{len(circles)} circles")
    print("\n".join(ups + [describe(c, graph) for c in circles]))
