"""Law: element i of every numeric axis has the same float64 bits as numpy's own array.

numpy is the oracle: for random arguments (negative, tiny, huge, integer and float
literals) the lazy axis, evaluated element by element, by chunks and vectorized, equals
``numpy.linspace/arange/logspace/geomspace`` bit for bit, at random and edge indices.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from rangeexpr import axis

MAX_LEN = 10**6


def bits(x: object) -> object:
    if isinstance(x, float | np.floating):
        return struct.pack("<d", float(x))
    return x


def literal(x: int | float) -> str:
    return repr(x) if isinstance(x, float) else str(x)


ints = st.integers(-(10**6), 10**6)
floats = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.floats(-1e300, 1e300, allow_nan=False),
    st.floats(-1e-300, 1e-300, allow_nan=False),
    st.sampled_from([0.1, 0.2, 0.3, 1e-7, 5e-324, 2.5, -0.0]),
)
numbers = st.one_of(ints, floats)
nums = st.one_of(st.integers(1, 50), st.integers(1, MAX_LEN), st.sampled_from([1, 2, 3]))


def check_axis(text: str, expected: np.ndarray, data: st.DataObject) -> None:
    ax = axis(text)
    assert ax.size == len(expected)
    n = len(expected)
    picks = {0, n - 1, n // 2, min(1, n - 1), min(2, n - 1)}
    picks |= set(data.draw(st.lists(st.integers(0, n - 1), max_size=20)))
    for i in picks:
        assert bits(ax[i]) == bits(expected[i].item()), (text, i)
        assert bits(ax[i - n]) == bits(expected[i].item())
    lo = data.draw(st.integers(0, n - 1))
    hi = data.draw(st.integers(lo, min(n, lo + 3000)))
    assert [bits(v) for v in ax.values(lo, hi)] == [bits(v) for v in expected[lo:hi].tolist()]
    idx = np.array(sorted(picks | {lo, hi - 1} - {-1}), dtype=np.int64)
    got = ax.array(idx)
    assert [bits(v) for v in got.tolist()] == [bits(v) for v in expected[idx].tolist()]


@settings(max_examples=300, deadline=None)
@given(start=numbers, stop=numbers, num=nums, data=st.data())
@example(start=0, stop=1, num=5, data=None)  # type: ignore[arg-type]
@example(start=5e-324, stop=1e-323, num=7, data=None)  # type: ignore[arg-type]
def test_linspace(start: float, stop: float, num: int, data: st.DataObject) -> None:
    assume(math.isfinite(float(stop) - float(start)))
    if data is None:
        return  # examples above exist to document the cases; hypothesis draws data for real
    expected = np.linspace(start, stop, num)
    check_axis(f"X=linspace:{literal(start)},{literal(stop)},{num}", expected, data)


@settings(max_examples=300, deadline=None)
@given(
    start=numbers,
    stop=numbers,
    step=st.one_of(ints, floats, st.sampled_from([0.1, -0.1, 1e-3, 3])),
    data=st.data(),
)
def test_arange(start: float, stop: float, step: float, data: st.DataObject) -> None:
    assume(step != 0)
    quotient = (stop - start) / step
    assume(math.isfinite(quotient))
    size = math.ceil(quotient)
    assume(1 <= size <= MAX_LEN)
    expected = np.arange(start, stop, step)
    text = f"X=arange:{literal(start)},{literal(stop)},{literal(step)}"
    ax = axis(text)
    if expected.dtype.kind == "i":
        assert all(isinstance(v, int) for v in ax.values(0, min(10, ax.size)))
    check_axis(text, expected, data)


@settings(max_examples=200, deadline=None)
@given(
    start=st.one_of(st.integers(-30, 30), st.floats(-30, 30)),
    stop=st.one_of(st.integers(-30, 30), st.floats(-30, 30)),
    num=nums,
    base=st.one_of(st.none(), st.sampled_from([2, 10, 2.0, 0.5, math.e, 7.25])),
    data=st.data(),
)
def test_logspace(
    start: float, stop: float, num: int, base: float | None, data: st.DataObject
) -> None:
    if base is None:
        expected = np.logspace(start, stop, num)
        text = f"X=logspace:{literal(start)},{literal(stop)},{num}"
    else:
        expected = np.logspace(start, stop, num, base=base)
        text = f"X=logspace:{literal(start)},{literal(stop)},{num},{literal(base)}"
    check_axis(text, expected, data)


nonzero = st.one_of(
    st.integers(1, 10**6),
    st.floats(1e-300, 1e300),
    st.sampled_from([0.1, 3, 7.5, 1e-7]),
)


@settings(max_examples=200, deadline=None)
@given(start=nonzero, stop=nonzero, negative=st.booleans(), num=nums, data=st.data())
def test_geomspace(
    start: float, stop: float, negative: bool, num: int, data: st.DataObject
) -> None:
    if negative:
        start, stop = -start, -stop
    expected = np.geomspace(start, stop, num)
    check_axis(f"X=geomspace:{literal(start)},{literal(stop)},{num}", expected, data)


@pytest.mark.parametrize(
    "text",
    [
        "X=linspace:0,1,1000000",
        "X=arange:0,1,0.1",
        "X=arange:-3,3.5,0.7",
        "X=logspace:-5,5,1001",
        "X=geomspace:1e-10,1e10,999",
    ],
)
def test_whole_axis_matches(text: str) -> None:
    """Every element of a few large axes, through iteration, equals numpy's array."""
    kind, args = text[2:].split(":")
    parsed = [float(a) if "." in a or "e" in a else int(a) for a in args.split(",")]
    expected = getattr(np, kind)(*parsed)
    assert [bits(v) for v in axis(text)] == [bits(v) for v in expected.tolist()]
