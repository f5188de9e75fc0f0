"""Data-driven grammar vectors: adding a case means adding a file.

``data/valid/*.json``: an expression with its name, kind, typed values and texts.
``data/invalid/*.txt``: a ``# why`` comment line, the expression, then the exact error text
(message, source line and marker) that ``str(error)`` must give.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rangeexpr import RangeExprError, axis

DATA = Path(__file__).parent / "data"
VALID = sorted((DATA / "valid").glob("*.json"))
INVALID = sorted((DATA / "invalid").glob("*.txt"))


def test_vectors_were_found() -> None:
    assert len(VALID) >= 20 and len(INVALID) >= 40


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_valid(path: Path) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    ax = axis(case["expr"])
    assert ax.name == case["name"]
    assert ax.kind == case["kind"]
    values = list(ax)
    assert values == case["values"]
    assert [type(v) for v in values] == [type(v) for v in case["values"]]
    assert [ax.text(i) for i in range(len(ax))] == case["texts"]


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid(path: Path) -> None:
    comment, expr, expected = path.read_text(encoding="utf-8").split("\n", 2)
    assert comment.startswith("# "), "the first line says why the case is invalid"
    with pytest.raises(RangeExprError) as info:
        axis(expr)
    assert str(info.value) == expected.rstrip("\n")
    assert info.value.source == expr
