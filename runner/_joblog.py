"""The job log: JSON Lines, a header naming the sweep, then one record per finished attempt.

A resumed run that changed the sweep (grown, narrowed) appends a header of its own before
its records (``JobLog.append_at`` then ``add_header``), so one log can hold several runs.

One run writes a log at a time: a ``JobLog`` holds an exclusive ``flock`` on a lock file
beside the log (``LOG.lock``, holding the writer's PID, removed when it closes) from before
the log is read for ``--resume`` until the run ends, so a second run on the same log is
refused (``JobLogBusy``) before it runs anything. A lock on a separate file rather than on
the log itself lets the refused run name the holder's PID. A log that is not a regular file
(``/dev/stderr``, a pipe, ``/dev/null``) is a stream nobody resumes from: it is not locked.

Each record is one ``os.write`` of one whole line on an ``O_APPEND`` descriptor, made when
its attempt ends: a runner killed with -9 loses no finished job, and lines never tear or
overwrite each other. The file is never rewritten, only appended to. A last line cut short
by a crash is dropped on resume (its attempt is simply run again); a write that fails
(disk full, read-only) is cut back to the last whole line and the log refuses further
records with a ``StorageError`` naming the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._backend import Job, Outcome, StorageError

__all__ = ["FORMAT", "JobLog", "JobLogBusy", "JobLogError", "Resumed", "read_joblog"]

FORMAT = "rangeexpr-joblog/1"  # the header's "format": bump if records change incompatibly


class JobLogError(ValueError):
    """The job log cannot be used: unreadable, not a job log, or for another sweep."""


class JobLogBusy(JobLogError):
    """Another process is writing this job log (``pid``: which one, when it could be read)."""

    def __init__(self, path: Path, pid: int | None):
        holder = f"PID {pid}" if pid is not None else "a process that just started"
        super().__init__(
            f"{path} is in use by another run ({holder}): a job log has one writer at a "
            "time; wait for that run to end, or use another --joblog file"
        )
        self.path = path
        self.pid = pid


@dataclass(frozen=True, slots=True)
class Resumed:
    """What an existing log says: its header and the indices that already succeeded."""

    header: dict[str, Any]
    succeeded: frozenset[int]
    end: int  # byte offset after the last complete line: appending starts there


def read_joblog(
    path: Path,
    size: int | None = None,
    *,
    check_header: Callable[[dict[str, Any]], None] | None = None,
    on_record: Callable[[int, dict[str, Any]], None] | None = None,
) -> Resumed:
    """Read a job log written by ``JobLog``; JobLogError if it is not one.

    Every record must say exactly which point it is: an ``index`` that is a whole number
    (not a float, a bool or text), from 0 to ``size - 1`` when ``size`` (the full sweep's)
    is given. Anything else makes the log invalid, with ``file:line``, rather than being
    read as some other point. ``check_header`` sees each header before the records after
    it, so a log of another sweep is refused as that, not for its indices. ``header`` is
    the first one (a log resumed by a grown sweep holds one per run, see ``_scan``).
    ``on_record(index, record)``, if given, sees each record instead of ``succeeded``
    collecting indices (then left empty): a caller matching points by their values keeps
    what it needs, not every index.
    """
    succeeded: set[int] = set()
    headers: list[dict[str, Any]] = []

    def on_header(header: dict[str, Any]) -> None:
        headers.append(header)
        if check_header is not None:
            check_header(header)

    def on_succeeded(index: int, record: dict[str, Any]) -> None:
        if record.get("status") == "succeeded":
            succeeded.add(index)

    end = _scan(path, on_header, on_succeeded if on_record is None else on_record, size)
    return Resumed(headers[0], frozenset(succeeded), end)


def _scan(
    path: Path,
    on_header: Callable[[dict[str, Any]], None],
    on_record: Callable[[int, dict[str, Any]], None],
    size: int | None = None,
) -> int:
    """Read a job log in order: ``on_header`` for each header, ``on_record(index, record)``
    for each record; the byte offset after its last whole line.

    A log holds one header per run appended to it (a resumed run of a grown sweep starts
    with its own header line), each before its records. A header is a line with the
    ``format`` and no ``index``; the first line must be one. Records are checked as
    ``read_joblog`` says.
    """
    header_seen = False
    end = 0
    loads = json.loads
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.endswith(b"\n"):
                break  # cut short by a crash mid-write: ignore it, it will be overwritten
            try:
                record = loads(raw)
            except ValueError:
                raise JobLogError(f"{path}:{lineno}: not a JSON line; is this a job log?") from None
            if isinstance(record, dict) and "index" not in record and "format" in record:
                if record["format"] != FORMAT:
                    raise JobLogError(f"{path}:{lineno}: a header of another format, not {FORMAT}")
                header_seen = True
                on_header(record)
            elif not header_seen:
                raise JobLogError(f"{path} is not a rangeexpr job log (no header line)")
            else:
                index = record.get("index") if isinstance(record, dict) else None
                if not (type(index) is int and index >= 0 and (size is None or index < size)):
                    index = _index(record, size, f"{path}:{lineno}")
                on_record(index, record)
            end += len(raw)
    if not header_seen:
        raise JobLogError(f"{path} is empty: not a rangeexpr job log")
    return end


def _index(record: object, size: int | None, where: str) -> int:
    """The point a record is about, or JobLogError saying why it names none exactly."""
    if not isinstance(record, dict):
        raise JobLogError(f"{where}: a record must be a JSON object, not {_show(record)}")
    if "index" not in record:
        raise JobLogError(f'{where}: the record has no "index": it does not say which point it is')
    index = record["index"]
    if type(index) is int and index >= 0 and (size is None or index < size):
        return index
    if size is None:
        wanted = "a whole number >= 0"
    elif size == 0:
        wanted = "the sweep has no point"
    else:
        wanted = f"a whole number from 0 to {size - 1}"
    raise JobLogError(f'{where}: "index" is {_show(index)}, not a point of the sweep ({wanted})')


def _show(value: object) -> str:
    """A JSON value as the log would hold it, cut to a readable length."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


class JobLog:
    """Appends records to a job log it holds the lock of; ``close()`` releases it.

    ``JobLog(path)`` only takes the lock (``JobLogBusy`` if another run holds it); then
    ``start(header)`` begins a new log, or ``resume(size)`` reads the existing one and
    continues after its last complete line. ``create`` does both steps for a new log.
    """

    def __init__(self, path: Path):
        self.path = path
        self._lock = _LockFile(path) if _is_file(path) else None
        self._fd: int | None = None
        self._end = 0  # the size of the log's complete lines: a failed write is cut back here
        self._failed: StorageError | None = None

    def __enter__(self) -> JobLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @classmethod
    def create(cls, path: Path, header: Mapping[str, Any]) -> JobLog:
        """Take ``path`` and start a new log there (replacing any old one) with ``header``."""
        log = cls(path)
        try:
            log.start(header)
        except BaseException:
            log.close()
            raise
        return log

    def start(self, header: Mapping[str, Any]) -> None:
        """Empty the log and write ``header`` as its first line (StorageError if it fails)."""
        self._open(os.O_TRUNC)
        self._write({"format": FORMAT, **header})

    def resume(
        self,
        size: int | None = None,
        *,
        check_header: Callable[[dict[str, Any]], None] | None = None,
    ) -> Resumed:
        """Read the log (see ``read_joblog``), then append after its last complete line."""
        resumed = read_joblog(self.path, size, check_header=check_header)
        self.append_at(resumed.end)
        return resumed

    def append_at(self, end: int) -> None:
        """Continue the log after byte ``end``, the end of its last whole line (as read by
        ``scan_joblog``): a line cut short by a crash is cut off."""
        self._open(0)
        fd = self._fd_or_fail()
        try:
            if os.fstat(fd).st_size > end:
                os.ftruncate(fd, end)  # a line cut short by a crash
        except OSError as exc:
            raise self._fail(exc) from exc
        self._end = end

    def add_header(self, header: Mapping[str, Any]) -> None:
        """Begin another run in a log continued with ``append_at``: its own header line."""
        self._write({"format": FORMAT, **header})

    def record(
        self, job: Job, attempt: int, outcome: Outcome, start: float, duration: float
    ) -> None:
        """Write one finished attempt.

        ``command`` is what ran: the job the backend finished (``Outcome.job``) if it did.
        ``output`` is the stem of the job's files in the results directory, when it has
        some (``Job.name``, as ``ByName`` gave it).
        """
        ran = outcome.job if outcome.job is not None else job
        self._write(
            {
                **(outcome.extra or {}),  # first, so it can never override the fields below
                "index": job.index,
                "values": dict(job.values),
                "command": ran.command,
                "status": outcome.status,
                "exit_code": outcome.exit_code,
                "signal": outcome.signal,
                "start": round(start, 6),
                "duration": round(duration, 6),
                "attempt": attempt,
                "backend_id": outcome.backend_id,
                **({"message": outcome.message} if outcome.message else {}),
                **({"output": job.name} if job.name else {}),
            }
        )

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock is not None:
            self._lock.release()

    def _open(self, flags: int) -> None:
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | flags, 0o666)
        except OSError as exc:
            raise self._fail(exc) from exc

    def _fd_or_fail(self) -> int:
        if self._fd is None:
            raise RuntimeError("the job log is not open: call start() or resume() first")
        return self._fd

    def _write(self, record: Mapping[str, Any]) -> None:
        """One line, one ``write`` (atomic under O_APPEND); a failure leaves whole lines."""
        if self._failed is not None:
            raise self._failed
        fd = self._fd_or_fail()
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        rest = memoryview(line)
        try:
            while rest:  # more than one write only when the disk is filling up
                rest = rest[os.write(fd, rest) :]
        except OSError as exc:
            with contextlib.suppress(OSError):  # not possible on every file (/dev/full)
                os.ftruncate(fd, self._end)
            raise self._fail(exc) from exc
        self._end += len(line)

    def _fail(self, exc: OSError) -> StorageError:
        self._failed = StorageError(f"cannot write the job log {self.path}: {exc.strerror or exc}")
        return self._failed


def _is_file(path: Path) -> bool:
    """Whether ``path`` is (or, not there yet, will be) a regular file."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return True


class _LockFile:
    """An exclusive ``flock`` on ``LOG.lock`` beside the log's real path, holding our PID.

    The file is removed on release. A run that opened it just before must not then hold a
    lock on a file nobody else can find: after locking, it checks that the path still names
    the file it locked, and starts over if not.
    """

    def __init__(self, log: Path):
        self.path = Path(os.path.realpath(log) + ".lock")
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).strip()
                os.close(fd)
                raise JobLogBusy(log, int(holder) if holder.isdigit() else None) from None
            except OSError as exc:
                os.close(fd)
                raise JobLogError(f"cannot lock {self.path}: {exc.strerror or exc}") from None
            with contextlib.suppress(FileNotFoundError):
                if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                    break
            os.close(fd)  # released and removed by its holder meanwhile: take the new one
        with contextlib.suppress(OSError):  # a full disk: locked all the same, PID unknown
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        self._fd: int | None = fd

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise JobLogError(f"cannot create {self.path}: {exc.strerror or exc}") from None

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None
