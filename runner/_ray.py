"""The Ray backend: each attempt is one Ray job, submitted through the Jobs REST API.

No Ray client in our process: ``httpx.AsyncClient`` under trio talks to the dashboard
(``_ray_api.py``). The job's command line is the entrypoint (Ray runs it with
``/bin/sh -c``), its ``-e`` values and ``RANGEEXPR_INDEX``/``RANGEEXPR_COUNT`` go to
``runtime_env.env_vars``, the sweep identity and the point's values to ``metadata``.

Idempotent: the ``submission_id`` is derived from the sweep's identity, the point index and
the attempt number, so a resubmission after a lost response, or a ``--resume`` after a
crash, finds the job that already exists (Ray's 500 "already exists") and follows it
instead of running it twice. Terminal jobs are deleted a few seconds after their outcome is
known (at the latest when the backend closes), so a resumed run re-runs failed points
instead of finding their old jobs.

Each job is polled by id with backoff (never the list of every job); its log is fetched
once at the end, with the two lines Ray writes into it removed wherever they stand. Ray
keeps stdout and stderr together, so everything goes to the attempt's stdout file.

Failures: an unreachable head at start is a BackendError (nothing submitted). A head that
stops answering for ``lost_after`` seconds mid-sweep makes each in-flight attempt "lost"
(the runner then stops launching); so does a head that no longer knows a job (restarted).
Abort (Ctrl-C, ``--halt now``), a timeout, or cancellation stop the Ray job with
``POST /api/jobs/{id}/stop`` and wait for Ray to carry it out; ``kill()`` sends the stop
and returns "killed" at once, without waiting.

Starting: a job counts as waiting (``Attempt.queued``) until a poll sees it leave
PENDING (Ray waits there for the entrypoint's resources). When the run gives up the jobs
not started (``Attempt.give_up``: a stop, soon or now), a job still PENDING is stopped
the same way and, once Ray reports it STOPPED with no exit code of its entrypoint, the
attempt raises NotStarted (no record); one already running is left to finish on a stop
soon. A job that starts between the last poll and the stop is stopped while running and
recorded "killed". After ``kill()`` a job never seen running is given up likewise, and
nothing more is submitted.

With a ``Batching`` (``--per-job K``), K consecutive jobs run as one Ray job whose
entrypoint is the batching's command (``_batches.py``); ``jobs_per_slot`` is then K.
"""

from __future__ import annotations

import collections
import contextlib
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import httpx
import trio

from ._backend import Attempt, BackendError, Batching, NotStarted, Outcome, StorageError
from ._batches import Batches
from ._ray_api import JobExists, JobInfo, JobNotFound, RayApiError, RayJobsClient, dumps_metadata
from ._resources import Request

__all__ = ["RayBackend", "strip_ray_lines"]

T = TypeVar("T")
Stopping = Literal["abort", "timeout", "give_up"] | None

# Ray 2.60's own first log line: "2026-11-21 03:07:03,418\tINFO job_manager.py:581 -- ..."
_RUNTIME_ENV_LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\tINFO job_manager\.py:\d+ -- "
    r"Runtime env is setting up\.\n"
)


@dataclass(frozen=True, slots=True)
class _Spec:
    """One Ray job to run: what to submit, and when to stop it."""

    sid: str
    entrypoint: str
    env: Mapping[str, str]
    metadata: Mapping[str, str]
    timeout: float | None
    abort: trio.Event
    request: Request  # what Ray reserves for the job's entrypoint
    give_up: trio.Event  # set: if the job is still PENDING, stop it and raise NotStarted
    on_start: Callable[[], None] = field(compare=False)  # once a poll sees it running


class _Lost(Exception):
    """The head stopped answering (or forgot the job): the attempt's fate is unknown."""


def strip_ray_lines(logs: str, submission_id: str, entrypoint: str) -> str:
    """The job's own output: Ray's two lines removed wherever they stand.

    The job's output often comes first, and an unterminated last line of it runs straight
    into Ray's ("abcRunning entrypoint for job ..."), so remove exact text, not lines.
    """
    logs = _RUNTIME_ENV_LINE.sub("", logs, count=1)
    return logs.replace(f"Running entrypoint for job {submission_id}: {entrypoint}\n", "", 1)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, RayApiError):
        return exc.message
    return str(exc) or type(exc).__name__


class RayBackend:
    """Runs attempts as Ray jobs on the head at ``address`` (its dashboard URL).

    ``client`` (an ``httpx.AsyncClient`` with ``base_url`` set) or ``transport`` can be
    injected, e.g. an ``httpx.MockTransport`` in tests. Times are in seconds: polling
    starts at ``poll_initial`` and backs off to ``poll_max``; a head that fails every
    request for ``lost_after`` makes the attempt "lost"; a stop that Ray has not carried
    out after ``stop_wait`` is given up on; terminal jobs are deleted ``delete_delay``
    after they end (see ``_delete_due``). With ``batching``, first attempts run
    ``batching.per_job`` at a time in one Ray job.

    Resources: each job's entrypoint reserves its ``Job.request`` (cpu, gpu, mem and custom
    resources as ``entrypoint_num_cpus``, ``entrypoint_num_gpus``, ``entrypoint_memory``
    and ``entrypoint_resources``); what a job's request leaves at zero comes from
    ``request`` (default: ``entrypoint_num_cpus`` CPUs), which a packed job reserves whole.
    """

    name = "ray"

    def __init__(
        self,
        address: str,
        *,
        sweep_id: str,
        entrypoint_num_cpus: float = 1.0,
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        poll_initial: float = 0.1,
        poll_max: float = 1.0,
        lost_after: float = 15.0,
        stop_wait: float = 30.0,
        delete_delay: float = 3.0,
        http_timeout: float = 10.0,
        batching: Batching | None = None,
        request: Request | None = None,
    ):
        self.address = address.rstrip("/")
        self.sweep_id = sweep_id
        self.entrypoint_num_cpus = entrypoint_num_cpus
        self.request = request if request is not None else Request(cpu=entrypoint_num_cpus)
        self.poll_initial = poll_initial
        self.poll_max = poll_max
        self.lost_after = lost_after
        self.stop_wait = stop_wait
        self.delete_delay = delete_delay
        self._deletions: collections.deque[tuple[float, str]] = collections.deque()
        self.batching = batching
        self.jobs_per_slot = batching.per_job if batching is not None else 1
        self._batches = (
            Batches(batching, self._run_batch, "packed Ray job") if batching is not None else None
        )
        self._killed = False
        self._running: set[trio.CancelScope] = set()  # one per Ray job we are following
        self._transport = transport
        self._http_timeout = http_timeout
        self._owns_client = client is None
        self._client = client
        self._api: RayJobsClient | None = None

    def __repr__(self) -> str:
        return f"<RayBackend {self.address} sweep={self.sweep_id}>"

    def submission_id(self, index: int, attempt: int, stop: int | None = None) -> str:
        """The Ray submission id: the same for the same sweep, point and attempt.

        With ``stop``, the id of the one Ray job running points ``[index, stop)``.
        """
        points = str(index) if stop is None else f"{index}to{stop}"
        return f"rangeexpr-{self.sweep_id}-{points}-{attempt}"

    @property
    def api(self) -> RayJobsClient:
        if self._api is None:
            raise RuntimeError("use the RayBackend as `async with backend:` first")
        return self._api

    async def __aenter__(self) -> RayBackend:
        if not re.match(r"https?://[^/\s]+", self.address):
            raise BackendError(
                f"--address must be the Ray dashboard's URL, like http://HOST:8265, "
                f"not {self.address!r}"
            )
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.address, transport=self._transport, timeout=self._http_timeout
            )
        self._api = RayJobsClient(self._client)
        try:
            await self._api.version()
        except (httpx.TransportError, RayApiError) as exc:
            await self.__aexit__()
            raise BackendError(
                f"cannot reach the Ray Jobs API at {self.address}: {_describe(exc)} "
                "(is the head running, and is this its dashboard address, port 8265 by default?)"
            ) from None
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._api is not None and self._deletions:
            with trio.move_on_after(self.delete_delay + 10):
                await self._delete_due(everything=True)
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None
        self._api = None

    async def run(self, attempt: Attempt) -> Outcome:
        """Run one attempt as a Ray job (or its share of a batch); StorageError if its
        output files cannot be written."""
        job = attempt.job
        if self._batches is not None and attempt.attempt == 1:
            outcome, logs, note = await self._batches.run(attempt)
        else:
            spec = _Spec(
                self.submission_id(job.index, attempt.attempt),
                job.command,
                job.env,
                self._metadata(job.index, attempt.attempt, dumps_metadata(job.values)),
                attempt.timeout,
                attempt.abort,
                _merged(job.request, self.request),
                attempt.give_up,
                attempt.started,
            )
            attempt.queued()
            outcome, logs, note = await self._ray_job(spec)
        try:
            await trio.Path(attempt.stdout).write_bytes(logs)
            await trio.Path(attempt.stderr).write_bytes(note)
        except OSError as exc:
            why = exc.strerror or str(exc)
            raise StorageError(f"cannot write {exc.filename or attempt.stdout}: {why}") from None
        return outcome

    def kill(self) -> None:
        """Stop every Ray job of ours now: each is sent a stop and returns "killed" at once.

        Ray is not waited on to carry the stops out; a job never seen running, and every
        later attempt, is not started (NotStarted).
        """
        self._killed = True
        for scope in self._running:
            scope.cancel()

    async def _run_batch(
        self, first: int, stop: int, attempt: Attempt, started: Callable[[], None]
    ) -> tuple[str, Outcome, bytes, bytes]:
        """The one Ray job of points ``[first, stop)`` (for ``Batches``), run to its end."""
        assert self.batching is not None
        sid = self.submission_id(first, 1, stop)
        metadata = self._metadata(first, 1, f'{{"slice":"{first}:{stop}"}}')
        command = self.batching.command(first, stop, sid)
        spec = _Spec(
            sid, command, {}, metadata, None, attempt.abort, self.request, attempt.give_up, started
        )
        outcome, logs, note = await self._ray_job(spec)
        return sid, outcome, logs, note

    def _metadata(self, index: int, attempt: int, values: str) -> dict[str, str]:
        return {
            "rangeexpr_sweep": self.sweep_id,
            "rangeexpr_index": str(index),
            "rangeexpr_attempt": str(attempt),
            "rangeexpr_values": values,
        }

    async def _ray_job(self, spec: _Spec) -> tuple[Outcome, bytes, bytes]:
        """Run one Ray job to its end: the outcome, its log, and a note for stderr."""
        sid = spec.sid
        if spec.give_up.is_set() or self._killed:
            raise NotStarted
        started = [False]  # whether a poll saw the job leave PENDING
        with trio.CancelScope() as killing:  # kill() cancels it
            self._running.add(killing)
            try:
                await self._submit_or_follow(spec)
                info, stopping = await self._wait(spec, started)
            except _Lost as lost:
                return Outcome("lost", None, backend_id=sid, message=str(lost)), b"", b""
            except RayApiError as exc:  # a 4xx: Ray refuses this job; others may still run
                note = f"rangeexpr: Ray: {exc.message}\n".encode()
                return Outcome("failed", None, None, sid, f"Ray refused the job: {exc}"), b"", note
            except BaseException:
                # Cancelled or killed (or a bug), maybe mid-submission: leave nothing running
                # on the cluster.
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await self._quietly(self.api.stop(sid))
                raise
            finally:
                self._running.discard(killing)
        if killing.cancelled_caught:
            if not started[0]:  # deleted once stopped, so a resume submits it afresh
                self._deletions.append((trio.current_time() + self.delete_delay, sid))
                raise NotStarted
            why = "killed: Ray was told to stop the job, and not waited for"
            return Outcome("killed", None, None, sid, why), b"", b""
        if stopping in ("abort", "give_up") and _never_ran(info, started[0]):
            self._deletions.append((trio.current_time() + self.delete_delay, sid))
            await self._delete_due()
            raise NotStarted
        outcome = _outcome(info, stopping, sid)
        logs, note = await self._collect(spec)
        self._deletions.append((trio.current_time() + self.delete_delay, sid))
        await self._delete_due()
        return outcome, logs, note

    async def _submit_or_follow(self, spec: _Spec) -> None:
        """Submit; if the id exists already (lost response, resume), follow that job.

        A job under our id whose entrypoint is not ours is a ghost Ray wrote after an
        early delete (entrypoint "Entrypoint not found.") or someone else's: a terminal
        one is deleted and we submit again; a running one is refused.
        """
        sid = spec.sid
        for _ in range(2):
            try:
                await self._retrying(lambda: self._submit(spec), "submitting")
                return
            except JobExists:
                info = await self._retrying(lambda: self.api.info(sid), "polling")
                if info.entrypoint == spec.entrypoint:
                    return
                if not info.terminal:
                    raise RayApiError(
                        409, f"the submission id {sid} is taken by another job"
                    ) from None
                await self._retrying(lambda: self.api.delete(sid), "deleting a stale job")
        raise RayApiError(409, f"the submission id {sid} stays taken after deleting it")

    async def _delete_due(self, *, everything: bool = False) -> None:
        """Delete the terminal jobs whose grace time is over (all of them at the end).

        Not at once: Ray's job monitor notices the supervisor actor's exit up to a couple of
        seconds after the job ends, and if the job is gone by then it writes a ghost FAILED
        record under the same id ("Entrypoint not found."), which a resume would find.
        """
        while self._deletions:
            due, sid = self._deletions[0]
            if due > trio.current_time():
                if not everything:
                    return
                await trio.sleep_until(due)
            self._deletions.popleft()
            await self._quietly(self.api.delete(sid))

    async def _submit(self, spec: _Spec) -> str:
        request = spec.request
        return await self.api.submit(
            spec.sid,
            spec.entrypoint,
            env_vars=spec.env,
            metadata=spec.metadata,
            entrypoint_num_cpus=request.cpu,
            entrypoint_num_gpus=request.gpu,
            entrypoint_memory=request.mem,
            entrypoint_resources=request.custom,
        )

    async def _wait(self, spec: _Spec, started: list[bool]) -> tuple[JobInfo, Stopping]:
        """Poll the job until it is terminal, stopping it on abort or timeout, or on
        giving up while it is PENDING; ``started[0]`` once a poll sees it leave PENDING."""
        sid, abort, give_up = spec.sid, spec.abort, spec.give_up
        now = trio.current_time()
        deadline = now + spec.timeout if spec.timeout is not None else math.inf
        stopping: Stopping = None
        stop_began = math.inf
        delay = self.poll_initial
        while True:
            try:
                info = await self._retrying(lambda: self.api.info(sid), "polling")
            except JobNotFound:
                raise _Lost(
                    f"the Ray head at {self.address} no longer knows job {sid} (was it restarted?)"
                ) from None
            if info.terminal:
                return info, stopping
            if not started[0] and info.status != "PENDING":
                started[0] = True
                spec.on_start()
            now = trio.current_time()
            if stopping is None:
                if abort.is_set() or now >= deadline:
                    stopping = "abort" if abort.is_set() else "timeout"
                elif give_up.is_set() and not started[0]:
                    stopping = "give_up"
                if stopping is not None:
                    await self._retrying(lambda: self.api.stop(sid), "stopping the job")
                    stop_began, delay = now, self.poll_initial
            elif now - stop_began > self.stop_wait:
                raise _Lost(f"Ray did not stop job {sid} within {self.stop_wait:g}s")
            wake = now + delay if stopping else min(now + delay, deadline)
            with trio.move_on_at(wake):
                if stopping is None:  # a job not started also gives up on a stop "soon"
                    await (abort if started[0] else give_up).wait()
                else:
                    await trio.sleep_forever()
            delay = min(delay * 1.5, self.poll_max)

    async def _collect(self, spec: _Spec) -> tuple[bytes, bytes]:
        """The job's log, fetched once, without Ray's lines; or a note saying why not."""
        try:
            logs = await self._retrying(lambda: self.api.logs(spec.sid), "fetching the log")
        except (_Lost, RayApiError) as exc:
            return (
                b"",
                f"rangeexpr: could not fetch the log of Ray job {spec.sid}: {exc}\n".encode(),
            )
        text = strip_ray_lines(logs, spec.sid, spec.entrypoint)
        return text.encode("utf-8", "surrogateescape"), b""

    async def _retrying(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """``call()``, retried while the head is unreachable or answers 5xx, up to lost_after."""
        first_failure: float | None = None
        delay = 0.2
        while True:
            try:
                return await call()
            except (JobExists, JobNotFound):
                raise
            except (httpx.TransportError, RayApiError) as exc:
                if isinstance(exc, RayApiError) and exc.status_code < 500:
                    raise
                now = trio.current_time()
                if first_failure is None:
                    first_failure = now
                if now - first_failure >= self.lost_after:
                    raise _Lost(
                        f"lost contact with the Ray head at {self.address} while {what} "
                        f"(no answer for {self.lost_after:g}s: {_describe(exc)})"
                    ) from None
                await trio.sleep(delay)
                delay = min(delay * 2, 2.0)

    @staticmethod
    async def _quietly(call: Awaitable[object]) -> None:
        """Best effort (delete after the log, stop on cancel): failure changes nothing."""
        with contextlib.suppress(httpx.TransportError, RayApiError):
            await call


def _merged(asked: Request, default: Request) -> Request:
    """``asked``, with ``default``'s amount wherever ``asked`` has none."""
    return Request(
        asked.cpu or default.cpu,
        asked.mem or default.mem,
        asked.gpu or default.gpu,
        {**default.custom, **asked.custom},
    )


def _never_ran(info: JobInfo, seen_running: bool) -> bool:
    """Whether a job we stopped was stopped before its entrypoint ran: STOPPED, never seen
    running, and no exit code of the entrypoint (Ray has one once it ran)."""
    return not seen_running and info.status == "STOPPED" and info.exit_code is None


def _outcome(info: JobInfo, stopping: Stopping, sid: str) -> Outcome:
    """Map Ray's terminal status (and why we stopped it, if we did) to an Outcome."""
    code, signal = info.exit_code, None
    if code is not None and code < 0:  # Ray reports "killed by signal N" as -N
        signal, code = -code, None
    if info.status == "SUCCEEDED":  # even if a stop came too late to matter
        return Outcome("succeeded", 0 if code is None else code, None, sid)
    if stopping == "timeout":
        return Outcome("timed_out", None, signal, sid)
    if stopping in ("abort", "give_up"):  # give_up: it started before the stop reached it
        return Outcome("killed", None, signal, sid)
    if info.status == "STOPPED":
        return Outcome("killed", None, None, sid, "stopped outside rangeexpr (ray job stop?)")
    message = None if code is not None or signal is not None else info.message
    return Outcome("failed", code, signal, sid, message)
