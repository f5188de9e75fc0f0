"""Job logs -> flat records -> sorted and aggregated tables as text, CSV or JSON Lines.

``read_joblog_records`` streams one or several job logs (one per shard, say), keeps each
point's latest attempt, and returns ``JobRecords``: one row per point, with the columns
``index``, one per axis (typed values), ``status``, ``exit_code``, ``duration`` and one
per metric (the records' ``"metrics"`` objects; missing or non-numeric values are NaN).
``JobRecords.aggregate`` groups the points by axes (``--by``) and gives each metric's mean,
std, count, min and max over the other axes (``--over``); ``write_table`` prints a table.

Columnar on purpose: each column is a numpy array, built from lists flushed every
``CHUNK`` records, so memory stays near 8 bytes per value whatever the log's size, and
sorting, grouping and de-duplicating are numpy calls. The cost that remains is
``json.loads`` of each line; the file is read in text mode because ``TextIOWrapper``
decodes in bulk, while ``loads`` of ``bytes`` decodes each line by itself.

The HTML report is in ``_report_html`` (it needs plotly, an optional extra).
"""

from __future__ import annotations

import csv
import dataclasses
import importlib
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TextIO

import numpy as np
import numpy.typing as npt

from ._errors import RangeExprError
from ._text import did_you_mean, format_value

__all__ = [
    "FORMATS",
    "JobRecords",
    "Table",
    "read_joblog_records",
    "write_table",
]

# ``runner._joblog.FORMAT``, not imported: importing ``runner`` loads trio, which reading
# a log does not need (a test checks the two agree).
JOBLOG_FORMAT = "rangeexpr-joblog/1"
CHUNK = 1 << 16  # records per flush of the column lists into numpy arrays
FIXED = ("status", "exit_code", "duration")  # the record fields kept, between axes and metrics
STATS = ("mean", "std", "count", "min", "max")  # per metric, in aggregated tables
FORMATS = ("table", "csv", "jsonl")  # text formats; "html" is _report_html's
LOG_KINDS = frozenset({"logspace", "geomspace"})

Array = npt.NDArray[Any]
Progress = Callable[[int], None]  # called with the bytes read so far, over all logs


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Table:
    """Named columns of equal length, in order: numpy arrays (object arrays for text).

    Missing values are NaN in float columns and None in object columns.
    """

    columns: Mapping[str, Array]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.columns)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __getitem__(self, name: str) -> Array:
        return self.columns[name]

    def rows(self) -> Iterator[dict[str, Any]]:
        """Each row as a dict of plain Python values (None where a value is missing)."""
        for start in range(0, len(self), CHUNK):
            cols = [_plain(c[start : start + CHUNK]) for c in self.columns.values()]
            names = self.names
            for row in zip(*cols):
                yield dict(zip(names, row))

    def sorted(self, name: str, *, descending: bool = False) -> Table:
        """Rows ordered by one column (stable; missing values last either way)."""
        return self.take(_order(self.columns[name], descending))

    def head(self, n: int) -> Table:
        return self.take(np.arange(min(n, len(self))))

    def take(self, rows: Array) -> Table:
        """The rows at the given positions, in that order."""
        return dataclasses.replace(self, columns={k: v[rows] for k, v in self.columns.items()})

    def to_dataframe(self) -> Any:
        """A ``pandas.DataFrame`` (pandas is optional: ImportError saying so when missing).

        Columns of ints with some missing (``exit_code``) become pandas' nullable ``Int64``.
        """
        try:
            pd = importlib.import_module("pandas")  # not a typed import: pandas has no stubs
        except ImportError:
            raise ImportError(
                "to_dataframe() needs pandas, which is not installed: pip install pandas"
            ) from None
        data: dict[str, Any] = {}
        for name, col in self.columns.items():
            if col.dtype == object and _all_ints(col):
                data[name] = pd.array(col.tolist(), dtype="Int64")
            else:
                data[name] = col
        return pd.DataFrame(data)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {len(self)} rows: {', '.join(self.names)}>"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class JobRecords(Table):
    """The points of one or several job logs, latest attempt each, ordered by index.

    ``axes`` and ``metrics`` name the columns of each kind; ``kinds`` maps an axis to the
    kind of its range expression (``"logspace"``, ``"case"``, ...; ``""`` when the log's
    header does not say); ``source`` is the header's description of the sweep, if any;
    ``attempts`` counts the records read, earlier attempts included.
    """

    axes: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    kinds: Mapping[str, str] = dataclasses.field(default_factory=dict)
    source: Mapping[str, Any] | None = None
    logs: tuple[Path, ...] = ()
    attempts: int = 0

    def is_log_axis(self, name: str) -> bool:
        """True for a logspace/geomspace axis, or (kind unknown) geometric positive values."""
        kind = self.kinds.get(name, "")
        if kind:
            return kind in LOG_KINDS
        col = self.columns[name]
        if col.dtype.kind not in "if":
            return False
        values = np.unique(col[~np.isnan(col)] if col.dtype.kind == "f" else col)
        if len(values) < 3 or values[0] <= 0:
            return False
        ratios = values[1:] / values[:-1]
        return bool(ratios[0] > 1.5 and np.allclose(ratios, ratios[0], rtol=1e-6))

    def is_categorical(self, name: str) -> bool:
        """An axis whose values are not all numbers (text), plotted as categories."""
        return self.columns[name].dtype == object

    def axis_name(self, name: str, option: str) -> str:
        """``name`` if it is an axis, else RangeExprError with a did-you-mean."""
        if name in self.axes:
            return name
        raise RangeExprError(_unknown(f"{option}: no axis named {name!r}", name, self.axes))

    def aggregate(self, by: Sequence[str] = (), over: str | None = None) -> Table:
        """Per group of points (equal ``by`` values), each metric's mean, std, count, min, max.

        ``by`` defaults to every axis but ``over``; the metrics are aggregated over the
        other axes. Missing values are skipped (``count`` says how many were not); ``std``
        is the sample standard deviation, as pandas computes it. The table also has
        ``points`` and ``succeeded``: the points in each group, and those that succeeded.
        """
        by = [self.axis_name(n, "--by") for n in by]
        if over is not None:
            over = self.axis_name(over, "--over")
            if over in by:
                raise RangeExprError(f"--over {over} is also in --by: aggregate over another axis")
        keys = by or [a for a in self.axes if a != over]
        if len(set(keys)) != len(keys):
            raise RangeExprError(f"--by names an axis twice: {','.join(keys)}")
        n = len(self)
        codes = [factorize(self.columns[k]) for k in keys]
        order = np.lexsort([c for c, _ in reversed(codes)]) if codes else np.arange(n)
        if n and codes:
            changed = np.zeros(n, dtype=bool)
            changed[0] = True
            for c, _ in codes:
                sc = c[order]
                changed[1:] |= sc[1:] != sc[:-1]
            starts = np.flatnonzero(changed)
        else:
            starts = np.zeros(1 if n else 0, dtype=np.intp)
        columns: list[tuple[str, Array]] = []
        for k, (c, uniques) in zip(keys, codes):
            columns.append((k, uniques[c[order[starts]]]))
        sizes = np.diff(np.append(starts, n))
        status = self.columns[self.names[1 + len(self.axes)]]  # "status_" if an axis is "status"
        ok = (status == "succeeded")[order].astype(np.int64)
        columns.append(("points", sizes))
        columns.append(("succeeded", np.add.reduceat(ok, starts) if n else sizes.copy()))
        for m in self.metrics:
            for stat, values in zip(STATS, segment_stats(self.columns[m][order], starts, sizes)):
                columns.append((f"{m}_{stat}", values))
        return Table(_unique_names(columns))

    def sort_name(self, name: str, table: Table) -> str:
        """The column of ``table`` that ``--sort NAME`` means: a metric means its mean."""
        if name in table.columns:
            return name
        if name in self.metrics and f"{name}_mean" in table.columns:
            return f"{name}_mean"
        what = "no column" if table is self else "no column in the aggregated table"
        raise RangeExprError(_unknown(f"--sort: {what} named {name!r}", name, table.names))


def _unknown(message: str, name: str, known: Sequence[str]) -> str:
    """``message``, a did-you-mean when a known name is close, and the known names."""
    hint = did_you_mean(name, known)
    listed = ", ".join(known) if known else "none"
    return f"{message}{hint} (known: {listed})"


def _unique_names(columns: Iterable[tuple[str, Array]]) -> dict[str, Array]:
    """The columns by name, a name taken by an earlier column getting ``_`` appended."""
    out: dict[str, Array] = {}
    for name, col in columns:
        unique = name
        while unique in out:
            unique += "_"
        out[unique] = col
    return out


def segment_stats(values: Array, starts: Array, sizes: Array) -> tuple[Array, ...]:
    """Mean, std (ddof 1), count, min, max of each segment of float ``values``, NaN skipped."""
    if not len(values):
        empty = np.zeros(0)
        return empty, empty, np.zeros(0, dtype=np.int64), empty, empty
    values = values.astype(np.float64, copy=False)
    valid = ~np.isnan(values)
    count = np.add.reduceat(valid.astype(np.int64), starts)
    total = np.add.reduceat(np.where(valid, values, 0.0), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        deviation = np.where(valid, values - np.repeat(mean, sizes), 0.0)
        std = np.sqrt(np.add.reduceat(deviation * deviation, starts) / (count - 1))
    std[count < 2] = np.nan
    with np.errstate(invalid="ignore"):
        lo = np.fmin.reduceat(values, starts)
        hi = np.fmax.reduceat(values, starts)
    return mean, std, count, lo, hi


def factorize(col: Array) -> tuple[Array, Array]:
    """Integer codes and the sorted distinct values, such that ``uniques[codes] == col``."""
    if col.dtype != object:
        uniques, codes = np.unique(col, return_inverse=True)
        return codes.ravel(), uniques
    seen: dict[Any, int] = {}
    first = np.fromiter((seen.setdefault(v, len(seen)) for v in col), np.intp, len(col))
    distinct = list(seen)
    ranked = sorted(range(len(distinct)), key=lambda i: _sort_key(distinct[i]))
    rank = np.empty(len(distinct), dtype=np.intp)
    rank[ranked] = np.arange(len(distinct))
    uniques = np.empty(len(distinct), dtype=object)
    uniques[:] = [distinct[i] for i in ranked]
    return rank[first], uniques


def _sort_key(value: object) -> tuple[int, Any]:
    """Orders mixed values: numbers, then text, then missing (None)."""
    if value is None:
        return (2, 0)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


def _order(col: Array, descending: bool) -> Array:
    """Positions that sort ``col`` (stable), missing values last in either direction."""
    if col.dtype.kind in "iuf":  # argsort puts NaN last, and -NaN is NaN
        return np.argsort(-col if descending else col, kind="stable")
    keys = [_sort_key(v) for v in col]
    present = [i for i, k in enumerate(keys) if k[0] != 2]
    missing = [i for i, k in enumerate(keys) if k[0] == 2]
    present.sort(key=keys.__getitem__, reverse=descending)  # reverse keeps ties in order
    return np.array(present + missing, dtype=np.intp)


def _plain(col: Array, *, finite: bool = False) -> list[Any]:
    """Python values for output: NaN becomes None, and so does infinity if ``finite``."""
    values: list[Any] = col.tolist()
    missing = _not_finite if finite else _nan
    if col.dtype.kind == "f":
        return [None if missing(v) else v for v in values]
    if col.dtype == object:
        return [None if type(v) is float and missing(v) else v for v in values]
    return values


def _nan(value: float) -> bool:
    return math.isnan(value)


def _not_finite(value: float) -> bool:
    return not math.isfinite(value)


def _all_ints(col: Array) -> bool:
    present = [v for v in col if v is not None]
    return bool(present) and all(type(v) is int for v in present)


# ---------------------------------------------------------------------------
# Reading job logs
# ---------------------------------------------------------------------------


def read_joblog_records(
    logs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    /,
    *,
    commands: bool = False,
    progress: Progress | None = None,
) -> JobRecords:
    """Read one or several job logs (``str`` or ``Path``) into flat records.

    Several logs (one per shard, or one per resumed run) are merged. Each point keeps its
    latest attempt: the record with the latest ``start``, then the highest ``attempt``,
    then the one read last (a resumed log holds earlier attempts, and a resume numbers
    attempts from 1 again). A log continued by a resumed run that changed the sweep holds
    that run's header too; its indices may name other points, so points are then matched
    by their values, and ``index`` is the latest attempt's. Logs of different sweeps
    cannot be merged. ``commands=True``
    keeps each point's command as a ``command`` column. ``progress`` is called now and
    then with the bytes read so far. Raises RangeExprError for a file that is missing or
    is not a job log.
    """
    paths = [Path(logs)] if isinstance(logs, str | os.PathLike) else [Path(p) for p in logs]
    if not paths:
        raise RangeExprError("no job log to read")
    reader = _Reader(commands)
    for path in paths:
        reader.read(path, progress)
    return reader.records(tuple(paths))


class _Column:
    """One column being built: a list of the current chunk's values, earlier chunks as arrays.

    ``offset`` is the row at which the column appeared (rows before it are missing).
    """

    __slots__ = ("chunks", "convert", "offset", "values")

    def __init__(self, convert: Callable[[list[Any]], Array], offset: int, pad: int) -> None:
        self.convert = convert
        self.offset = offset
        self.chunks: list[Array] = []
        self.values: list[Any] = [None] * pad

    def flush(self) -> None:
        if self.values:
            self.chunks.append(self.convert(self.values))
            self.values.clear()  # clear, not replace: the loop holds ``values.append``

    def array(self, rows: int) -> Array:
        self.flush()
        parts = self.chunks
        if self.offset:
            parts = [self.convert([None] * self.offset), *parts]
        if not parts:
            return self.convert([None] * rows)
        return np.concatenate(parts) if len(parts) > 1 else parts[0]


class _Group:
    """Columns named by the keys of a per-record object (``values``, ``metrics``).

    New names may appear in any record: their column starts there, missing before.
    """

    def __init__(self, names: Iterable[str], convert: Callable[[list[Any]], Array]) -> None:
        self.convert = convert
        self.columns: dict[str, _Column] = {}
        self.keys: set[str] = set()
        self.items: list[tuple[str, Callable[[Any], None]]] = []
        for name in names:
            self.new_column(name, 0, 0)

    def new_column(self, name: str, offset: int, pad: int) -> None:
        col = _Column(self.convert, offset, pad)
        self.columns[name] = col
        self.keys.add(name)
        self.items.append((name, col.values.append))

    def add(self, mapping: Mapping[str, Any], chunk_row: int, row: int) -> None:
        """Append one record's values; ``chunk_row``/``row``: its row in the chunk/overall."""
        if mapping.keys() == self.keys:
            for name, append in self.items:
                append(mapping[name])
            return
        for name in mapping:
            if name not in self.keys:
                self.new_column(name, row - chunk_row, chunk_row)
        for name, append in self.items:
            append(mapping.get(name))

    def flush(self) -> None:
        for col in self.columns.values():
            col.flush()


class _Reader:
    """Accumulates the records of several logs; ``records()`` keeps the latest per point."""

    def __init__(self, commands: bool) -> None:
        self.rows = 0  # records read, over all logs
        self.chunk_row = 0  # records in the lists not yet flushed
        self.done = 0  # bytes of the logs read before this one
        self.header: dict[str, Any] | None = None
        self.first_log: Path | None = None
        self.kinds: dict[str, str] = {}
        self.axes = _Group((), _typed)
        self.metrics = _Group((), _floats)
        self.fixed = {
            "index": _Column(_typed, 0, 0),
            "start": _Column(_floats, 0, 0),
            "attempt": _Column(_typed, 0, 0),
            "status": _Column(_objects, 0, 0),
            "exit_code": _Column(_objects, 0, 0),
            "duration": _Column(_floats, 0, 0),
        }
        self.command = _Column(_objects, 0, 0) if commands else None
        self.regrown = False  # a later header: a resumed run changed the sweep

    def read(self, path: Path, progress: Progress | None) -> None:
        """Read one more log."""
        try:
            f = path.open(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise RangeExprError(f"cannot read {path}: {exc.strerror or exc}") from None
        with f:
            try:
                size = os.fstat(f.fileno()).st_size
                self._header(path, f.readline())
                self._records(path, f, progress)
            except OSError as exc:
                raise RangeExprError(f"cannot read {path}: {exc.strerror or exc}") from None
        self.done += size
        if progress:
            progress(self.done)

    def _header(self, path: Path, line: str) -> None:
        try:
            header = json.loads(line) if line.endswith("\n") else None
        except ValueError:
            header = None
        fmt = header.get("format") if isinstance(header, dict) else None
        if not isinstance(header, dict) or not isinstance(fmt, str):
            raise RangeExprError(
                f"{path} is not a rangeexpr job log: its first line is not the header "
                f'{{"format": "{JOBLOG_FORMAT}", ...}} that `rangeexpr run --joblog` writes'
            )
        if fmt != JOBLOG_FORMAT:
            raise RangeExprError(
                f"{path} is a job log in format {fmt!r}; this rangeexpr reads "
                f"{JOBLOG_FORMAT!r}: read it with the rangeexpr version that wrote it"
            )
        source = header.get("source")
        if self.header is None:
            self.header, self.first_log = header, path
            for name, kind in _axis_kinds(source).items():
                self.kinds[name] = kind
                self.axes.new_column(name, 0, 0)
        elif source != self.header.get("source"):
            first = self.header.get("source")
            differs = ""
            if isinstance(source, dict) and isinstance(first, dict):
                keys = source.keys() | first.keys()
                differs = ", ".join(sorted(k for k in keys if source.get(k) != first.get(k)))
                differs = f" (different {differs})"
            raise RangeExprError(
                f"{path} is the job log of a different sweep than {self.first_log}{differs}: "
                "only logs of one sweep (its shards, its resumed runs) can be merged"
            )

    def _records(self, path: Path, f: TextIO, progress: Progress | None) -> None:
        loads = json.loads
        fixed = self.fixed
        index, start, attempt = (fixed[k].values.append for k in ("index", "start", "attempt"))
        status, exit_code, duration = (fixed[k].values.append for k in FIXED)
        command = self.command.values.append if self.command else None
        axes, metrics = self.axes, self.metrics
        empty: dict[str, Any] = {}
        lineno = 1
        try:
            for lineno, line in enumerate(f, 2):  # noqa: B007 (used in the error below)
                if not line.endswith("\n"):
                    break  # cut short by a crash mid-write; the runner ignores it too
                if line.isspace():
                    continue
                r = loads(line)
                try:
                    i = r["index"]
                except KeyError:
                    if r.get("format") != JOBLOG_FORMAT:
                        raise
                    self._later_header(r)
                    continue
                if type(i) is not int or i < 0:  # as the runner reads a log for --resume
                    raise ValueError(f'"index" is {json.dumps(i)}, not a whole number >= 0')
                index(i)
                start(r.get("start"))
                attempt(r.get("attempt"))
                status(r["status"])
                exit_code(r.get("exit_code"))
                duration(r.get("duration"))
                if command:
                    command(r.get("command"))
                # Inlined _Group.add for the usual case, the names of the previous record
                v = r.get("values") or empty
                if v.keys() == axes.keys:
                    for name, append in axes.items:
                        append(v[name])
                else:
                    axes.add(v, self.chunk_row, self.rows)
                m = r.get("metrics") or empty
                if m.keys() == metrics.keys:
                    for name, append in metrics.items:
                        append(m[name])
                else:
                    metrics.add(m, self.chunk_row, self.rows)
                self.rows += 1
                self.chunk_row += 1
                if self.chunk_row == CHUNK:
                    self._flush()
                    if progress:
                        progress(self.done + f.buffer.tell())
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            what = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
            raise RangeExprError(f"{path}:{lineno}: not a job log record ({what})") from None

    def _later_header(self, header: dict[str, Any]) -> None:
        """A header after records: a resumed run that changed the sweep (grew it, say).

        Its indices may name other points than the earlier runs' did, so points are then
        told apart by their values (``records``). A new axis gets its kind from it.
        """
        self.regrown = True
        for name, kind in _axis_kinds(header.get("source")).items():
            self.kinds.setdefault(name, kind)

    def _flush(self) -> None:
        for col in self.fixed.values():
            col.flush()
        if self.command:
            self.command.flush()
        self.axes.flush()
        self.metrics.flush()
        self.chunk_row = 0

    def records(self, logs: tuple[Path, ...]) -> JobRecords:
        n = self.rows
        fixed = {k: c.array(n) for k, c in self.fixed.items()}
        axes = {k: c.array(n) for k, c in self.axes.columns.items()}
        if self.regrown and axes:  # by values: the index of a point changed between runs
            keep = _latest(_point_ids(list(axes.values())), fixed["start"], fixed["attempt"])
            keep = keep[_order(fixed["index"][keep], descending=False)]
        else:
            keep = _latest(fixed["index"], fixed["start"], fixed["attempt"])
        metrics = {k: c.array(n) for k, c in self.metrics.columns.items()}
        columns = [("index", fixed["index"]), *axes.items(), *((k, fixed[k]) for k in FIXED)]
        columns += metrics.items()
        if self.command:
            columns.append(("command", self.command.array(n)))
        named = _unique_names(columns)  # a name used twice gets "_" appended to its later use
        names = list(named)
        axis_names = tuple(names[1 : 1 + len(axes)])
        metric_names = tuple(names[1 + len(axes) + len(FIXED) :][: len(metrics)])
        header = self.header or {}
        source = header.get("source")
        return JobRecords(
            {k: v[keep] for k, v in named.items()},
            axes=axis_names,
            metrics=metric_names,
            kinds={a: self.kinds.get(a, "") for a in axis_names},
            source=source if isinstance(source, dict) else None,
            logs=logs,
            attempts=n,
        )


def _latest(index: Array, start: Array, attempt: Array) -> Array:
    """Row positions of each index's latest record (see read_joblog_records), by index."""
    n = len(index)
    if n == 0:
        return np.zeros(0, dtype=np.intp)
    if index.dtype != object and bool(np.all(index[1:] > index[:-1])):
        return np.arange(n)  # one record per point, already in order
    start = np.nan_to_num(start.astype(np.float64), nan=-np.inf)
    if attempt.dtype.kind != "i":  # a record without an attempt number counts as 0
        attempt = np.array([a if type(a) is int else 0 for a in attempt.tolist()], dtype=float)
    if index.dtype == object:  # an index beyond int64 (a sweep of more than 2**63 points)
        keys = list(zip(index.tolist(), start.tolist(), attempt.tolist()))
        ordered = np.array(sorted(range(n), key=keys.__getitem__), dtype=np.intp)  # stable
    else:
        ordered = np.lexsort((attempt, start, index))  # stable: ties stay in reading order
    sorted_index = index[ordered]
    last: Array = np.append(sorted_index[1:] != sorted_index[:-1], True)
    return ordered[last]


def _point_ids(columns: list[Array]) -> Array:
    """One id per row, equal for the rows whose values are equal in every column."""
    codes = [factorize(col)[0] for col in columns]
    n = len(codes[0])
    if n == 0:
        return np.zeros(0, dtype=np.intp)
    order = np.lexsort(codes[::-1])
    changed = np.zeros(n, dtype=bool)
    changed[0] = True
    for c in codes:
        sc = c[order]
        changed[1:] |= sc[1:] != sc[:-1]
    ids = np.empty(n, dtype=np.intp)
    ids[order] = np.cumsum(changed) - 1
    return ids


def _axis_kinds(source: object) -> dict[str, str]:
    """Axis name -> kind, from the header's ``source.exprs`` (empty if it has none)."""
    exprs = source.get("exprs") if isinstance(source, dict) else None
    if not isinstance(exprs, list):
        return {}
    from ._parse import parse

    kinds: dict[str, str] = {}
    for text in exprs:
        try:
            expr = parse(str(text))
        except RangeExprError:
            return {}
        kinds[expr.name] = expr.kind
    return kinds


def _typed(values: list[Any]) -> Array:
    """Ints -> int64, numbers -> float64 (None -> NaN), anything else -> object."""
    types = set(map(type, values))
    if types <= {int}:
        try:
            return np.array(values, dtype=np.int64)
        except OverflowError:
            pass
    elif types <= {int, float, type(None)} and float in types:
        return np.array(values, dtype=np.float64)
    return _objects(values)


def _floats(values: list[Any]) -> Array:
    """Numbers -> float64; None and anything not a number (text, bool) -> NaN."""
    try:
        if bool not in set(map(type, values)):
            return np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        pass
    return np.array([_number(v) for v in values], dtype=np.float64)


def _number(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return math.nan
    return math.nan


def _objects(values: list[Any]) -> Array:
    """An object array, equal strings made one object (a log repeats the same few)."""
    seen: dict[Any, Any] = {}
    out = np.empty(len(values), dtype=object)
    out[:] = [seen.setdefault(v, v) if type(v) is str else v for v in values]
    return out


# ---------------------------------------------------------------------------
# Writing tables
# ---------------------------------------------------------------------------


def write_table(
    table: Table, out: IO[str], fmt: str, *, axes: Sequence[str] = (), probe: int = 1000
) -> None:
    """Write ``table`` as an aligned text table, CSV or JSON Lines.

    CSV and JSON Lines load with ``pandas.read_csv`` / ``read_json(lines=True)`` as they
    are: one header row (CSV), missing values empty (CSV) or null (JSON). In the text
    table, ``axes`` columns are written as templates write them and other floats with 6
    significant digits; its column widths come from the first ``probe`` rows.
    """
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(table.names)
        for start in range(0, len(table), CHUNK):
            cols = [_plain(c[start : start + CHUNK]) for c in table.columns.values()]
            writer.writerows(zip(*cols))
    elif fmt == "jsonl":  # JSON has no NaN or infinity: both are written as null
        dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
        names = table.names
        for start in range(0, len(table), CHUNK):
            columns = table.columns.values()
            cols = [_plain(c[start : start + CHUNK], finite=True) for c in columns]
            out.writelines(dumps(dict(zip(names, row))) + "\n" for row in zip(*cols))
    elif fmt == "table":
        _write_text(table, out, frozenset(axes), probe)
    else:
        raise RangeExprError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}, html")


def cell_text(value: object, exact: bool) -> str:
    """A value as a table shows it: ``exact`` for axis values, else floats to 6 digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and not exact:
        return f"{value:.6g}"
    if isinstance(value, int | float | str):
        return format_value(value)
    return str(value)


def _write_text(table: Table, out: IO[str], axes: frozenset[str], probe: int) -> None:
    names = table.names
    exact = [n in axes for n in names]
    cols = table.columns
    numeric = [cols[n].dtype.kind in "iuf" or _all_ints(cols[n][:probe]) for n in names]

    def rows() -> Iterator[list[str]]:
        for start in range(0, len(table), CHUNK):
            cols = [c[start : start + CHUNK].tolist() for c in table.columns.values()]
            for row in zip(*cols):
                yield [cell_text(v, e) for v, e in zip(row, exact)]

    it = rows()
    first = [list(names)]
    for row in it:
        first.append(row)
        if len(first) > probe:
            break
    widths = [max(len(r[c]) for r in first) for c in range(len(names))]

    def write(row: list[str]) -> None:
        cells = (
            cell.rjust(w) if num else cell.ljust(w) for cell, w, num in zip(row, widths, numeric)
        )
        out.write("  ".join(cells).rstrip() + "\n")

    for row in first:
        write(row)
    for row in it:
        write(row)
