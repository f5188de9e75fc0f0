"""Lazy axes: each kind is a Sequence that computes element i on demand, bit-exact with numpy.

Nothing here builds a whole array. Each numeric kind reproduces numpy's own element formula
(numpy 2.x, ``numpy/_core/function_base.py`` and ``numpy/_core/src/multiarray/ctors.c``),
not the textbook one, and is checked bit for bit against numpy by the property tests in
``tests/property/test_axes_numpy.py``. logspace and geomspace call numpy's ufuncs on
one-element arrays: on AVX-512 machines numpy's SIMD ``power``/``log10`` differ from
Python's ``**``/``math.log10`` in the last bit, and a one-element array gives the same bits
as the full array.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, overload

from ._ast import RangeExpr, Span, Value
from ._errors import EvaluationError
from ._parse import parse
from ._text import format_value, int_text

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["Axis", "axis"]

_CHUNK = 4096  # how many values iteration computes at a time


def _range_len(r: range) -> int:
    """len(r) for any size (``len()`` overflows past sys.maxsize)."""
    if r.step > 0:
        return max(0, (r.stop - r.start + r.step - 1) // r.step)
    return max(0, (r.start - r.stop - r.step - 1) // -r.step)


class Axis(Sequence[Value]):
    """One named axis of a sweep: a lazy, immutable Sequence of typed values.

    ``size`` is exact for any length; ``len()`` works where it fits, as for ``range``.
    """

    __slots__ = ("expr", "size")

    expr: RangeExpr
    size: int

    @property
    def name(self) -> str:
        return self.expr.name

    @property
    def kind(self) -> str:
        return self.expr.kind

    def __len__(self) -> int:
        return self.size

    def __bool__(self) -> bool:
        return self.size > 0

    def __repr__(self) -> str:
        return f"<Axis {self.expr.source!r} size={int_text(self.size)}>"

    @overload
    def __getitem__(self, index: int) -> Value: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Value]: ...
    def __getitem__(self, index: int | slice) -> Value | Sequence[Value]:
        if isinstance(index, slice):
            return _AxisSlice(self, range(self.size)[index])
        return self._at(self._normalize(index))

    def _normalize(self, index: int) -> int:
        given = operator.index(index)  # TypeError, as for a list, if it is not an integer
        i = given + self.size if given < 0 else given
        if not 0 <= i < self.size:
            raise IndexError(
                f"axis index {int_text(given)} out of range for {int_text(self.size)} values"
            )
        return i

    def text(self, index: int) -> str:
        """The text a template writes for element ``index``."""
        return format_value(self[index])

    def sample_values(self) -> list[Value]:
        """Values enough to check a format spec against: the first and the last."""
        return [self._at(0), self._at(self.size - 1)]

    def __iter__(self) -> Iterator[Value]:
        for lo in range(0, self.size, _CHUNK):
            yield from self.values(lo, min(lo + _CHUNK, self.size))

    def __reversed__(self) -> Iterator[Value]:
        for i in range(self.size - 1, -1, -1):
            yield self._at(i)

    # -- for subclasses ---------------------------------------------------------------

    def _at(self, i: int) -> Value:
        """Element ``i``, with ``0 <= i < size`` already checked."""
        raise NotImplementedError

    def _getter(self) -> Callable[[int], Value]:
        """The fastest callable for element i (``0 <= i < size``), for random access."""
        return self._at

    def values(self, start: int, stop: int) -> list[Value]:
        """Elements ``[start, stop)`` as a list (``0 <= start <= stop <= size``)."""
        return [self._at(i) for i in range(start, stop)]

    def _check_finite(self, runs: Sequence[range]) -> None:
        """Raise EvaluationError naming the first inf or nan element, without building the axis.

        Each run is a range of indices over which the kind's element formula is monotone in
        i: IEEE rounding is monotone, so ``i * step + start`` is monotone in i, and so is
        ``power(base, y(i))`` for a fixed base > 0 and a monotone y. From finite arguments
        the only non-finite result is overflow to +-inf (never nan: no ``inf - inf`` or
        ``0 * inf`` arises), and a monotone run whose first element is finite can only
        overflow in one direction: its non-finite elements form one block at its end.
        So the first element, the last, and a bisection between them find the first
        non-finite index in O(log size) evaluations. The property tests in
        ``tests/property/test_axes_numpy.py`` check the index against numpy's whole array.
        """
        bad = [i for run in runs if (i := _first_nonfinite(self._at, run)) is not None]
        if bad:
            i = min(bad)
            raise EvaluationError(
                f"{self.kind} gives {format_value(self._at(i))} at index {int_text(i)}: "
                f"{self._overflow_reason(i)}",
                self.expr.source,
                _args_span(self.expr),
            )

    def _overflow_reason(self, i: int) -> str:
        """Why element i is not finite, for the error message."""
        return "the value is too large for a float"

    def array(self, indices: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
        """Elements at an array of indices, vectorized (for ``Sweep.arrays``)."""
        import numpy as np

        return np.array([self._at(int(i)) for i in indices])


def _finite(value: Value) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def _first_nonfinite(at: Callable[[int], Value], run: range) -> int | None:
    """The first index of ``run`` where ``at`` is not finite; see ``Axis._check_finite``."""
    if not run:
        return None
    if not _finite(at(run[0])):
        return run[0]
    lo, hi = run[0], run[-1]
    if _finite(at(hi)):
        return None
    while hi - lo > 1:  # at(lo) is finite, at(hi) is not
        mid = (lo + hi) // 2
        if _finite(at(mid)):
            lo = mid
        else:
            hi = mid
    return hi


class _AxisSlice(Sequence[Value]):
    """A lazy slice of an axis: the indices are a range, so any size is fine."""

    __slots__ = ("_axis", "_indices")

    def __init__(self, axis: Axis, indices: range):
        self._axis = axis
        self._indices = indices

    def __len__(self) -> int:
        return _range_len(self._indices)

    @overload
    def __getitem__(self, index: int) -> Value: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Value]: ...
    def __getitem__(self, index: int | slice) -> Value | Sequence[Value]:
        if isinstance(index, slice):
            return _AxisSlice(self._axis, self._indices[index])
        return self._axis._at(self._indices[index])

    def __iter__(self) -> Iterator[Value]:
        return map(self._axis._at, self._indices)


# ---------------------------------------------------------------------------
# case and range: exact values
# ---------------------------------------------------------------------------


class CaseAxis(Axis):
    """``case:V1,V2,...``: the listed values, typed, with their text exactly as written."""

    __slots__ = ("_texts", "_values")

    def __init__(self, expr: RangeExpr):
        self.expr = expr
        self._values = tuple(a.value for a in expr.args)
        self._texts = tuple(a.text for a in expr.args)
        self.size = len(self._values)

    def _at(self, i: int) -> Value:
        return self._values[i]

    def _getter(self) -> Callable[[int], Value]:
        return self._values.__getitem__

    def values(self, start: int, stop: int) -> list[Value]:
        return list(self._values[start:stop])

    def text(self, index: int) -> str:
        return self._texts[self._normalize(index)]

    def sample_values(self) -> list[Value]:
        return list(self._values)

    def array(self, indices: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
        import numpy as np

        # one type keeps numpy's natural dtype; a mix stays typed as Python objects
        mixed = len({type(v) for v in self._values}) > 1
        return np.array(self._values, dtype=object if mixed else None)[indices]


class RangeAxis(Axis):
    """``range:...``: Python's ``range``, integers of any size."""

    __slots__ = ("_range",)

    def __init__(self, expr: RangeExpr):
        self.expr = expr
        ints = [int(a.value) for a in expr.args]
        if len(ints) == 3 and ints[2] == 0:
            raise EvaluationError("range step must not be zero", expr.source, expr.args[2].span)
        self._range = range(*ints)
        self.size = _range_len(self._range)
        if self.size == 0:
            raise _empty(expr, self._range.start, self._range.stop, self._range.step)

    def _at(self, i: int) -> Value:
        return self._range[i]

    def _getter(self) -> Callable[[int], Value]:
        return self._range.__getitem__

    def values(self, start: int, stop: int) -> list[Value]:
        return list(self._range[start:stop])

    def __contains__(self, value: object) -> bool:
        return value in self._range

    def array(self, indices: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
        import numpy as np

        r = self._range
        if all(-(2**62) < v < 2**62 for v in (r.start, r[-1], r.step)):  # int64 holds it
            return r.start + indices * r.step
        return np.array([r.start + int(i) * r.step for i in indices], dtype=object)


def _empty(
    expr: RangeExpr, start: int | float, stop: int | float, step: int | float
) -> EvaluationError:
    relation = ">=" if step > 0 else "<="
    hint = "a negative step to count down" if step > 0 else "a positive step to count up"
    return EvaluationError(
        f"{expr.kind} is empty: start {format_value(start)} {relation} stop "
        f"{format_value(stop)} with step {format_value(step)}; use {hint}",
        expr.source,
        _args_span(expr),
    )


def _args_span(expr: RangeExpr) -> Span:
    return (expr.args[0].span[0], expr.args[-1].span[1])


# ---------------------------------------------------------------------------
# arange
# ---------------------------------------------------------------------------


class ArangeAxis(Axis):
    """``arange:...``: ``numpy.arange``; ints when every argument is an int, else floats.

    Mirrors numpy 2.x ``PyArray_ArangeObj`` (``_core/src/multiarray/ctors.c``): the length
    is ``ceil((stop - start) / step)``; element 0 is ``start``, element 1 is
    ``start + step`` (computed on the Python numbers), and element i >= 2 is
    ``b0 + i * (b1 - b0)`` in the result dtype (``DOUBLE_fill`` in ``arraytypes.c.src``).
    """

    __slots__ = ("_b0", "_b1", "_delta", "_floats")

    def __init__(self, expr: RangeExpr):
        self.expr = expr
        nums: list[Value] = [a.value for a in expr.args]
        assert all(isinstance(n, int | float) for n in nums)
        self._floats = any(isinstance(n, float) for n in nums)
        if self._floats:  # numpy's arithmetic on the Python numbers converts the ints
            nums = list(_float_args(expr))
        start: int | float
        stop: int | float
        step: int | float
        if len(nums) == 1:
            start, stop, step = 0, nums[0], 1  # type: ignore[assignment]
        elif len(nums) == 2:
            (start, stop), step = nums, 1  # type: ignore[assignment]
        else:
            start, stop, step = nums  # type: ignore[assignment]
        if step == 0:
            raise EvaluationError("arange step must not be zero", expr.source, expr.args[2].span)
        try:
            quotient = (stop - start) / step
        except OverflowError:  # int / int beyond the float range
            quotient = math.inf
        if not math.isfinite(quotient):
            raise EvaluationError(
                "arange has too many values: (STOP - START) / STEP overflows a float",
                expr.source,
                _args_span(expr),
            )
        size = math.ceil(quotient)
        if size <= 0:
            raise _empty(expr, start, stop, step)
        self.size = size
        if self._floats:
            self._b0: int | float = float(start)
            self._b1: int | float = float(start + step)
            self._delta: int | float = self._b1 - self._b0
            # element 0 is START, 1 is START + STEP, the rest monotone in i
            self._check_finite([range(1), range(1, min(2, size)), range(2, size)])
        else:
            self._b0, self._b1, self._delta = start, start + step, step

    def _at(self, i: int) -> Value:
        if i == 0:
            return self._b0
        if i == 1:
            return self._b1
        return self._b0 + i * self._delta

    def values(self, start: int, stop: int) -> list[Value]:
        b0, d = self._b0, self._delta
        out: list[Value] = [b0 + i * d for i in range(start, stop)]
        if start <= 1 < stop:
            out[1 - start] = self._b1
        if start == 0 < stop:
            out[0] = b0
        return out

    def array(self, indices: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
        import numpy as np

        # An inf delta (START + STEP overflowed) leaves at most two elements, each set
        # alone: the formula would compute 0 * inf for them.
        if not self._floats or not math.isfinite(self._delta):
            return super().array(indices)
        out = np.float64(self._b0) + indices.astype(np.float64) * np.float64(self._delta)
        out[indices == 1] = self._b1
        out[indices == 0] = self._b0
        return out


# ---------------------------------------------------------------------------
# linspace, logspace, geomspace
# ---------------------------------------------------------------------------


class _Linspace:
    """``numpy.linspace(start, stop, num)`` element by element (numpy 2.x function_base.py).

    ``step = delta / div``; if step == 0 (denormals, gh-5437) element i is
    ``(i / div) * delta + start``, else ``i * step + start``; the last element is ``stop``.
    """

    __slots__ = ("delta", "div", "num", "start", "step", "stop")

    def __init__(self, start: float, stop: float, num: int):
        self.start, self.stop, self.num = start, stop, num
        self.div = num - 1
        self.delta = stop - start
        self.step = self.delta / self.div if self.div > 0 else math.nan

    def at(self, i: int) -> float:
        if i == self.div and i > 0:
            return self.stop
        if self.div <= 0:
            return i * self.delta + self.start
        if self.step == 0:
            return (i / self.div) * self.delta + self.start
        return i * self.step + self.start

    def values(self, start: int, stop: int) -> list[float]:
        if self.div > 0 and self.step != 0:
            step, first = self.step, self.start
            out = [i * step + first for i in range(start, stop)]
            if stop == self.num and stop > start and self.div > 0:
                out[-1] = self.stop
            return out
        return [self.at(i) for i in range(start, stop)]

    def array(self, indices: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        import numpy as np

        y = indices.astype(np.float64)
        if self.div <= 0:
            y = y * self.delta
        elif self.step == 0:
            y = (y / self.div) * self.delta
        else:
            y = y * self.step
        y += self.start
        if self.div > 0:
            y[indices == self.div] = self.stop
        return y


_ROLES = {
    "linspace": ("START", "STOP", "NUM"),
    "logspace": ("START", "STOP", "NUM", "BASE"),
    "geomspace": ("START", "STOP", "NUM"),
}


def _role(expr: RangeExpr, k: int) -> str:
    if expr.kind == "arange":
        return (("STOP",), ("START", "STOP"), ("START", "STOP", "STEP"))[len(expr.args) - 1][k]
    return _ROLES[expr.kind][k]


def _float_args(expr: RangeExpr) -> list[float]:
    """The arguments as floats, as numpy converts a Python int: one too large is an error."""
    out = []
    for k, arg in enumerate(expr.args):
        try:
            out.append(float(arg.value))
        except OverflowError:
            raise EvaluationError(
                f"{expr.kind} {_role(expr, k)} is too large for a float (at most about 1.8e308)",
                expr.source,
                arg.span,
            ) from None
    return out


def _num(expr: RangeExpr) -> int:
    num = expr.args[2].value
    assert isinstance(num, int)
    if num == 0:
        raise EvaluationError(
            f"{expr.kind} is empty: NUM is 0; ask for at least 1 point",
            expr.source,
            expr.args[2].span,
        )
    return num


def _check_finite_delta(expr: RangeExpr, start: float, stop: float) -> None:
    if math.isinf(stop - start):
        raise EvaluationError(
            f"{expr.kind} STOP - START overflows a float", expr.source, _args_span(expr)
        )


def _linspace_runs(lin: _Linspace) -> list[range]:
    """Where numpy's linspace formula is monotone: every index but the last, set to STOP."""
    if lin.div <= 0:
        return [range(lin.num)]
    return [range(lin.div), range(lin.div, lin.num)]


class LinspaceAxis(Axis):
    """``linspace:START,STOP,NUM``: ``numpy.linspace``, floats, both ends included."""

    __slots__ = ("_lin",)

    def __init__(self, expr: RangeExpr):
        self.expr = expr
        start, stop, _ = _float_args(expr)
        self.size = _num(expr)
        _check_finite_delta(expr, start, stop)
        self._lin = _Linspace(start, stop, self.size)
        self._check_finite(_linspace_runs(self._lin))

    def _at(self, i: int) -> Value:
        return self._lin.at(i)

    def _getter(self) -> Callable[[int], Value]:
        return self._lin.at

    def values(self, start: int, stop: int) -> list[Value]:
        return list(self._lin.values(start, stop))

    def array(self, indices: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
        return self._lin.array(indices)


class LogspaceAxis(Axis):
    """``logspace:START,STOP,NUM[,BASE]``: ``numpy.power(base, linspace(start, stop, num))``."""

    __slots__ = ("_base", "_base_text", "_lin")

    def __init__(self, expr: RangeExpr):
        import numpy as np

        self.expr = expr
        nums = _float_args(expr)
        self.size = _num(expr)
        base = nums[3] if len(nums) == 4 else 10.0
        if base <= 0:
            raise EvaluationError("logspace BASE must be positive", expr.source, expr.args[3].span)
        _check_finite_delta(expr, nums[0], nums[1])
        self._lin = _Linspace(nums[0], nums[1], self.size)
        # numpy.logspace passes BASE to power() as a Python scalar, which numpy converts to
        # float64 (NEP 50): an int base of any size becomes float(base), as here.
        self._base = np.array([base])
        self._base_text = expr.args[3].text if len(nums) == 4 else "10"
        with np.errstate(all="ignore"):  # the check may compute an inf: no RuntimeWarning
            self._check_finite(_linspace_runs(self._lin))

    def _overflow_reason(self, i: int) -> str:
        exponent = format_value(self._lin.at(i))
        return f"{self._base_text} ** {exponent} is too large for a float"

    def _at(self, i: int) -> Value:
        import numpy as np

        return float(np.power(self._base, np.array([self._lin.at(i)]))[0])

    def values(self, start: int, stop: int) -> list[Value]:
        import numpy as np

        y = np.array(self._lin.values(start, stop), dtype=np.float64)
        return list(np.power(self._base, y).tolist())

    def array(self, indices: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
        import numpy as np

        out: npt.NDArray[np.float64] = np.power(self._base, self._lin.array(indices))
        return out


class GeomspaceAxis(Axis):
    """``geomspace:START,STOP,NUM``: ``numpy.geomspace`` (numpy 2.x function_base.py).

    Rotates start to positive (``sign``), takes ``log10`` of both ends, runs logspace with
    base 10 in between, sets the ends to start and stop exactly, and rotates back.
    """

    __slots__ = ("_lin", "_sign", "_start", "_stop", "_ten")

    def __init__(self, expr: RangeExpr):
        import numpy as np

        self.expr = expr
        start, stop, _ = _float_args(expr)
        self.size = _num(expr)
        for arg, value in zip(expr.args[:2], (start, stop), strict=True):
            if value == 0:
                raise EvaluationError(
                    "geomspace cannot include zero: START and STOP must be non-zero",
                    expr.source,
                    arg.span,
                )
        if (start < 0) != (stop < 0):
            raise EvaluationError(
                "geomspace START and STOP must have the same sign",
                expr.source,
                _args_span(expr),
            )
        self._sign = 1.0 if start > 0 else -1.0
        self._start, self._stop = start / self._sign, stop / self._sign
        log_start = float(np.log10(np.float64(self._start)))
        log_stop = float(np.log10(np.float64(self._stop)))
        self._lin = _Linspace(log_start, log_stop, self.size)
        self._ten = np.array([10.0])
        with np.errstate(all="ignore"):  # the ends are START and STOP themselves
            self._check_finite([range(1, self.size - 1)])

    def _at(self, i: int) -> Value:
        import numpy as np

        if i == 0:
            return self._start * self._sign
        if i == self.size - 1:
            return self._stop * self._sign
        return float(np.power(self._ten, np.array([self._lin.at(i)]))[0]) * self._sign

    def values(self, start: int, stop: int) -> list[Value]:
        import numpy as np

        # The ends are START and STOP, not 10 ** log10(...), which may round up to inf:
        # their exponents are zeroed before power() so that it never warns of an overflow.
        y = np.array(self._lin.values(start, stop), dtype=np.float64)
        first = start == 0 < stop
        last = stop == self.size > max(start, 1)
        if first:
            y[0] = 0.0
        if last:
            y[-1] = 0.0
        out = np.power(self._ten, y)
        if first:
            out[0] = self._start
        if last:
            out[-1] = self._stop
        return list((out * self._sign).tolist())

    def array(self, indices: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
        import numpy as np

        ends = indices == 0
        if self.size > 1:
            ends |= indices == self.size - 1
        y = self._lin.array(indices)
        y[ends] = 0.0  # as in values(): no overflow computing what the ends replace
        out = np.power(self._ten, y)
        out[indices == 0] = self._start
        if self.size > 1:
            out[indices == self.size - 1] = self._stop
        signed: npt.NDArray[np.float64] = out * self._sign
        return signed


_KINDS: dict[str, Callable[[RangeExpr], Axis]] = {
    "case": CaseAxis,
    "range": RangeAxis,
    "arange": ArangeAxis,
    "linspace": LinspaceAxis,
    "logspace": LogspaceAxis,
    "geomspace": GeomspaceAxis,
}


def axis(expr: str | RangeExpr, /) -> Axis:
    """The lazy axis of one expression; raises RangeExprError if it is invalid or empty."""
    if isinstance(expr, str):
        expr = parse(expr)
    elif not isinstance(expr, RangeExpr):
        raise TypeError(f"axis() takes a str or RangeExpr, not {type(expr).__name__}")
    return _KINDS[expr.kind](expr)
