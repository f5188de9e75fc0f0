"""The job log and results directory of a run: never clobbered, and ``--resume`` by values.

A job log is continued (``--resume``) or replaced (``--overwrite``), never silently
emptied. A ``--results`` directory belongs to the sweep that first wrote to it: a marker
file (``DIR/.rangeexpr-sweep``) holds that sweep's id, and another sweep is refused unless
it resumes a job log that sweep wrote (a grown sweep continues its own directory).

``--resume`` matches points by what they run, not by their index, so an extended,
narrowed, reordered or re-sharded sweep reuses the finished work. A point is done when a
succeeded record has its values and was written by a run with the same command and ``-e``
templates, ``--shell`` and ``--workdir`` (so the same rendered command and environment).
The ``RANGEEXPR_INDEX``/``RANGEEXPR_COUNT`` variables are positions, not what a job is:
they may differ. A log holds one header per run that changed what the sweep is.
"""

from __future__ import annotations

import datetime
import gc
import hashlib
import json
import operator
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import RangeExprError
from .._spec import RunSpec

if TYPE_CHECKING:
    from runner import JobLog

    from .._ast import Value
    from .._points import BaseSweep, Point

__all__ = [
    "MARKER",
    "Done",
    "check_clobber",
    "check_writable",
    "claim_results",
    "header",
    "read_resume",
    "resume",
    "take_joblog",
]

MARKER = ".rangeexpr-sweep"  # in a --results directory: the id of the sweep that owns it
_TEMPLATES = ("exec", "env", "shell", "workdir")  # what a job runs, besides its values
_LISTED = 4096  # an axis this short is listed to learn its values' types


def check_clobber(spec: RunSpec) -> None:
    """Refuse an existing, non-empty job log unless ``--resume`` or ``--overwrite`` says."""
    if spec.joblog is None or spec.resume or spec.overwrite:
        return
    try:
        info = os.stat(spec.joblog)
    except OSError:
        return  # not there (or unreadable: check_writable says why)
    if stat.S_ISREG(info.st_mode) and info.st_size > 0:
        raise RangeExprError(
            f"--joblog {spec.joblog} exists: give --resume to continue it (the points it "
            "records as succeeded are skipped), --overwrite to replace it, or another file"
        )


def check_writable(spec: RunSpec) -> None:
    """Fail before anything runs if the job log or the results directory cannot be written.

    The results directory is probed with a file made and removed in it: an existing
    directory that is read-only (or on a read-only file system) passes ``mkdir``.
    """
    import tempfile

    try:
        if spec.results is not None:
            results = Path(spec.results)
            results.mkdir(parents=True, exist_ok=True)
            try:
                tempfile.TemporaryFile(dir=results).close()
            except OSError as exc:
                exc.filename = spec.results
                raise
        if spec.joblog is not None:
            with open(spec.joblog, "a"):
                pass
    except OSError as exc:
        raise RangeExprError(f"cannot write {exc.filename}: {exc.strerror}") from None


def claim_results(spec: RunSpec, logged: frozenset[str] = frozenset()) -> None:
    """Take the ``--results`` directory for this sweep, or refuse another sweep's.

    It is ours when it is empty, when its marker names this sweep, or one whose run the
    resumed job log holds (``logged``: the ids of its headers); ``--overwrite`` takes any.
    The marker is written when the directory is taken fresh, and kept otherwise.
    """
    if spec.results is None:
        return
    directory = Path(spec.results)
    marker = directory / MARKER
    ours = source_id(spec.identity())
    try:
        owner: str | None = marker.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        owner = None
    except (OSError, UnicodeDecodeError) as exc:
        raise RangeExprError(f"cannot read {marker}: {exc}") from None
    if owner is not None and (owner == ours or owner in logged):
        return
    if not spec.overwrite:
        if owner is not None:
            raise RangeExprError(
                f"--results {spec.results} holds the outputs of another sweep (its {MARKER} "
                f"says {owner}): use another directory, resume that sweep's --joblog, or "
                "give --overwrite to write into it anyway"
            )
        try:
            holds = any(True for _ in os.scandir(directory))
        except OSError as exc:
            raise RangeExprError(f"cannot read {directory}: {exc.strerror}") from None
        if holds:
            raise RangeExprError(
                f"--results {spec.results} holds files rangeexpr did not write (it has no "
                f"{MARKER}): use another directory, or give --overwrite to write into it"
            )
    try:
        marker.write_text(ours + "\n", encoding="utf-8")
    except OSError as exc:
        raise RangeExprError(f"cannot write {marker}: {exc.strerror}") from None


def source_id(source: Any) -> str:
    """A short stable id of a job-log ``source`` (as ``RunSpec.sweep_id`` of its spec)."""
    text = json.dumps(source, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def take_joblog(spec: RunSpec) -> JobLog | None:
    """Hold the job log for this run: refused if another run is writing it."""
    if spec.joblog is None:
        return None
    from runner import JobLog, JobLogError

    try:
        return JobLog(Path(spec.joblog))
    except JobLogError as exc:
        raise RangeExprError(f"cannot use the job log: {exc}") from None


def header(spec: RunSpec, sweep: BaseSweep) -> dict[str, Any]:
    """What a run's header line says about it (``source`` identifies the sweep)."""
    head = {
        "source": spec.identity(),
        "size": sweep.max_size,  # a filtered sweep's is an upper bound
        "version": _version(),
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if spec.shard is not None:
        head["shard"] = list(spec.shard)
    return head


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rangeexpr")
    except PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------------------
# --resume: the points done, by values
# ---------------------------------------------------------------------------


class Done:
    """The points a job log records as succeeded, by values: O(1) per point.

    Keys are exact, the values in this sweep's name order with their types (2 is not
    2.0, though Python finds them equal), so two points never collide and memory grows
    with the succeeded records only. When every axis gives values of one type (``sig``),
    only records of those types are kept, and a point is looked up by its values alone.
    """

    __slots__ = ("end", "ids", "keys", "last_source", "names", "sig")

    def __init__(self, names: tuple[str, ...], sig: tuple[type, ...] | None) -> None:
        self.names = names
        self.sig = sig
        self.keys: set[Any] = set()  # value rows if ``sig``, else (types, values) pairs
        self.ids: frozenset[str] = frozenset()  # the source ids of the log's headers
        self.last_source: Any = None  # the source of the log's last header
        self.end = 0  # the offset after the log's last whole line

    def __contains__(self, point: Point) -> bool:
        row = point.values_in(self.names)
        if self.sig is not None:
            return row in self.keys
        return (tuple(map(type, row)), row) in self.keys

    def add(self, row: tuple[Value, ...]) -> None:
        """A succeeded record's values, in ``names`` order."""
        types = tuple(map(type, row))
        if self.sig is None:
            self.keys.add((types, row))
        elif types == self.sig:
            self.keys.add(row)

    def __len__(self) -> int:
        return len(self.keys)


def read_resume(spec: RunSpec, sweep: BaseSweep) -> Done:
    """What the spec's job log says (for --dry-run, which takes no lock)."""
    from runner import read_joblog

    assert spec.joblog is not None
    path = Path(spec.joblog)
    return _read(path, spec, sweep, lambda **kw: read_joblog(path, **kw).end)


def resume(joblog: JobLog, spec: RunSpec, sweep: BaseSweep) -> Done:
    """Read the job log this run holds, and set it to append after its last whole line."""
    from runner import read_joblog

    done = _read(joblog.path, spec, sweep, lambda **kw: read_joblog(joblog.path, **kw).end)
    from runner import StorageError

    try:
        joblog.append_at(done.end)
    except StorageError as exc:
        raise RangeExprError(f"cannot resume: {exc}") from None
    return done


def _read(path: Path, spec: RunSpec, sweep: BaseSweep, read: Callable[..., int]) -> Done:
    """Scan the log once; RangeExprError if unreadable or if it shares nothing with us."""
    from runner import JobLogError, StorageError

    ours = json.loads(json.dumps(spec.identity()))  # tuples -> lists, as the log holds them
    names = sweep.names
    sig = _signature(sweep)
    done = Done(names, sig)
    add, keys_add = done.add, done.keys.add
    row_of = _getter(names)
    ids: set[str] = set()
    sharing = False  # whether the run of the current header runs jobs as this one does
    shared: list[bool] = []
    width = len(names)

    def on_header(head: dict[str, Any]) -> None:
        nonlocal sharing
        source = head.get("source")
        ids.add(source_id(source))
        done.last_source = source
        sharing = (
            isinstance(source, dict)
            and all(source.get(k) == ours.get(k) for k in _TEMPLATES)
            and _names(source) == set(names)
        )
        shared.append(sharing)

    def on_record(index: int, record: dict[str, Any]) -> None:
        if sharing and record.get("status") == "succeeded":
            values = record.get("values")
            if type(values) is dict and len(values) == width:
                try:
                    row = row_of(values)
                except KeyError:  # other variables: not a point of this sweep
                    return
                if sig is None:
                    add(row)
                elif tuple(map(type, row)) == sig:  # Done.add, inlined: the hot path
                    keys_add(row)

    collecting = gc.isenabled()
    gc.disable()  # 10^6 new tuples would set off collections that walk all of them again
    try:
        done.end = read(on_record=on_record, check_header=on_header)
    except (JobLogError, StorageError) as exc:
        raise RangeExprError(f"cannot resume: {exc}") from None
    except OSError as exc:
        raise RangeExprError(f"cannot resume: cannot read {path}: {exc.strerror}") from None
    finally:
        if collecting:
            gc.enable()
    if not any(shared):
        raise RangeExprError(
            f"cannot resume: {path} is the job log of a different sweep{_differs(ours, done)}; "
            "a resumed sweep may grow, shrink or be reordered, but needs the same variables, "
            "--exec and -e templates: use another --joblog file"
        )
    done.ids = frozenset(ids)
    return done


def _getter(names: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Value, ...]]:
    """A record's values as a row in ``names`` order (KeyError if one is missing)."""
    if len(names) == 1:
        (name,) = names
        return lambda values: (values[name],)
    return operator.itemgetter(*names)


_ONE_TYPE = {"range": int, "linspace": float, "logspace": float, "geomspace": float}


def _signature(sweep: BaseSweep) -> tuple[type, ...] | None:
    """The type of every axis's values, if each gives values of one type; else None.

    A union's grids must all agree (one grid's ``LR=case:1`` against another's floats would
    make 1 and 1.0 look alike), so each grid is looked at; views reach theirs via ``base``.
    """
    base: Any = sweep
    while getattr(base, "base", None) is not None:
        base = base.base
    grids = getattr(base, "grids", None)
    if grids is not None and len(grids) > 1:
        sigs = {_axes_signature(grid.axes) for grid in grids}
        return sigs.pop() if len(sigs) == 1 else None
    return _axes_signature(sweep.axes)


def _axes_signature(axes: Any) -> tuple[type, ...] | None:
    sig = []
    for axis in axes:
        kind = _ONE_TYPE.get(axis.kind)
        if kind is None and axis.size <= _LISTED:
            types = set(map(type, axis.values(0, axis.size)))
            kind = types.pop() if len(types) == 1 else None
        if kind is None:
            return None
        sig.append(kind)
    return tuple(sig)


def _names(source: dict[str, Any]) -> set[str] | None:
    """The variables of a logged sweep: its expressions' names (of its first grid)."""
    from .._parse import parse

    exprs = list(source.get("exprs") or ())
    grids = source.get("grids") or ()
    if grids:
        exprs += list(grids[0])
    try:
        return {parse(e).name for e in exprs}
    except (RangeExprError, TypeError):
        return None


def _differs(ours: dict[str, Any], done: Done) -> str:
    """`` (different exec, variables)``: what the log's last run does otherwise."""
    logged = done.last_source
    if not isinstance(logged, dict):
        return ""
    keys = [k for k in _TEMPLATES if logged.get(k) != ours.get(k)]
    if _names(logged) != set(done.names):
        keys.append("variables")
    return f" (different {', '.join(keys)})" if keys else ""
