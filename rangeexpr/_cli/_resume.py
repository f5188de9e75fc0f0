"""The job log of a run: taken, checked writable, its header, and ``--resume``.

The header's ``source`` is ``RunSpec.identity()``; a resumed run must have the same, so
that the points a log records as succeeded are the points this run would run.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import RangeExprError
from .._spec import RunSpec

if TYPE_CHECKING:
    from runner import JobLog, Resumed

    from .._points import BaseSweep

__all__ = ["check_writable", "header", "read_resume", "resume", "take_joblog"]


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
    """What the job log's first line says about the run (``source`` identifies the sweep)."""
    return {
        "source": spec.identity(),
        "size": sweep.max_size,  # a filtered sweep's is an upper bound
        "version": _version(),
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rangeexpr")
    except PackageNotFoundError:
        return "unknown"


def read_resume(spec: RunSpec, sweep: BaseSweep) -> Resumed:
    """What the spec's job log says (for --dry-run, which takes no lock)."""
    from runner import read_joblog

    assert spec.joblog is not None
    path = Path(spec.joblog)
    return _checked(
        path, lambda check: read_joblog(path, sweep.full_size, check_header=check), spec
    )


def resume(joblog: JobLog, spec: RunSpec, sweep: BaseSweep) -> Resumed:
    """Read the job log this run holds, and set it to append after its last whole line."""
    return _checked(
        joblog.path, lambda check: joblog.resume(sweep.full_size, check_header=check), spec
    )


def _checked(
    path: Path, read: Callable[[Callable[[dict[str, Any]], None]], Resumed], spec: RunSpec
) -> Resumed:
    """``read(check)`` with errors as RangeExprError; ``check`` refuses another sweep's log."""
    from runner import JobLogError, StorageError

    wanted = json.loads(json.dumps(spec.identity()))  # tuples -> lists, as the log holds them

    def check(header: dict[str, Any]) -> None:
        logged = header.get("source")
        if logged == wanted:
            return
        differs = ""
        if isinstance(logged, dict):
            keys = sorted(
                k for k in wanted.keys() | logged.keys() if logged.get(k) != wanted.get(k)
            )
            differs = f" (different {', '.join(keys)})" if keys else ""
        raise RangeExprError(
            f"cannot resume: {path} is the job log of a different sweep{differs}; "
            "resume with the same expressions and templates, or use another --joblog file"
        )

    try:
        return read(check)
    except (JobLogError, StorageError) as exc:
        raise RangeExprError(f"cannot resume: {exc}") from None
    except OSError as exc:
        raise RangeExprError(f"cannot resume: cannot read {path}: {exc.strerror}") from None
