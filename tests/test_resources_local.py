"""The local backend with a pool: waiting for resources, the grant, stopping a waiting job.

Real processes, short ones. What the CLI adds (requests from ``-r``, templates) is in
``test_resources_cli.py``; the pool's own scheduling in ``test_resources.py``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import trio

from runner import (
    Attempt,
    Job,
    JobLog,
    LocalBackend,
    NotStarted,
    Outcome,
    Pool,
    Request,
    Runner,
)


def job(index: int, argv: tuple[str, ...], request: Request | None = None) -> Job:
    return Job(index, argv, " ".join(argv), {}, {"i": index}, request or Request())


def attempt(tmp_path: Path, j: Job, abort: trio.Event | None = None) -> Attempt:
    out, err = tmp_path / f"{j.index}.out", tmp_path / f"{j.index}.err"
    return Attempt(j, 1, None, out, err, trio.Event() if abort is None else abort)


def pool(slots: int = 2, gpus: tuple[str, ...] = ("0", "1")) -> Pool:
    return Pool(slots, cpus=[0], mem=2**30, gpus=gpus)


def test_a_job_gets_its_slot_and_gpus_and_the_outcome_says_so(tmp_path: Path) -> None:
    a = attempt(
        tmp_path, job(3, ("sh", "-c", "echo $RANGEEXPR_SLOT $CUDA_VISIBLE_DEVICES"), Request(gpu=2))
    )

    async def main() -> Outcome:
        async with LocalBackend(pool=pool()) as backend:
            return await backend.run(a)

    outcome = trio.run(main)
    assert a.stdout.read_text() == "0 0,1\n"
    assert outcome.status == "succeeded"
    assert outcome.extra == {
        "resources": {"request": {"gpu": 2}, "slot": 0, "cpus": [], "gpus": ["0", "1"]}
    }


def test_finish_renders_the_job_with_its_slot_once_it_has_one(tmp_path: Path) -> None:
    def finish(variables: object) -> Job:
        assert isinstance(variables, dict)
        argv = ("echo", variables["RANGEEXPR_SLOT"], variables["RANGEEXPR_GPUS"])
        return replace(plain, argv=argv, command=" ".join(argv), finish=None)

    plain = job(0, ("false",), Request(gpu=1))
    a = attempt(tmp_path, replace(plain, finish=finish))

    async def main() -> Outcome:
        async with LocalBackend(pool=pool()) as backend:
            return await backend.run(a)

    assert trio.run(main).status == "succeeded"
    assert a.stdout.read_text() == "0 0\n"


def test_an_abort_ends_the_wait_of_a_job_that_never_started(tmp_path: Path) -> None:
    """Both want the only GPU: the second waits, and an abort gives it up at once: it
    never starts (NotStarted, no outcome), while the first is killed."""
    outcomes: dict[int, Outcome | str] = {}

    async def one(backend: LocalBackend, a: Attempt) -> None:
        try:
            outcomes[a.job.index] = await backend.run(a)
        except NotStarted:
            outcomes[a.job.index] = "not started"

    async def main() -> None:
        abort = trio.Event()
        first = attempt(tmp_path, job(0, ("sleep", "30"), Request(gpu=1)), abort)
        second = attempt(tmp_path, job(1, ("touch", str(tmp_path / "ran")), Request(gpu=1)), abort)
        backend = LocalBackend(grace=0.1, pool=pool(gpus=("0",)))
        with trio.fail_after(10):
            async with backend, trio.open_nursery() as nursery:
                nursery.start_soon(one, backend, first)
                await trio.sleep(0.2)
                nursery.start_soon(one, backend, second)
                await trio.sleep(0.2)
                abort.set()

    trio.run(main)
    assert outcomes[1] == "not started"
    assert isinstance(outcomes[0], Outcome) and outcomes[0].status == "killed"
    assert not (tmp_path / "ran").exists()


def test_a_request_the_pool_can_never_grant_fails_with_the_reason(tmp_path: Path) -> None:
    a = attempt(tmp_path, job(0, ("true",), Request(gpu=3)))

    async def main() -> Outcome:
        async with LocalBackend(pool=pool()) as backend:
            return await backend.run(a)

    outcome = trio.run(main)
    assert (outcome.status, outcome.message) == (
        "failed",
        "a job asks for gpu=3, but there are 2 GPUs (0,1)",
    )
    assert "rangeexpr: a job asks for gpu=3" in a.stderr.read_text()


def test_the_job_log_counts_a_jobs_start_from_the_end_of_its_wait(tmp_path: Path) -> None:
    """Two jobs for one GPU: the second's record starts when it did, not when it queued."""
    log = tmp_path / "log.jsonl"
    jobs = [job(i, ("sleep", "0.3"), Request(gpu=1)) for i in range(2)]

    async def main() -> None:
        joblog = JobLog.create(log, {"source": {}})
        async with LocalBackend(pool=pool(gpus=("0",))) as backend:
            await Runner(backend, 2, joblog=joblog, results_dir=tmp_path / "r").run(jobs)
        joblog.close()

    trio.run(main)
    records = sorted(
        (json.loads(line) for line in log.read_text().splitlines()[1:]), key=lambda r: r["start"]
    )
    first, second = records
    # it could not start before the first ended (clock rounding aside)
    assert second["start"] >= first["start"] + first["duration"] - 0.01
    assert {r["resources"]["gpus"][0] for r in records} == {"0"}
