"""The job log: JSON Lines, a header naming the sweep, then one record per finished attempt.

Each record is written and flushed when its attempt ends, so a runner killed with -9 loses
no finished job; the file is never rewritten, only appended to. ``--resume`` reads it back
to skip what succeeded. A last line cut short by a crash is dropped on resume (its attempt
is simply run again).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ._backend import Job, Outcome

__all__ = ["FORMAT", "JobLog", "JobLogError", "read_joblog"]

FORMAT = "rangeexpr-joblog/1"  # the header's "format": bump if records change incompatibly


class JobLogError(ValueError):
    """The job log cannot be used: unreadable, not a job log, or for another sweep."""


@dataclass(frozen=True, slots=True)
class Resumed:
    """What an existing log says: its header and the indices that already succeeded."""

    header: dict[str, Any]
    succeeded: frozenset[int]
    end: int  # byte offset after the last complete line: appending starts there


def read_joblog(path: Path) -> Resumed:
    """Read a job log written by ``JobLog``; JobLogError if it is not one."""
    succeeded: set[int] = set()
    header: dict[str, Any] | None = None
    end = 0
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.endswith(b"\n"):
                break  # cut short by a crash mid-write: ignore it, it will be overwritten
            try:
                record = json.loads(raw)
            except ValueError:
                raise JobLogError(f"{path}:{lineno}: not a JSON line; is this a job log?") from None
            if header is None:
                if not isinstance(record, dict) or record.get("format") != FORMAT:
                    raise JobLogError(f"{path} is not a rangeexpr job log (no header line)")
                header = record
            elif isinstance(record, dict) and record.get("status") == "succeeded":
                succeeded.add(int(record["index"]))
            end += len(raw)
    if header is None:
        raise JobLogError(f"{path} is empty: not a rangeexpr job log")
    return Resumed(header, frozenset(succeeded), end)


class JobLog:
    """Appends records to an open job log file, one flushed line per finished attempt."""

    def __init__(self, file: IO[str]):
        self._file = file

    @classmethod
    def create(cls, path: Path, header: Mapping[str, Any]) -> JobLog:
        """Start a new log (replacing any old one) with ``header`` as its first line."""
        file = path.open("w", encoding="utf-8")
        log = cls(file)
        log._write({"format": FORMAT, **header})
        return log

    @classmethod
    def append(cls, path: Path, end: int) -> JobLog:
        """Continue an existing log after its last complete line (see ``read_joblog``)."""
        fd = os.open(path, os.O_WRONLY)
        os.truncate(fd, end)
        os.lseek(fd, end, os.SEEK_SET)
        return cls(os.fdopen(fd, "w", encoding="utf-8"))

    def record(
        self, job: Job, attempt: int, outcome: Outcome, start: float, duration: float
    ) -> None:
        """Write one finished attempt."""
        self._write(
            {
                "index": job.index,
                "values": dict(job.values),
                "command": job.command,
                "status": outcome.status,
                "exit_code": outcome.exit_code,
                "signal": outcome.signal,
                "start": round(start, 6),
                "duration": round(duration, 6),
                "attempt": attempt,
                "backend_id": outcome.backend_id,
                **({"message": outcome.message} if outcome.message else {}),
            }
        )

    def _write(self, record: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
