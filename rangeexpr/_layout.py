"""The mixed-radix layout of a product of axes: global index -> values, one or many at a time.

Point ``g`` is decoded by mixed radix: the digit of axis k is ``(g // stride[k]) % size[k]``,
the last axis varying fastest. Linked axes share one digit, at the product position of the
group's first member (``link_strides``), so decoding, slicing and sharding stay O(number of
axes). ``rows_at`` decodes a batch of indices at once, with numpy when they fit in int64.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice, product
from typing import TYPE_CHECKING, Any

from ._ast import Value
from ._axes import Axis
from ._errors import SweepError
from ._text import did_you_mean

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["INT64_SAFE", "Layout", "link_strides", "rows_at"]

_TABLE = 4096  # axes up to this long keep their values (and texts) in a table: O(axes) memory
_SMALL_AXIS = 1 << 16  # axes up to this size are listed once per iteration, then indexed
INT64_SAFE = 1 << 62  # global indices below this are decoded with numpy int64 arithmetic


class Layout:
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
        if link:
            self.strides, self.total = link_strides(self.axes, link)
        self.case_axes = frozenset(k for k, a in enumerate(axes) if a.kind == "case")
        # element i of axis k: a table lookup for short axes, else computed on demand
        at = [a.values(0, a.size).__getitem__ if a.size <= _TABLE else a._getter() for a in axes]
        self.getters = tuple(zip(at, self.strides, self.sizes))
        self.text_tables: dict[int, list[str] | None] = {}
        self.array_tables: dict[int, npt.NDArray[Any]] = {}

    def decode(self, g: int) -> tuple[Value, ...]:
        return tuple([at((g // st) % sz) for at, st, sz in self.getters])

    def short(self, k: int) -> bool:
        """Whether axis k is short enough to keep whole (``array_table``)."""
        return self.sizes[k] <= _TABLE

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

    def columns(self, digits: Sequence[npt.NDArray[np.int64]]) -> dict[str, npt.NDArray[Any]]:
        """``{name: numpy array}`` from each axis's digits: a table lookup for short axes."""
        import numpy as np

        return {
            a.name: np.take(self.array_table(k), d) if self.short(k) else a.array(d)
            for k, (a, d) in enumerate(zip(self.axes, digits))
        }


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
                    f"(the sweep defines: {', '.join(names)}){did_you_mean(name, names)}"
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


def rows_at(
    layout: Layout,
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


BLOCK = 4096  # points per block when iterating: the trailing axes' product, held whole


def row_blocks(
    layout: Layout, lo: int, hi: int
) -> Iterator[tuple[int, Iterator[tuple[Value, ...]]]]:
    """The value rows of an unlinked layout's indices ``[lo, hi)``, as ``(first index, rows)``
    blocks of about ``BLOCK``: the product of the trailing axes (materialized once) with a
    chunk of the axis before them, built by ``itertools.product`` in C, never decoding each
    index. Shared by ``Sweep`` and ``Union`` iteration."""
    axes, sizes = layout.axes, layout.sizes
    n = len(axes)
    if lo >= hi:
        return
    k, inner = n, 1  # axes[k:] are small enough to hold whole
    while k > 0 and inner * sizes[k - 1] <= BLOCK:
        k -= 1
        inner *= sizes[k]
    inner_lists = [axes[m].values(0, sizes[m]) for m in range(k, n)]
    if k == 0:
        yield lo, islice(product(*inner_lists), lo, hi)
        return
    j = k - 1  # the axis walked in chunks
    chunk = max(1, BLOCK // inner)
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
        yield g, islice(block, inner_off, inner_off + take)
        g += take
