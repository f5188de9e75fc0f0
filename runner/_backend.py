"""The one small interface between the runner and the places jobs run.

The runner owns scheduling (capacity, retries, halting, the job log); a backend only runs
one attempt of one job and reports how it ended. Backends never raise for a job that
failed: they return an Outcome. Three exceptions are theirs to raise, and nothing else: a
BackendError when the backend itself is unusable (from ``__aenter__``, nothing submitted,
or from ``run`` when it breaks mid-run), a StorageError when one of the runner's own
files cannot be written, and NotStarted for an attempt given up before its job started.

Starting: a backend that makes attempts wait before their jobs run (a pool of local
resources, a cluster's queue) says so with ``attempt.queued()`` and, once the job really
runs, ``attempt.started()``; the runner shows such attempts as waiting, not running. A
backend that never calls them is shown as today: an attempt runs from the moment it is
handed over. When the run stops, ``attempt.give_up`` is set (with ``abort``, or alone for
a stop "soon"): a job not started by then never starts; ``run`` raises NotStarted, and the
attempt has no outcome and no record (a resume runs it). A failure may stop the run
(``--halt``), and the runner judges it only once ``run`` has returned: a backend that
hands a failed job's resources to a waiting one calls ``attempt.ending()`` before, and the
waiting one ``await attempt.settled()`` before it starts, so that it sees that stop.

``Batching`` is the other half of a remote backend that runs several points in one remote
job: which points go together, the /bin/sh command that runs them there, and how its
output splits back into one result per point. The runner knows nothing of what the
command is; the caller (``rangeexpr/_batch.py``) does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import trio

from ._resources import Request

Status = Literal["succeeded", "failed", "timed_out", "killed", "lost"]
_NOTHING = Request()  # what a job asks for by default


class BackendError(Exception):
    """The backend cannot run jobs at all (unreachable, misconfigured)."""


class NotStarted(Exception):
    """Raised by ``Backend.run`` for an attempt given up before its job started.

    The job never ran: the attempt has no outcome, the runner writes no record for it and
    counts the job as never started.
    """


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
    # What the job asks for (a backend with a pool waits until it
    # fits), and, for a job whose command or environment names its slot or GPUs, the
    # rendering finished once they are known: ``finish({"RANGEEXPR_SLOT": "0", ...})`` is
    # the job to run, ``argv``/``command``/``env`` rendered with those values; the backend
    # returns it as ``Outcome.job``. A backend with no slots or GPUs (Ray, Slurm) never
    # calls it: callers refuse such jobs there.
    request: Request = _NOTHING
    finish: Callable[[Mapping[str, str]], Job] | None = None
    # The stem of the job's output files with a results directory (``DIR/<name>.out``),
    # chosen by the caller and safe as a file name; "" names them by ``index``. Indices
    # shift when a sweep grows, names made from the point's values do not.
    name: str = ""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at one job, with where its output goes and how to stop it."""

    job: Job
    attempt: int  # 1 for the first try
    timeout: float | None  # seconds; the backend terminates (then kills) the job past it
    stdout: Path  # the backend writes the job's stdout here, streamed, never held whole
    stderr: Path
    abort: trio.Event  # set when the run is stopping: terminate the job, return "killed"
    # What the run and the backend tell each other beside ``abort`` (made by the runner;
    # None for an attempt of no Runner): backends only call the methods below.
    signals: RunSignals | None = None

    @property
    def give_up(self) -> trio.Event:
        """Set when the run stops, soon or now: a job not started by then must not start
        (``run`` raises NotStarted). ``abort`` itself for an attempt of no Runner."""
        run = self.signals
        return self.abort if run is None else run.give_up

    def queued(self) -> None:
        """The job waits before it runs (for resources, in a queue): shown as waiting."""
        run = self.signals
        if run is not None:
            run.waiting.add(self.job.index)

    def started(self) -> None:
        """The job runs now (after ``queued()``): shown as running."""
        run = self.signals
        if run is not None:
            run.waiting.discard(self.job.index)

    def ending(self) -> None:
        """The job ended, not successfully, and its resources are about to go to a waiting
        job: that one waits (``settled``) until the runner has judged this outcome."""
        run = self.signals
        if run is not None:
            run.judging.add(self.job.index)

    async def settled(self) -> None:
        """Return once the runner has judged every ``ending()`` attempt of the run, so a
        stop they caused has set ``give_up``; at once when there are none."""
        run = self.signals
        while run is not None and run.judging:
            await run.judged.wait()


class RunSignals:
    """What one run and its backend tell each other beside ``abort``: the event that gives
    up jobs not started; the indices of the jobs waiting to start (from ``queued()`` until
    ``started()`` or the job's end) and of those whose failure the runner has yet to judge
    (from ``ending()`` until ``judge()``). One per run, made by the runner."""

    __slots__ = ("give_up", "judged", "judging", "waiting")

    def __init__(self) -> None:
        self.give_up = trio.Event()
        self.waiting: set[int] = set()
        self.judging: set[int] = set()
        self.judged = trio.Event()  # set, and replaced, each time judging empties

    def judge(self, index: int) -> None:
        """The runner has judged job ``index``'s outcome (and stopped the run if it must)."""
        judging = self.judging
        judging.discard(index)
        if not judging:
            self.judged.set()
            self.judged = trio.Event()


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended."""

    status: Status
    exit_code: int | None  # None when killed by a signal or never known (lost)
    signal: int | None = None
    backend_id: str | None = None  # e.g. the Ray submission id
    message: str | None = None  # why, when the status alone does not say (lost, ...)
    # More fields for the job-log record (e.g. "metrics", "resources"): JSON values, never
    # overriding the fields above.
    extra: Mapping[str, Any] | None = None
    # Seconds the attempt waited for its resources before it started:
    # the runner counts its start and duration from the end of that wait.
    queued: float = 0.0
    # The job as it ran, when the backend finished it (``Job.finish``): the job-log record
    # shows its command, not the placeholders the runner handed over.
    job: Job | None = None
    # Bytes the attempt left in its stdout and stderr files, when the backend knows (it
    # wrote them, or holds them open): the runner then need not look. None: it looks.
    output: tuple[int, int] | None = None


class Backend(Protocol):
    """Runs attempts. Used as ``async with backend: ... await backend.run(attempt)``.

    ``jobs_per_slot``: how many of the runner's jobs one slot of its limit admits, so a
    limit of N runs N remote jobs when each packs K points (1 for a backend running one
    job per attempt). ``kill()`` is the immediate stop: grace periods skipped, every
    running attempt still returns, as "killed", as soon as the backend can make it so,
    and one not started raises NotStarted. The graceful stop is the attempts' shared
    ``abort`` event; ``give_up`` (see the module) keeps jobs not started from starting.
    """

    name: str
    jobs_per_slot: int

    async def __aenter__(self) -> Backend: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def run(self, attempt: Attempt) -> Outcome: ...

    def kill(self) -> None: ...


class Batching(Protocol):
    """Several consecutive jobs run as one remote job (``per_job`` of them).

    ``group(index)`` is the ``[first, stop)`` holding ``index``: fixed, so every job finds
    its group whatever order the runner starts them in. ``command(first, stop, tag)`` is
    the /bin/sh command line that runs them remotely; ``tag`` is unique to that remote job
    (its submission id, say), for the command to frame its output with. ``split(output,
    first, stop, tag)`` turns the remote job's whole output back into each index's
    outcome, stdout and stderr: every index of ``[first, stop)``, one the output holds no
    result for as "lost" with the command's own diagnostics as its stderr, for the backend
    to settle by how the remote job ended.
    """

    @property
    def per_job(self) -> int: ...

    def group(self, index: int) -> tuple[int, int]: ...

    def command(self, first: int, stop: int, tag: str) -> str: ...

    def split(
        self, output: bytes, first: int, stop: int, tag: str
    ) -> dict[int, tuple[Outcome, bytes, bytes]]: ...
