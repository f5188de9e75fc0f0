"""``rangeexpr run --backend ray`` against a real, private Ray 2.60 head node.

``tests/ray_head.py`` installs Ray into a cached virtualenv (once, about a minute cold) and
starts a head on loopback with private ports. Every Ray job costs the head a fresh worker
(about 1.5 s), so these are a handful of small sweeps. The CLI runs as a subprocess, as a
user runs it; jobs run on the head's node, which is this machine, so a job can leave a
trace in a file the test reads (to count how often it really ran).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ray_head import CHECKOUT, RayHead, ensure_ray, free_port, ray_head

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def head() -> Iterator[RayHead]:
    with ray_head(num_cpus=4) as h:
        yield h


def rangeexpr(*args: str) -> list[str]:
    return [sys.executable, "-m", "rangeexpr", "run", "--no-progress", *args]


def env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{CHECKOUT}{os.pathsep}{path}" if path else str(CHECKOUT)}


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        rangeexpr(*args), capture_output=True, text=True, env=env(), timeout=timeout, check=False
    )


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        rangeexpr(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )


def records(joblog: Path) -> list[dict[str, Any]]:
    lines = joblog.read_text().splitlines() if joblog.exists() else []
    return [json.loads(line) for line in lines[1:] if line.endswith("}")]


def ray_job(head: RayHead, submission_id: str) -> dict[str, Any] | None:
    response = httpx.get(f"{head.address}/api/jobs/{submission_id}", timeout=10)
    return None if response.status_code == 404 else dict(response.json())


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.3)


def test_small_sweep_runs_every_point_with_env_and_output(head: RayHead, tmp_path: Path) -> None:
    log, results = tmp_path / "log.jsonl", tmp_path / "out"
    done = run(
        *("--backend", "ray", "--address", head.address, "-j", "4", "--shell"),
        *("-r", "X=range:0,3", "-r", "Y=case:a,b c", "-e", "G=hi-$Y"),
        *("--exec", 'echo $X $Y "$$G" "$$RANGEEXPR_INDEX/$$RANGEEXPR_COUNT"; echo oops >&2'),
        *("--joblog", str(log), "--results", str(results)),
    )
    assert done.returncode == 0, done.stderr
    recs = sorted(records(log), key=lambda r: r["index"])
    assert [(r["index"], r["status"], r["exit_code"]) for r in recs] == [
        (i, "succeeded", 0) for i in range(6)
    ]
    assert recs[3]["values"] == {"X": 1, "Y": "b c"}
    assert (results / "X=1,Y=b%20c.out").read_text() == "1 b c hi-b c 3/6\noops\n"  # merged
    time.sleep(3)  # long enough for Ray to write a ghost record if we deleted too early
    for r in recs:  # deleted from Ray, and no ghost FAILED record in their place
        assert r["backend_id"].startswith("rangeexpr-")
        assert ray_job(head, r["backend_id"]) is None


def test_failing_job_exits_1_and_records_its_exit_code(head: RayHead, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    done = run(
        *("--backend", "ray", "--address", head.address),
        *("-r", "X=case:0,3", "--exec", "sh -c 'exit $X'", "--joblog", str(log)),
    )
    assert done.returncode == 1, done.stderr
    assert sorted((r["index"], r["status"], r["exit_code"]) for r in records(log)) == [
        (0, "succeeded", 0),
        (1, "failed", 3),
    ]


def test_per_job_packs_points_and_records_each(head: RayHead, tmp_path: Path) -> None:
    """--per-job 3: 7 points in 3 Ray jobs running `rangeexpr run --slice` on the node."""
    log, results = tmp_path / "log.jsonl", tmp_path / "out"
    done = run(
        *("--backend", "ray", "--address", head.address, "--per-job", "3", "-j", "2"),
        *("-r", "X=range:0,7", "-e", "G=g$X", "--exec", 'sh -c "echo $X $$G; test $X != 4"'),
        *("--joblog", str(log), "--results", str(results)),
    )
    assert done.returncode == 1, done.stderr
    recs = sorted(records(log), key=lambda r: r["index"])
    assert [(r["index"], r["status"], r["exit_code"]) for r in recs] == [
        (i, "failed" if i == 4 else "succeeded", 1 if i == 4 else 0) for i in range(7)
    ]
    assert len({r["backend_id"] for r in recs}) == 3  # [0,3), [3,6), [6,7)
    assert [(results / f"X={i}.out").read_text() for i in range(7)] == [
        f"{i} g{i}\n" for i in range(7)
    ]


def test_ctrl_c_stops_every_in_flight_ray_job(head: RayHead, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    proc = start(
        *("--backend", "ray", "--address", head.address, "-j", "2"),
        *("-r", "X=range:0,5", "--exec", "sleep 120", "--joblog", str(log)),
    )
    try:
        wait_for(lambda: len(running_jobs(head, "sleep 120")) == 2, 60, "two running Ray jobs")
        running = running_jobs(head, "sleep 120")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    recs = records(log)
    assert sorted(r["status"] for r in recs) == ["killed", "killed"]
    assert {r["backend_id"] for r in recs} == set(running)
    for sid in running:  # stopped (and then deleted): nothing left running on the cluster
        job = ray_job(head, sid)
        assert job is None or job["status"] == "STOPPED"


def running_jobs(head: RayHead, entrypoint: str) -> list[str]:
    """Submission ids of our RUNNING jobs with this entrypoint (the list call: tests only)."""
    jobs = httpx.get(f"{head.address}/api/jobs/", timeout=10).json()
    return [
        j["submission_id"]
        for j in jobs
        if j["entrypoint"] == entrypoint and j["status"] == "RUNNING"
    ]


def test_resume_after_a_crash_follows_the_existing_jobs(head: RayHead, tmp_path: Path) -> None:
    """The runner dies (SIGKILL) with jobs in flight; --resume finds them, runs nothing twice."""
    log, trace = tmp_path / "log.jsonl", tmp_path / "trace"
    args = (
        *("--backend", "ray", "--address", head.address, "-j", "2", "--joblog", str(log)),
        *("-r", "X=range:0,2", "--exec", f"sh -c 'sleep 5; echo $X >> {trace}'"),
    )
    proc = start(*args)
    entry = f"sh -c 'sleep 5; echo 0 >> {trace}'"
    try:
        wait_for(lambda: len(running_jobs(head, entry)) == 1, 60, "the first job running")
    finally:
        proc.kill()  # no chance to stop anything: the Ray jobs keep running
        proc.communicate()
    assert records(log) == []
    done = run(*args, "--resume")
    assert done.returncode == 0, done.stderr
    assert sorted(r["index"] for r in records(log) if r["status"] == "succeeded") == [0, 1]
    assert sorted(trace.read_text().split()) == ["0", "1"]  # each point ran exactly once


def test_head_killed_mid_sweep_then_resume_finishes(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    lost = RayHead(ensure_ray(), num_cpus=2)
    try:
        lost.start()
        args = (
            *("-j", "2", "--joblog", str(log)),
            *("-r", "S=case:0,0.1,4,4.1,4.2,4.3", "--exec", "sleep $S"),
        )
        proc = start("--backend", "ray", "--address", lost.address, *args)
        try:
            wait_for(lambda: len(records(log)) >= 2, 120, "the two quick jobs to finish")
            wait_for(lambda: len(running_jobs(lost, "sleep 4")) >= 1, 60, "a slow job")
            lost.kill()
            _, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
        assert proc.returncode == 1, err
        assert "lost contact with the Ray head at " in err
        statuses = [r["status"] for r in records(log)]
        assert statuses.count("succeeded") == 2
        assert "lost" in statuses and set(statuses) == {"succeeded", "lost"}
        address = lost.start()  # a restarted head: new ports, knows no jobs
        done = run("--backend", "ray", "--address", address, *args, "--resume")
        assert done.returncode == 0, done.stderr
        succeeded = sorted(r["index"] for r in records(log) if r["status"] == "succeeded")
        assert succeeded == list(range(6))
    finally:
        lost.close()


def test_unreachable_head_is_a_clear_error_and_nothing_runs(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    address = f"http://127.0.0.1:{free_port()}"
    done = run(
        *("--backend", "ray", "--address", address, "--joblog", str(log)),
        *("-r", "X=range:0,3", "--exec", "echo $X"),
    )
    assert done.returncode == 2
    assert done.stderr.startswith(
        f"rangeexpr: error: the ray backend cannot run jobs: cannot reach the Ray Jobs API at "
        f"{address}: "
    )
    assert records(log) == []
