"""The private Slurm test cluster itself (``tests/slurm_cluster.py``), before any backend.

One cluster per module with ``MaxArraySize=10``: arrays run as real tasks that see their
Slurm variables, larger ones are refused by ``sbatch``, ``scancel`` ends a running array,
and closing a cluster leaves none of its processes behind. Jobs are polled with one
``squeue`` call for the whole array, as the backend will.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from slurm_cluster import SlurmCluster, slurm_cluster

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

MAX_ARRAY_SIZE = 10


@pytest.fixture(scope="module")
def cluster() -> Iterator[SlurmCluster]:
    with slurm_cluster(max_array_size=MAX_ARRAY_SIZE) as c:
        yield c


def sbatch(cluster: SlurmCluster, *args: str) -> str:
    done = cluster.run("sbatch", "--parsable", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def queued(cluster: SlurmCluster, job: str) -> dict[str, str]:
    """``{task id: state}`` of an array's tasks still in the queue, in one squeue call."""
    done = cluster.run("squeue", "--noheader", "--array", f"--jobs={job}", "--format=%i %T")
    if done.returncode != 0:  # the job's record is gone already
        assert "Invalid job id" in done.stderr, done.stderr
        return {}
    return dict(line.split() for line in done.stdout.splitlines())


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.3)


def job_states(cluster: SlurmCluster, job: str) -> dict[str, str]:
    """``{task id: JobState}`` from ``scontrol``, which still shows finished tasks."""
    done = cluster.run("scontrol", "--oneliner", "show", "job", job)
    assert done.returncode == 0, done.stderr
    states = {}
    for line in done.stdout.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        states[f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"] = fields["JobState"]
    return states


def test_array_tasks_run_and_see_their_slurm_ids(cluster: SlurmCluster, tmp_path: Path) -> None:
    job = sbatch(
        cluster,
        "--array=0-3",
        f"--output={tmp_path}/%A_%a.out",
        "--wrap",
        "echo $SLURM_ARRAY_JOB_ID $SLURM_ARRAY_TASK_ID $SLURM_ARRAY_TASK_COUNT",
    )
    wait_for(lambda: not queued(cluster, job), 60, f"array {job} to leave the queue")
    outputs = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert outputs == {f"{job}_{i}.out": f"{job} {i} 4\n" for i in range(4)}
    assert job_states(cluster, job) == {f"{job}_{i}": "COMPLETED" for i in range(4)}


def test_an_array_past_max_array_size_is_refused(cluster: SlurmCluster) -> None:
    fits = cluster.run("sbatch", "--test-only", f"--array=0-{MAX_ARRAY_SIZE - 1}", "--wrap=true")
    assert fits.returncode == 0, fits.stderr
    refused = cluster.run("sbatch", "--parsable", f"--array=0-{MAX_ARRAY_SIZE}", "--wrap=true")
    assert refused.returncode != 0
    assert "Invalid job array specification" in refused.stderr


def test_scancel_ends_a_running_array(cluster: SlurmCluster, tmp_path: Path) -> None:
    job = sbatch(cluster, "--array=0-3", f"--output={tmp_path}/%a.out", "--wrap", "sleep 300")
    wait_for(lambda: "RUNNING" in queued(cluster, job).values(), 60, f"array {job} to run")
    done = cluster.run("scancel", job)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: not queued(cluster, job), 60, f"array {job} to leave the queue")
    assert set(job_states(cluster, job).values()) == {"CANCELLED"}


def test_close_leaves_no_process_of_the_cluster(tmp_path: Path) -> None:
    with slurm_cluster() as other:
        # A second cluster beside the module's: its own ports, socket and state.
        job = sbatch(other, f"--output={tmp_path}/out", "--wrap", "sleep 300")
        wait_for(lambda: queued(other, job) == {job: "RUNNING"}, 60, f"job {job} to run")
        names = {p.name() for p in other.processes()}
        assert {"munged", "slurmctld", "slurmd", "slurmstepd", "sleep"} <= names
    assert other.seen()
    assert not [p for p in other.seen() if alive(p)]
    assert not other.dir.exists()


def alive(p: psutil.Process) -> bool:
    try:
        return bool(p.is_running() and p.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
