"""Points, and the contract every sweep and view keeps (``BaseSweep``).

What a sweep answers, by kind (the ``BaseSweep`` docstring says it for users):

============================  ==============================  ==============================
                              product, slice, shard,          filtered (``where``), or a
                              shuffle, sample                 sample of a filtered sweep
============================  ==============================  ==============================
``size``, ``len()``           exact, O(1)                     ``TypeError``: use
                                                              ``count_kept()``
``max_size``                  ``size``                        an upper bound, O(1)
``count_kept()``              ``size``                        exact, by scanning
``bool()``                    exact, O(1)                     exact, up to the first point
``view[i]``                   the i-th point                  ``TypeError``
``view[a:b]``, ``shard``      positions of the view           positions of the sweep
                                                              underneath, then filtered
============================  ==============================  ==============================

The first kind is an ``IndexedSweep`` (``rangeexpr._views``), a ``Sequence``; the second
is known only by scanning, and is not one. Nothing here imports a concrete sweep: the
arrows go ``_sweep -> _views -> _points -> _layout``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, overload

from ._ast import Value
from ._errors import SweepError
from ._text import ascii_int, format_value, int_text

if TYPE_CHECKING:
    import numpy.typing as npt

    from ._axes import Axis
    from ._filter import Filter
    from ._layout import Layout

__all__ = [
    "BaseSweep",
    "Point",
    "Progress",
    "check_shard",
    "compose",
    "parse_shard",
    "scan_error",
    "shard_range",
]

Progress = Callable[[int, int], object]  # progress(seen, kept), after each scanned batch


class Point(Mapping[str, Value]):
    """One point of a sweep: an immutable Mapping name -> typed value, with its index."""

    __slots__ = ("_index", "_layout", "_row")

    def __init__(self, index: int, row: tuple[Value, ...], layout: Layout):
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

    def values_in(self, names: tuple[str, ...]) -> tuple[Value, ...]:
        """The values in the order of ``names``, the same names as this point's (a sweep's
        points keep them in one order; the grids of a union may differ)."""
        layout = self._layout
        if layout.names is names or layout.names == names:
            return self._row
        row, at = self._row, layout.positions
        return tuple([row[at[name]] for name in names])

    def text(self, name: str) -> str:
        """The text a template writes for ``name``: a case value exactly as written."""
        layout = self._layout
        k = layout.positions[name]
        if k in layout.case_axes:
            return layout.axes[k].text((self._index // layout.strides[k]) % layout.sizes[k])
        return format_value(self._row[k])


class BaseSweep(Iterable[Point]):
    """A lazy sweep of points: a product of axes, or a view (slice, shard, shuffle, sample,
    filter) of one. Every answer is exact or a documented error, never a guess:

    - ``size`` and ``len()``: the exact number of points, O(1), where it is known without
      scanning (``is_filtered`` false); on a filtered sweep (``where``, or a sample of
      one) they raise ``TypeError`` naming ``count_kept()``. ``len()`` also raises
      ``OverflowError`` past ``sys.maxsize``; ``size`` is exact at any size.
    - ``max_size``: an upper bound, always O(1); equal to ``size`` unless filtered.
    - ``count_kept(progress=None)``: the exact number; a filtered sweep is scanned, calling
      ``progress(seen, kept)`` after each batch (``seen`` counts the points examined).
    - ``bool()``: exact; a filtered sweep is scanned up to its first kept point.
    - ``view[i]``: the i-th point (``IndexError`` out of range) where ``size`` is known;
      a ``TypeError`` on a filtered sweep. Iterate it instead.
    - ``view[a:b]`` and ``shard(k, n)``: lazy parts. Those of a filtered sweep cut the
      positions of the sweep underneath, then filter, so every part of a shard plan is the
      same as without the filter, minus the dropped points.
    - ``for p in view`` is lazy, and ``p.index`` is the point's index in the full sweep
      (below ``full_size``), so job numbers stay the same under any view.
    """

    __slots__ = ()

    # -- what the points are -------------------------------------------------------------

    @property
    @abstractmethod
    def exprs(self) -> tuple[str, ...]:
        """The range expressions of the full sweep, as given."""

    @property
    @abstractmethod
    def names(self) -> tuple[str, ...]:
        """The variables of every point, in the sweep's order."""

    @property
    @abstractmethod
    def axes(self) -> tuple[Axis, ...]:
        """The lazy axes, in the order of ``names``."""

    def axis(self, name: str) -> Axis:
        """The lazy axis of one variable."""
        try:
            return self.axes[self.names.index(name)]
        except ValueError:
            raise KeyError(f"no range defines {name!r}") from None

    # -- how many ------------------------------------------------------------------------

    @property
    @abstractmethod
    def full_size(self) -> int:
        """The size of the whole sweep underneath every view: each ``point.index`` is below."""

    @property
    @abstractmethod
    def is_filtered(self) -> bool:
        """True when which points are kept is known only by scanning (``where``)."""

    @property
    @abstractmethod
    def max_size(self) -> int:
        """An upper bound on the number of points, O(1); ``size`` unless filtered."""

    @property
    @abstractmethod
    def size(self) -> int:
        """The exact number of points, of any size; ``TypeError`` if filtered."""

    @abstractmethod
    def count_kept(self, progress: Progress | None = None) -> int:
        """The exact number of points; a filtered sweep is scanned (see the class doc)."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __bool__(self) -> bool: ...

    # -- access --------------------------------------------------------------------------

    @abstractmethod
    def __iter__(self) -> Iterator[Point]: ...

    @abstractmethod
    def __reversed__(self) -> Iterator[Point]: ...

    @overload
    def __getitem__(self, index: int) -> Point: ...
    @overload
    def __getitem__(self, index: slice) -> BaseSweep: ...
    @abstractmethod
    def __getitem__(self, index: int | slice) -> Point | BaseSweep: ...

    @abstractmethod
    def shard(self, k: int, n: int) -> BaseSweep:
        """Part k of n (0 <= k < n): disjoint, contiguous parts that cover it in order."""

    @abstractmethod
    def arrays(self, start: int, stop: int) -> dict[str, npt.NDArray[Any]]:
        """The points at positions ``[start, stop)`` as ``{name: numpy array}``, vectorized."""

    # -- views ---------------------------------------------------------------------------

    @abstractmethod
    def where(self, expr: str | Filter) -> BaseSweep:
        """The points where the filter holds; indices stay those of the full sweep."""

    @abstractmethod
    def shuffled(self, seed: int | str) -> BaseSweep:
        """Every point once, in a pseudo-random order fixed by ``seed``."""

    @abstractmethod
    def sample(self, k: int, seed: int | str = 0) -> BaseSweep:
        """``k`` distinct points at random: the first ``k`` of ``shuffled(seed)``."""


def scan_error(what: str) -> TypeError:
    """The ``TypeError`` for a question a filtered sweep answers only by scanning."""
    if what == "index":
        return TypeError(
            "a filtered sweep has no random access (which point is the i-th is known only "
            "by scanning): iterate it, e.g. next(itertools.islice(view, i, None))"
        )
    return TypeError(
        f"{what} of a filtered sweep is known only by scanning: use count_kept() for the "
        "exact number (it scans), or max_size for an upper bound"
    )


def check_shard(k: int, n: int, *, source: str | None = None) -> tuple[int, int]:
    """``(k, n)`` if ``0 <= k < n`` are integers, else a ``SweepError``.

    ``source`` is the command-line text (``--shard 3/2``), marked in the error.
    """
    if not (isinstance(k, int) and isinstance(n, int)) or n < 1 or not 0 <= k < n:
        if source is None:
            raise SweepError(f"shard {k}/{n}: need integers 0 <= K < N (K counts from 0)")
        raise SweepError(
            f"--shard {source}: need 0 <= K < N (K counts from 0)", source, (0, len(source))
        )
    return k, n


def parse_shard(text: str) -> tuple[int, int]:
    """``--shard K/N`` as ``(K, N)``, checked by ``check_shard``; else a ``SweepError``."""
    try:
        k_text, n_text = text.split("/")
        k, n = ascii_int(k_text), ascii_int(n_text)
    except ValueError:
        raise SweepError(
            f"--shard takes K/N with integers, got {text!r}", text, (0, len(text))
        ) from None
    return check_shard(k, n, source=text)


def shard_range(size: int, k: int, n: int) -> range:
    """The positions of part k of n of ``size`` points: ``[k*size//n, (k+1)*size//n)``."""
    check_shard(k, n)
    return range(k * size // n, (k + 1) * size // n)


def compose(outer: range, inner: range) -> range:
    """``outer[inner]`` for a normalized ``inner`` (``range(len(outer))[some slice]``).

    Slicing ``outer`` with ``inner``'s bounds would misread a stop of -1 (a reversed slice
    down to position 0) as "the last position".
    """
    return range(
        outer.start + inner.start * outer.step,
        outer.start + inner.stop * outer.step,
        outer.step * inner.step,
    )
