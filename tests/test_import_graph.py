"""The import graph: no cycles between modules, and the shared leaves stay leaves.

import-linter (``make lint``) enforces the direction between packages; these checks cover
what its contracts do not express: a cycle between two modules of the same package, and
``clmmd.artifacts.base`` importing any other clmmd module.
"""

from __future__ import annotations

import grimp

ROOTS = ("clmmd.service", "clmmd.scheduler", "clmmd.agent", "clmmd.env", "clmmd.artifacts")


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph(*ROOTS, include_external_packages=False, cache_dir=None)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_tarjan_finds_a_planted_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules() -> None:
    graph = _graph()
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    # A package's __init__ is not an import edge worth a cycle: a module always
    # "imports" its parent package when it is loaded.
    edges = {m: {n for n in targets if not m.startswith(n + ".")} for m, targets in edges.items()}
    assert _cycles(edges) == []


def test_shared_leaves_import_only_each_other() -> None:
    graph = _graph()
    leaves = {m for m in graph.modules if m.startswith("clmmd.artifacts.base")}
    imported = {n for m in leaves for n in graph.find_modules_directly_imported_by(m)}
    assert imported <= leaves, sorted(imported - leaves)
