"""No cycles between lakeforge's packages: every import counted (module level, inside functions, under
TYPE_CHECKING), the modules collapsed to their top-level package (``lakeforge.ops.serve`` -> ``ops``), no package
reaches itself again. The layers contract in pyproject.toml (``make lint``) orders the layers; this catches a cycle
between siblings of one layer too (``ops : web : deploy : query`` may import each other one way)."""

from __future__ import annotations

import grimp


def _package_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph("lakeforge", include_external_packages=False)
    edges: dict[str, set[str]] = {}
    for module in graph.modules:
        source = module.split(".")[1] if "." in module else module
        for imported in graph.find_modules_directly_imported_by(module):
            target = imported.split(".")[1] if "." in imported else imported
            if target != source:
                edges.setdefault(source, set()).add(target)
    return edges


def _reaches(edges: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    stack, seen = [[start]], {start}
    while stack:
        path = stack.pop()
        for nxt in sorted(edges.get(path[-1], ())):
            if nxt == goal:
                return [*path, nxt]
            if nxt not in seen:
                seen.add(nxt)
                stack.append([*path, nxt])
    return None


def test_no_package_imports_itself_through_another() -> None:
    edges = _package_graph()
    assert {"pipeline", "ops", "project", "workspace"} <= set(edges)  # the graph is the real one
    cycles = [cycle for package in sorted(edges) if (cycle := _reaches(edges, package, package))]
    assert not cycles, "package cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_check_finds_a_cycle() -> None:
    assert _reaches({"a": {"b"}, "b": {"c"}, "c": {"a"}}, "a", "a") == ["a", "b", "c", "a"]
    assert _reaches({"a": {"b"}, "b": {"c"}}, "a", "a") is None
