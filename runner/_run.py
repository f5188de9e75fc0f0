"""The runner: pulls jobs lazily under a capacity limit, retries, halts, and logs them.

Scheduling lives here and nowhere else; a backend only runs one attempt (``_backend.py``).
The launch loop takes a limiter token *before* it pulls the next job from the iterable, so
at most ``limit`` jobs exist at once whatever the sweep's size: a 10^12-point sweep starts
at once and runs in flat memory. Every job runs as a task of one nursery, so an exception
anywhere (a broken backend, a bug) cancels the run and propagates, never lost.

Stopping comes in two strengths, as GNU Parallel's ``--halt``: *soon* stops launching and
lets running jobs finish; *now* also sets the attempts' shared ``abort`` event, on which
backends terminate their jobs and report them "killed", so they still get their record.
Either way the jobs handed to the backend that have not started (waiting for resources, in
a cluster's queue) are given up (``Attempt.give_up``): they never run, get no record, and
count as never started. ``kill()`` is *now* without the backend's grace periods
(``Backend.kill``).

The limit counts slots: a plain limit N admits ``N * backend.jobs_per_slot`` jobs at once
(a backend packing K jobs into one remote job runs N remote jobs).

A backend that breaks (BackendError from ``run``) cancels the whole run, as any exception
does, and ``run()`` raises that BackendError itself, so a caller catches the backend's
failures with one ``except BackendError`` around ``async with backend`` and ``run()``.

Two failures stop a run *soon* rather than crash it, so that nothing already done is lost:
an exception from the job iterable (e.g. a ``--where`` that fails on one point), raised
again by ``run()`` once the running jobs have finished and been recorded; and an I/O
failure of the runner's own files (the job log, output files, or a backend's
``StorageError``), which ends the run with ``stopped == "storage"`` and a message naming
the file, every record already written kept.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import trio

from ._backend import (
    Attempt,
    Backend,
    BackendError,
    Job,
    NotStarted,
    Outcome,
    RunSignals,
    Status,
    StorageError,
)
from ._joblog import JobLog
from ._metrics import Metrics
from ._output import ByName, InOrder, OutputCopier, Scratch, last_line
from ._policy import NEVER, Halt

__all__ = ["FailedJob", "RunStatistics", "Runner", "SlowJob", "Summary", "run_jobs"]

StopReason = Literal["interrupted", "halt", "lost", "storage", "error"]
_RETRYABLE = frozenset({"failed", "timed_out"})


@dataclass(frozen=True, slots=True)
class RunStatistics:
    """A snapshot of a run in progress (what a progress display shows).

    ``started``: the jobs handed to the backend, less those it gave up before they started
    (``NotStarted``): finished, running or waiting. ``waiting``: handed over, not started
    yet, as the backend reports it (``Attempt.queued``/``started``); a backend that does
    not report it has none, its jobs count as running from the moment they are handed over.
    """

    started: int
    running: int
    succeeded: int
    failed: int  # failed or timed out, after all retries
    killed: int
    lost: int
    waiting: int = 0

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.killed + self.lost


@dataclass(frozen=True, slots=True)
class SlowJob:
    """One of the slowest attempts of a run, for the summary."""

    index: int
    duration: float
    command: str


# results
@dataclass(frozen=True, slots=True)
class FailedJob:
    """A job that did not succeed (failed, timed out, killed or lost), for the summary."""

    index: int
    values: Mapping[str, Any]
    status: Status
    exit_code: int | None
    signal: int | None
    stderr: str  # the last non-blank line of its last attempt's stderr ("" if none)
    message: str | None  # what the backend said, if anything


@dataclass(frozen=True, slots=True)
class Summary:
    """How a run ended."""

    succeeded: int
    failed: int
    killed: int
    lost: int
    elapsed: float  # seconds
    slowest: tuple[SlowJob, ...]  # slowest first
    stopped: StopReason | None  # why the run stopped early, None if it ran to the end
    message: str | None = None  # what a "lost" outcome said, or which file failed and why
    # results
    failures: tuple[FailedJob, ...] = ()  # the first of the jobs that did not succeed
    median: float | None = None  # the median attempt's duration (within 3%), None if none
    attempts: int = 0  # attempts that ended (their durations make the median)
    metrics: tuple[tuple[str, int], ...] = ()  # each metric: how many jobs reported it

    @property
    def ok(self) -> bool:
        """Whether every job that ran succeeded and the run was not cut short."""
        return self.failed == self.killed == self.lost == 0 and self.stopped is None


class Runner:
    """Runs jobs through a backend; ``run()`` once, ``stop()`` and ``statistics()`` any time.

    ``limiter`` is injected (a ``trio.CapacityLimiter``, used as it is, so several runs can
    share one) or a plain limit of slots (``limit * backend.jobs_per_slot`` jobs). Without
    ``results_dir`` each attempt's output goes to temporary files that are copied to
    stdout/stderr as one block when it ends; with it, the files stay there as
    ``<index>.out`` and ``<index>.err`` (the last attempt's).

    ``metrics``: read after each attempt from its stdout (and its metrics file), into the
    record's ``"metrics"``. Without ``results_dir``, ``tag(job)`` is put before each line
    of a job's output, and ``keep_order`` copies outputs in the order the jobs were pulled
    (only the last attempt's, then): the files of jobs finished before an earlier one wait.
    """

    def __init__(
        self,
        backend: Backend,
        limiter: trio.CapacityLimiter | int,
        *,
        retries: int = 0,
        timeout: float | None = None,
        halt: Halt = NEVER,
        joblog: JobLog | None = None,
        results_dir: Path | None = None,
        slowest: int = 5,
        # results
        metrics: Metrics | None = None,
        tag: Callable[[Job], str] | None = None,
        keep_order: bool = False,
        failures: int = 20,
    ):
        if isinstance(limiter, int):
            limiter = trio.CapacityLimiter(limiter * backend.jobs_per_slot)
        if retries < 0:
            raise ValueError(f"retries must be >= 0, not {retries}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, not {timeout}")
        self._backend = backend
        self._limiter = limiter
        self._retries = retries
        self._timeout = timeout
        self._halt = halt
        self._joblog = joblog
        self._results_dir = results_dir
        self._keep_slowest = slowest
        self._abort = trio.Event()
        self._launch = trio.CancelScope()
        self._everything = trio.CancelScope()  # the whole run: cancelled if the backend breaks
        self._broken: BackendError | None = None
        self._copier = OutputCopier()
        self._slowest: list[tuple[float, int, str]] = []  # a min-heap of the slowest
        self._stopped: StopReason | None = None
        self._message: str | None = None
        self._started = self._running = 0  # _running: in flight, waiting ones included
        self._signals = RunSignals()  # jobs waiting to start, giving up
        self._succeeded = self._failed = self._killed = self._lost = 0
        self._ran = False
        self._begin = 0.0
        self._elapsed: float | None = None  # set when run() ends
        # results
        self._metrics = metrics
        self._tag = tag
        self._in_order = InOrder() if keep_order and results_dir is None else None
        self._pulled = 0  # jobs pulled so far: the next one's place in the order
        self._keep_failures = failures
        self._failures: list[FailedJob] = []
        self._tails: dict[int, str] = {}  # a failed attempt's last stderr line, by index
        self._durations: Counter[int] = Counter()  # attempts by _BINS-th of a power of 2
        self._reported: Counter[str] = Counter()  # jobs with a value of each metric

    def __repr__(self) -> str:
        s = self.statistics()
        return (
            f"<Runner {self._backend.name} running={s.running} succeeded={s.succeeded} "
            f"failed={s.failed} killed={s.killed} lost={s.lost} stopped={self._stopped}>"
        )

    def statistics(self) -> RunStatistics:
        waiting = min(len(self._signals.waiting), self._running)
        return RunStatistics(
            self._started,
            self._running - waiting,
            self._succeeded,
            self._failed,
            self._killed,
            self._lost,
            waiting,
        )

    def stop(self, reason: StopReason = "interrupted", *, now: bool = True) -> None:
        """Stop launching jobs and give up those not started; with ``now`` also terminate
        the running ones."""
        if self._stopped is None or reason == "interrupted":
            self._stopped = reason
        self._launch.cancel()
        self._signals.give_up.set()
        if now:
            self._abort.set()

    def kill(self, reason: StopReason = "interrupted") -> None:
        """Stop now, skipping the backend's grace periods (e.g. a second Ctrl-C).

        The running attempts still end, as "killed", and get their records.
        """
        self.stop(reason, now=True)
        self._backend.kill()

    def summary(self) -> Summary:
        """How the run ended (or stands): what ``run()`` returns, also after it raised."""
        slowest = sorted(self._slowest, reverse=True)
        elapsed = self._elapsed
        if elapsed is None:
            elapsed = trio.current_time() - self._begin if self._ran else 0.0
        return Summary(
            self._succeeded,
            self._failed,
            self._killed,
            self._lost,
            elapsed,
            tuple(SlowJob(index, duration, command) for duration, index, command in slowest),
            self._stopped,
            self._message,
            tuple(self._failures),
            _median(self._durations),
            self._durations.total(),
            tuple(self._reported.items()),
        )

    async def run(self, jobs: Iterable[Job]) -> Summary:
        """Run every job of ``jobs`` (pulled lazily) unless stopped; return the summary.

        An exception from ``jobs`` stops launching; it is raised here once the jobs already
        started have finished and been recorded (``summary()`` then says how far it got).
        A BackendError from the backend cancels the run and is raised here.
        """
        if self._ran:
            raise RuntimeError("a Runner runs once; make a new one")
        self._ran = True
        self._begin = trio.current_time()
        try:
            if self._results_dir is not None:
                self._results_dir.mkdir(parents=True, exist_ok=True)
                files: ByName | Scratch = ByName(self._results_dir)
            else:
                files = Scratch(Path(tempfile.mkdtemp(prefix="rangeexpr-")))
        except OSError as exc:
            self._storage_failed(exc, "the output directory")
            self._elapsed = trio.current_time() - self._begin
            return self.summary()
        error: Exception | None = None
        try:
            with self._everything:
                error = await self._launch_all(jobs, files)
        finally:
            self._elapsed = trio.current_time() - self._begin
            if isinstance(files, Scratch):
                shutil.rmtree(files.directory, ignore_errors=True)
        if self._broken is not None:
            raise self._broken
        if error is not None:
            raise error
        return self.summary()

    async def _launch_all(self, jobs: Iterable[Job], files: ByName | Scratch) -> Exception | None:
        """Launch the jobs; the exception that ``jobs`` raised, if it did, once all ended."""
        limiter = self._limiter
        error: Exception | None = None
        async with trio.open_nursery() as nursery:
            with self._launch:
                iterator = iter(jobs)
                while True:
                    borrower = object()  # one token per job, released by the job's task
                    await limiter.acquire_on_behalf_of(borrower)
                    try:
                        job = next(iterator, None)
                    except Exception as exc:
                        limiter.release_on_behalf_of(borrower)
                        error = exc
                        self.stop("error", now=False)
                        break
                    except BaseException:
                        limiter.release_on_behalf_of(borrower)
                        raise
                    if job is None:
                        limiter.release_on_behalf_of(borrower)
                        break
                    self._pulled += 1
                    nursery.start_soon(self._run_job, job, borrower, files, self._pulled - 1)
        return error

    async def _run_job(
        self, job: Job, borrower: object, files: ByName | Scratch, place: int
    ) -> None:
        try:
            job, paths = files.take(job)  # named as its files are (the record says it)
        except OSError as exc:
            self._limiter.release_on_behalf_of(borrower)
            self._storage_failed(exc, "an output file")
            if self._in_order is not None:
                await self._in_order.done(place, None)
            return
        self._started += 1
        self._running += 1
        try:
            number = 1
            while True:
                try:
                    outcome = await self._attempt(job, number, paths)
                except NotStarted:  # stopping: it never ran, no record, a resume runs it
                    if number == 1:
                        self._started -= 1
                        return
                    assert outcome is not None  # a retry: the job ends as its last try did
                    break
                if outcome is None:
                    return  # our files or the backend failed: stopping, the job runs on resume
                if (
                    outcome.status not in _RETRYABLE
                    or number > self._retries
                    or self._stopped is not None
                ):
                    break
                if self._signals.judging:  # judged: retried (its retry may wait on it)
                    self._signals.judge(job.index)
                number += 1
            self._finish(job, outcome)
        finally:
            self._running -= 1
            signals = self._signals
            if signals.waiting:  # it may end while waiting (given up, our files failed)
                signals.waiting.discard(job.index)
            if signals.judging:  # finished: jobs waiting on its judgement may go on
                signals.judge(job.index)
            self._limiter.release_on_behalf_of(borrower)
            if self._in_order is None:
                files.give_back(paths)
            else:  # -k, the files wait for the jobs pulled before this one
                await self._in_order.done(place, self._deliver(job, paths, files))

    async def _attempt(self, job: Job, number: int, paths: tuple[Path, Path]) -> Outcome | None:
        """Run one attempt and record it; None if the backend could not write its output."""
        stdout, stderr = paths
        metrics_file = None  # a fresh metrics file for the attempt, if asked for
        if self._metrics is not None and self._metrics.file_variable is not None:
            metrics_file = Path(f"{stdout}.{number}.metrics.json")
            job = _with_env(job, self._metrics.file_variable, str(metrics_file))
        attempt = Attempt(job, number, self._timeout, stdout, stderr, self._abort, self._signals)
        start = time.time()
        began = trio.current_time()
        try:
            outcome = await self._backend.run(attempt)
        except StorageError as exc:
            self._storage_failed(exc, f"the output of job {job.index}")
            return None
        except BackendError as exc:
            if self._broken is None:
                self._broken = exc
                self._stopped = "error"
            self._everything.cancel()
            return None
        duration = trio.current_time() - began
        # The time spent waiting for resources is not the job's.
        if outcome.queued:
            start += outcome.queued
            duration = max(0.0, duration - outcome.queued)
        if self._metrics is not None:
            size = None if outcome.output is None else outcome.output[0]
            values = await self._metrics.read(stdout, metrics_file, size)
            outcome = dataclasses.replace(
                outcome, extra={**(outcome.extra or {}), "metrics": values}
            )
        if outcome.status != "succeeded":
            self._tails[job.index] = last_line(stderr)
        self._durations[_bin(duration)] += 1
        if self._joblog is not None:
            try:
                self._joblog.record(job, number, outcome, start, duration)
            except OSError as exc:
                self._storage_failed(exc, "the job log")
        if len(self._slowest) < self._keep_slowest:
            heapq.heappush(self._slowest, (duration, job.index, (outcome.job or job).command))
        elif self._slowest and duration > self._slowest[0][0]:
            heapq.heapreplace(self._slowest, (duration, job.index, (outcome.job or job).command))
        if self._results_dir is None and self._in_order is None and outcome.output != (0, 0):
            await self._copy(job, paths, outcome.output)
        return outcome

    async def _copy(
        self, job: Job, paths: tuple[Path, Path], sizes: tuple[int, int] | None = None
    ) -> None:
        """Copy an attempt's output to our stdout and stderr (``tag``'s prefix on each line);
        ``sizes``: the files', when the backend said."""
        prefix = b"" if self._tag is None else (self._tag(job) + "\t").encode()
        out, err = (None, None) if sizes is None else sizes
        try:
            await self._copier.move(paths[0], "stdout", prefix, out)
            await self._copier.move(paths[1], "stderr", prefix, err)
        except OSError as exc:
            self._storage_failed(exc, f"the output of job {job.index}")

    def _deliver(
        self, job: Job, paths: tuple[Path, Path], files: ByName | Scratch
    ) -> Callable[[], Any]:
        """What ``-k`` runs in the job's turn: copy its output, then free its files."""

        async def deliver() -> None:
            try:
                await self._copy(job, paths)
            finally:
                files.give_back(paths)

        return deliver

    def _storage_failed(self, exc: OSError, what: str) -> None:
        """One of our own files failed: stop launching, and say which file and why.

        Jobs already running finish (their records are written if the log still can be).
        """
        if self._message is None:
            if isinstance(exc, StorageError):
                self._message = str(exc)
            else:
                self._message = f"cannot write {exc.filename or what}: {exc.strerror or exc}"
        self.stop("storage", now=False)

    def _finish(self, job: Job, outcome: Outcome) -> None:
        status = outcome.status
        # results
        tail = self._tails.pop(job.index, "")
        if status != "succeeded" and len(self._failures) < self._keep_failures:
            self._failures.append(
                FailedJob(
                    job.index,
                    job.values,
                    status,
                    outcome.exit_code,
                    outcome.signal,
                    tail,
                    outcome.message,
                )
            )
        reported = (outcome.extra or {}).get("metrics")
        if isinstance(reported, dict):
            self._reported.update(name for name, value in reported.items() if value is not None)
        if status == "succeeded":
            self._succeeded += 1
        elif status == "killed":
            self._killed += 1
        elif status == "lost":
            self._lost += 1
            if self._message is None:
                self._message = f"job {job.index} was lost: {outcome.message or 'no reason given'}"
            self.stop("lost", now=False)
        else:
            self._failed += 1
            if self._halt.triggered(self._failed, self._succeeded + self._failed):
                self.stop("halt", now=self._halt.when == "now")


# results
_BINS = 16  # duration bins per power of 2: the median is known within 2^(1/32) - 1 < 3%


def _bin(duration: float) -> int:
    return math.floor(math.log2(duration) * _BINS) if duration > 1e-9 else -30 * _BINS


def _median(bins: Counter[int]) -> float | None:
    """The median duration, from the counts of durations by bin (the bin's middle)."""
    half = (bins.total() + 1) // 2
    seen = 0
    for key in sorted(bins):
        seen += bins[key]
        if seen >= half:
            return float(2 ** ((key + 0.5) / _BINS))
    return None


def _with_env(job: Job, name: str, value: str) -> Job:
    """``job`` with one more environment variable (kept by its ``finish``, if it has one)."""
    finish = job.finish
    if finish is not None:
        return dataclasses.replace(
            job,
            env={**job.env, name: value},
            finish=lambda given: _with_env(finish(given), name, value),
        )
    return dataclasses.replace(job, env={**job.env, name: value})


async def run_jobs(
    jobs: Iterable[Job],
    backend: Backend,
    limiter: trio.CapacityLimiter | int,
    *,
    retries: int = 0,
    timeout: float | None = None,
    halt: Halt = NEVER,
    joblog: JobLog | None = None,
    results_dir: Path | None = None,
) -> Summary:
    """Run ``jobs`` through ``backend`` (already entered), ``limiter`` slots at a time."""
    runner = Runner(
        backend,
        limiter,
        retries=retries,
        timeout=timeout,
        halt=halt,
        joblog=joblog,
        results_dir=results_dir,
    )
    return await runner.run(jobs)
