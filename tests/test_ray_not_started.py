"""The Ray backend: jobs PENDING on the head show as waiting, and a stop soon gives them up.

Against ``test_ray_unit.py``'s fake head, on trio's mock clock: each fake job advances one
status per poll along its script, and a stop of a PENDING one makes it STOPPED with no
exit code, as Ray does for a job whose entrypoint never ran. The clock jumps while a worker
thread writes an attempt's output, so how much virtual time passes varies: the tests check
what happened, not when.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from test_ray_unit import FakeJob, FakeRay, backend, make_job, ray_spec

from rangeexpr._batch import NodeBatching
from runner import JobLog, Runner, RunStatistics, parse_halt


def plan(request: dict[str, Any]) -> FakeJob:
    """``fail`` runs and fails, ``long`` runs and then succeeds, ``wait`` stays PENDING."""
    command = request["entrypoint"]
    if command == "fail":
        return FakeJob(request, ["RUNNING"] * 3 + ["FAILED"], exit_code=1)
    if command == "long":
        return FakeJob(request, ["RUNNING"] * 12 + ["SUCCEEDED"])
    return FakeJob(request, ["PENDING"])


def stop_calls(fake: FakeRay) -> set[str]:
    return {path.split("/")[3] for method, path in fake.calls if path.endswith("/stop")}


@pytest.mark.timeout(120)  # a job left PENDING would be polled forever
def test_halt_soon_stops_the_pending_jobs_and_lets_the_running_one_finish(
    tmp_path: Path,
) -> None:
    fake = FakeRay(plan)
    log = tmp_path / "log.jsonl"
    seen: list[RunStatistics] = []
    commands = ["fail", "long", "wait", "wait", "wait"]

    async def main() -> tuple[int, int]:
        async with backend(fake) as b:
            with JobLog.create(log, {}) as joblog:
                runner = Runner(b, 5, halt=parse_halt("soon,fail=1"), joblog=joblog)
                async with trio.open_nursery() as nursery:

                    async def watch() -> None:
                        while True:
                            seen.append(runner.statistics())
                            await trio.sleep(0.05)

                    nursery.start_soon(watch)
                    jobs = (make_job(i, command) for i, command in enumerate(commands))
                    summary = await runner.run(jobs)
                    nursery.cancel_scope.cancel()
                seen.append(runner.statistics())
        return summary.failed, summary.succeeded

    assert trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0)) == (1, 1)
    assert (2, 3) in {(s.running, s.waiting) for s in seen}  # two run, three are PENDING
    assert (seen[-1].started, seen[-1].running, seen[-1].waiting) == (2, 0, 0)
    records = [json.loads(line) for line in log.read_text().splitlines()[1:]]
    assert sorted((r["index"], r["status"]) for r in records) == [(0, "failed"), (1, "succeeded")]
    # The PENDING ones were stopped before they ran, then deleted (a resume submits them
    # afresh); the running one was left to finish.
    assert stop_calls(fake) == {f"rangeexpr-s1-{i}-1" for i in (2, 3, 4)}
    assert fake.jobs == {}


@pytest.mark.timeout(120)
def test_a_packed_job_still_pending_is_given_up_for_all_its_points(tmp_path: Path) -> None:
    """--per-job 2: points 0 and 1 run as one Ray job that fails, 2 and 3 wait in another;
    the halt gives the second up, and neither of its points gets a record."""

    def packed(request: dict[str, Any]) -> FakeJob:
        if "--slice 0:2" in request["entrypoint"]:
            return FakeJob(request, ["RUNNING", "FAILED"], exit_code=1)
        return FakeJob(request, ["PENDING"])

    fake = FakeRay(packed)
    log = tmp_path / "log.jsonl"

    async def main() -> int:
        async with backend(fake, batching=NodeBatching(ray_spec(), 2, 0, 4)) as b:
            with JobLog.create(log, {}) as joblog:
                runner = Runner(
                    b, 2, halt=parse_halt("soon,fail=1"), joblog=joblog, results_dir=tmp_path
                )
                await runner.run(make_job(i, f"echo {i}") for i in range(4))
                return runner.statistics().started

    assert trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0)) == 2
    records = [json.loads(line) for line in log.read_text().splitlines()[1:]]
    assert sorted(r["index"] for r in records) == [0, 1]
    assert stop_calls(fake) == {"rangeexpr-s1-2to4-1"}
