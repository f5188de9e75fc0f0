"""``rangeexpr run --backend slurm`` through the real CLI against a real private cluster.

The cluster is ``tests/slurm_cluster.py``'s, started once for the module with
``MaxArraySize=10``. The CLI runs as a subprocess, as a user runs it, in the test's
directory (the run directory is there: on this machine, the one node's file system). Jobs
run on this machine, so they leave traces in files the tests read.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from slurm_cluster import SlurmCluster, slurm_cluster

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

MAX_ARRAY_SIZE = 10


@pytest.fixture(scope="module")
def cluster() -> Iterator[SlurmCluster]:
    with slurm_cluster(max_array_size=MAX_ARRAY_SIZE) as c:
        yield c


def env(cluster: SlurmCluster) -> dict[str, str]:
    """The cluster's client environment, with our ``rangeexpr`` first on PATH (for the
    node-side run of ``--per-job``)."""
    bin_dir = str(Path(sys.executable).parent)
    return {**cluster.env, "PATH": f"{bin_dir}{os.pathsep}{cluster.env.get('PATH', '')}"}


def argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "rangeexpr", "run", "--no-progress", "--backend", "slurm", *args]


def run(cluster: SlurmCluster, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv(*args), capture_output=True, text=True, env=env(cluster), cwd=cwd, timeout=300,
        check=False,
    )  # fmt: skip


def records(joblog: Path) -> list[dict[str, Any]]:
    lines = joblog.read_text().splitlines() if joblog.exists() else []
    return [json.loads(line) for line in lines[1:] if line.endswith("}")]


def queued(cluster: SlurmCluster) -> str:
    done = cluster.run("squeue", "--noheader", "--array", "--format=%i %j %T")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def test_jobs_see_their_task_and_values_and_records_name_it(
    cluster: SlurmCluster, tmp_path: Path
) -> None:
    show = (
        'echo "$$SLURM_ARRAY_JOB_ID $$SLURM_ARRAY_TASK_ID $$V $$RANGEEXPR_INDEX/$$RANGEEXPR_COUNT"'
    )
    done = run(
        cluster, tmp_path, "X=range:4", "-j", "2", "-e", "V=v$X", "--shell", "--exec", show,
        "--joblog", "log.jsonl", "--results", "out",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    found = records(tmp_path / "log.jsonl")
    assert sorted(r["index"] for r in found) == [0, 1, 2, 3]
    for record in found:
        i = record["index"]
        array, task = record["backend_id"].split("_")
        assert record["status"] == "succeeded"
        assert (tmp_path / "out" / f"X={i}.out").read_text() == f"{array} {task} v{i} {i}/4\n"
    assert len({r["backend_id"] for r in found}) == 4
    assert [p.name for p in (tmp_path / "out").iterdir() if p.is_dir()] == []  # the backend's


def test_a_failing_point_is_recorded_as_failed_after_its_retries(
    cluster: SlurmCluster, tmp_path: Path
) -> None:
    done = run(
        cluster, tmp_path, "X=range:3", "--shell", "--exec", "test $X != 1 || exit 3",
        "--retries", "1", "--joblog", "log.jsonl",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr

    found = records(tmp_path / "log.jsonl")
    one = [(r["attempt"], r["status"], r["exit_code"]) for r in found if r["index"] == 1]
    assert one == [(1, "failed", 3), (2, "failed", 3)]
    assert {r["index"]: r["status"] for r in found if r["index"] != 1} == {
        0: "succeeded",
        2: "succeeded",
    }
    assert len({r["backend_id"].split("_")[0] for r in found if r["index"] == 1}) == 2


def test_a_sweep_larger_than_max_array_size_runs_as_two_arrays(
    cluster: SlurmCluster, tmp_path: Path
) -> None:
    done = run(
        cluster, tmp_path, "X=range:13", "-j", "4", "--exec", "echo $X",
        "--joblog", "log.jsonl", "--results", "out",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    found = records(tmp_path / "log.jsonl")
    assert sorted(r["index"] for r in found) == list(range(13))
    ids = [r["backend_id"].split("_") for r in found]
    by_array = Counter(array for array, _ in ids)
    assert len(by_array) >= 2 and max(by_array.values()) <= MAX_ARRAY_SIZE
    for i in range(13):
        assert (tmp_path / "out" / f"X={i}.out").read_text() == f"{i}\n"


def test_per_job_runs_consecutive_points_in_one_task(cluster: SlurmCluster, tmp_path: Path) -> None:
    show = 'echo "$$SLURM_ARRAY_JOB_ID $$SLURM_ARRAY_TASK_ID $$V"; test $X != 4 || exit 5'
    done = run(
        cluster, tmp_path, "X=range:7", "--per-job", "3", "-j", "2", "-e", "V=v$X",
        "--shell", "--exec", show, "--joblog", "log.jsonl", "--results", "out",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # point 4 fails

    found = {r["index"]: r for r in records(tmp_path / "log.jsonl")}
    assert sorted(found) == list(range(7))
    assert [found[i]["status"] for i in range(7)] == ["succeeded"] * 4 + ["failed"] + [
        "succeeded"
    ] * 2
    assert found[4]["exit_code"] == 5
    groups = [{found[i]["backend_id"] for i in group} for group in ((0, 1, 2), (3, 4, 5), (6,))]
    assert all(len(ids) == 1 for ids in groups)  # one task per group of three
    assert len(set.union(*groups)) == 3
    for i in range(7):
        array, task = found[i]["backend_id"].split("_")
        assert (tmp_path / "out" / f"X={i}.out").read_text() == f"{array} {task} v{i}\n"


def test_resume_after_the_submitting_run_is_killed_cancels_its_orphans(
    cluster: SlurmCluster, tmp_path: Path
) -> None:
    """SIGKILL leaves the killed run's arrays queued: their results would reach no job log.
    The resumed run cancels them (named after the job log) and runs what is missing."""
    trace = tmp_path / "trace"
    args = (
        "X=range:10", "-j", "2", "--shell", "--exec", f"sleep 2; echo $X >>{trace}",
        "--joblog", "log.jsonl", "--results", "out",
    )  # fmt: skip
    first = subprocess.Popen(
        argv(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env(cluster),
        cwd=tmp_path, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: len(records(tmp_path / "log.jsonl")) >= 2, "two records")
    finally:
        first.kill()
        first.wait()
    before = {r["index"] for r in records(tmp_path / "log.jsonl")}
    orphans = {line.split()[0].split("_")[0] for line in queued(cluster).splitlines()}
    assert orphans, "the killed run left nothing queued"
    assert len(before) < 10

    done = run(cluster, tmp_path, *args, "--resume")
    assert done.returncode == 0, done.stderr

    found = records(tmp_path / "log.jsonl")
    succeeded = Counter(r["index"] for r in found if r["status"] == "succeeded")
    assert succeeded == Counter(range(10))  # each point exactly once
    assert queued(cluster) == ""
    states = cluster.run(
        "squeue", "--noheader", "--array", "--states=all", f"--jobs={','.join(orphans)}",
        "--format=%T",
    )  # fmt: skip
    assert "CANCELLED" in states.stdout.split()  # not left to run for no one
    assert [p.name for p in (tmp_path / "out").iterdir() if p.is_dir()] == []


def test_an_unknown_partition_is_refused_before_anything_is_submitted(
    cluster: SlurmCluster, tmp_path: Path
) -> None:
    done = run(
        cluster, tmp_path, "X=range:3", "--exec", "true", "--partition", "nosuch",
        "--joblog", "log.jsonl",
    )  # fmt: skip
    assert done.returncode == 2
    assert "invalid partition" in done.stderr
    assert "Traceback" not in done.stderr
    assert records(tmp_path / "log.jsonl") == []
    assert queued(cluster) == ""


def test_the_manual_cluster_is_torn_down_on_sigterm(tmp_path: Path) -> None:
    """``python tests/slurm_cluster.py`` stopped by SIGTERM (a CI timeout, ``kill``) leaves
    none of its daemons running."""
    script = Path(__file__).with_name("slurm_cluster.py")
    manual = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    daemons: list[int] = []
    try:
        assert manual.stdout is not None
        line = manual.stdout.readline()
        assert line.startswith("export SLURM_CONF="), manual.stderr.read() if manual.stderr else ""
        directory = Path(line.split("=", 1)[1].strip()).parent
        for name in ("munged", "slurmctld", "slurmd"):
            daemons.append(int((directory / f"{name}.pid").read_text()))
        assert all(psutil.pid_exists(pid) for pid in daemons)
        manual.send_signal(signal.SIGTERM)
        assert manual.wait(timeout=120) == 128 + signal.SIGTERM
        assert not [pid for pid in daemons if psutil.pid_exists(pid)]
        assert not directory.exists()
    finally:
        manual.kill()
        manual.wait()
        for pid in daemons:  # the old teardown left them: end ours, by pid
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
