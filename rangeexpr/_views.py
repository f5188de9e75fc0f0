"""Linked axes, filtered, shuffled and sampled sweeps, all without materializing.

- Linked axes change only the mixed-radix layout: the axes of a group share one digit, at
  the product position of the group's first member, so decoding, slicing and sharding stay
  O(number of axes) (``link_strides``).
- ``FilteredSweep`` keeps the points a ``Filter`` accepts. Its indices stay those of the
  unfiltered sweep, so slices and shards cut the unfiltered index space and then filter;
  its ``size`` is an upper bound (``max_size``), ``count_kept()`` scans for the exact number.
- ``ShuffledSweep`` maps position ``p`` to point ``Shuffle.permute(p)`` of the sweep
  underneath: random access, slices, shards and resume keep working at any size. A sample
  of ``k`` is its first ``k`` positions.

Filters always sit outermost (shuffling or sampling a filtered sweep shuffles what is
underneath, then filters), so every random-access view has a plain index space below it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice, repeat
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from ._axes import _range_len
from ._errors import SweepError
from ._filter import Filter
from ._shuffle import Shuffle, normalize_seed
from ._sweep import Point, Sweep

if TYPE_CHECKING:
    import numpy.typing as npt

    from ._axes import Axis
    from ._sweep import _Layout

__all__ = [
    "FilteredSweep",
    "ShuffledSweep",
    "link_strides",
]

_BATCH = 4096
_SMALL_AXIS = 1 << 16  # axes up to this size are listed once per iteration, then indexed
_INT64_SAFE = 1 << 62  # global indices below this are decoded with numpy int64 arithmetic


# ---------------------------------------------------------------------------
# Linked axes
# ---------------------------------------------------------------------------


def link_strides(
    axes: Sequence[Axis], link: Iterable[Sequence[str]]
) -> tuple[tuple[int, ...], int]:
    """Mixed-radix strides (one per axis) and the total size, with linked axes sharing a digit.

    Each group advances together and takes the product position of its first member; the
    other axes keep their order. Lengths within a group must be equal.
    """
    names = [a.name for a in axes]
    where = {name: k for k, name in enumerate(names)}
    anchor = list(range(len(axes)))  # anchor[k]: the axis whose digit axis k uses
    linked: set[str] = set()
    for names_given in link:
        group = tuple(names_given)
        if len(group) < 2:
            raise SweepError(f"a link needs at least two names, got {','.join(group)!r}")
        for name in group:
            if name not in where:
                raise SweepError(
                    f"cannot link {name!r}: no range defines it "
                    f"(the sweep defines: {', '.join(names)}){_did_you_mean(name, names)}"
                )
            if name in linked:
                raise SweepError(f"{name!r} is linked twice; list each axis in one link only")
            linked.add(name)
        first = where[group[0]]
        for name in group[1:]:
            k = where[name]
            if axes[k].size != axes[first].size:
                expr = axes[k].expr
                raise SweepError(
                    f"cannot link {group[0]} and {name}: {group[0]} has "
                    f"{axes[first].size} values but {name} has {axes[k].size}; linked axes "
                    "advance together, so they need the same length",
                    expr.source,
                    (0, len(expr.source)),
                )
            anchor[k] = first
    strides = [0] * len(axes)
    stride = 1
    for k in range(len(axes) - 1, -1, -1):  # anchors, last varying fastest
        if anchor[k] == k:
            strides[k] = stride
            stride *= axes[k].size
    for k, a in enumerate(anchor):
        strides[k] = strides[a]
    return tuple(strides), stride


def _did_you_mean(name: str, names: Sequence[str]) -> str:
    same_case = [n for n in names if n.lower() == name.lower()]
    close = same_case or difflib.get_close_matches(name, names, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def rows_at(
    layout: _Layout,
    indices: Sequence[int],
    cache: dict[int, list[Any]],
    as_array: npt.NDArray[np.int64] | None = None,
) -> list[Any]:
    """The value rows of the points at global ``indices``, decoded a batch at a time.

    ``cache`` keeps the value lists of small axes between batches. ``as_array``, the same
    indices as int64 (when they fit), lets numpy compute the digits and large axes' values.
    """
    cols: list[Any] = []
    for k, (a, st, sz) in enumerate(zip(layout.axes, layout.strides, layout.sizes)):
        if as_array is not None:
            digit_array = (as_array // st) % sz
            if sz > _SMALL_AXIS:
                cols.append(a.array(digit_array).tolist())
                continue
            digits = digit_array.tolist()
        else:
            digits = [(g // st) % sz for g in indices]
            if sz > _SMALL_AXIS:
                cols.append(map(a._at, digits))
                continue
        values = cache.get(k)
        if values is None:
            values = cache[k] = a.values(0, sz)
        cols.append(map(values.__getitem__, digits))
    return list(zip(*cols)) if cols else [() for _ in indices]


def iter_decoded(sweep: Sweep, indices: range) -> Iterator[Point]:
    """Points at ``indices`` (global), decoded in batches: iteration for linked layouts."""
    layout = sweep._layout
    cache: dict[int, list[Any]] = {}
    fits = layout.total < _INT64_SAFE
    for lo in range(0, len(indices), _BATCH):
        chunk = indices[lo : lo + _BATCH]
        if fits:
            as_array = np.arange(chunk.start, chunk.stop, chunk.step, dtype=np.int64)
            rows = rows_at(layout, chunk, cache, as_array)
        else:
            rows = rows_at(layout, chunk, cache)
        yield from map(Point, chunk, rows, repeat(layout))


# ---------------------------------------------------------------------------
# The views
# ---------------------------------------------------------------------------


class _View(Sweep):
    """A sweep defined over another one (``_base``); shares its names, axes and layout."""

    __slots__ = ("_base",)

    def __init__(self, base: Sweep) -> None:  # deliberately not Sweep.__init__
        self._base = base
        self.exprs = base.exprs
        self._layout = base._layout
        self._indices = base.indices

    @property
    def full_size(self) -> int:
        return self._base.full_size

    @property
    def base(self) -> Sweep:
        """The sweep this view is defined over."""
        return self._base

    def _view(self, indices: range) -> Sweep:
        raise TypeError(f"{type(self).__name__} cannot be re-indexed by a range")


class FilteredSweep(_View):
    """The points of ``base`` that ``keep`` accepts, with their unfiltered indices.

    ``size`` (and ``len``) is an upper bound: the size of the sweep underneath, as
    ``max_size``. ``count_kept()`` gives the exact number by scanning. Slices and shards cut the
    unfiltered positions and then filter, so every part of a shard plan is the same as
    without the filter, minus the dropped points. ``filtered[i]`` is the point at position
    ``i`` of the sweep underneath, or an ``IndexError`` if the filter drops it.
    """

    __slots__ = ("_keep",)

    def __init__(self, base: Sweep, keep: Filter) -> None:
        super().__init__(base)
        self._keep = keep

    @property
    def filter(self) -> Filter:
        return self._keep

    @property
    def is_filtered(self) -> bool:
        return True

    @property
    def size(self) -> int:
        """An upper bound: the number of points before filtering (see ``count_kept()``)."""
        return self._base.size

    @property
    def max_size(self) -> int:
        return self._base.size

    def count_kept(self, progress: Callable[[int, int], object] | None = None) -> int:
        """The exact number of kept points, by scanning; ``progress(seen, kept)`` per batch."""
        kept = seen = 0
        points = iter(self._base)
        while batch := list(islice(points, _BATCH)):
            seen += len(batch)
            kept += sum(1 for _ in self._kept(batch))
            if progress is not None:
                progress(seen, kept)
        return kept

    def _kept(self, points: Iterable[Point]) -> Iterator[Point]:
        """The points the filter keeps, evaluated on their value rows (the fast path)."""
        keep = self._keep.on_rows(self.names)
        point = None
        try:
            for point in points:
                if keep(point._row):
                    yield point
        except self._keep.failures() as exc:
            assert point is not None
            raise self._keep.failure(exc, point) from None

    def __repr__(self) -> str:
        return f"<FilteredSweep {self._keep.source!r} of {self._base!r}>"

    @overload
    def __getitem__(self, index: int) -> Point: ...
    @overload
    def __getitem__(self, index: slice) -> Sweep: ...
    def __getitem__(self, index: int | slice) -> Point | Sweep:
        if isinstance(index, slice):
            return FilteredSweep(self._base[index], self._keep)
        point = self._base[index]
        if not self._keep(point):
            raise IndexError(f"point {point.index} is dropped by the filter {self._keep.source!r}")
        return point

    def shard(self, k: int, n: int) -> Sweep:
        return FilteredSweep(self._base.shard(k, n), self._keep)

    def __iter__(self) -> Iterator[Point]:
        return self._kept(self._base)

    def __reversed__(self) -> Iterator[Point]:
        return self._kept(reversed(self._base))

    def arrays(self, start: int, stop: int) -> dict[str, npt.NDArray[Any]]:
        """The kept points among positions ``[start, stop)``, as ``{name: array}``."""
        positions = range(self.size)[start:stop]
        mask = np.fromiter(
            map(self._keep, self._base[positions.start : positions.stop]),
            dtype=bool,
            count=len(positions),
        )
        return {name: column[mask] for name, column in self._base.arrays(start, stop).items()}

    def where(self, expr: str | Filter) -> Sweep:
        keep = _as_filter(expr, self)
        both = Filter(f"({self._keep.source}) and ({keep.source})", names=self.names)
        return FilteredSweep(self._base, both)

    def shuffled(self, seed: int | str) -> Sweep:
        return FilteredSweep(self._base.shuffled(seed), self._keep)

    def sample(self, k: int, seed: int | str = 0) -> Sweep:
        """``k`` kept points at random: the first ``k`` kept ones of the shuffled order."""
        _check_sample(k, self.size)
        return _FirstKept(FilteredSweep(self._base.shuffled(seed), self._keep), k)


class _FirstKept(_View):
    """The first ``limit`` points of a filtered sweep (a sample of a filtered sweep).

    Which positions they come from is known only by scanning, so slices and shards of it
    are refused with a clear error.
    """

    __slots__ = ("_limit",)

    def __init__(self, base: FilteredSweep, limit: int) -> None:
        super().__init__(base)
        self._limit = limit

    @property
    def is_filtered(self) -> bool:
        return True

    @property
    def size(self) -> int:
        """An upper bound: ``k``, or fewer if the filter keeps fewer points."""
        return min(self._limit, self._base.size)

    @property
    def max_size(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"<first {self._limit} of {self._base!r}>"

    def __iter__(self) -> Iterator[Point]:
        return islice(self._base, self._limit)

    def count_kept(self, progress: Callable[[int, int], object] | None = None) -> int:
        """The exact number of points, by scanning (fewer than ``k`` if the filter keeps fewer)."""
        kept = sum(1 for _ in self)
        if progress is not None:
            progress(kept, kept)
        return kept

    @overload
    def __getitem__(self, index: int) -> Point: ...
    @overload
    def __getitem__(self, index: slice) -> Sweep: ...
    def __getitem__(self, index: int | slice) -> Point | Sweep:
        raise self._no_random_access()

    def shard(self, k: int, n: int) -> Sweep:
        raise self._no_random_access()

    def arrays(self, start: int, stop: int) -> dict[str, npt.NDArray[Any]]:
        raise self._no_random_access()

    def shuffled(self, seed: int | str) -> Sweep:
        """Refused now, rather than on the first point: a shuffle needs random access."""
        raise self._no_random_access()

    def sample(self, k: int, seed: int | str = 0) -> Sweep:
        raise self._no_random_access()

    @staticmethod
    def _no_random_access() -> SweepError:
        return SweepError(
            "a sample of a filtered sweep has no random access, slices or shards "
            "(which points it holds is known only by scanning); iterate it, or filter a "
            "sample of the unfiltered sweep instead"
        )


class ShuffledSweep(_View):
    """The points of ``base`` in a seeded pseudo-random order, with their own indices.

    Position ``p`` holds ``base[shuffle.permute(p)]``; ``positions`` is the range of
    shuffled positions this view covers, so slices, shards and samples are O(1).
    """

    __slots__ = ("_positions", "_shuffle")

    def __init__(self, base: Sweep, shuffle: Shuffle, positions: range | None = None) -> None:
        super().__init__(base)
        self._shuffle = shuffle
        self._positions = range(base.size) if positions is None else positions

    @property
    def seed(self) -> str:
        return self._shuffle.seed

    @property
    def size(self) -> int:
        return _range_len(self._positions)

    def __repr__(self) -> str:
        r = self._positions
        part = f"[{r.start}:{r.stop}:{r.step}]"
        return f"<ShuffledSweep seed={self.seed!r} {part} of {self._base!r}>"

    @overload
    def __getitem__(self, index: int) -> Point: ...
    @overload
    def __getitem__(self, index: slice) -> Sweep: ...
    def __getitem__(self, index: int | slice) -> Point | Sweep:
        if isinstance(index, slice):
            return ShuffledSweep(self._base, self._shuffle, self._positions[index])
        try:
            position = self._positions[index]
        except IndexError:
            raise IndexError(f"sweep index {index} out of range for {self.size} points") from None
        return self._base[self._shuffle.permute(position)]

    def shard(self, k: int, n: int) -> Sweep:
        if not (isinstance(k, int) and isinstance(n, int)) or n < 1 or not 0 <= k < n:
            raise ValueError(f"shard {k}/{n}: need integers 0 <= K < N")
        size = self.size
        part = self._positions[k * size // n : (k + 1) * size // n]
        return ShuffledSweep(self._base, self._shuffle, part)

    def _base_positions(self, lo: int, hi: int) -> list[int]:
        """Positions in ``base`` of this view's points ``[lo, hi)``."""
        r = self._positions[lo:hi]
        if r.step == 1:
            return list(self._shuffle.positions(r.start, r.stop))
        return [self._shuffle.permute(p) for p in r]

    def __iter__(self) -> Iterator[Point]:
        base = self._base
        if type(base) is not Sweep:  # a view under the shuffle: its own random access
            return (base[j] for lo in range(0, self.size, _BATCH) for j in self._batch(lo))
        return self._iter_plain(base)

    def _batch(self, lo: int) -> list[int]:
        return self._base_positions(lo, min(self.size, lo + _BATCH))

    def _iter_plain(self, base: Sweep) -> Iterator[Point]:
        layout = base._layout
        r = base.indices
        positions = self._positions
        # numpy all the way when the shuffle and every global index fit in 64-bit ints
        fast = self._shuffle.vectorized and layout.total < _INT64_SAFE and positions.step == 1
        cache: dict[int, list[Any]] = {}
        for lo in range(0, self.size, _BATCH):
            if fast:
                part = positions[lo : lo + _BATCH]
                batch = np.arange(part.start, part.stop, dtype=np.uint64)
                js = self._shuffle.permute_array(batch).astype(np.int64)
                as_array = r.start + js * r.step
                gs = as_array.tolist()
                rows = rows_at(layout, gs, cache, as_array)
            else:
                gs = [r[j] for j in self._batch(lo)]
                rows = rows_at(layout, gs, cache)
            yield from map(Point, gs, rows, repeat(layout))

    def arrays(self, start: int, stop: int) -> dict[str, npt.NDArray[Any]]:
        """Points ``[start, stop)`` of the shuffled order as ``{name: array}``."""
        positions = range(self.size)[start:stop]  # normalized, step 1
        js = self._base_positions(positions.start, positions.stop)
        base = self._base
        if type(base) is not Sweep:
            rows = [base[j] for j in js]
            return {n: np.array([p[n] for p in rows]) for n in self.names}
        layout = base._layout
        gs = [base.indices[j] for j in js]
        out: dict[str, npt.NDArray[Any]] = {}
        for a, st, sz in zip(layout.axes, layout.strides, layout.sizes):
            digits = [(g // st) % sz for g in gs]
            out[a.name] = a.array(np.array(digits, dtype=np.int64))
        return out


# ---------------------------------------------------------------------------
# Constructors (called by the methods of Sweep)
# ---------------------------------------------------------------------------


def _as_filter(expr: str | Filter, sweep: Sweep) -> Filter:
    if isinstance(expr, Filter):
        return Filter(expr.source, names=sweep.names)
    if not isinstance(expr, str):
        raise TypeError(f"a filter is a str, not {type(expr).__name__}")
    return Filter(expr, names=sweep.names)


def _check_sample(k: int, size: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise SweepError(f"a sample size is a whole number >= 0, not {k!r}")
    if k > size:
        raise SweepError(f"cannot sample {k} distinct points from a sweep of {size}")


def where(sweep: Sweep, expr: str | Filter) -> Sweep:
    """``sweep.where(expr)``: the points for which the filter holds."""
    return FilteredSweep(sweep, _as_filter(expr, sweep))


def shuffled(sweep: Sweep, seed: int | str) -> Sweep:
    """``sweep.shuffled(seed)``: every point once, in the seed's pseudo-random order."""
    return ShuffledSweep(sweep, Shuffle(sweep.size, normalize_seed(seed)))


def sample(sweep: Sweep, k: int, seed: int | str = 0) -> Sweep:
    """``sweep.sample(k, seed)``: ``k`` distinct points, the first ``k`` of the shuffle."""
    _check_sample(k, sweep.size)
    return sweep.shuffled(seed)[:k]
