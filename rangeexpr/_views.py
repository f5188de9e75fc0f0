"""Random-access sweeps, and the filtered, shuffled and sampled views of a sweep.

- ``IndexedSweep``: a sweep whose size is known and whose points have random access (a
  product, a slice, shard or shuffle of one; a union of grids later). Everything is said
  in terms of positions ``0 <= p < size``: ``_at(p)``, ``_cut(range)``, and ``_reader()``,
  which gives the points at a batch of positions (numpy int64 when they fit), so a view
  over any indexed sweep decodes in batches without knowing what is underneath.
- ``ShuffledSweep`` maps position ``p`` to position ``Shuffle.permute(p)`` of the sweep
  underneath: random access, slices, shards and resume keep working at any size. A sample
  of ``k`` is its first ``k`` positions.
- ``FilteredSweep`` keeps the points a ``Filter`` accepts; which they are is known only
  by scanning, so it answers ``size``, ``len()`` and ``view[i]`` with a ``TypeError``
  and counts with ``count_kept()``. Its slices and shards cut the positions underneath,
  then filter. ``FilteredSample`` is the first ``k`` points of one.

Filters always sit outermost (shuffling or sampling a filtered sweep shuffles what is
underneath, then filters), so every random-access view has a random-access sweep below.
numpy is imported when a batch is decoded, not with this module: ``rangeexpr check``
starts without it.
"""

from __future__ import annotations

import operator
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from itertools import chain, islice
from typing import TYPE_CHECKING, Any, TypeAlias, overload

from ._axes import _range_len
from ._errors import SweepError
from ._layout import INT64_SAFE
from ._points import BaseSweep, Point, Progress, compose, scan_error, shard_range
from ._shuffle import Shuffle, normalize_seed
from ._text import int_text

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from ._axes import Axis
    from ._filter import Filter

__all__ = [
    "FilteredSample",
    "FilteredSweep",
    "IndexedSweep",
    "Positions",
    "Reader",
    "ShuffledSweep",
]

_BATCH = 4096
_ROW = operator.attrgetter("_row")  # a Point's values, in its sweep's name order

# Positions of an indexed sweep, a batch at a time: an int64 array when the sweep has
# fewer than INT64_SAFE points, else a list of Python ints.
Positions: TypeAlias = "npt.NDArray[np.int64] | list[int]"
Reader: TypeAlias = Callable[[Positions], Iterator[Point]]


def positions(lo: int, hi: int, size: int) -> Positions:
    """Positions ``[lo, hi)`` of a sweep of ``size`` points, as ``Positions``."""
    if size < INT64_SAFE:
        import numpy as np

        return np.arange(lo, hi, dtype=np.int64)
    return list(range(lo, hi))


# ---------------------------------------------------------------------------
# Sweeps with random access
# ---------------------------------------------------------------------------


class IndexedSweep(BaseSweep, Sequence[Point]):
    """A sweep of known size with random access: a ``Sequence`` of points.

    Subclasses give ``size``, ``_at``, ``_cut``, ``_reader`` and ``_arrays_at``; slices,
    shards, iteration, filters, shuffles and samples follow from them here.
    """

    __slots__ = ()

    @property
    def is_filtered(self) -> bool:
        return False

    @property
    def max_size(self) -> int:
        return self.size

    def count_kept(self, progress: Progress | None = None) -> int:
        """``size``: nothing to scan (so ``progress`` is not called)."""
        return self.size

    def __len__(self) -> int:
        return self.size

    def __bool__(self) -> bool:
        return self.size > 0

    @abstractmethod
    def _at(self, position: int) -> Point:
        """The point at ``position`` (``0 <= position < size``)."""

    @abstractmethod
    def _cut(self, part: range) -> IndexedSweep:
        """The sweep of the points at ``part``, a normalized range of positions."""

    @abstractmethod
    def _reader(self) -> Reader:
        """A function giving the points at a batch of ``Positions``, in their order, lazily
        (a batch of live Points would keep the garbage collector busy).

        One reader serves one iteration: it may keep what it decoded (the values of small
        axes) from one batch to the next.
        """

    @abstractmethod
    def _arrays_at(self, at: Positions) -> dict[str, npt.NDArray[Any]]:
        """The points at ``at`` as ``{name: numpy array}``."""

    @overload
    def __getitem__(self, index: int) -> Point: ...
    @overload
    def __getitem__(self, index: slice) -> IndexedSweep: ...
    def __getitem__(self, index: int | slice) -> Point | IndexedSweep:
        size = self.size
        if isinstance(index, slice):
            return self._cut(range(size)[index])
        try:
            position = range(size)[index]
        except IndexError:
            raise IndexError(
                f"sweep index {int_text(index)} out of range for {int_text(size)} points"
            ) from None
        return self._at(position)

    def shard(self, k: int, n: int) -> IndexedSweep:
        """Part k of n: points ``[k*size//n, (k+1)*size//n)``, disjoint and covering in order."""
        return self._cut(shard_range(self.size, k, n))

    def __iter__(self) -> Iterator[Point]:
        read = self._reader()
        size = self.size
        # chained in C: a generator passing each point on costs as much as making it
        return chain.from_iterable(
            read(positions(lo, min(size, lo + _BATCH), size)) for lo in range(0, size, _BATCH)
        )

    def __reversed__(self) -> Iterator[Point]:
        return iter(self[::-1])

    def arrays(self, start: int, stop: int) -> dict[str, npt.NDArray[Any]]:
        """Points ``[start, stop)`` as ``{name: numpy array}``, vectorized."""
        part = range(self.size)[start:stop]  # normalized, step 1
        return self._arrays_at(positions(part.start, part.stop, self.size))

    def where(self, expr: str | Filter) -> FilteredSweep:
        """The points where the filter holds; indices stay those of the full sweep."""
        return FilteredSweep(self, _as_filter(expr, self))

    def shuffled(self, seed: int | str) -> ShuffledSweep:
        """Every point once, in a pseudo-random order fixed by ``seed``."""
        return ShuffledSweep(self, Shuffle(self.size, normalize_seed(seed)))

    def sample(self, k: int, seed: int | str = 0) -> IndexedSweep:
        """``k`` distinct points at random: the first ``k`` of ``shuffled(seed)``."""
        _check_sample(k, self.size)
        return self.shuffled(seed)[:k]


class _View(BaseSweep):
    """A sweep defined over another one (``base``): the same names, axes and indices."""

    __slots__ = ("_base",)

    _base: BaseSweep

    @property
    def base(self) -> BaseSweep:
        """The sweep this view is defined over."""
        return self._base

    @property
    def exprs(self) -> tuple[str, ...]:
        return self._base.exprs

    @property
    def names(self) -> tuple[str, ...]:
        return self._base.names

    @property
    def axes(self) -> tuple[Axis, ...]:
        return self._base.axes

    @property
    def full_size(self) -> int:
        return self._base.full_size


class ShuffledSweep(_View, IndexedSweep):
    """The points of ``base`` in a seeded pseudo-random order, with their own indices.

    Position ``p`` holds ``base[shuffle.permute(q)]`` for ``q = positions[p]``, the range
    of shuffled positions this view covers, so slices, shards and samples are O(1).
    """

    __slots__ = ("_positions", "_shuffle")

    _base: IndexedSweep

    def __init__(self, base: IndexedSweep, shuffle: Shuffle, part: range | None = None) -> None:
        self._base = base
        self._shuffle = shuffle
        self._positions = range(base.size) if part is None else part

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

    def _at(self, position: int) -> Point:
        return self._base._at(self._shuffle.permute(self._positions[position]))

    def _cut(self, part: range) -> ShuffledSweep:
        return ShuffledSweep(self._base, self._shuffle, compose(self._positions, part))

    def _permuted(self, at: Positions) -> Positions:
        """The positions in ``base`` of this view's positions ``at``, in numpy when the
        shuffle allows (``n <= 2**64``)."""
        shuffle, r = self._shuffle, self._positions
        if not shuffle.vectorized:
            listed = at if isinstance(at, list) else at.tolist()
            return [shuffle.permute(r.start + p * r.step) for p in listed]
        import numpy as np

        if isinstance(at, list) or shuffle.n >= INT64_SAFE:  # r.start + at * r.step may overflow
            listed = at if isinstance(at, list) else at.tolist()
            shuffled = np.array([r.start + p * r.step for p in listed], dtype=np.uint64)
        else:
            shuffled = (r.start + at * r.step).astype(np.uint64)
        js = shuffle.permute_array(shuffled)
        return js.astype(np.int64) if shuffle.n < INT64_SAFE else js.tolist()

    def _reader(self) -> Reader:
        read = self._base._reader()
        return lambda at: read(self._permuted(at))

    def _arrays_at(self, at: Positions) -> dict[str, npt.NDArray[Any]]:
        return self._base._arrays_at(self._permuted(at))


# ---------------------------------------------------------------------------
# Views known only by scanning
# ---------------------------------------------------------------------------


class _Scanned(_View):
    """What a filtered view answers: ``TypeError`` where only a scan would know."""

    __slots__ = ()

    @property
    def is_filtered(self) -> bool:
        return True

    @property
    def size(self) -> int:
        raise scan_error("the size")

    def __len__(self) -> int:
        raise scan_error("the length")

    def __bool__(self) -> bool:
        """Exact: scans up to the first kept point (all of them if none is kept)."""
        return next(iter(self), None) is not None


class FilteredSweep(_Scanned):
    """The points of ``base`` that the filter keeps, with their unfiltered indices.

    Slices and shards cut the positions of ``base`` and then filter, so every part of a
    shard plan is the same as without the filter, minus the dropped points.
    ``arrays(start, stop)`` likewise gives the kept points among positions
    ``[start, stop)`` of ``base``.
    """

    __slots__ = ("_keep",)

    def __init__(self, base: BaseSweep, keep: Filter) -> None:
        self._base = base
        self._keep = keep

    @property
    def filter(self) -> Filter:
        return self._keep

    @property
    def max_size(self) -> int:
        return self._base.max_size

    def count_kept(self, progress: Progress | None = None) -> int:
        """The exact number of kept points, by scanning; ``progress(seen, kept)`` per batch,
        ``seen`` counting the points of ``base`` examined."""
        kept = seen = 0
        points = iter(self._base)
        while batch := list(islice(points, _BATCH)):
            seen += len(batch)
            kept += sum(1 for _ in self._kept(batch))
            if progress is not None:
                progress(seen, kept)
        return kept

    def _kept(self, points: Iterator[Point] | list[Point]) -> Iterator[Point]:
        return self._keep.kept(points, self.names, _ROW)

    def __repr__(self) -> str:
        return f"<FilteredSweep {self._keep.source!r} of {self._base!r}>"

    @overload
    def __getitem__(self, index: int) -> Point: ...
    @overload
    def __getitem__(self, index: slice) -> FilteredSweep: ...
    def __getitem__(self, index: int | slice) -> Point | FilteredSweep:
        if isinstance(index, slice):
            return FilteredSweep(self._base[index], self._keep)
        raise scan_error("index")

    def shard(self, k: int, n: int) -> FilteredSweep:
        return FilteredSweep(self._base.shard(k, n), self._keep)

    def __iter__(self) -> Iterator[Point]:
        return self._kept(iter(self._base))

    def __reversed__(self) -> Iterator[Point]:
        return self._kept(reversed(self._base))

    def arrays(self, start: int, stop: int) -> dict[str, npt.NDArray[Any]]:
        """The kept points among positions ``[start, stop)`` of ``base``, as ``{name: array}``."""
        import numpy as np

        part = range(self._base.max_size)[start:stop]
        mask = np.fromiter(
            map(self._keep, self._base[part.start : part.stop]), dtype=bool, count=len(part)
        )
        return {name: column[mask] for name, column in self._base.arrays(start, stop).items()}

    def where(self, expr: str | Filter) -> FilteredSweep:
        from ._filter import Filter

        keep = _as_filter(expr, self)
        both = Filter(f"({self._keep.source}) and ({keep.source})", names=self.names)
        return FilteredSweep(self._base, both)

    def shuffled(self, seed: int | str) -> FilteredSweep:
        return FilteredSweep(self._base.shuffled(seed), self._keep)

    def sample(self, k: int, seed: int | str = 0) -> FilteredSample:
        """``k`` kept points at random: the first ``k`` kept ones of the shuffled order
        (fewer if the filter keeps fewer)."""
        _check_sample(k, self.max_size)
        return FilteredSample(FilteredSweep(self._base.shuffled(seed), self._keep), k)


class FilteredSample(_Scanned):
    """The first ``limit`` points of a filtered sweep (a sample of a filtered sweep).

    Which positions they come from is known only by scanning, so slices, shards, arrays,
    shuffles and samples of it are refused with a ``SweepError``.
    """

    __slots__ = ("_limit",)

    def __init__(self, base: BaseSweep, limit: int) -> None:
        self._base = base
        self._limit = limit

    @property
    def max_size(self) -> int:
        """``k``, or the bound of the filtered sweep if that is smaller."""
        return min(self._limit, self._base.max_size)

    def __repr__(self) -> str:
        return f"<first {self._limit} of {self._base!r}>"

    def __iter__(self) -> Iterator[Point]:
        return islice(self._base, self._limit)

    def __reversed__(self) -> Iterator[Point]:
        return reversed(list(self))  # at most k points, as asked for

    def count_kept(self, progress: Progress | None = None) -> int:
        """The exact number of points (fewer than ``k`` if the filter keeps fewer), by
        scanning; ``progress(found, found)`` after each batch of points found."""
        found = 0
        points = iter(self)
        while step := sum(1 for _ in islice(points, _BATCH)):
            found += step
            if progress is not None:
                progress(found, found)
        return found

    @overload
    def __getitem__(self, index: int) -> Point: ...
    @overload
    def __getitem__(self, index: slice) -> BaseSweep: ...
    def __getitem__(self, index: int | slice) -> Point | BaseSweep:
        if isinstance(index, slice):
            raise self._no_random_access()
        raise scan_error("index")

    def shard(self, k: int, n: int) -> BaseSweep:
        raise self._no_random_access()

    def arrays(self, start: int, stop: int) -> dict[str, npt.NDArray[Any]]:
        raise self._no_random_access()

    def where(self, expr: str | Filter) -> FilteredSweep:
        """The sampled points where ``expr`` holds."""
        return FilteredSweep(self, _as_filter(expr, self))

    def shuffled(self, seed: int | str) -> BaseSweep:
        """Refused now, rather than on the first point: a shuffle needs random access."""
        raise self._no_random_access()

    def sample(self, k: int, seed: int | str = 0) -> BaseSweep:
        raise self._no_random_access()

    @staticmethod
    def _no_random_access() -> SweepError:
        return SweepError(
            "a sample of a filtered sweep has no random access, slices or shards "
            "(which points it holds is known only by scanning); iterate it, or filter a "
            "sample of the unfiltered sweep instead"
        )


def _as_filter(expr: str | Filter, sweep: BaseSweep) -> Filter:
    from ._filter import Filter  # here: a run without --where never loads the filter parser

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
