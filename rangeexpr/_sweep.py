"""Sweeps: the lazy Cartesian product of axes, in ``itertools.product`` order.

A sweep is a list of axes plus a ``range`` of selected global indices (slices and shards
narrow the range), so size, random access, slicing and sharding are O(number of axes)
for any size. Point ``g`` is decoded by mixed radix: the digit of axis k is
``(g // stride[k]) % size[k]``, the last axis varying fastest.

Iteration does not decode each point: it walks blocks of about ``_BLOCK`` points, each
the product of the trailing axes (materialized once, bounded by ``_BLOCK`` values) with a
chunk of the next axis, and lets ``itertools.product`` build the tuples in C.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import count, islice, product, repeat
from typing import TYPE_CHECKING, Any, overload

from ._ast import RangeExpr, Value
from ._axes import Axis, _range_len, axis
from ._errors import SweepError
from ._parse import parse
from ._text import format_value, int_text

if TYPE_CHECKING:
    import numpy.typing as npt

    from ._filter import Filter

__all__ = ["Point", "Sweep"]

_BLOCK = 4096
_TABLE = 4096  # axes up to this long keep their values (and texts) in a table: O(axes) memory


class _Layout:
    """What every Point of one sweep shares: names, positions, axes and their radices."""

    __slots__ = (
        "array_tables",
        "axes",
        "case_axes",
        "getters",
        "linked",
        "names",
        "positions",
        "sizes",
        "strides",
        "text_tables",
        "total",
    )

    def __init__(self, axes: Sequence[Axis], link: Iterable[Sequence[str]] = ()):
        self.axes = tuple(axes)
        self.names = tuple(a.name for a in axes)
        self.positions = {n: k for k, n in enumerate(self.names)}
        self.sizes = tuple(a.size for a in axes)
        strides = [1] * len(axes)
        for k in range(len(axes) - 2, -1, -1):
            strides[k] = strides[k + 1] * self.sizes[k + 1]
        self.strides = tuple(strides)
        self.total = strides[0] * self.sizes[0] if axes else 1
        self.linked = bool(link)
        if link:  # linked axes share one digit (see _views.link_strides)
            from ._views import link_strides

            self.strides, self.total = link_strides(self.axes, link)
        self.case_axes = frozenset(k for k, a in enumerate(axes) if a.kind == "case")
        # element i of axis k: a table lookup for short axes, else computed on demand
        at = [a.values(0, a.size).__getitem__ if a.size <= _TABLE else a._getter() for a in axes]
        self.getters = tuple(zip(at, self.strides, self.sizes))
        self.text_tables: dict[int, list[str] | None] = {}
        self.array_tables: dict[int, npt.NDArray[Any]] = {}

    def decode(self, g: int) -> tuple[Value, ...]:
        return tuple([at((g // st) % sz) for at, st, sz in self.getters])

    def array_table(self, k: int) -> npt.NDArray[Any]:
        """Every element of the short axis k as a numpy array, for ``Sweep.arrays``."""
        import numpy as np

        if k not in self.array_tables:
            axis = self.axes[k]
            self.array_tables[k] = axis.array(np.arange(axis.size, dtype=np.int64))
        return self.array_tables[k]

    def text_table(self, k: int) -> list[str] | None:
        """The texts of every element of axis k if it is short (or a case list), else None."""
        if k not in self.text_tables:
            axis = self.axes[k]
            short = axis.size <= _TABLE or k in self.case_axes
            self.text_tables[k] = [axis.text(i) for i in range(axis.size)] if short else None
        return self.text_tables[k]


class Point(Mapping[str, Value]):
    """One point of a sweep: an immutable Mapping name -> typed value, with its index."""

    __slots__ = ("_index", "_layout", "_row")

    def __init__(self, index: int, row: tuple[Value, ...], layout: _Layout):
        self._index = index
        self._row = row  # the values in the sweep's name order
        self._layout = layout

    @property
    def index(self) -> int:
        """The point's index in the full sweep (stable across slices, shards and filters)."""
        return self._index

    def __getitem__(self, name: str) -> Value:
        return self._row[self._layout.positions[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._layout.names)

    def __len__(self) -> int:
        return len(self._row)

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={v!r}" for n, v in zip(self._layout.names, self._row))
        return f"Point({int_text(self._index)}: {inner})"

    def text(self, name: str) -> str:
        """The text a template writes for ``name``: a case value exactly as written."""
        layout = self._layout
        k = layout.positions[name]
        if k in layout.case_axes:
            return layout.axes[k].text((self._index // layout.strides[k]) % layout.sizes[k])
        return format_value(self._row[k])


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


class Sweep(Sequence[Point]):
    """The lazy Cartesian product of range expressions; the first varies slowest."""

    __slots__ = ("_indices", "_layout", "exprs")

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
        self.exprs: tuple[str, ...] = tuple(e.source for e in parsed)
        self._layout = _Layout([axis(e) for e in parsed], _link_groups(link))
        self._indices = range(self._layout.total)

    def _view(self, indices: range) -> Sweep:
        view = object.__new__(type(self))
        view.exprs, view._layout, view._indices = self.exprs, self._layout, indices
        return view

    # -- size and access -----------------------------------------------------------------

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

    def __len__(self) -> int:
        return self.size

    def __bool__(self) -> bool:
        return self.size > 0

    def __repr__(self) -> str:
        r = self._indices
        part = ""
        if r != range(self._layout.total):
            part = f" [{int_text(r.start)}:{int_text(r.stop)}:{int_text(r.step)}]"
        return f"<Sweep {list(self.exprs)!r}{part} size={int_text(self.size)}>"

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
        if isinstance(index, slice):
            return self._view(self._indices[index])
        try:
            g = self._indices[index]
        except IndexError:
            raise IndexError(
                f"sweep index {int_text(index)} out of range for {int_text(self.size)} points"
            ) from None
        return Point(g, self._layout.decode(g), self._layout)

    def shard(self, k: int, n: int) -> Sweep:
        """Part k of n: points ``[k*size//n, (k+1)*size//n)``, disjoint and covering in order."""
        if not (isinstance(k, int) and isinstance(n, int)) or n < 1 or not 0 <= k < n:
            raise ValueError(f"shard {k}/{n}: need integers 0 <= K < N")
        size = self.size
        return self._view(self._indices[k * size // n : (k + 1) * size // n])

    # -- views: filter, shuffle, sample (rangeexpr/_views.py) ---------------------------

    @property
    def is_filtered(self) -> bool:
        """True for a filtered sweep, whose ``size`` is then only an upper bound."""
        return False

    @property
    def max_size(self) -> int:
        """An upper bound on the number of points (``size`` unless filtered)."""
        return self.size

    def where(self, expr: str | Filter) -> Sweep:
        """The points where the filter holds; indices stay those of this sweep."""
        from ._views import where

        return where(self, expr)

    def shuffled(self, seed: int | str) -> Sweep:
        """Every point once, in a pseudo-random order fixed by ``seed``."""
        from ._views import shuffled

        return shuffled(self, seed)

    def sample(self, k: int, seed: int | str = 0) -> Sweep:
        """``k`` distinct points at random: the first ``k`` of ``shuffled(seed)``."""
        from ._views import sample

        return sample(self, k, seed)

    # -- iteration -----------------------------------------------------------------------

    def __iter__(self) -> Iterator[Point]:
        r = self._indices
        if self._layout.linked:
            from ._views import iter_decoded

            return iter_decoded(self, r)
        if r.step == 1:
            return self._iter_block(r.start, r.stop)
        layout = self._layout
        return (Point(g, layout.decode(g), layout) for g in r)

    def _iter_block(self, lo: int, hi: int) -> Iterator[Point]:
        layout = self._layout
        axes, sizes = layout.axes, layout.sizes
        n = len(axes)
        if lo >= hi:
            return
        k, inner = n, 1  # axes[k:] are small enough to hold whole
        while k > 0 and inner * sizes[k - 1] <= _BLOCK:
            k -= 1
            inner *= sizes[k]
        inner_lists = [axes[m].values(0, sizes[m]) for m in range(k, n)]
        if k == 0:
            yield from map(Point, count(lo), islice(product(*inner_lists), lo, hi), repeat(layout))
            return
        j = k - 1  # the axis walked in chunks
        chunk = max(1, _BLOCK // inner)
        g = lo
        while g < hi:
            q, inner_off = divmod(g, inner)
            q, dj = divmod(q, sizes[j])
            outer: list[list[Value]] = []
            for m in range(j - 1, -1, -1):
                q, d = divmod(q, sizes[m])
                outer.append([axes[m]._at(d)])
            outer.reverse()
            dj_end = min(sizes[j], dj + chunk)
            take = min((dj_end - dj) * inner - inner_off, hi - g)
            block = product(*outer, axes[j].values(dj, dj_end), *inner_lists)
            yield from map(
                Point, count(g), islice(block, inner_off, inner_off + take), repeat(layout)
            )
            g += take

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
        if max(first, last, layout.total) < 2**62:
            g = first + np.arange(len(positions), dtype=np.int64) * (r.step * positions.step)
            if layout.linked:
                digits = [(g // st) % sz for st, sz in zip(layout.strides, layout.sizes)]
            else:
                digits = np.unravel_index(g, layout.sizes)
        else:  # beyond int64: exact Python ints, one per point
            gs = [r[p] for p in positions]
            digits = [
                np.array([(x // st) % sz for x in gs], dtype=np.int64)
                for st, sz in zip(layout.strides, layout.sizes)
            ]
        return {
            a.name: a.array(d) if a.size > _TABLE else np.take(layout.array_table(k), d)
            for k, (a, d) in enumerate(zip(layout.axes, digits))
        }
