"""Law: element i of every numeric axis has the same float64 bits as numpy's own array.

numpy is the oracle: for random arguments (negative, tiny, huge, integer and float
literals) the lazy axis, evaluated element by element, by chunks and vectorized, equals
``numpy.linspace/arange/logspace/geomspace`` bit for bit, at random and edge indices.

Law: an axis is refused (EvaluationError) exactly when numpy's array holds an inf or a
nan, and the error names numpy's first such index and value; no RuntimeWarning escapes.
This proves the finiteness check, which evaluates only a few elements, against numpy's
whole array.
"""

from __future__ import annotations

import math
import re
import struct
import warnings
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from rangeexpr import EvaluationError, axis
from rangeexpr._text import format_value

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


def check_axis(text: str, expected: np.ndarray, data: st.DataObject | None) -> None:
    """The axis equals numpy's array: at drawn indices, or everywhere when data is None."""
    ax = axis(text)
    assert ax.size == len(expected)
    n = len(expected)
    if data is None:  # an explicit @example: compare every element, every way
        want = [bits(v) for v in expected.tolist()]
        assert [bits(ax[i]) for i in range(n)] == want
        assert [bits(v) for v in ax.values(0, n)] == want
        assert [bits(v) for v in ax] == want
        assert [bits(v) for v in ax.array(np.arange(n, dtype=np.int64)).tolist()] == want
        return
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


# ---------------------------------------------------------------------------
# Non-finite values: refused exactly when numpy's array has one, at numpy's first index
# ---------------------------------------------------------------------------


def check_finiteness(text: str, numpy_array: Callable[[], np.ndarray]) -> None:
    with np.errstate(all="ignore"):
        expected = numpy_array()
    bad = np.flatnonzero(~np.isfinite(expected))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning from numpy fails the test
        try:
            ax = axis(text)
        except EvaluationError as exc:
            found = re.match(r"\w+ gives (\S+) at index (\d+): ", exc.message)
            assert found, exc.message
            assert len(bad), f"{text}: refused, but numpy's array is finite"
            assert int(found[2]) == bad[0], (text, found[2], bad[:3])
            assert found[1] == format_value(float(expected[bad[0]]))
            return
        assert not len(bad), f"{text}: numpy gives {expected[bad[0]]} at index {bad[0]}"
        assert all(math.isfinite(v) for v in (ax[0], ax[-1], *ax.values(0, min(ax.size, 100))))


wide = st.one_of(st.integers(-800, 800), st.floats(-800, 800))
finite_nums = st.one_of(st.integers(1, 300), st.integers(1, 10**5))
huge = st.one_of(
    st.floats(-1.7976931348623157e308, 1.7976931348623157e308),
    st.sampled_from([1.7976931348623157e308, -1.7976931348623157e308, 1e308, -1e308]),
)


@settings(max_examples=300, deadline=None)
@given(
    start=wide,
    stop=wide,
    num=finite_nums,
    base=st.sampled_from([None, 2, 0.5, 0.1, 1.0001, 7.25, 99999999999999999999]),
)
@example(start=0, stop=400, num=3, base=None)
@example(start=-400, stop=0, num=5, base=0.1)
@example(start=0, stop=400, num=100000, base=None)
def test_logspace_is_refused_where_numpy_overflows(
    start: float, stop: float, num: int, base: float | None
) -> None:
    text = f"X=logspace:{literal(start)},{literal(stop)},{num}"
    if base is None:
        check_finiteness(text, lambda: np.logspace(start, stop, num))
    else:
        text += f",{literal(base)}"
        check_finiteness(text, lambda: np.logspace(start, stop, num, base=base))


@settings(max_examples=200, deadline=None)
@given(start=huge, stop=huge, num=finite_nums)
def test_linspace_is_refused_where_numpy_overflows(start: float, stop: float, num: int) -> None:
    assume(math.isfinite(stop - start))  # else refused earlier: STOP - START overflows
    text = f"X=linspace:{literal(start)},{literal(stop)},{num}"
    check_finiteness(text, lambda: np.linspace(start, stop, num))


@settings(max_examples=200, deadline=None)
@given(start=huge, stop=huge, step=huge)
def test_arange_is_refused_where_numpy_overflows(start: float, stop: float, step: float) -> None:
    assume(step != 0)
    quotient = (stop - start) / step
    assume(math.isfinite(quotient) and 1 <= math.ceil(quotient) <= 10**5)
    text = f"X=arange:{literal(start)},{literal(stop)},{literal(step)}"
    check_finiteness(text, lambda: np.arange(start, stop, step))


@settings(max_examples=200, deadline=None)
@given(
    start=st.floats(1e-300, 1.7976931348623157e308),
    stop=st.sampled_from([1.7976931348623157e308, 1e308, 5e-324, 1e-300]),
    num=finite_nums,
)
def test_geomspace_is_refused_where_numpy_overflows(start: float, stop: float, num: int) -> None:
    text = f"X=geomspace:{literal(start)},{literal(stop)},{num}"
    check_finiteness(text, lambda: np.geomspace(start, stop, num))
