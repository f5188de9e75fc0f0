"""The Ray backend against a fake head (``httpx.MockTransport``), on trio's mock clock.

``FakeRay`` answers as Ray 2.60 does (shapes recorded from a live head): JSON on success,
text/plain tracebacks on errors, a 500 saying "already exists" for a duplicate
submission_id, 404 "Job X does not exist", and logs holding Ray's two own lines, not always
first. Each job advances one status per poll along its script, so polling, stopping and
timeouts are exercised exactly, in virtual time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from rangeexpr import RangeExprError, Sweep
from rangeexpr._backends import make_backend
from rangeexpr._batch import NodeBatching
from rangeexpr._spec import RunSpec
from runner import (
    Attempt,
    BackendError,
    Job,
    JobLog,
    NotStarted,
    Outcome,
    RayBackend,
    Runner,
    StorageError,
    read_joblog,
    run_jobs,
)
from runner._ray import strip_ray_lines
from runner._ray_api import TERMINAL, error_line

RUNTIME_ENV = "2026-11-21 03:07:03,418\tINFO job_manager.py:581 -- Runtime env is setting up.\n"


def traceback_body(exc_line: str) -> str:
    """A text/plain error body shaped like Ray's (a whole traceback, then a lone '.')."""
    return (
        "Traceback (most recent call last):\n"
        '  File "/ray/dashboard/modules/job/job_head.py", line 419, in submit_job\n'
        "    resp = await job_agent_client.submit_job_internal(submit_request)\n"
        f"RuntimeError: Request failed with status code 400: Traceback (most recent call last):\n"
        '  File "/ray/dashboard/modules/job/job_manager.py", line 553, in submit_job\n'
        "    raise ValueError(\n"
        f"{exc_line}\n.\n"
    )


@dataclass
class FakeJob:
    request: dict[str, Any]
    statuses: list[str]  # what successive polls see; the last one sticks
    exit_code: int | None = 0
    output: str = ""
    polls: int = 0
    stopped: bool = False
    message: str = "Job finished successfully."

    @property
    def status(self) -> str:
        return self.statuses[min(self.polls, len(self.statuses) - 1)]


@dataclass
class FakeRay:
    """A scripted Ray 2.60 dashboard. ``plan(request)`` gives each new job's script."""

    plan: Callable[[dict[str, Any]], FakeJob] = lambda r: FakeJob(r, ["PENDING", "SUCCEEDED"])
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    down: bool = False  # every request fails to connect
    ignore_stop: bool = False  # a stop is accepted and never carried out
    drop_submit_response: int = 0  # this many POSTs register the job, then time out

    def handler(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        self.calls.append((method, path))
        if self.down:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if path == "/api/version" and method == "GET":
            return httpx.Response(200, json={"version": "4", "ray_version": "2.60.0"})
        if path == "/api/jobs/" and method == "POST":
            return self.submit(request)
        if path == "/api/jobs" and method == "POST":  # Ray 2.60 routes only the slash form
            return httpx.Response(404, text="404: Not Found")
        parts = path.removeprefix("/api/jobs/").split("/")
        job = self.jobs.get(parts[0])
        if job is None:
            return httpx.Response(404, text=f"Job {parts[0]} does not exist")
        tail = parts[1] if len(parts) > 1 else ""
        if method == "GET" and tail == "":
            job.polls += 1
            code = job.exit_code if job.status in ("SUCCEEDED", "FAILED") else None
            return httpx.Response(200, json=self.details(parts[0], job, code))
        if method == "GET" and tail == "logs":
            return httpx.Response(200, json={"logs": job.output})
        if method == "POST" and tail == "stop":
            running = job.status in ("PENDING", "RUNNING")
            if running and not self.ignore_stop:
                job.stopped = True
                job.statuses, job.polls = ["STOPPED"], 0
            return httpx.Response(200, json={"stopped": running})
        if method == "DELETE":
            if job.status in ("PENDING", "RUNNING"):
                return httpx.Response(500, text=traceback_body("RuntimeError: not terminal"))
            del self.jobs[parts[0]]
            return httpx.Response(200, json={"deleted": True})
        return httpx.Response(405, text="405: Method Not Allowed")

    def submit(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sid = body["submission_id"]
        if sid in self.jobs:
            return httpx.Response(
                500,
                text=traceback_body(
                    f"ValueError: Job with submission_id {sid} already exists. "
                    "Please use a different submission_id."
                ),
            )
        self.jobs[sid] = self.plan(body)
        if self.drop_submit_response:
            self.drop_submit_response -= 1
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(200, json={"job_id": sid, "submission_id": sid})

    @staticmethod
    def details(sid: str, job: FakeJob, code: int | None) -> dict[str, Any]:
        return {
            "type": "SUBMISSION",
            "job_id": None,
            "submission_id": sid,
            "status": job.status,
            "entrypoint": job.request["entrypoint"],
            "message": job.message if job.status in TERMINAL else "Job is currently running.",
            "error_type": None,
            "metadata": job.request.get("metadata"),
            "runtime_env": job.request.get("runtime_env"),
            "driver_exit_code": code,
        }


def make_job(index: int = 7, command: str = "echo 'a b'") -> Job:
    return Job(
        index, ("echo", "a b"), command, {"LR": "0.5", "RANGEEXPR_INDEX": str(index)}, {"X": 0.5}
    )


def make_attempt(tmp_path: Path, job: Job | None = None, **kw: Any) -> Attempt:
    job = job or make_job()
    return Attempt(
        job,
        kw.get("number", 1),
        kw.get("timeout"),
        tmp_path / f"{job.index}.out",
        tmp_path / f"{job.index}.err",
        kw["abort"] if "abort" in kw else trio.Event(),
    )


def backend(fake: FakeRay, **kw: Any) -> RayBackend:
    return RayBackend(
        "http://head:8265", sweep_id="s1", transport=httpx.MockTransport(fake.handler), **kw
    )


def run_one(fake: FakeRay, attempt_of: Callable[[], Attempt], **kw: Any) -> Outcome:
    async def main() -> Outcome:
        async with backend(fake, **kw) as b:
            return await b.run(attempt_of())

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_submits_one_job_with_command_env_and_metadata(tmp_path: Path) -> None:
    fake = FakeRay()
    outcome = run_one(fake, lambda: make_attempt(tmp_path))
    assert outcome == Outcome("succeeded", 0, None, "rangeexpr-s1-7-1")
    [post] = [c for c in fake.calls if c[0] == "POST"]
    assert post == ("POST", "/api/jobs/")  # the trailing slash Ray 2.60 needs


def test_request_shape(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []

    def plan(request: dict[str, Any]) -> FakeJob:
        seen.append(request)
        return FakeJob(request, ["SUCCEEDED"])

    run_one(FakeRay(plan), lambda: make_attempt(tmp_path, number=2), entrypoint_num_cpus=0.5)
    assert seen == [
        {
            "submission_id": "rangeexpr-s1-7-2",
            "entrypoint": "echo 'a b'",
            "runtime_env": {"env_vars": {"LR": "0.5", "RANGEEXPR_INDEX": "7"}},
            "metadata": {
                "rangeexpr_sweep": "s1",
                "rangeexpr_index": "7",
                "rangeexpr_attempt": "2",
                "rangeexpr_values": '{"X":0.5}',
            },
            "entrypoint_num_cpus": 0.5,
        }
    ]


@pytest.mark.parametrize(
    "logs",
    [
        # Ray's lines first, the job's output after them
        RUNTIME_ENV + "Running entrypoint for job rangeexpr-s1-7-1: echo 'a b'\nout\nerr\n",
        # the job's output before Ray's second line (the common case on a live head)
        RUNTIME_ENV + "out\nerr\nRunning entrypoint for job rangeexpr-s1-7-1: echo 'a b'\n",
        # an unterminated last line runs into Ray's line
        RUNTIME_ENV + "out\nerrRunning entrypoint for job rangeexpr-s1-7-1: echo 'a b'\n",
    ],
)
def test_log_written_once_without_rays_lines_and_job_deleted(tmp_path: Path, logs: str) -> None:
    fake = FakeRay(lambda r: FakeJob(r, ["PENDING", "RUNNING", "SUCCEEDED"], output=logs))
    run_one(fake, lambda: make_attempt(tmp_path))
    out = (tmp_path / "7.out").read_text()
    assert out in ("out\nerr\n", "out\nerr")
    assert (tmp_path / "7.err").read_text() == ""
    assert [c for c in fake.calls if c[1].endswith("/logs")] == [
        ("GET", "/api/jobs/rangeexpr-s1-7-1/logs")
    ]
    assert fake.jobs == {}  # deleted once terminal


def test_strip_keeps_lines_that_only_look_like_rays() -> None:
    sid, cmd = "rangeexpr-s1-0-1", "echo x"
    mine = "Running entrypoint for job other: echo x\nRuntime env is setting up.\n"
    logs = RUNTIME_ENV + mine + f"Running entrypoint for job {sid}: {cmd}\n"
    assert strip_ray_lines(logs, sid, cmd) == mine


def test_multiline_entrypoint_line_removed_whole() -> None:
    sid, cmd = "rangeexpr-s1-0-1", "echo a\necho b"
    logs = RUNTIME_ENV + "a\nb\n" + f"Running entrypoint for job {sid}: {cmd}\n"
    assert strip_ray_lines(logs, sid, cmd) == "a\nb\n"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (3, Outcome("failed", 3, None, "rangeexpr-s1-7-1")),
        (-9, Outcome("failed", None, 9, "rangeexpr-s1-7-1")),
    ],
)
def test_failed_job_exit_code_and_signal(tmp_path: Path, code: int, expected: Outcome) -> None:
    fake = FakeRay(lambda r: FakeJob(r, ["RUNNING", "FAILED"], exit_code=code))
    assert run_one(fake, lambda: make_attempt(tmp_path)) == expected


def test_failed_before_the_entrypoint_ran_keeps_rays_message(tmp_path: Path) -> None:
    why = "runtime_env setup failed: Failed to set up runtime environment."
    fake = FakeRay(lambda r: FakeJob(r, ["PENDING", "FAILED"], exit_code=None, message=why))
    outcome = run_one(fake, lambda: make_attempt(tmp_path))
    assert (outcome.status, outcome.exit_code, outcome.message) == ("failed", None, why)


def test_duplicate_submission_follows_the_existing_job(tmp_path: Path) -> None:
    fake = FakeRay()
    fake.jobs["rangeexpr-s1-7-1"] = FakeJob(
        {"entrypoint": "echo 'a b'"}, ["SUCCEEDED"], output="old\n"
    )
    outcome = run_one(fake, lambda: make_attempt(tmp_path))
    assert outcome.status == "succeeded"
    assert (tmp_path / "7.out").read_text() == "old\n"  # ran once, not twice


def test_ghost_left_by_an_early_delete_is_replaced(tmp_path: Path) -> None:
    """Ray writes a FAILED "Entrypoint not found." record if a job is deleted too early."""
    fake = FakeRay()
    ghost = FakeJob({"entrypoint": "Entrypoint not found."}, ["FAILED"], exit_code=None)
    fake.jobs["rangeexpr-s1-7-1"] = ghost
    outcome = run_one(fake, lambda: make_attempt(tmp_path))
    assert outcome.status == "succeeded"
    assert ("DELETE", "/api/jobs/rangeexpr-s1-7-1") in fake.calls
    assert [c for c in fake.calls if c[0] == "POST"] == [("POST", "/api/jobs/")] * 2


def test_running_job_of_someone_else_under_our_id_is_refused(tmp_path: Path) -> None:
    fake = FakeRay()
    fake.jobs["rangeexpr-s1-7-1"] = FakeJob({"entrypoint": "other"}, ["RUNNING"])
    outcome = run_one(fake, lambda: make_attempt(tmp_path))
    assert outcome.status == "failed"
    assert outcome.message == (
        "Ray refused the job: HTTP 409: the submission id rangeexpr-s1-7-1 is taken by another job"
    )
    assert "rangeexpr-s1-7-1" in fake.jobs


def test_deletion_waits_for_rays_job_monitor_then_happens_by_close(tmp_path: Path) -> None:
    fake = FakeRay()

    async def main() -> None:
        async with backend(fake, delete_delay=3) as b:
            await b.run(make_attempt(tmp_path, job=make_job(1)))
            assert list(fake.jobs) == ["rangeexpr-s1-1-1"]  # not yet: Ray would write a ghost
            await trio.sleep(3)
            await b.run(make_attempt(tmp_path, job=make_job(2)))
            assert list(fake.jobs) == ["rangeexpr-s1-2-1"]  # the first one's time had come
        assert fake.jobs == {}  # closing deletes the rest, after their grace time

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_lost_submit_response_is_retried_and_finds_the_job(tmp_path: Path) -> None:
    created: list[str] = []

    def plan(request: dict[str, Any]) -> FakeJob:
        created.append(request["submission_id"])
        return FakeJob(request, ["RUNNING", "SUCCEEDED"])

    fake = FakeRay(plan, drop_submit_response=1)
    assert run_one(fake, lambda: make_attempt(tmp_path)).status == "succeeded"
    assert created == ["rangeexpr-s1-7-1"]
    assert [c for c in fake.calls if c[0] == "POST"] == [("POST", "/api/jobs/")] * 2


def test_unreachable_head_at_start_is_a_backend_error_and_submits_nothing(tmp_path: Path) -> None:
    fake = FakeRay(down=True)
    with pytest.raises(BackendError, match=r"cannot reach the Ray Jobs API at http://head:8265: "):
        run_one(fake, lambda: make_attempt(tmp_path))
    assert fake.calls == [("GET", "/api/version")]


def test_not_a_ray_dashboard_is_a_backend_error(tmp_path: Path) -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json={"hello": 1}))

    async def main() -> None:
        async with RayBackend("http://web:80", sweep_id="s", transport=transport):
            pass

    with pytest.raises(BackendError, match="not a Ray dashboard"):
        trio.run(main)


def test_bad_address_is_a_backend_error() -> None:
    async def main() -> None:
        async with RayBackend("head:8265", sweep_id="s"):
            pass

    with pytest.raises(BackendError, match=r"like http://HOST:8265, not 'head:8265'"):
        trio.run(main)


def test_head_lost_mid_job_is_lost_with_a_message(tmp_path: Path) -> None:
    fake = FakeRay(lambda r: FakeJob(r, ["RUNNING"]))

    async def main() -> tuple[Outcome, float]:
        async with backend(fake, lost_after=15) as b:
            async with trio.open_nursery() as nursery:
                result: list[Outcome] = []

                async def go() -> None:
                    result.append(await b.run(make_attempt(tmp_path)))

                nursery.start_soon(go)
                await trio.sleep(5)
                fake.down = True
                began = trio.current_time()
            return result[0], trio.current_time() - began

    outcome, waited = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert outcome.status == "lost" and outcome.exit_code is None
    assert outcome.message is not None
    assert outcome.message.startswith(
        "lost contact with the Ray head at http://head:8265 while polling (no answer for 15s: "
    )
    assert 15 <= waited < 20


def test_head_that_forgot_the_job_means_lost(tmp_path: Path) -> None:
    fake = FakeRay(lambda r: FakeJob(r, ["RUNNING"]))

    async def main() -> Outcome:
        async with backend(fake) as b, trio.open_nursery() as nursery:
            result: list[Outcome] = []

            async def go() -> None:
                result.append(await b.run(make_attempt(tmp_path)))

            nursery.start_soon(go)
            await trio.sleep(3)
            fake.jobs.clear()  # a restarted head knows nothing
        return result[0]

    outcome = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert outcome.status == "lost"
    assert outcome.message == (
        "the Ray head at http://head:8265 no longer knows job rangeexpr-s1-7-1 (was it restarted?)"
    )


def test_abort_stops_the_ray_job(tmp_path: Path) -> None:
    fake = FakeRay(lambda r: FakeJob(r, ["RUNNING"]))
    abort = trio.Event()

    async def main() -> Outcome:
        async with backend(fake) as b, trio.open_nursery() as nursery:
            result: list[Outcome] = []

            async def go() -> None:
                result.append(await b.run(make_attempt(tmp_path, abort=abort)))

            nursery.start_soon(go)
            await trio.sleep(10)
            abort.set()
        return result[0]

    outcome = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert outcome == Outcome("killed", None, None, "rangeexpr-s1-7-1")
    assert ("POST", "/api/jobs/rangeexpr-s1-7-1/stop") in fake.calls
    assert fake.jobs == {}


def test_abort_before_start_submits_nothing(tmp_path: Path) -> None:
    fake = FakeRay()
    abort = trio.Event()
    abort.set()
    with pytest.raises(NotStarted):
        run_one(fake, lambda: make_attempt(tmp_path, abort=abort))
    assert [c for c in fake.calls if c[0] == "POST"] == []


def test_timeout_stops_the_job_and_is_timed_out(tmp_path: Path) -> None:
    fake = FakeRay(lambda r: FakeJob(r, ["RUNNING"]))

    async def main() -> tuple[Outcome, float]:
        async with backend(fake) as b:
            began = trio.current_time()
            outcome = await b.run(make_attempt(tmp_path, timeout=4.0))
            return outcome, trio.current_time() - began

    outcome, took = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert outcome == Outcome("timed_out", None, None, "rangeexpr-s1-7-1")
    assert 4.0 <= took < 5.5
    assert fake.calls.count(("POST", "/api/jobs/rangeexpr-s1-7-1/stop")) == 1


def test_cancellation_stops_the_ray_job(tmp_path: Path) -> None:
    fake = FakeRay(lambda r: FakeJob(r, ["RUNNING"]))

    async def main() -> None:
        async with backend(fake) as b:
            with trio.move_on_after(3):
                await b.run(make_attempt(tmp_path))

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert fake.jobs["rangeexpr-s1-7-1"].stopped


def test_stopped_by_someone_else_is_killed_and_says_so(tmp_path: Path) -> None:
    fake = FakeRay(lambda r: FakeJob(r, ["RUNNING", "STOPPED"], exit_code=None))
    outcome = run_one(fake, lambda: make_attempt(tmp_path))
    assert outcome.status == "killed"
    assert outcome.message == "stopped outside rangeexpr (ray job stop?)"


def test_refused_job_fails_with_rays_reason(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/version":
            return httpx.Response(200, json={"ray_version": "2.60.0"})
        body = traceback_body("TypeError: entrypoint_num_cpus must be a number")
        return httpx.Response(400, text=body, headers={"content-type": "text/plain"})

    async def main() -> Outcome:
        transport = httpx.MockTransport(handler)
        async with RayBackend("http://head:8265", sweep_id="s1", transport=transport) as b:
            return await b.run(make_attempt(tmp_path))

    outcome = trio.run(main)
    assert outcome.status == "failed"
    assert outcome.message == (
        "Ray refused the job: HTTP 400: TypeError: entrypoint_num_cpus must be a number"
    )
    assert (tmp_path / "7.err").read_text() == (
        "rangeexpr: Ray: TypeError: entrypoint_num_cpus must be a number\n"
    )


def test_transient_500_is_retried(tmp_path: Path) -> None:
    fake = FakeRay()
    failures = [2]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and failures[0]:
            failures[0] -= 1
            return httpx.Response(
                500, text="No available agent to submit job, please try again later."
            )
        return fake.handler(request)

    async def main() -> Outcome:
        transport = httpx.MockTransport(handler)
        async with RayBackend("http://head:8265", sweep_id="s1", transport=transport) as b:
            return await b.run(make_attempt(tmp_path))

    outcome = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert outcome.status == "succeeded"


def test_error_line_is_the_exception_of_a_traceback() -> None:
    body = traceback_body("ValueError: Job with submission_id x already exists. Please ...")
    assert error_line(body) == "ValueError: Job with submission_id x already exists. Please ..."
    assert error_line("Job x does not exist") == "Job x does not exist"
    assert error_line("") == "(empty response)"


def ray_spec(**kw: Any) -> RunSpec:
    fields: dict[str, Any] = {
        "exprs": ("X=range:0,5",),
        "command": "echo $X",
        "backend": "ray",
        "address": "http://h:1/",
    }
    return RunSpec(**{**fields, **kw})


def test_make_backend_ray() -> None:
    spec = ray_spec(entrypoint_num_cpus=2.0)
    b = make_backend(spec, spec.selected())
    assert isinstance(b, RayBackend)
    assert (b.address, b.entrypoint_num_cpus, b.sweep_id) == ("http://h:1", 2.0, spec.sweep_id())
    assert (b.batching, b.jobs_per_slot) == (None, 1)


def test_make_backend_ray_needs_an_address() -> None:
    spec = ray_spec(address=None)
    with pytest.raises(RangeExprError, match=r"^--backend ray needs --address http://HOST:8265$"):
        make_backend(spec, spec.selected())


def test_make_backend_per_job_batches_the_selection() -> None:
    """Groups are aligned on the selection's first point; -j on the node from the CPUs."""
    spec = ray_spec(per_job=4, slice=(2, 5), entrypoint_num_cpus=1.5, timeout=3.0)
    b = make_backend(spec, spec.selected())
    assert isinstance(b, RayBackend)
    assert b.jobs_per_slot == 4
    assert b.batching == NodeBatching(spec, 4, 2, 5, jobs=2, timeout=3.0)


def test_through_the_runner_lost_stops_launching(tmp_path: Path) -> None:
    """In-flight attempts become lost records and the runner launches nothing more."""
    fake = FakeRay(lambda r: FakeJob(r, ["RUNNING"] * 20 + ["SUCCEEDED"]))
    log = tmp_path / "log.jsonl"

    async def main() -> Any:
        async with backend(fake, lost_after=5) as b:
            joblog = JobLog.create(log, {"source": {}})
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_take_down_after, fake, 3.0)
                summary = await run_jobs((make_job(i) for i in range(100)), b, 2, joblog=joblog)
            joblog.close()
            return summary

    summary = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert (summary.lost, summary.stopped) == (2, "lost")
    records = [json.loads(line) for line in log.read_text().splitlines()[1:]]
    assert [r["status"] for r in records] == ["lost", "lost"]
    assert read_joblog(log).succeeded == frozenset()


async def _take_down_after(fake: FakeRay, seconds: float) -> None:
    await trio.sleep(seconds)
    fake.down = True


# --- --per-job: packed jobs -------------------------------------------------------------


@pytest.mark.parametrize("option", ["where", "shuffle", "sample"])
def test_per_job_refuses_reordered_sweeps(option: str) -> None:
    spec = ray_spec(per_job=2, **{option: 1 if option == "sample" else "1"})
    with pytest.raises(RangeExprError, match=f"--per-job cannot be combined with --{option} yet"):
        make_backend(spec, Sweep(["X=range:4"]))


def packed_plan(request: dict[str, Any]) -> FakeJob:
    """A fake head running packed jobs: each point's record and output, as the node would."""
    entry = request["entrypoint"]
    if "--slice" not in entry:
        return FakeJob(request, ["RUNNING", "SUCCEEDED"], output="alone\n")
    a, b = (int(x) for x in entry.split("--slice ")[1].split()[0].split(":"))
    mark = re.findall(r"@@\S+?@@", entry)[0]
    lines = [json.dumps({"format": "rangeexpr-joblog/1"})]
    body = b""
    for i in range(a, b):
        if i == 3:
            continue  # the node left no record for point 3
        code = 1 if i == 1 else 0
        status = "failed" if code else "succeeded"
        lines.append(json.dumps({"index": i, "status": status, "exit_code": code, "signal": None}))
        out = f"out {i}\n".encode()
        body += f"{mark} {i}.out {len(out)}\n".encode() + out + f"{mark} {i}.err 0\n".encode()
    body += f"{mark} run 9\nsummary\n".encode()
    logs = RUNTIME_ENV + f"\n{mark} log\n" + "\n".join(lines) + "\n" + body.decode()
    return FakeJob(request, ["PENDING", "RUNNING", "SUCCEEDED"], exit_code=1, output=logs)


def run_packed(tmp_path: Path, retries: int) -> tuple[FakeRay, Any, list[dict[str, Any]]]:
    fake = FakeRay(packed_plan)
    log = tmp_path / "log.jsonl"

    async def main() -> Any:
        async with backend(fake, batching=NodeBatching(ray_spec(), 2, 0, 5)) as b:
            jobs = (make_job(i, f"echo {i}") for i in range(5))
            joblog = JobLog.create(log, {})
            try:
                return await run_jobs(
                    jobs, b, 5, results_dir=tmp_path, retries=retries, joblog=joblog
                )
            finally:
                joblog.close()

    summary = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    records = [json.loads(line) for line in log.read_text().splitlines()[1:]]
    return fake, summary, sorted(records, key=lambda r: (r["index"], r["attempt"]))


def test_per_job_runs_groups_and_maps_results_back_per_point(tmp_path: Path) -> None:
    fake, summary, records = run_packed(tmp_path, retries=0)
    posts = [c for c in fake.calls if c[0] == "POST" and c[1] == "/api/jobs/"]
    assert len(posts) == 3  # [0,2), [2,4), [4,5)
    assert records[3]["message"] == (
        "the packed Ray job rangeexpr-s1-2to4-1 left no record for this point"
    )
    assert [(r["index"], r["status"], r["exit_code"], r["backend_id"]) for r in records] == [
        (0, "succeeded", 0, "rangeexpr-s1-0to2-1"),
        (1, "failed", 1, "rangeexpr-s1-0to2-1"),
        (2, "succeeded", 0, "rangeexpr-s1-2to4-1"),
        (3, "failed", None, "rangeexpr-s1-2to4-1"),  # no record from the node
        (4, "succeeded", 0, "rangeexpr-s1-4to5-1"),
    ]
    assert (summary.succeeded, summary.failed) == (3, 2)
    assert [(tmp_path / f"{i}.out").read_text() for i in (0, 1, 2, 4)] == [
        f"out {i}\n" for i in (0, 1, 2, 4)
    ]
    assert (tmp_path / "3.err").read_text() == "summary\n"  # what the node's run said


def test_per_job_retries_run_alone(tmp_path: Path) -> None:
    fake, summary, records = run_packed(tmp_path, retries=1)
    posts = [c for c in fake.calls if c[0] == "POST" and c[1] == "/api/jobs/"]
    assert len(posts) == 5  # three packed jobs, then points 1 and 3 alone
    assert [(r["index"], r["attempt"], r["backend_id"]) for r in records if r["attempt"] == 2] == [
        (1, 2, "rangeexpr-s1-1-2"),
        (3, 2, "rangeexpr-s1-3-2"),
    ]
    assert summary.succeeded == 5
    assert (tmp_path / "1.out").read_text() == "alone\n"


def test_packing_groups_are_aligned_on_the_selection() -> None:
    packing = NodeBatching(ray_spec(), 4, 5, 15)
    assert [packing.group(i) for i in (5, 8, 9, 12, 14)] == [
        (5, 9),
        (5, 9),
        (9, 13),
        (9, 13),
        (13, 15),
    ]


def test_per_job_slots_count_ray_jobs(tmp_path: Path) -> None:
    """A limit of 2 slots with --per-job 2 runs 2 Ray jobs (4 points) at once, not 2 points."""
    fake = FakeRay(packed_plan)
    peak: list[int] = []

    def running() -> int:
        return sum(1 for j in fake.jobs.values() if j.status in ("PENDING", "RUNNING"))

    async def main() -> None:
        async with backend(fake, batching=NodeBatching(ray_spec(), 2, 0, 8)) as b:
            runner = Runner(b, 2, results_dir=tmp_path)
            async with trio.open_nursery() as nursery:

                async def watch() -> None:
                    while True:
                        peak.append(running())
                        await trio.sleep(0.05)

                nursery.start_soon(watch)
                summary = await runner.run(make_job(i, f"echo {i}") for i in range(8))
                nursery.cancel_scope.cancel()
            assert summary.succeeded + summary.failed == 8

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert max(peak) == 2


def test_kill_returns_killed_at_once_without_waiting_for_ray(tmp_path: Path) -> None:
    """Ray never carries the stop out here: an abort would wait; kill() does not."""
    fake = FakeRay(lambda r: FakeJob(r, ["RUNNING"]), ignore_stop=True)

    async def main() -> tuple[Outcome, float]:
        async with backend(fake) as b, trio.open_nursery() as nursery:
            result: list[tuple[Outcome, float]] = []

            async def go() -> None:
                outcome = await b.run(make_attempt(tmp_path))
                result.append((outcome, trio.current_time()))

            nursery.start_soon(go)
            await trio.sleep(10)
            killed_at = trio.current_time()
            b.kill()
        with pytest.raises(NotStarted):  # nothing is submitted after kill()
            await b.run(make_attempt(tmp_path, job=make_job(8)))
        return result[0][0], result[0][1] - killed_at

    outcome, took = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert outcome == Outcome(
        "killed",
        None,
        None,
        "rangeexpr-s1-7-1",
        "killed: Ray was told to stop the job, and not waited for",
    )
    assert took < 1  # virtual seconds: no polling for a stop Ray never makes
    assert fake.calls.count(("POST", "/api/jobs/rangeexpr-s1-7-1/stop")) == 1
    assert "rangeexpr-s1-8-1" not in fake.jobs


def test_runner_kill_gives_every_point_of_a_packed_job_a_killed_record(tmp_path: Path) -> None:
    fake = FakeRay(lambda r: FakeJob(r, ["RUNNING"]), ignore_stop=True)
    log = tmp_path / "log.jsonl"

    async def main() -> Any:
        async with backend(fake, batching=NodeBatching(ray_spec(), 3, 0, 3)) as b:
            joblog = JobLog.create(log, {})
            runner = Runner(b, 1, joblog=joblog, results_dir=tmp_path)
            async with trio.open_nursery() as nursery:

                async def kill_later() -> None:
                    await trio.sleep(5)
                    runner.kill()

                nursery.start_soon(kill_later)
                summary = await runner.run(make_job(i) for i in range(3))
            joblog.close()
            return summary

    summary = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert (summary.killed, summary.stopped) == (3, "interrupted")
    records = [json.loads(line) for line in log.read_text().splitlines()[1:]]
    assert sorted((r["index"], r["status"], r["backend_id"]) for r in records) == [
        (i, "killed", "rangeexpr-s1-0to3-1") for i in range(3)
    ]


def test_an_output_file_that_cannot_be_written_is_a_storage_error(tmp_path: Path) -> None:
    fake = FakeRay()
    job = make_job()
    gone = tmp_path / "no-such-dir"
    attempt = Attempt(job, 1, None, gone / "7.out", gone / "7.err", trio.Event())
    with pytest.raises(StorageError, match=r"^cannot write .*no-such-dir/7\.out: "):
        run_one(fake, lambda: attempt)


# issue 13: resources


def _submitted(tmp_path: Path, job: Job, **kw: Any) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    def plan(request: dict[str, Any]) -> FakeJob:
        seen.append(request)
        return FakeJob(request, ["SUCCEEDED"])

    run_one(FakeRay(plan), lambda: make_attempt(tmp_path, job), **kw)
    [request] = seen
    return {k: v for k, v in request.items() if k.startswith("entrypoint_")}


def test_a_jobs_request_maps_to_rays_entrypoint_resources(tmp_path: Path) -> None:
    from dataclasses import replace

    from runner import Request

    asked = Request.parse(
        [("cpu", "2"), ("mem", "256m"), ("cuda.device", "1"), ("accel", "0.5")], custom=True
    )
    assert _submitted(tmp_path, replace(make_job(), request=asked)) == {
        "entrypoint_num_cpus": 2,
        "entrypoint_num_gpus": 1,
        "entrypoint_memory": 256 * 2**20,
        "entrypoint_resources": {"accel": 0.5},
    }


def test_what_a_request_leaves_out_comes_from_the_backends(tmp_path: Path) -> None:
    """A job asking only for a GPU still gets the default CPUs; nothing else is sent."""
    from dataclasses import replace

    from runner import Request

    job = replace(make_job(), request=Request(gpu=2))
    sent = _submitted(tmp_path, job, request=Request(cpu=1.5, mem=2**30))
    assert sent == {
        "entrypoint_num_cpus": 1.5,
        "entrypoint_num_gpus": 2,
        "entrypoint_memory": 2**30,
    }
    assert _submitted(tmp_path, make_job()) == {"entrypoint_num_cpus": 1.0}


def test_make_backend_ray_takes_the_requests_and_entrypoint_num_cpus_as_cpu() -> None:
    spec = ray_spec(resources=(("cpu", "3"), ("gpu", "1"), ("mem", "1g"), ("tpu", "2")))
    b = make_backend(spec, spec.selected())
    assert isinstance(b, RayBackend)
    assert b.request.as_dict() == {"cpu": 3, "mem": 2**30, "gpu": 1, "tpu": 2}
    # --entrypoint-num-cpus is -r cpu=
    b = make_backend(ray_spec(entrypoint_num_cpus=2.5), spec.selected())
    assert isinstance(b, RayBackend)
    assert b.request.as_dict() == {"cpu": 2.5}
    with pytest.raises(RangeExprError, match="say the same thing differently"):
        make_backend(ray_spec(entrypoint_num_cpus=2.0, resources=(("cpu", "3"),)), spec.selected())


def test_make_backend_ray_refuses_what_only_the_local_pool_has() -> None:
    spec = ray_spec(command="echo $X $RANGEEXPR_SLOT")
    with pytest.raises(RangeExprError, match=r"\$RANGEEXPR_SLOT is known only to --backend local"):
        make_backend(spec, spec.selected())
    spec = ray_spec(gpus="0,1")
    with pytest.raises(RangeExprError, match="--gpus applies only to --backend local"):
        make_backend(spec, spec.selected())
    spec = ray_spec(per_job=2, exprs=("X=range:0,5",), resources=(("gpu", "$X"),))
    with pytest.raises(RangeExprError, match=r"varies by point .* \(--per-job 1\)"):
        make_backend(spec, spec.selected())
