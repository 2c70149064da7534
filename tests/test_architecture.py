"""The import graph: no cycles, no arrows up the layers, the dashboard on the public API only.

Every import counts, also those inside functions (a lazy import that closes a cycle is still
a cycle). Run it on its own to see the package graph:

    .venv/bin/python tests/test_architecture.py
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lower layers never import higher ones; packages on one layer never import each other.
LAYERS = {
    "model": 0, "model.errors": 0, "model.hardware": 0,
    "model.data": 1,
    "model.synth": 2, "model.nets": 2, "model.scoring": 2,
    "model.training": 3, "model.inference": 3,
    "model.explain": 4,
    "model.cli": 5,
}
DASHBOARD_MAY_IMPORT = ("model.inference", "model.explain", "model.errors")
# `dermsev users` manages the dashboard's accounts: the one command that reaches into it.
CLI_MAY_IMPORT_DASHBOARD = {"model.cli.users": ("dashboard.auth", "dashboard.history")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The project modules `path` imports, anywhere in the file (resolved to known modules)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            # `from pkg import mod` imports pkg.mod when that is a module, else a name in pkg
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for t in targets:
            while t and t not in known:  # `import model.data.io` -> the module itself
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    files = [p for d in ("model", "dashboard") for p in (ROOT / d).rglob("*.py")]
    known = {module_name(p) for p in files}
    return {module_name(p): imports_of(p, known) for p in files}


def layer_of(module: str) -> tuple[str, int] | None:
    best = None
    for pkg, rank in LAYERS.items():
        if (module == pkg or module.startswith(pkg + ".")) and (best is None or len(pkg) > len(best[0])):
            best = (pkg, rank)
    return best


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan), as a list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def package_graph(g: dict[str, set[str]]) -> dict[str, set[str]]:
    pg: dict[str, set[str]] = defaultdict(set)
    for src, dsts in g.items():
        a = layer_of(src)
        for d in dsts:
            b = layer_of(d)
            if a and b and a[0] != b[0]:
                pg[a[0]].add(b[0])
    return pg


def violations(g: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, dsts in sorted(g.items()):
        for dst in sorted(dsts):
            if src.startswith("dashboard"):
                if dst.startswith("model") and not any(dst == p or dst.startswith(p + ".") for p in DASHBOARD_MAY_IMPORT):
                    bad.append(f"{src} -> {dst}: the dashboard uses only {', '.join(DASHBOARD_MAY_IMPORT)}")
                continue
            if dst in CLI_MAY_IMPORT_DASHBOARD.get(src, ()):
                continue
            a, b = layer_of(src), layer_of(dst)
            if a is None or b is None:
                bad.append(f"{src} -> {dst}: a module outside the known layers (add it to LAYERS)")
            elif a[0] != b[0] and b[1] >= a[1] and b[0] not in ("model",):
                bad.append(f"{src} -> {dst}: {a[0]} (layer {a[1]}) may not import {b[0]} (layer {b[1]})")
    return bad


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_package_graph_has_no_cycles() -> None:
    assert cycles(package_graph(graph())) == []


def test_no_arrows_up_and_dashboard_on_the_public_api() -> None:
    assert violations(graph()) == []


def test_the_checker_sees_a_cycle_and_an_arrow_up() -> None:
    """The checks above would fail: a cycle and an upward import are found in a made-up graph."""
    g = {"model.data.io": {"model.inference.predictor"}, "model.inference.predictor": {"model.data.io"},
         "dashboard.app": {"model.data.io"}}
    assert cycles(g) == [["model.data.io", "model.inference.predictor"]]
    assert len(violations(g)) == 2
    real = graph()
    assert "model.data.io" in real["model.inference.predictor"]  # imports are really read


if __name__ == "__main__":
    g = graph()
    for pkg, deps in sorted(package_graph(g).items(), key=lambda kv: LAYERS.get(kv[0], 99)):
        print(f"{pkg:16s} (layer {LAYERS.get(pkg)}) -> {', '.join(sorted(deps))}")
    problems = [f"cycle: {' <-> '.join(c)}" for c in cycles(g)] + violations(g)
    print("\n".join(problems) if problems else f"{len(g)} modules: no cycles, no arrows up")
    sys.exit(1 if problems else 0)
