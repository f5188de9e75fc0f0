"""The one small interface between the runner and the places jobs run.

The runner owns scheduling (capacity, retries, halting, the job log); a backend only runs
one attempt of one job and reports how it ended. Backends never raise for a job that
failed: they return an Outcome. They raise BackendError only when the backend itself is
unusable (e.g. a Ray head that cannot be reached at start).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import trio

Status = Literal["succeeded", "failed", "timed_out", "killed", "lost"]


class BackendError(Exception):
    """The backend cannot run jobs at all (unreachable, misconfigured)."""


class StorageError(OSError):
    """One of the runner's own files (job log, output file) cannot be written.

    Not a job's failure: the runner stops launching, keeps every record already written,
    and reports which file and why (``str(exc)``).
    """


@dataclass(frozen=True, slots=True)
class Job:
    """One point of a sweep, rendered and ready to run."""

    index: int  # the point's index in the full sweep (stable job number)
    argv: tuple[str, ...]  # what to exec; with --shell ("/bin/sh", "-c", SCRIPT, "sh", *values)
    command: str  # one /bin/sh command line equivalent to argv: what the log shows, what Ray runs
    env: Mapping[str, str]  # extra environment: the -e values, RANGEEXPR_INDEX, RANGEEXPR_COUNT
    values: Mapping[str, int | float | str]  # the point's typed values, for the job log


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at one job, with where its output goes and how to stop it."""

    job: Job
    attempt: int  # 1 for the first try
    timeout: float | None  # seconds; the backend terminates (then kills) the job past it
    stdout: Path  # the backend writes the job's stdout here, streamed, never held whole
    stderr: Path
    abort: trio.Event  # set when the run is stopping: terminate the job, return "killed"


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended."""

    status: Status
    exit_code: int | None  # None when killed by a signal or never known (lost)
    signal: int | None = None
    backend_id: str | None = None  # e.g. the Ray submission id
    message: str | None = None  # why, when the status alone does not say (lost, ...)


class Backend(Protocol):
    """Runs attempts. Used as ``async with backend: ... await backend.run(attempt)``."""

    name: str

    async def __aenter__(self) -> Backend: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def run(self, attempt: Attempt) -> Outcome: ...
