"""The package's import graph has no cycles, function-level imports included (issue 13).

``run.py`` used to be both the ``fit`` orchestrator and the library that rebuilt a model from a run,
so sampling, evaluation and classification imported it and it imported them: nine modules in a
loop, hidden by imports inside functions. The run directory now has its own module (rundir.py).
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gantrain"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(name: str) -> str | None:
    """The gantrain module a dotted name refers to (a module, or an attribute of one)."""
    while name.startswith("gantrain"):
        rel = Path(*name.split("."))
        if (PACKAGE.parent / rel).with_suffix(".py").is_file() or (PACKAGE.parent / rel / "__init__.py").is_file():
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    """module -> gantrain modules it imports anywhere in its file (top level or inside functions)."""
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        me, edges = _module_name(path), set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            edges |= {t for t in map(_resolve, targets) if t and t != me}
        graph[me] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle_through_function_level_imports():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_is_read_from_every_import():
    graph = import_graph()
    assert "gantrain.rundir" in graph["gantrain.run"] and "gantrain.rundir" in graph["gantrain.sampling"]
    assert "gantrain.run" in graph["gantrain"]  # an import inside a function counts
    assert "gantrain.models.blocks" in graph["gantrain.models.conditional"]


def test_the_package_has_no_import_cycles():
    assert cycles(import_graph()) == []


def test_nothing_imports_the_fit_orchestrator():
    """Only the entry points (the CLI and the package's fit()) reach run.py."""
    importers = sorted(m for m, edges in import_graph().items() if "gantrain.run" in edges)
    assert importers == ["gantrain", "gantrain.cli"]
