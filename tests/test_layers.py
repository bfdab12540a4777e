"""Layers point one way: ``nchl.core`` <- ``nchl_sim``, ``nchl_codegen`` <- ``nchl.app``, and no
module imports itself back through others (lazy imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"nchl": ROOT / "nchl", "nchl_sim": ROOT / "sim", "nchl_codegen": ROOT / "codegen"}


def _modules() -> dict[str, Path]:
    out = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join([package, *parts])] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _layer(module: str) -> int:
    if module.startswith("nchl.core"):
        return 0
    if module.startswith(("nchl_sim", "nchl_codegen")):
        return 1
    if module.startswith("nchl.app"):
        return 2
    return 3   # the package's __init__: the public API, re-exporting the core


def test_every_import_points_down_the_layers():
    graph = _graph()
    assert any(m.startswith("nchl.core.") for m in graph) and any(m.startswith("nchl.app.") for m in graph)
    upward = [(m, t) for m, targets in graph.items() for t in targets
              if t != "nchl" and _layer(t) > _layer(m)]
    upward += [(m, "nchl") for m, targets in graph.items() if "nchl" in targets and _layer(m) == 0]
    assert upward == []


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            # a package's __init__ importing its own modules is not a cycle through them
            if m.startswith(t + ".") or t.startswith(m + "."):
                continue
            if state.get(t) == 1:
                cycles.append(path[path.index(t):] + [t])
            elif t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == []
