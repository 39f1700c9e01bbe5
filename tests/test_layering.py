"""The package imports one way: data -> nets -> models -> scoring -> evaluation / latent -> commands -> cli
(tuning beside commands). Every import is read with ``ast`` (function-level ones included); an upward
import, an import between two peers of one layer, or a cycle fails the test."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# lowest first; a module may import its own layer's group and every lower layer
LAYERS = [
    {"denormals"},
    {"data"},
    {"nets", "distributions"},
    {"training", "checkpoint", "runs"},
    {"models"},
    {"scoring"},
    {"evaluation", "latent"},
    {"commands", "tuning"},
    {"cli", "detector", "__main__", "__init__"},
]
TOP = LAYERS[-1]


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def group(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def layer(module: str) -> int:
    return next(i for i, groups in enumerate(LAYERS) if group(module) in groups)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """aelab modules imported anywhere in ``path`` (module level, functions, classes; relative imports resolved;
    ``import_module("aelab....")`` / ``__import__`` with a literal name too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    return imports_in(ast.parse(path.read_text()), package, modules)


def imports_in(tree: ast.AST, package: str, modules: set[str]) -> set[str]:
    """The aelab modules a parsed file of ``package`` imports (see :func:`imports_of`)."""
    found = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str) \
                and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__"):
            targets = [node.args[0].value]
        found |= {t for t in targets if t.split(".")[0] == "aelab" and t != "aelab"}
    return {t if t in modules else t.rsplit(".", 1)[0] for t in found}


def import_graph() -> dict[str, set[str]]:
    paths = sorted((SRC / "aelab").rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) - {module_name(p)} for p in paths}


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Upward imports, imports between peers of one layer (outside the top layer), and cycles."""
    found = []
    for src, targets in graph.items():
        for dst in targets:
            if layer(dst) > layer(src):
                found.append(f"upward import: {src} -> {dst}")
            elif layer(dst) == layer(src) and group(dst) != group(src) and group(src) not in TOP:
                found.append(f"import between peers of one layer: {src} -> {dst}")
    found += [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan 1972)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_module_belongs_to_a_layer():
    graph = import_graph()
    assert len(graph) > 50
    unknown = [m for m in graph if not any(group(m) in g for g in LAYERS)]
    assert not unknown, f"modules outside the layer map: {unknown}"


def test_imports_run_one_way_without_cycles():
    assert violations(import_graph()) == []


def test_the_check_fails_on_an_upward_import_and_a_cycle():
    """The checker is not vacuous: a model importing the scoring layer, and two modules importing each
    other, are both reported."""
    graph = import_graph()
    graph["aelab.models.base"] = graph["aelab.models.base"] | {"aelab.scoring.registry"}
    graph["aelab.data.splits"] = graph["aelab.data.splits"] | {"aelab.data.datasets"}
    graph["aelab.data.datasets"] = graph["aelab.data.datasets"] | {"aelab.data.splits"}
    found = violations(graph)
    assert "upward import: aelab.models.base -> aelab.scoring.registry" in found
    assert any(v.startswith("import cycle:") and "aelab.models.base" in v for v in found)
    assert any(v.startswith("import cycle:") and "aelab.data.splits" in v for v in found)
    # an import_module call with a literal name counts too (a cycle through the CLI hid behind one)
    hidden = ast.parse('from importlib import import_module\nbuild = import_module("aelab.cli").build\n')
    assert imports_in(hidden, "aelab.tuning", set(graph)) == {"aelab.cli"}
    # a function-level import counts too (the cycles of earlier versions hid behind them)
    tree = ast.parse("def f():\n    from aelab.scoring import SCORES\n")
    assert any(isinstance(n, ast.ImportFrom) for n in ast.walk(tree))
