"""Sweep and Point behaviour beyond the product laws: size, memory, errors, text."""

from __future__ import annotations

import tracemalloc
from collections.abc import Mapping
from itertools import islice

import pytest

from rangeexpr import Point, RangeExprError, Sweep, SweepError


def test_size_of_a_huge_sweep_is_exact() -> None:
    sweep = Sweep(["A=range:0,1000000000000000", "B=range:0,1000000000000000", "C=case:x,y"])
    assert sweep.size == 2 * 10**30
    with pytest.raises(OverflowError):
        len(sweep)
    last = sweep[-1]
    assert last.index == 2 * 10**30 - 1
    assert dict(last) == {"A": 10**15 - 1, "B": 10**15 - 1, "C": "y"}
    assert sweep[10**30].index == 10**30
    assert sweep.shard(3, 7).size == (4 * sweep.size // 7) - (3 * sweep.size // 7)


def test_iterating_a_million_points_of_a_huge_sweep_stays_small() -> None:
    sweep = Sweep(["A=range:1000000", "B=linspace:0,1,1000", "C=case:a,b,c,d", "D=range:250"])
    assert sweep.size == 10**6 * 1000 * 1000
    tracemalloc.start()
    try:
        count = sum(1 for _ in islice(sweep, 10**6))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 10**6
    assert peak < 5 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_iterating_a_sweep_whose_last_axis_is_huge() -> None:
    sweep = Sweep(["A=case:x,y", "B=range:0,1000000000000"])
    first = list(islice(sweep, 3))
    assert [dict(p) for p in first] == [{"A": "x", "B": b} for b in range(3)]
    tail = list(sweep[10**12 - 2 : 10**12 + 2])
    assert [(p["A"], p["B"], p.index) for p in tail] == [
        ("x", 10**12 - 2, 10**12 - 2),
        ("x", 10**12 - 1, 10**12 - 1),
        ("y", 0, 10**12),
        ("y", 1, 10**12 + 1),
    ]


def test_point_is_an_immutable_mapping_with_text() -> None:
    sweep = Sweep(["X=linspace:1,2,3", "Y=case:1.50,b", "Z=range:3"])
    p = sweep[7]
    assert isinstance(p, Point) and isinstance(p, Mapping)
    assert p.index == 7
    assert dict(p) == {"X": 1.5, "Y": 1.5, "Z": 1}
    assert list(p) == ["X", "Y", "Z"] and len(p) == 3
    assert p.text("X") == "1.5" and p.text("Y") == "1.50" and p.text("Z") == "1"
    assert sweep[0].text("X") == "1"
    with pytest.raises(KeyError):
        p["W"]
    with pytest.raises(AttributeError):
        p.index = 5  # type: ignore[misc]


def test_duplicate_names_are_an_error() -> None:
    with pytest.raises(SweepError) as info:
        Sweep(["X=range:3", "Y=case:a", "X=case:b"])
    assert str(info.value) == (
        "duplicate name 'X': already defined by 'X=range:3'\n    X=case:b\n    ^"
    )


def test_index_errors() -> None:
    sweep = Sweep(["X=range:3"])
    with pytest.raises(IndexError):
        sweep[3]
    with pytest.raises(IndexError):
        sweep[-4]
    with pytest.raises(ValueError):
        sweep.shard(2, 2)


def test_accepts_parsed_expressions_and_exposes_axes() -> None:
    from rangeexpr import parse

    sweep = Sweep([parse("X=range:2"), "Y=case:a,b"])
    assert sweep.names == ("X", "Y")
    assert sweep.exprs == ("X=range:2", "Y=case:a,b")
    assert list(sweep.axis("Y")) == ["a", "b"]
    with pytest.raises(KeyError):
        sweep.axis("Z")
    assert isinstance(RangeExprError("x"), ValueError)
