"""The rangeexpr package has no import cycle: every arrow between its modules points one way.

The graph is read from the source with ``ast``: every ``import`` and ``from ... import``,
at module level, inside functions (lazy imports) and under ``TYPE_CHECKING`` alike, so a
cycle cannot hide behind an import deferred to call time. The implicit import of a parent
package (``rangeexpr/__init__.py`` runs before any ``rangeexpr._x``) is not an arrow.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[1]
_PACKAGE = "rangeexpr"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports_graph() -> dict[str, set[str]]:
    """``{module: the package's modules it imports}`` for every module of the package."""
    paths = sorted((_ROOT / _PACKAGE).rglob("*.py"))
    modules = {_module_name(p): p for p in paths}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    origin = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    origin = node.module or ""
                # `from . import _report` imports the module rangeexpr._report
                subs = {f"{origin}.{alias.name}" for alias in node.names}
                found = subs & modules.keys()
                targets.update(found or {origin})
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def test_the_graph_is_read_from_every_kind_of_import() -> None:
    graph = _imports_graph()
    assert len(graph) >= 20, sorted(graph)
    assert "rangeexpr._views" in graph["rangeexpr._sweep"]  # module level
    assert "rangeexpr._points" in graph["rangeexpr._views"]  # module level
    assert "rangeexpr._report" in graph["rangeexpr"]  # inside __getattr__
    assert "rangeexpr._errors" in graph["rangeexpr._filter.parser"]  # from .._errors
    assert "rangeexpr._filter.nodes" in graph["rangeexpr._filter.parser"]  # from .nodes


def test_the_package_has_no_import_cycle() -> None:
    sorter = graphlib.TopologicalSorter(_imports_graph())
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        pytest.fail("import cycle: " + " -> ".join(cycle))


def test_a_cycle_is_found_when_there_is_one() -> None:
    graph = _imports_graph()
    graph["rangeexpr._points"].add("rangeexpr._sweep")  # as if _points imported Sweep
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter(graph).prepare()
