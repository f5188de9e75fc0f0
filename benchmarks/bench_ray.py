"""Ray backend against a private Ray 2.60 head (started here, like the e2e tests).

1. 40 one-point ``echo`` jobs through RayBackend + the runner vs a minimal hand-written
   httpx submit/poll/logs loop with the same concurrency: jobs/s ratio (target >= 0.9x).
2. The same 40 points packed ``--per-job 20`` vs one point per job: points/s (>= 10x).

Runs alternate (baseline, ours, ...) so load hits both alike; medians. Timing covers
submitting to the last result; the backend's closing deletions (which wait a few seconds
for Ray's job monitor, see ``RayBackend._delete_due``) are outside it, and the baseline
deletes nothing.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import trio
from _common import report

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

POINTS = 40
CONCURRENCY = 4
PER_JOB = 20
REPEAT = 2


def jobs() -> list[Any]:
    from rangeexpr import Command, Sweep
    from runner import Job

    sweep, command = Sweep([f"X=range:0,{POINTS}"]), Command("echo $X")
    return [
        Job(p.index, command.argv(p), command.line(p), {"RANGEEXPR_INDEX": str(p.index)}, p)
        for p in sweep
    ]


def ours(address: str, per_job: int) -> float:
    """Seconds for the runner to run the sweep through RayBackend (``per_job`` points a job)."""
    from rangeexpr._backends import make_backend
    from rangeexpr._spec import RunSpec
    from runner import run_jobs

    spec = RunSpec(
        exprs=(f"X=range:0,{POINTS}",),
        command="echo $X",
        env=(("RUN", str(time.time_ns())),),  # each run its own sweep id: finds no other's jobs
        backend="ray",
        address=address,
        per_job=per_job,
    )
    backend = make_backend(spec, spec.selected())

    async def main() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            async with backend:
                began = trio.current_time()
                summary = await run_jobs(jobs(), backend, CONCURRENCY, results_dir=Path(tmp))
                took = trio.current_time() - began
            assert summary.succeeded == POINTS, summary
            return took

    return trio.run(main)


def baseline(address: str) -> float:
    """Seconds for a minimal hand-written loop: submit, poll every 0.25 s, fetch the logs."""
    tag = time.time_ns()

    async def one(client: httpx.AsyncClient, limiter: trio.CapacityLimiter, i: int) -> None:
        async with limiter:
            sid = f"base-{tag}-{i}"
            body = {"submission_id": sid, "entrypoint": f"echo {i}", "entrypoint_num_cpus": 1}
            (await client.post("/api/jobs/", json=body)).raise_for_status()
            while (await client.get(f"/api/jobs/{sid}")).json()["status"] not in (
                "SUCCEEDED",
                "FAILED",
                "STOPPED",
            ):
                await trio.sleep(0.25)
            (await client.get(f"/api/jobs/{sid}/logs")).raise_for_status()

    async def main() -> float:
        limiter = trio.CapacityLimiter(CONCURRENCY)
        async with httpx.AsyncClient(base_url=address, timeout=30) as client:
            began = trio.current_time()
            async with trio.open_nursery() as nursery:
                for i in range(POINTS):
                    nursery.start_soon(one, client, limiter, i)
            return trio.current_time() - began

    return trio.run(main)


def main() -> None:
    from ray_head import ray_head

    with ray_head(num_cpus=CONCURRENCY) as head:
        address = head.address
        ours(address, 1)  # warm-up: the first jobs of a fresh head start its worker pool
        base_t, ours_t, packed_t = [], [], []
        for _ in range(REPEAT):
            base_t.append(baseline(address))
            ours_t.append(ours(address, 1))
            packed_t.append(ours(address, PER_JOB))
        b, o, p = (statistics.median(t) for t in (base_t, ours_t, packed_t))
        report(
            f"Ray: {POINTS} one-point echo jobs, ours vs hand-written httpx loop (jobs/s)",
            b / o,
            0.9,
            f"ours {POINTS / o:.2f} jobs/s, baseline {POINTS / b:.2f} jobs/s, -j {CONCURRENCY}",
        )
        report(
            f"Ray: --per-job {PER_JOB} vs one point per job (points/s)",
            o / p,
            10,
            f"packed {POINTS / p:.2f} points/s, one-point {POINTS / o:.2f} points/s",
        )


if __name__ == "__main__":
    main()
