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
import shlex
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx
import trio

from ._backend import Attempt, BackendError, Outcome, Status
from ._ray_api import JobExists, JobInfo, JobNotFound, RayApiError, RayJobsClient, dumps_metadata

__all__ = [
    "Packing",
    "RayBackend",
    "backend_from_args",
    "parse_packed",
    "strip_ray_lines",
    "sweep_identity",
]

T = TypeVar("T")
Stopping = Literal["abort", "timeout"] | None

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


class _Lost(Exception):
    """The head stopped answering (or forgot the job): the attempt's fate is unknown."""


@dataclass(frozen=True, slots=True)
class Packing:
    """``--per-job K``: K consecutive points of ``[start, stop)`` run as one Ray job.

    ``entrypoint(a, b)`` is the command line that runs points ``a..b-1`` on the node and
    then prints its job log and each point's output framed by ``mark`` (``packed_script``).
    Groups are aligned on ``start``, so every point knows its group whatever the order in
    which the runner's tasks arrive.
    """

    per_job: int
    start: int
    stop: int
    entrypoint: Callable[[int, int], str]

    def group(self, index: int) -> tuple[int, int]:
        first = self.start + (index - self.start) // self.per_job * self.per_job
        return first, min(first + self.per_job, self.stop)


class _Group:
    """One packed Ray job and the per-point results it left, until each point claims its own."""

    def __init__(self, first: int, stop: int):
        self.first, self.stop = first, stop
        self.started = False
        self.done = trio.Event()
        self.results: dict[int, tuple[Outcome, bytes, bytes]] = {}
        self.fallback: tuple[Outcome, bytes, bytes] | None = None  # for points with no record
        self.unclaimed = stop - first


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
        packing: Packing | None = None,
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
        self.packing = packing
        self._groups: dict[int, _Group] = {}
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
        if self.packing is not None and attempt.attempt == 1:
            return await self._run_packed(attempt)
        job = attempt.job
        spec = _Spec(
            self.submission_id(job.index, attempt.attempt),
            job.command,
            job.env,
            self._metadata(job.index, attempt.attempt, dumps_metadata(job.values)),
            attempt.timeout,
            attempt.abort,
        )
        outcome, logs, note = await self._ray_job(spec)
        await trio.Path(attempt.stdout).write_bytes(logs)
        await trio.Path(attempt.stderr).write_bytes(note)
        return outcome

    async def _run_packed(self, attempt: Attempt) -> Outcome:
        """A first attempt under ``--per-job``: share its group's Ray job, take its own result.

        The first point of a group to arrive runs the group's Ray job; the others wait for
        it. A group is forgotten once every point has claimed its result (points a resume
        skips never do: those few groups stay until the backend closes). Retries (attempt
        2 on) run alone, as one-point jobs.
        """
        assert self.packing is not None
        index = attempt.job.index
        first, stop = self.packing.group(index)
        group = self._groups.get(first)
        if group is None:
            group = self._groups[first] = _Group(first, stop)
        if not group.started:
            group.started = True
            try:
                await self._run_group(group, attempt.abort)
            finally:
                group.done.set()
        else:
            await group.done.wait()
        group.unclaimed -= 1
        if group.unclaimed <= 0:
            self._groups.pop(first, None)
        result = group.results.pop(index, None) or group.fallback
        assert result is not None
        outcome, out, err = result
        await trio.Path(attempt.stdout).write_bytes(out)
        await trio.Path(attempt.stderr).write_bytes(err)
        return outcome

    async def _run_group(self, group: _Group, abort: trio.Event) -> None:
        assert self.packing is not None
        sid = f"rangeexpr-{self.sweep_id}-{group.first}to{group.stop}-1"
        entrypoint = self.packing.entrypoint(group.first, group.stop)
        values = f'{{"slice":"{group.first}:{group.stop}"}}'
        metadata = self._metadata(group.first, 1, values)
        spec = _Spec(sid, entrypoint, {}, metadata, None, abort)
        try:
            outcome, logs, note = await self._ray_job(spec)
        except BaseException:
            group.fallback = (Outcome("killed", None, None, sid, "cancelled"), b"", b"")
            raise
        records, files = parse_packed(logs, _mark(sid))
        for index in range(group.first, group.stop):
            record = records.get(index)
            out = files.get(f"{index}.out", b"")
            err = files.get(f"{index}.err", b"")
            if record is not None:
                group.results[index] = (_record_outcome(record, sid), out, err)
        if outcome.status in {"succeeded", "failed"}:
            why = f"the packed Ray job {sid} left no record for this point"
            status: Status = "failed"
        else:
            why, status = (
                outcome.message or f"the packed Ray job {sid} was {outcome.status}",
                outcome.status,
            )
        group.fallback = (
            Outcome(status, None, None, sid, why),
            b"",
            note + files.get("run", b"") + (b"" if records else logs[-4000:]),
        )

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
        if spec.abort.is_set():
            return (
                Outcome("killed", None, backend_id=sid, message="not submitted: stopping"),
                b"",
                b"",
            )
        try:
            await self._submit_or_follow(spec)
            info, stopping = await self._wait(spec)
        except _Lost as lost:
            return Outcome("lost", None, backend_id=sid, message=str(lost)), b"", b""
        except RayApiError as exc:  # a 4xx: Ray refuses this job; others may still run
            note = f"rangeexpr: Ray: {exc.message}\n".encode()
            return Outcome("failed", None, None, sid, f"Ray refused the job: {exc}"), b"", note
        except BaseException:
            # Cancelled (or a bug), maybe mid-submission: leave nothing running on the cluster.
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self._quietly(self.api.stop(sid))
            raise
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
        return await self.api.submit(
            spec.sid,
            spec.entrypoint,
            env_vars=spec.env,
            metadata=spec.metadata,
            entrypoint_num_cpus=self.entrypoint_num_cpus,
        )

    async def _wait(self, spec: _Spec) -> tuple[JobInfo, Stopping]:
        """Poll the job until it is terminal, stopping it on abort or timeout."""
        sid, abort = spec.sid, spec.abort
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
            now = trio.current_time()
            if stopping is None and (abort.is_set() or now >= deadline):
                stopping = "abort" if abort.is_set() else "timeout"
                await self._retrying(lambda: self.api.stop(sid), "stopping the job")
                stop_began, delay = now, self.poll_initial
            elif now - stop_began > self.stop_wait:
                raise _Lost(f"Ray did not stop job {sid} within {self.stop_wait:g}s")
            wake = now + delay if stopping else min(now + delay, deadline)
            with trio.move_on_at(wake):
                if stopping is None:
                    await abort.wait()
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


def _mark(sid: str) -> str:
    return f"@@{sid}@@"


_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "timed_out", "killed", "lost"})


def _record_outcome(record: Mapping[str, Any], sid: str) -> Outcome:
    """A point's outcome from the node's job log record."""
    status = record.get("status")
    code, sig = record.get("exit_code"), record.get("signal")
    return Outcome(
        status if status in _STATUSES else "failed",
        code if isinstance(code, int) else None,
        sig if isinstance(sig, int) else None,
        sid,
    )


def packed_script(run: str, mark: str) -> str:
    """The /bin/sh script of a packed job: run ``run`` (a ``rangeexpr run`` writing its job
    log to ``$d/log`` and outputs to ``$d/out``), then print the log and every output file
    framed as ``MARK NAME SIZE`` lines, so the backend can split them exactly."""
    return (
        "d=$(mktemp -d) || exit 70; "
        f'{run} >"$d/run" 2>&1; s=$?; '
        f'printf "\\n%s log\\n" {mark}; cat "$d/log" 2>/dev/null; '
        'for f in "$d"/out/* "$d/run"; do [ -f "$f" ] && '
        f'printf "%s %s %s\\n" {mark} "${{f##*/}}" "$(wc -c <"$f")" && cat "$f"; done; '
        'rm -rf "$d"; exit $s'
    )


def parse_packed(logs: bytes, mark: str) -> tuple[dict[int, dict[str, Any]], dict[str, bytes]]:
    """Split a packed job's log into the node's job-log records (last per index) and files."""
    marker = mark.encode()
    begin = logs.find(b"\n" + marker + b" log\n")
    if begin < 0:
        return {}, {}
    body = logs[begin + len(marker) + 6 :]
    header = re.compile(re.escape(marker) + rb" (\S+) +(\d+)\n")  # where a file begins
    first = re.compile(rb"^" + header.pattern, re.MULTILINE).search(body)
    log_end = first.start() if first else len(body)
    records: dict[int, dict[str, Any]] = {}
    for line in body[:log_end].splitlines():  # the header line has no index: skipped
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("index"), int):
            records[record["index"]] = record
    files: dict[str, bytes] = {}
    pos = log_end
    while (m := header.match(body, pos)) is not None:
        size = int(m.group(2))
        files[m.group(1).decode()] = body[m.end() : m.end() + size]
        pos = m.end() + size
    return records, files


def node_run_command(
    source: Mapping[str, Any], start: int, stop: int, *, jobs: int, timeout: float | None
) -> str:
    """``rangeexpr run --slice START:STOP`` with the sweep's own expressions and templates."""
    words = ["rangeexpr run --no-progress", f"-j {jobs}", f"--slice {start}:{stop}"]
    words.append('--joblog "$d/log" --results "$d/out"')
    if source.get("shell"):
        words.append("--shell")
    if timeout is not None:
        words.append(f"--timeout {timeout!r}")
    words.append(shlex.quote(f"--exec={source['exec']}"))
    words += [shlex.quote(f"--env={k}={v}") for k, v in dict(source.get("env") or {}).items()]
    words += [shlex.quote(f"--exec-range={e}") for e in source["exprs"]]
    words += [shlex.quote(f"--link={','.join(group)}") for group in source.get("link") or ()]
    return " ".join(words)


def backend_from_args(args: Any, source: Mapping[str, Any], sweep: Any = None) -> RayBackend:
    """The backend ``rangeexpr run --backend ray`` asks for (``source`` names the sweep).

    With ``--per-job K`` (K > 1) and the selected ``sweep`` (whose points carry their
    full-sweep index), K consecutive points run as one Ray job of ``rangeexpr run --slice``
    on the node, which needs rangeexpr on its PATH.
    """
    sweep_id = sweep_identity(source)
    packing = None
    per_job = int(getattr(args, "per_job", 1) or 1)
    reordered = [f"--{name}" for name in ("where", "shuffle", "sample") if name in source]
    if per_job > 1 and reordered:
        from rangeexpr import RangeExprError

        # The node's --slice counts positions in the filtered or shuffled order, while a
        # group is a run of point indices: they agree only for the plain (or linked) sweep.
        raise RangeExprError(
            f"--per-job cannot be combined with {', '.join(reordered)} yet: "
            "run one point per Ray job (--per-job 1)"
        )
    if per_job > 1 and sweep is not None and sweep.size > 0:
        start = int(sweep[0].index)
        stop = int(sweep[-1].index) + 1
        jobs = max(1, math.ceil(float(args.entrypoint_num_cpus)))
        timeout = getattr(args, "timeout", None)

        def entrypoint(a: int, b: int) -> str:
            run = node_run_command(source, a, b, jobs=jobs, timeout=timeout)
            return packed_script(run, _mark(f"rangeexpr-{sweep_id}-{a}to{b}-1"))

        packing = Packing(per_job, start, stop, entrypoint)
    return RayBackend(
        str(args.address),
        sweep_id=sweep_id,
        entrypoint_num_cpus=float(args.entrypoint_num_cpus),
        packing=packing,
    )
