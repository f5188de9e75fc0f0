"""A union of grids: several products, one after the other (scikit-learn's list of dicts).

``Union(shared, grids, link=...)`` is the sweep of every point of grid 0, then of grid 1,
and so on; each grid is ``Sweep([*shared, *grid], link=link)``. It is an ``IndexedSweep``,
so size, random access, slices, shards, shuffles, samples and filters work as over one
product: position ``p`` is found by bisecting the grids' first indices (O(log grids)).

Every grid must define the same variables (in any order; the union's order is the first
grid's), so a template, a ``--where`` and resume by values mean the same in every grid. A
variable one grid does not vary is given one value there (``gamma = "case:none"``).

A point of grid ``k`` is a ``GridPoint``: its values and text come from grid ``k``'s
layout, and ``index`` counts from the union's start (grid ``k``'s first index, kept on
the layout, plus the index within the grid), so job numbers run on across the grids.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate, chain, count, repeat
from typing import TYPE_CHECKING, Any, overload

from ._ast import Value
from ._axes import Axis, _range_len
from ._errors import SweepError
from ._layout import INT64_SAFE, Layout, row_blocks, rows_at
from ._points import Point, compose
from ._sweep import Sweep
from ._text import int_text
from ._views import IndexedSweep, Positions, Reader

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["GridPoint", "Union"]


class GridLayout(Layout):
    """A grid's layout and ``offset``, the union index of the grid's first point."""

    __slots__ = ("offset",)

    offset: int

    @classmethod
    def of(cls, layout: Layout, offset: int) -> GridLayout:
        grid = object.__new__(cls)
        for name in Layout.__slots__:
            setattr(grid, name, getattr(layout, name))
        grid.offset = offset
        return grid


class GridPoint(Point):
    """A point of one grid of a union: ``index`` counts from the union's first point.

    ``_index`` stays the index within the grid, which its layout decodes (a case value's
    text is found by its digit).
    """

    __slots__ = ()

    _layout: GridLayout

    @property
    def index(self) -> int:
        return self._layout.offset + self._index

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={v!r}" for n, v in zip(self._layout.names, self._row))
        return f"Point({int_text(self.index)}: {inner})"


class Union(IndexedSweep):
    """The points of several grids, grid after grid; lazy at any size."""

    __slots__ = ("_grids", "_layouts", "_link", "_part", "_shared", "_starts")

    def __init__(
        self,
        shared: Iterable[str],
        grids: Iterable[Iterable[str]],
        *,
        link: Iterable[Sequence[str]] = (),
    ) -> None:
        self._shared = tuple(shared)
        self._link = tuple(tuple(group) for group in link)
        sweeps = []
        for k, grid in enumerate(grids):
            own = tuple(grid)
            if not own:
                raise SweepError(f"grid {k + 1} is empty: give it at least one range")
            try:
                sweep = Sweep([*self._shared, *own], link=self._link)
            except SweepError as exc:
                raise SweepError(f"grid {k + 1}: {exc.message}", exc.source, exc.span) from None
            sweeps.append(sweep)
        if not sweeps:
            raise SweepError("a union needs at least one grid")
        first = sweeps[0].names
        for k, sweep in enumerate(sweeps[1:], 2):
            if set(sweep.names) != set(first):
                missing = [n for n in first if n not in sweep.names]
                extra = [n for n in sweep.names if n not in first]
                said = [f"lacks {', '.join(missing)}"] if missing else []
                said += [f"adds {', '.join(extra)}"] if extra else []
                raise SweepError(
                    f"grid {k} {' and '.join(said)}: every grid defines the same variables "
                    f"(grid 1: {', '.join(first)}); give a variable one value where it does "
                    'not vary, e.g. X = "case:none"'
                )
        self._grids = tuple(sweeps)
        self._starts = [0, *accumulate(s.size for s in sweeps)]
        self._layouts = tuple(GridLayout.of(s._layout, at) for s, at in zip(sweeps, self._starts))
        self._part = range(self._starts[-1])

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._shared, [g.exprs[len(self._shared) :] for g in self._grids],
                           self._link, self._part))  # fmt: skip

    # -- what the points are -------------------------------------------------------------

    @property
    def grids(self) -> tuple[Sweep, ...]:
        """Each grid as a sweep of its own (the shared ranges first)."""
        return self._grids

    @property
    def shared(self) -> tuple[str, ...]:
        """The expressions every grid starts with."""
        return self._shared

    @property
    def exprs(self) -> tuple[str, ...]:
        """The shared expressions, then each grid's own, grid after grid."""
        n = len(self._shared)
        return (*self._shared, *(e for g in self._grids for e in g.exprs[n:]))

    @property
    def names(self) -> tuple[str, ...]:
        return self._grids[0].names

    @property
    def axes(self) -> tuple[Axis, ...]:
        """The first grid's axes (each grid's are ``grids[k].axes``)."""
        return self._grids[0].axes

    @property
    def full_size(self) -> int:
        return self._starts[-1]

    @property
    def size(self) -> int:
        return _range_len(self._part)

    def __repr__(self) -> str:
        r = self._part
        part = "" if r == range(self.full_size) else f" [{r.start}:{r.stop}:{r.step}]"
        return f"<Union of {len(self._grids)} grids{part} size={int_text(self.size)}>"

    # -- access --------------------------------------------------------------------------

    def _point(self, g: int) -> GridPoint:
        k = bisect_right(self._starts, g) - 1
        layout = self._layouts[k]
        local = g - layout.offset
        return GridPoint(local, layout.decode(local), layout)

    @overload
    def __getitem__(self, index: int) -> Point: ...
    @overload
    def __getitem__(self, index: slice) -> Union: ...
    def __getitem__(self, index: int | slice) -> Point | Union:
        # IndexedSweep's, written out: random access is the hot path of union[i]
        if isinstance(index, slice):
            return self._view(self._part[index])
        try:
            g = self._part[index]
        except IndexError:
            raise IndexError(
                f"sweep index {int_text(index)} out of range for {int_text(self.size)} points"
            ) from None
        return self._point(g)

    def _at(self, position: int) -> Point:
        return self._point(self._part[position])

    def _cut(self, part: range) -> Union:
        return self._view(compose(self._part, part))

    def _view(self, part: range) -> Union:
        """The same union over the union indices ``part``."""
        view = object.__new__(Union)
        view._shared, view._link, view._grids = self._shared, self._link, self._grids
        view._starts, view._layouts = self._starts, self._layouts
        view._part = part
        return view

    def __iter__(self) -> Iterator[Point]:
        r = self._part
        if r.step != 1:
            return super().__iter__()  # decoded in batches
        return self._runs(r.start, r.stop)

    def _runs(self, lo: int, hi: int) -> Iterator[Point]:
        """Union indices ``[lo, hi)``, grid by grid: each grid's run in blocks."""
        k = bisect_right(self._starts, lo) - 1
        while lo < hi:
            layout = self._layouts[k]
            stop = min(hi, self._starts[k + 1])
            local_lo, local_hi = lo - layout.offset, stop - layout.offset
            if layout.linked:  # decoded in batches, as Sweep does
                yield from IndexedSweep.__iter__(self._view(range(lo, stop)))
            else:
                rows = _block_rows(layout, local_lo, local_hi)
                yield from map(GridPoint, count(local_lo), rows, repeat(layout))
            lo, k = stop, k + 1

    def _globals(self, at: Positions) -> Positions:
        r = self._part
        if isinstance(at, list):
            return [r.start + p * r.step for p in at]
        return r.start + at * r.step

    def _reader(self) -> Reader:
        caches: list[dict[int, list[Any]]] = [{} for _ in self._layouts]
        layouts, starts = self._layouts, self._starts

        def read(at: Positions) -> Iterator[Point]:
            gs = self._globals(at)
            if isinstance(gs, list):
                ks = [bisect_right(starts, g) - 1 for g in gs]
                out: list[Any] = [None] * len(gs)
                for k in set(ks):
                    chosen = [i for i, kk in enumerate(ks) if kk == k]
                    local = [gs[i] - starts[k] for i in chosen]
                    rows = rows_at(layouts[k], local, caches[k])
                    for i, j, row in zip(chosen, local, rows):
                        out[i] = (j, row, layouts[k])
                return (GridPoint(*args) for args in out)
            import numpy as np

            kk = np.searchsorted(np.array(starts[1:-1], dtype=np.int64), gs, side="right")
            if len(gs) == 0 or kk.min() == kk.max():
                k = int(kk[0]) if len(gs) else 0
                local_array = gs - starts[k]
                local_list = local_array.tolist()
                rows = rows_at(layouts[k], local_list, caches[k], local_array)
                return map(GridPoint, local_list, rows, repeat(layouts[k]))
            locals_: list[Any] = [None] * len(gs)
            rows_: list[Any] = [None] * len(gs)
            grid_of: list[Any] = [None] * len(gs)
            for k in np.unique(kk).tolist():
                picked = np.flatnonzero(kk == k)
                local_array = gs[picked] - starts[k]
                local_list = local_array.tolist()
                rows = rows_at(layouts[k], local_list, caches[k], local_array)
                for i, j, row in zip(picked.tolist(), local_list, rows):
                    locals_[i], rows_[i], grid_of[i] = j, row, layouts[k]
            return map(GridPoint, locals_, rows_, grid_of)

        return read

    def _arrays_at(self, at: Positions) -> dict[str, npt.NDArray[Any]]:
        import numpy as np

        gs = self._globals(at)
        listed = gs if isinstance(gs, list) else gs.tolist()
        ks = [bisect_right(self._starts, g) - 1 for g in listed]
        order: list[int] = []
        parts: list[dict[str, npt.NDArray[Any]]] = []
        for k in sorted(set(ks)):
            chosen = [i for i, kk in enumerate(ks) if kk == k]
            layout = self._layouts[k]
            local = [listed[i] - layout.offset for i in chosen]
            parts.append(_columns(layout, local))
            order += chosen
        names = self.names
        if not parts:
            empty = self._grids[0]._arrays_at([])
            return {n: empty[n] for n in names}
        back = np.argsort(np.array(order, dtype=np.int64), kind="stable")
        return {n: np.concatenate([p[n] for p in parts])[back] for n in names}


def _rebuild(
    shared: tuple[str, ...],
    grids: list[tuple[str, ...]],
    link: tuple[tuple[str, ...], ...],
    part: range,
) -> Union:
    union = Union(shared, grids, link=link)
    return union._view(part)


def _columns(layout: Layout, local: list[int]) -> dict[str, npt.NDArray[Any]]:
    """The points at grid indices ``local`` as ``{name: numpy array}``."""
    import numpy as np

    if layout.total < INT64_SAFE:
        g = np.array(local, dtype=np.int64)
        digits = [(g // st) % sz for st, sz in zip(layout.strides, layout.sizes)]
    else:
        digits = [
            np.array([(x // st) % sz for x in local], dtype=np.int64)
            for st, sz in zip(layout.strides, layout.sizes)
        ]
    return layout.columns(digits)


def _block_rows(layout: Layout, lo: int, hi: int) -> Iterator[tuple[Value, ...]]:
    """The value rows of an unlinked layout's indices ``[lo, hi)``, in blocks of about
    ``BLOCK`` built by ``itertools.product`` in C (as ``Sweep`` iterates)."""
    return chain.from_iterable(rows for _, rows in row_blocks(layout, lo, hi))
