"""Laws of Sweep, with itertools.product over the axes as the oracle.

- ``list(sweep)`` is ``itertools.product`` of the axes, first axis slowest;
- ``sweep[i]`` is that list's element i, for every i including negative ones;
- ``sweep[a:b:c]`` is the list slice, and stays lazy;
- ``shard(k, n)`` for k in 0..n-1 are disjoint and cover the sweep in order;
- ``arrays()`` agrees with the points;
- anything that is not a list of expressions (or of link names) is a TypeError or a
  RangeExprError, never an AttributeError or a crash further in.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rangeexpr import RangeExprError, Sweep, axis

EXPRS = st.sampled_from(
    [
        "case:a,b,c",
        "case:1,2.5,x",
        "case:only",
        "linspace:0,1,4",
        "linspace:-2,3,7",
        "range:3",
        "range:10,0,-3",
        "arange:0,1,0.25",
        "arange:5",
        "logspace:0,2,3",
        "geomspace:1,8,4",
    ]
)


@st.composite
def sweeps(draw: st.DrawFn) -> Sweep:
    kinds = draw(st.lists(EXPRS, min_size=1, max_size=4))
    return Sweep([f"V{i}={k}" for i, k in enumerate(kinds)])


def oracle(sweep: Sweep) -> list[tuple[object, ...]]:
    return list(itertools.product(*(list(axis(e)) for e in sweep.exprs)))


def rows(points: object) -> list[tuple[object, ...]]:
    return [tuple(p.values()) for p in points]  # type: ignore[attr-defined]


@settings(max_examples=150, deadline=None)
@given(sweeps())
def test_iteration_is_product(sweep: Sweep) -> None:
    expected = oracle(sweep)
    assert sweep.size == len(expected)
    assert rows(sweep) == expected
    assert [p.index for p in sweep] == list(range(len(expected)))


@settings(max_examples=150, deadline=None)
@given(sweeps(), st.data())
def test_random_access(sweep: Sweep, data: st.DataObject) -> None:
    expected = oracle(sweep)
    n = len(expected)
    for i in data.draw(st.lists(st.integers(-n, n - 1), max_size=10)):
        p = sweep[i]
        assert tuple(p.values()) == expected[i]
        assert p.index == i % n
        assert dict(p) == dict(zip(sweep.names, expected[i], strict=True))


@settings(max_examples=200, deadline=None)
@given(
    sweeps(),
    st.integers(-30, 30) | st.none(),
    st.integers(-30, 30) | st.none(),
    st.integers(-5, 5).filter(lambda s: s != 0) | st.none(),
)
def test_slices(sweep: Sweep, a: int | None, b: int | None, c: int | None) -> None:
    expected = oracle(sweep)
    part = sweep[a:b:c]
    assert isinstance(part, Sweep)
    assert rows(part) == expected[a:b:c]
    assert part.size == len(expected[a:b:c])
    # a slice of a slice is still the list's slice
    assert rows(part[1::2]) == expected[a:b:c][1::2]


@settings(max_examples=150, deadline=None)
@given(sweeps(), st.integers(1, 12))
def test_shards_cover_in_order(sweep: Sweep, n: int) -> None:
    shards = [sweep.shard(k, n) for k in range(n)]
    assert [p.index for s in shards for p in s] == list(range(sweep.size))


@settings(max_examples=100, deadline=None)
@given(sweeps(), st.data())
def test_arrays_agree_with_points(sweep: Sweep, data: st.DataObject) -> None:
    lo = data.draw(st.integers(0, sweep.size))
    hi = data.draw(st.integers(lo, sweep.size))
    arrays = sweep.arrays(lo, hi)
    for name in sweep.names:
        assert arrays[name].tolist() == [p[name] for p in sweep[lo:hi]]


# Values of every shape a caller might pass by mistake, expressions or not.
junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.binary(max_size=8)
    | st.text(max_size=8)
    | st.sampled_from(["X=range:3", "Y=case:a,b"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(junk)
def test_any_input_is_a_sweep_or_a_type_or_range_error(exprs: Any) -> None:
    try:
        Sweep(exprs)
    except (TypeError, RangeExprError):
        return
    assert isinstance(exprs, list | tuple)
    assert all(isinstance(e, str) for e in exprs)


@settings(max_examples=200, deadline=None)
@given(junk)
def test_any_link_is_linked_or_a_type_or_range_error(link: Any) -> None:
    try:
        Sweep(["X=range:3", "Y=range:3", "Z=case:a,b,c"], link=link)
    except (TypeError, RangeExprError):
        return
    assert not isinstance(link, str | bytes)


@settings(max_examples=200, deadline=None)
@given(junk)
def test_any_axis_argument_is_an_axis_or_a_type_or_range_error(expr: Any) -> None:
    try:
        axis(expr)
    except (TypeError, RangeExprError):
        return
    assert isinstance(expr, str)


@pytest.mark.parametrize("index", ["0", 1.0, None, [0], b"0"])
def test_an_index_that_is_not_an_int_is_a_type_error(index: Any) -> None:
    sweep = Sweep(["X=range:3"])
    with pytest.raises(TypeError):
        sweep[index]
    with pytest.raises(TypeError):
        sweep.axis("X")[index]
    with pytest.raises(TypeError):
        sweep.axis("X").text(index)
