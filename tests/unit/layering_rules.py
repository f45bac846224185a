"""The import checker and the rules behind ``test_layering.py``, as functions over source text and plain data, so
that they can be tested without files.

A *module graph* maps each module of ``service`` (``service.jobs.tracker``; a package is its ``__init__``) to the
modules it imports. A *component* is a top-level module or package of ``service`` (``service.jobs``).
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Collection, Mapping

Graph = Mapping[str, Collection[str]]
DYNAMIC_IMPORTERS = frozenset({"__import__", "import_module"})

ENTRY_POINTS = ("service.cli", "service.__main__", "service.devserver", "service.server", "service.openapi")

# Top to bottom. A module may import its own component, any component of a lower layer and, unless its layer keeps
# its peers apart, the other components of its own layer; never a component of a higher layer.
LAYERS: dict[int, tuple[str, frozenset[str]]] = {
    6: ("entry points", frozenset({*ENTRY_POINTS, "service.admin_cli"})),
    5: ("wiring", frozenset({"service.app", "service.container", "service.providers"})),
    4: ("jobs", frozenset({"service.jobs"})),
    3: ("features", frozenset({"service.cache", "service.budgets", "service.webhooks", "service.storage"})),
    2: ("tenants", frozenset({"service.tenants"})),
    1: ("infrastructure and adapters (the default)", frozenset()),
    # ``service/__init__.py`` runs before any module of the package, so it may pull in nothing but the pure domain.
    0: ("pure domain", frozenset({"service.domain", "service"})),
}
DEFAULT_LAYER = 1  # a top-level module or package that no layer lists
ISOLATED_LAYERS = frozenset({3})  # cache, budgets, webhooks and storage must not import one another


def resolve_relative(module: str | None, level: int, current: str, package: bool) -> str:
    """The absolute module a ``from <dots><module> import ...`` in module ``current`` refers to."""
    base = current.split(".")
    # In a package's __init__, one dot is the package itself; in a module, one dot is its parent.
    drop = level - 1 if package else level
    if drop >= len(base):
        return "<beyond the top-level package>"
    anchor = base[: len(base) - drop]
    return ".".join([*anchor, module] if module else anchor)


def imported_modules(source: str, current: str, package: bool) -> list[tuple[int, str]]:
    """Every module ``source`` imports (``from m import n`` yields ``m`` and ``m.n``), with its line number."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = resolve_relative(node.module, node.level, current, package) if node.level else (node.module or "")
            found.append((node.lineno, target))
            found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            first = node.args[0] if node.args else None
            if name in DYNAMIC_IMPORTERS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append((node.lineno, first.value))
    return found


def graph_names(source: str, current: str, package: bool) -> set[str]:
    """The imported names a module graph follows: every one but the ``m`` of ``from m import n``.

    ``n`` is the import there: the module ``m.n`` if there is one, else a name in ``m`` (which ``m.n`` resolves to).
    """
    found = imported_modules(source, current, package)
    return {name for line, name in found if not any(at == line and other.startswith(f"{name}.") for at, other in found)}


def component_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def layer_of(component: str) -> int:
    return next((level for level, (_, members) in LAYERS.items() if component in members), DEFAULT_LAYER)


def resolve(name: str, modules: Collection[str]) -> str | None:
    """The module an imported name lives in: the longest prefix of ``name`` that is one of ``modules``."""
    parts = name.split(".")
    prefixes = (".".join(parts[:end]) for end in range(len(parts), 0, -1))
    return next((prefix for prefix in prefixes if prefix in modules), None)


def build_graph(imports: Mapping[str, Collection[str]]) -> dict[str, set[str]]:
    """The module graph, from each module's imported names (``service.errors.NotFound`` is ``service.errors``).

    Names outside the modules given (the standard library, third parties) and a module's imports of itself are dropped.
    """
    graph: dict[str, set[str]] = {}
    for module, names in imports.items():
        targets = {resolve(name, imports) for name in names}
        graph[module] = {target for target in targets if target is not None and target != module}
    return graph


def describe(module: str) -> str:
    level = layer_of(component_of(module))
    return f"{module} (L{level} {LAYERS[level][0]})"


def layer_violations(graph: Graph) -> list[str]:
    """Every import that goes up a layer, or across between peers that are kept apart."""
    found: list[str] = []
    for module, targets in sorted(graph.items()):
        own = component_of(module)
        for target in sorted(targets):
            other = component_of(target)
            if other == own:
                continue
            if layer_of(other) > layer_of(own):
                found.append(f"{describe(module)} imports the higher {describe(target)}")
            elif layer_of(other) == layer_of(own) and layer_of(own) in ISOLATED_LAYERS:
                found.append(f"{describe(module)} imports its peer {target}")
    return found


def layer_table(modules: Collection[str]) -> str:
    """Which layer each component of ``modules`` got, top to bottom."""
    components = sorted({component_of(module) for module in modules})
    rows = []
    for level in sorted(LAYERS, reverse=True):
        members = [component for component in components if layer_of(component) == level]
        rows.append(f"  L{level} {LAYERS[level][0]}: {', '.join(members) or '-'}")
    return "\n".join(rows)


def reachable(graph: Graph, start: str) -> set[str]:
    seen: set[str] = set()
    pending = list(graph.get(start, ()))
    while pending:
        node = pending.pop()
        if node not in seen:
            seen.add(node)
            pending.extend(graph.get(node, ()))
    return seen


def tangles(graph: Graph) -> list[set[str]]:
    """The groups of modules that all reach one another (strongly connected components with a cycle in them)."""
    reach = {node: reachable(graph, node) for node in graph}
    found: list[set[str]] = []
    for start in sorted(graph):
        if start in reach[start] and not any(start in tangle for tangle in found):
            found.append({node for node in reach[start] if start in reach.get(node, set())})
    return found


def shortest_cycle(graph: Graph, start: str) -> list[str]:
    """The shortest path from ``start`` back to itself, e.g. ``["a", "b", "a"]``; empty if there is none."""
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for successor in sorted(graph.get(node, ())):
            if successor == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if successor not in parent:
                parent[successor] = node
                queue.append(successor)
    return []


def cycles(graph: Graph) -> list[list[str]]:
    """One shortest cycle through each tangle, starting from its first module."""
    return [shortest_cycle(graph, min(tangle)) for tangle in tangles(graph)]


def cycle_report(graph: Graph) -> list[str]:
    """One line per tangle: a cycle in it and, if the tangle is bigger than that cycle, the rest of its modules."""
    report = []
    for tangle, cycle in zip(tangles(graph), cycles(graph), strict=True):
        rest = sorted(tangle - set(cycle))
        report.append(" -> ".join(cycle) + (f" (tangled with it: {', '.join(rest)})" if rest else ""))
    return report


def too_long(line_counts: Mapping[str, int], limit: int) -> list[str]:
    return [f"{name}: {count} lines" for name, count in sorted(line_counts.items()) if count > limit]
