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
``POST /api/jobs/{id}/stop`` before returning.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, TypeVar

import httpx
import trio

from ._backend import Attempt, BackendError, Outcome
from ._ray_api import JobExists, JobInfo, JobNotFound, RayApiError, RayJobsClient, dumps_metadata

__all__ = ["RayBackend", "backend_from_args", "strip_ray_lines", "sweep_identity"]

T = TypeVar("T")
Stopping = Literal["abort", "timeout"] | None

# Ray 2.60's own first log line: "2026-11-21 03:07:03,418\tINFO job_manager.py:581 -- ..."
_RUNTIME_ENV_LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\tINFO job_manager\.py:\d+ -- "
    r"Runtime env is setting up\.\n"
)


class _Lost(Exception):
    """The head stopped answering (or forgot the job): the attempt's fate is unknown."""


def sweep_identity(source: Mapping[str, Any]) -> str:
    """A short stable id for a sweep (its expressions and templates), for submission ids."""
    text = json.dumps(source, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
    after they end (see ``_delete_due``).
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
    ):
        self.address = address.rstrip("/")
        self.sweep_id = sweep_id
        self.entrypoint_num_cpus = entrypoint_num_cpus
        self.poll_initial = poll_initial
        self.poll_max = poll_max
        self.lost_after = lost_after
        self.stop_wait = stop_wait
        self.delete_delay = delete_delay
        self._deletions: collections.deque[tuple[float, str]] = collections.deque()
        self._transport = transport
        self._http_timeout = http_timeout
        self._owns_client = client is None
        self._client = client
        self._api: RayJobsClient | None = None

    def __repr__(self) -> str:
        return f"<RayBackend {self.address} sweep={self.sweep_id}>"

    def submission_id(self, index: int, attempt: int) -> str:
        """The job's Ray submission id: the same for the same sweep, point and attempt."""
        return f"rangeexpr-{self.sweep_id}-{index}-{attempt}"

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
        job = attempt.job
        sid = self.submission_id(job.index, attempt.attempt)
        if attempt.abort.is_set():
            return Outcome("killed", None, backend_id=sid, message="not submitted: stopping")
        submitted = False
        try:
            await self._submit_or_follow(sid, attempt)
            submitted = True
            info, stopping = await self._wait(sid, attempt)
        except _Lost as lost:
            return Outcome("lost", None, backend_id=sid, message=str(lost))
        except RayApiError as exc:  # a 4xx: Ray refuses this job; others may still run
            await trio.Path(attempt.stdout).write_bytes(b"")
            await trio.Path(attempt.stderr).write_text(f"rangeexpr: Ray: {exc.message}\n")
            return Outcome("failed", None, backend_id=sid, message=f"Ray refused the job: {exc}")
        except BaseException:
            if submitted:  # cancelled (or a bug): do not leave the job running on the cluster
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await self._quietly(self.api.stop(sid))
            raise
        outcome = _outcome(info, stopping, sid)
        await self._collect(sid, job.command, attempt)
        self._deletions.append((trio.current_time() + self.delete_delay, sid))
        await self._delete_due()
        return outcome

    async def _submit_or_follow(self, sid: str, attempt: Attempt) -> None:
        """Submit; if the id exists already (lost response, resume), follow that job.

        A job under our id whose entrypoint is not ours is a ghost Ray wrote after an
        early delete (entrypoint "Entrypoint not found.") or someone else's: a terminal
        one is deleted and we submit again; a running one is refused.
        """
        for _ in range(2):
            try:
                await self._retrying(lambda: self._submit(sid, attempt), "submitting")
                return
            except JobExists:
                info = await self._retrying(lambda: self.api.info(sid), "polling")
                if info.entrypoint == attempt.job.command:
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

    async def _submit(self, sid: str, attempt: Attempt) -> str:
        job = attempt.job
        metadata = {
            "rangeexpr_sweep": self.sweep_id,
            "rangeexpr_index": str(job.index),
            "rangeexpr_attempt": str(attempt.attempt),
            "rangeexpr_values": dumps_metadata(job.values),
        }
        return await self.api.submit(
            sid,
            job.command,
            env_vars=job.env,
            metadata=metadata,
            entrypoint_num_cpus=self.entrypoint_num_cpus,
        )

    async def _wait(self, sid: str, attempt: Attempt) -> tuple[JobInfo, Stopping]:
        """Poll the job until it is terminal, stopping it on abort or timeout."""
        now = trio.current_time()
        deadline = now + attempt.timeout if attempt.timeout is not None else math.inf
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
            now = trio.current_time()
            if stopping is None and (attempt.abort.is_set() or now >= deadline):
                stopping = "abort" if attempt.abort.is_set() else "timeout"
                await self._retrying(lambda: self.api.stop(sid), "stopping the job")
                stop_began, delay = now, self.poll_initial
            elif now - stop_began > self.stop_wait:
                raise _Lost(f"Ray did not stop job {sid} within {self.stop_wait:g}s")
            wake = now + delay if stopping else min(now + delay, deadline)
            with trio.move_on_at(wake):
                if stopping is None:
                    await attempt.abort.wait()
                else:
                    await trio.sleep_forever()
            delay = min(delay * 1.5, self.poll_max)

    async def _collect(self, sid: str, entrypoint: str, attempt: Attempt) -> None:
        """Write the job's log to the attempt's files, fetched once."""
        note = b""
        try:
            logs = await self._retrying(lambda: self.api.logs(sid), "fetching the log")
            text = strip_ray_lines(logs, sid, entrypoint).encode("utf-8", "surrogateescape")
        except (_Lost, RayApiError) as exc:
            text = b""
            note = f"rangeexpr: could not fetch the log of Ray job {sid}: {exc}\n".encode()
        await trio.Path(attempt.stdout).write_bytes(text)
        await trio.Path(attempt.stderr).write_bytes(note)

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


def _outcome(info: JobInfo, stopping: Stopping, sid: str) -> Outcome:
    """Map Ray's terminal status (and why we stopped it, if we did) to an Outcome."""
    code, signal = info.exit_code, None
    if code is not None and code < 0:  # Ray reports "killed by signal N" as -N
        signal, code = -code, None
    if info.status == "SUCCEEDED":  # even if a stop came too late to matter
        return Outcome("succeeded", 0 if code is None else code, None, sid)
    if stopping == "timeout":
        return Outcome("timed_out", None, signal, sid)
    if stopping == "abort":
        return Outcome("killed", None, signal, sid)
    if info.status == "STOPPED":
        return Outcome("killed", None, None, sid, "stopped outside rangeexpr (ray job stop?)")
    message = None if code is not None or signal is not None else info.message
    return Outcome("failed", code, signal, sid, message)


def backend_from_args(args: Any, source: Mapping[str, Any]) -> RayBackend:
    """The backend ``rangeexpr run --backend ray`` asks for (``source`` names the sweep)."""
    return RayBackend(
        str(args.address),
        sweep_id=sweep_identity(source),
        entrypoint_num_cpus=float(args.entrypoint_num_cpus),
    )
