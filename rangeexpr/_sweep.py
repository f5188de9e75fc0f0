"""Sweeps: the lazy Cartesian product of axes, in ``itertools.product`` order.

A sweep is a ``Layout`` of axes (``rangeexpr/_layout.py``: the mixed radix, linked axes)
plus a ``range`` of selected global indices (slices and shards narrow the range), so size,
random access, slicing and sharding are O(number of axes) for any size. It is the
``IndexedSweep`` of ``rangeexpr/_views.py``, which gives it filters, shuffles and samples.

Iteration does not decode each point: it walks blocks of about ``BLOCK`` points, each
the product of the trailing axes (materialized once, bounded by ``BLOCK`` values) with a
chunk of the next axis, and lets ``itertools.product`` build the tuples in C.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import count, repeat
from typing import TYPE_CHECKING, Any, overload

from ._ast import RangeExpr
from ._axes import Axis, _range_len, axis
from ._errors import SweepError
from ._layout import INT64_SAFE, Layout, row_blocks, rows_at
from ._parse import parse
from ._points import Point, compose, shard_range
from ._text import int_text
from ._views import IndexedSweep, Positions, Reader

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["Point", "Sweep"]


def _expressions(exprs: Iterable[str | RangeExpr]) -> list[RangeExpr]:
    """The parsed expressions; anything but a list of str or RangeExpr is a TypeError.

    A lone string is refused rather than iterated character by character, and a mapping
    rather than iterated by its keys: both are a list forgotten, not a sweep.
    """
    if isinstance(exprs, str):
        raise TypeError(
            f"Sweep takes a list of range expressions, not a str: write Sweep([{exprs!r:.60}])"
        )
    if isinstance(exprs, bytes | bytearray | Mapping) or not isinstance(exprs, Iterable):
        raise TypeError(
            f"Sweep takes a list of range expressions, got {type(exprs).__name__}: "
            "write Sweep(['X=range:3', ...])"
        )
    parsed = []
    for k, e in enumerate(exprs):
        if isinstance(e, str):
            parsed.append(parse(e))
        elif isinstance(e, RangeExpr):
            parsed.append(e)
        else:
            raise TypeError(
                f"a range expression is a str or RangeExpr; expression {k} is "
                f"{type(e).__name__}: {e!r:.60}"
            )
    return parsed


def _link_groups(link: Iterable[Sequence[str]]) -> list[tuple[str, ...]]:
    """``link`` as tuples of names; a str where a list belongs is a TypeError, not a guess."""
    if isinstance(link, str | bytes | bytearray) or not isinstance(link, Iterable):
        raise TypeError(f"link takes a list of name lists, e.g. [('X', 'Y')], not {link!r:.60}")
    groups = []
    for group in link:
        if isinstance(group, str | bytes | bytearray) or not isinstance(group, Iterable):
            raise TypeError(f"each link is a list of names, e.g. ('X', 'Y'), not {group!r:.60}")
        names = tuple(group)
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"a linked name is a str, not {type(name).__name__}: {name!r:.60}")
        groups.append(names)
    return groups


class Sweep(IndexedSweep):
    """The lazy Cartesian product of range expressions; the first varies slowest."""

    __slots__ = ("_exprs", "_indices", "_layout")

    def __init__(
        self, exprs: Iterable[str | RangeExpr] = (), /, *, link: Iterable[Sequence[str]] = ()
    ):
        parsed = _expressions(exprs)
        seen: dict[str, RangeExpr] = {}
        for e in parsed:
            if e.name in seen:
                raise SweepError(
                    f"duplicate name {e.name!r}: already defined by {seen[e.name].source!r}",
                    e.source,
                    e.name_span,
                )
            seen[e.name] = e
        self._exprs: tuple[str, ...] = tuple(e.source for e in parsed)
        self._layout = Layout([axis(e) for e in parsed], _link_groups(link))
        self._indices = range(self._layout.total)

    def _view(self, indices: range) -> Sweep:
        view = object.__new__(Sweep)
        view._exprs, view._layout, view._indices = self._exprs, self._layout, indices
        return view

    # -- size and access -----------------------------------------------------------------

    @property
    def exprs(self) -> tuple[str, ...]:
        return self._exprs

    @property
    def names(self) -> tuple[str, ...]:
        return self._layout.names

    @property
    def axes(self) -> tuple[Axis, ...]:
        return self._layout.axes

    @property
    def size(self) -> int:
        """The exact number of points, of any size (``len()`` overflows past sys.maxsize)."""
        return _range_len(self._indices)

    @property
    def indices(self) -> range:
        """The global indices of this sweep's points (a slice or shard of the full sweep)."""
        return self._indices

    @property
    def full_size(self) -> int:
        """The size of the whole sweep this one is part of."""
        return self._layout.total

    def __repr__(self) -> str:
        r = self._indices
        part = ""
        if r != range(self._layout.total):
            part = f" [{int_text(r.start)}:{int_text(r.stop)}:{int_text(r.step)}]"
        return f"<Sweep {list(self._exprs)!r}{part} size={int_text(self.size)}>"

    def axis(self, name: str) -> Axis:
        """The lazy axis of one variable."""
        try:
            return self._layout.axes[self._layout.positions[name]]
        except KeyError:
            raise KeyError(f"no range defines {name!r}") from None

    @overload
    def __getitem__(self, index: int) -> Point: ...
    @overload
    def __getitem__(self, index: slice) -> Sweep: ...
    def __getitem__(self, index: int | slice) -> Point | Sweep:
        # IndexedSweep's, written out: random access is the hot path of sweep[i]
        if isinstance(index, slice):
            return self._view(self._indices[index])
        try:
            g = self._indices[index]
        except IndexError:
            raise IndexError(
                f"sweep index {int_text(index)} out of range for {int_text(self.size)} points"
            ) from None
        return Point(g, self._layout.decode(g), self._layout)

    def _at(self, position: int) -> Point:
        g = self._indices[position]
        return Point(g, self._layout.decode(g), self._layout)

    def _cut(self, part: range) -> Sweep:
        return self._view(compose(self._indices, part))

    def shard(self, k: int, n: int) -> Sweep:
        """Part k of n: points ``[k*size//n, (k+1)*size//n)``, disjoint and covering in order."""
        return self._cut(shard_range(self.size, k, n))

    # -- iteration -----------------------------------------------------------------------

    def __iter__(self) -> Iterator[Point]:
        r = self._indices
        if self._layout.linked or r.step != 1:
            return super().__iter__()  # decoded in batches
        return self._iter_block(r.start, r.stop)

    def _iter_block(self, lo: int, hi: int) -> Iterator[Point]:
        layout = self._layout
        for first, rows in row_blocks(layout, lo, hi):
            yield from map(Point, count(first), rows, repeat(layout))

    def _reader(self) -> Reader:
        layout, r = self._layout, self._indices
        cache: dict[int, list[Any]] = {}  # small axes' values, kept between batches
        arrays = layout.total < INT64_SAFE

        def read(at: Positions) -> Iterator[Point]:
            if arrays and not isinstance(at, list):
                as_array = r.start + at * r.step
                gs = as_array.tolist()
                rows = rows_at(layout, gs, cache, as_array)
            else:
                gs = [r.start + p * r.step for p in (at if isinstance(at, list) else at.tolist())]
                rows = rows_at(layout, gs, cache)
            return map(Point, gs, rows, repeat(layout))  # lazy: no batch of live Points

        return read

    # -- batches -------------------------------------------------------------------------

    def arrays(self, start: int, stop: int) -> dict[str, npt.NDArray[Any]]:
        """Points ``[start, stop)`` of this sweep as ``{name: numpy array}``, vectorized."""
        import numpy as np

        positions = range(self.size)[start:stop]
        r = self._indices
        first = r.start + positions.start * r.step if positions else 0
        last = r.start + (positions.stop - 1) * r.step if positions else 0
        layout = self._layout
        digits: Sequence[npt.NDArray[np.int64]]
        if max(first, last, layout.total) < INT64_SAFE:
            g = first + np.arange(len(positions), dtype=np.int64) * (r.step * positions.step)
            if layout.linked:
                digits = [(g // st) % sz for st, sz in zip(layout.strides, layout.sizes)]
            else:
                digits = np.unravel_index(g, layout.sizes)
            return layout.columns(digits)
        return self._arrays_at(list(positions))  # beyond int64: exact Python ints

    def _arrays_at(self, at: Positions) -> dict[str, npt.NDArray[Any]]:
        import numpy as np

        layout, r = self._layout, self._indices
        if layout.total < INT64_SAFE and not isinstance(at, list):
            g = r.start + at * r.step
            digits = [(g // st) % sz for st, sz in zip(layout.strides, layout.sizes)]
        else:
            gs = [r.start + p * r.step for p in (at if isinstance(at, list) else at.tolist())]
            digits = [
                np.array([(x // st) % sz for x in gs], dtype=np.int64)
                for st, sz in zip(layout.strides, layout.sizes)
            ]
        return layout.columns(digits)
