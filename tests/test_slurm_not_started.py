"""Slurm: array tasks still PENDING are shown as waiting, and a stop soon cancels them.

Against a real private cluster (``tests/slurm_cluster.py``) of one node with 2 CPUs, so of
a run's tasks two run and the rest wait PENDING (Resources). Jobs run on this machine and
leave a file when they start: what ran is read from those, not from our bookkeeping.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from slurm_cluster import SlurmCluster, slurm_cluster

from runner import Job, JobLog, Runner, RunStatistics, SlurmBackend

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

CPUS = 2


@pytest.fixture(scope="module")
def cluster() -> Iterator[SlurmCluster]:
    with slurm_cluster(cpus=CPUS) as c:
        yield c


def records(joblog: Path) -> list[dict[str, Any]]:
    lines = joblog.read_text().splitlines() if joblog.exists() else []
    return [json.loads(line) for line in lines[1:] if line.endswith("}")]


def queued(cluster: SlurmCluster) -> str:
    done = cluster.run("squeue", "--noheader", "--array", "--format=%i %T")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def started(directory: Path) -> set[int]:
    return {int(p.name) for p in directory.iterdir()}


def test_a_stop_soon_cancels_the_pending_tasks_and_lets_the_running_ones_finish(
    cluster: SlurmCluster, tmp_path: Path
) -> None:
    """Eight tasks: two run (shown running), six wait PENDING (shown waiting). A stop soon
    while they do: the two finish and are recorded, the six never run and have no record."""
    ran = tmp_path / "ran"
    ran.mkdir()
    script = f'touch {ran}/"$1"; sleep 4'
    jobs = [Job(i, ("/bin/sh", "-c", script, "sh", str(i)), script, {}, {"i": i}) for i in range(8)]
    log = tmp_path / "log.jsonl"
    seen: list[RunStatistics] = []

    async def main() -> None:
        with JobLog.create(log, {}) as joblog:
            backend = SlurmBackend(run_dir=tmp_path / "run", env=cluster.env, throttle=8)
            async with backend:
                runner = Runner(backend, 1, joblog=joblog)  # admits 8 (the look-ahead)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(runner.run, jobs)
                    with trio.fail_after(60):
                        while runner.statistics().running < CPUS or len(started(ran)) < CPUS:
                            await trio.sleep(0.1)
                    seen.append(runner.statistics())
                    runner.stop("halt", now=False)
                seen.append(runner.statistics())

    trio.run(main)
    during, after = seen
    assert (during.started, during.running, during.waiting) == (8, CPUS, 8 - CPUS)
    assert len(started(ran)) == CPUS  # the pending ones never ran
    assert sorted(r["index"] for r in records(log)) == sorted(started(ran))
    assert {r["status"] for r in records(log)} == {"succeeded"}
    assert (after.started, after.succeeded, after.running, after.waiting) == (CPUS, CPUS, 0, 0)
    assert queued(cluster) == ""


def rangeexpr(cluster: SlurmCluster, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "rangeexpr", "run", "--no-progress", "--backend", "slurm"]
    return subprocess.run(
        [*argv, *args], capture_output=True, text=True, env=cluster.env, cwd=cwd, timeout=300,
        check=False,
    )  # fmt: skip


def test_halt_soon_gives_up_the_pending_tasks_and_resume_runs_them(
    cluster: SlurmCluster, tmp_path: Path
) -> None:
    """Ten tasks, two CPUs: task 0 fails after a second, with task 1 still running. Slurm
    may start one pending task on the CPU task 0 frees before the failure is seen (its
    scheduler does not wait for us); the others never run, and only what ran has a record."""
    ran = tmp_path / "ran"
    ran.mkdir()
    (tmp_path / "failing").touch()
    script = f"touch {ran}/$X; if [ $X = 0 ] && [ -e failing ]; then sleep 1; exit 3; fi; sleep 4"
    sweep = ("-r", "X=range:10", "-j", "10", "--shell", "--exec", script, "--joblog", "log.jsonl")
    first = rangeexpr(cluster, tmp_path, *sweep, "--halt", "soon,fail=1")
    assert first.returncode == 1, first.stderr
    found = records(tmp_path / "log.jsonl")
    assert {r["index"] for r in found} == started(ran)  # what ran, and nothing else
    assert 2 <= len(found) <= 3
    left = 10 - len(found)
    assert f"stopped early by --halt soon,fail=1: {left} points never started" in first.stderr
    assert queued(cluster) == ""

    os.unlink(tmp_path / "failing")
    again = rangeexpr(cluster, tmp_path, *sweep, "--resume")
    assert again.returncode == 0, again.stderr
    assert started(ran) == set(range(10))
    done = {r["index"] for r in records(tmp_path / "log.jsonl") if r["status"] == "succeeded"}
    assert done == set(range(10))
