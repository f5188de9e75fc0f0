"""Slurm backend against a private single-node Slurm cluster (``tests/slurm_cluster.py``).

200 one-point ``true`` jobs through SlurmBackend + the runner at ``-j 4`` vs what a user
writes by hand: one ``sbatch --array=0-199%4`` and a loop calling ``squeue`` every 0.2 s
until the array has left the queue. Jobs/s ratio, target >= 0.9x. The node declares as
many CPUs as the throttle, so the throttle is what bounds both. Runs alternate (baseline,
ours, ...) so load hits both alike; medians. Each timing runs from the first submission
to the last task known to have ended; ours includes the runner's bookkeeping.

Then ``--per-job 20`` vs one point per task: the same 200 ``true`` points through the real
CLI (``rangeexpr run --backend slurm -j 4``), 20 to a task run there by ``rangeexpr run
--slice``, vs one to a task. Points/s ratio, target >= 5x.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import trio
from _common import report

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

POINTS = 200
THROTTLE = 4
REPEAT = 3
PER_JOB = 20


def ours(env: Mapping[str, str], work: Path) -> float:
    """Seconds for the runner to run the sweep through SlurmBackend."""
    from runner import Job, run_jobs
    from runner._slurm import SlurmBackend

    jobs = [Job(i, ("true",), "true", {}, {"i": i}) for i in range(POINTS)]

    async def main() -> float:
        async with SlurmBackend(throttle=THROTTLE, run_dir=work, env=env) as backend:
            began = trio.current_time()
            summary = await run_jobs(jobs, backend, THROTTLE)
            took = trio.current_time() - began
        assert summary.succeeded == POINTS, summary
        return took

    return trio.run(main)


def baseline(env: Mapping[str, str], work: Path) -> float:
    """Seconds for one hand-written array and a squeue loop."""

    def slurm(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, env=env, check=False)

    began = time.monotonic()
    done = slurm(
        "sbatch",
        "--parsable",
        f"--array=0-{POINTS - 1}%{THROTTLE}",
        f"--output={work}/%a.out",
        "--wrap=true",
    )
    assert done.returncode == 0, done.stderr
    array = done.stdout.strip().split(";")[0]
    while True:
        queued = slurm("squeue", "--noheader", f"--jobs={array}")
        if queued.returncode != 0 and "Invalid job id" not in queued.stderr:
            raise AssertionError(queued.stderr)
        if not queued.stdout.strip():
            return time.monotonic() - began
        time.sleep(0.2)


def cli(env: Mapping[str, str], work: Path, per_job: int) -> float:
    """Seconds for ``rangeexpr run --backend slurm`` to run the sweep, ``per_job`` to a task."""
    bin_dir = str(Path(sys.executable).parent)  # the node-side run needs our rangeexpr
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "rangeexpr", "run", "--no-progress", "--backend", "slurm",
         "-j", str(THROTTLE), "--per-job", str(per_job), f"X=range:{POINTS}",
         "--exec", "true $X"],
        capture_output=True, text=True, cwd=work, check=False,
        env={**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"},
    )  # fmt: skip
    took = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    return took


def main() -> None:
    from slurm_cluster import slurm_cluster

    if os.geteuid() != 0:
        print("skip Slurm: the private test cluster needs root", flush=True)
        return
    with slurm_cluster(cpus=THROTTLE) as cluster, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ours(cluster.env, work)  # warm-up: the first tasks of a fresh node start slower
        base_t, ours_t = [], []
        for _ in range(REPEAT):
            base_t.append(baseline(cluster.env, work))
            ours_t.append(ours(cluster.env, work))
        b, o = statistics.median(base_t), statistics.median(ours_t)
        report(
            f"Slurm: {POINTS} one-point true jobs, ours vs sbatch --array + squeue loop (jobs/s)",
            b / o,
            0.9,
            f"ours {POINTS / o:.2f} jobs/s, baseline {POINTS / b:.2f} jobs/s, -j {THROTTLE}",
        )
        one_t, packed_t = [], []
        for _ in range(REPEAT):
            one_t.append(cli(cluster.env, work, 1))
            packed_t.append(cli(cluster.env, work, PER_JOB))
        one, packed = statistics.median(one_t), statistics.median(packed_t)
        report(
            f"Slurm: --per-job {PER_JOB} vs one point per task (points/s, through the CLI)",
            one / packed,
            5.0,
            f"{POINTS / packed:.2f} vs {POINTS / one:.2f} points/s, -j {THROTTLE}",
        )


if __name__ == "__main__":
    main()
