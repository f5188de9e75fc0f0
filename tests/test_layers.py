"""The layers meet through their public faces: ``runner`` never imports ``rangeexpr``, and
``rangeexpr`` uses ``runner`` only through the package itself, never a private module."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def imports(package: str) -> set[tuple[str, str]]:
    """(file, module) for every import in the package's files, at any depth, made absolute;
    ``from runner import _ray`` counts as an import of ``runner._ray``."""
    found = set()
    for path in sorted((REPO / package).rglob("*.py")):
        name = str(path.relative_to(REPO))
        here = path.relative_to(REPO).parts[:-1]  # the package the file is in
        for node in ast.walk(ast.parse(path.read_text(), name)):
            if isinstance(node, ast.Import):
                found |= {(name, alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else ()
                module = ".".join((*base, *([node.module] if node.module else [])))
                found.add((name, module))
                found |= {(name, f"{module}.{a.name}") for a in node.names if a.name[0] == "_"}
    return found


def test_the_scan_sees_imports_of_every_form() -> None:
    found = imports("runner")
    assert ("runner/_run.py", "trio") in found
    assert ("runner/_run.py", "runner._backend") in found  # from ._backend import ...
    assert ("runner/__init__.py", "runner._ray") in found  # inside a function
    assert ("rangeexpr/_batch.py", "runner") in imports("rangeexpr")


def test_runner_imports_nothing_of_rangeexpr() -> None:
    """Not in its source, and not when every runner module is loaded."""
    found = {
        (name, module)
        for name, module in imports("runner")
        if module == "rangeexpr" or module.startswith("rangeexpr.")
    }
    assert found == set()
    modules = sorted(f"runner.{p.stem}" for p in (REPO / "runner").glob("_*.py"))
    assert "runner._ray" in modules
    probe = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'rangeexpr')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    assert json.loads(out) == []


def test_rangeexpr_imports_no_private_runner_module() -> None:
    found = {
        (name, module) for name, module in imports("rangeexpr") if module.startswith("runner.")
    }
    assert found == set()
