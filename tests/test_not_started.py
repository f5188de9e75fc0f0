"""Jobs handed to a backend that wait there (for the local pool's resources, in a queue):
shown as waiting, not running, and given up when the run stops, soon or now.

A given-up job never runs (checked by the files jobs leave, not by our bookkeeping), gets
no record, counts as never started, and runs on ``--resume``. The Slurm and Ray sides are
in ``test_slurm_not_started.py`` and ``test_ray_unit.py``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from test_resources_local import job

from rangeexpr._cli._progress import show_run
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
    RunStatistics,
)


def records(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()[1:]]


async def wait_until(check: Callable[[], bool], timeout: float = 20) -> None:
    with trio.fail_after(timeout):
        while not check():
            await trio.sleep(0.01)


# -- the runner and the local pool ------------------------------------------------------


def test_jobs_waiting_for_the_pool_count_as_waiting_not_running(tmp_path: Path) -> None:
    """Eight jobs in flight, two GPUs: two run, six wait; then all run to their end."""
    go = tmp_path / "go"
    wait_for_go = ("sh", "-c", f"while [ ! -e {go} ]; do sleep 0.02; done")
    seen: list[RunStatistics] = []

    async def main() -> None:
        pool = Pool(8, cpus=[0], mem=2**30, gpus=("0", "1"))
        async with LocalBackend(pool=pool) as backend:
            runner = Runner(backend, 8, results_dir=tmp_path / "out")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    runner.run, [job(i, wait_for_go, Request(gpu=1)) for i in range(8)]
                )
                await wait_until(lambda: runner.statistics().started == 8)
                await trio.sleep(0.3)  # every job has reached the pool by now
                seen.append(runner.statistics())
                go.touch()
            seen.append(runner.statistics())

    trio.run(main)
    during, after = seen
    assert (during.started, during.running, during.waiting) == (8, 2, 6)
    assert (after.succeeded, after.running, after.waiting) == (8, 0, 0)


class Gate:
    """A backend whose job ``i`` waits (reported) until ``i`` is let in, then runs until
    ``i`` is let out; ``report=False``: a backend that says nothing of it. A job still
    waiting when the run gives up never starts. Attempt 1 of an index in ``failing`` fails."""

    name = "gate"
    jobs_per_slot = 1

    def __init__(self, *, report: bool = True, failing: frozenset[int] = frozenset()):
        self.report = report
        self.failing = failing
        self.let_in: set[tuple[int, int]] = set()  # (index, attempt)
        self.let_out: set[int] = set()
        self.ran: list[tuple[int, int]] = []

    async def __aenter__(self) -> Gate:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def kill(self) -> None:
        pass

    async def run(self, attempt: Attempt) -> Outcome:
        key = (attempt.job.index, attempt.attempt)
        if self.report:
            attempt.queued()
        while key not in self.let_in:
            if attempt.give_up.is_set():
                raise NotStarted
            await trio.sleep(0.005)
        if self.report:
            attempt.started()
        self.ran.append(key)
        if attempt.attempt == 1 and attempt.job.index in self.failing:
            return Outcome("failed", 1)
        while attempt.job.index not in self.let_out:
            await trio.sleep(0.005)
        return Outcome("succeeded", 0)


def plain(n: int) -> list[Job]:
    return [job(i, ("true",)) for i in range(n)]


def test_the_runner_counts_what_the_backend_reports_and_gives_up_the_rest(
    tmp_path: Path,
) -> None:
    gate = Gate()
    seen: list[RunStatistics] = []
    log = tmp_path / "log.jsonl"

    async def main() -> None:
        with JobLog.create(log, {}) as joblog:
            runner = Runner(gate, 6, joblog=joblog)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(runner.run, plain(6))
                await wait_until(lambda: runner.statistics().started == 6)
                seen.append(runner.statistics())
                gate.let_in |= {(0, 1), (1, 1)}
                await wait_until(lambda: len(gate.ran) == 2)
                seen.append(runner.statistics())
                runner.stop("halt", now=False)  # soon: 0 and 1 run on, the rest never start
                await wait_until(lambda: runner.statistics().waiting == 0)
                seen.append(runner.statistics())
                gate.let_out |= {0, 1}
            seen.append(runner.statistics())
            assert runner.summary().succeeded == 2

    trio.run(main)
    assert [(s.started, s.running, s.waiting) for s in seen] == [
        (6, 0, 6),
        (6, 2, 4),
        (2, 2, 0),
        (2, 0, 0),
    ]
    assert sorted(gate.ran) == [(0, 1), (1, 1)]
    assert sorted(r["index"] for r in records(log)) == [0, 1]


def test_a_backend_that_reports_nothing_has_every_job_in_flight_running() -> None:
    gate = Gate(report=False)
    seen: list[RunStatistics] = []

    async def main() -> None:
        runner = Runner(gate, 4)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runner.run, plain(4))
            await wait_until(lambda: runner.statistics().started == 4)
            seen.append(runner.statistics())
            gate.let_in |= {(i, 1) for i in range(4)}
            gate.let_out |= set(range(4))

    trio.run(main)
    assert (seen[0].running, seen[0].waiting) == (4, 0)


def test_a_retry_given_up_leaves_the_job_as_its_last_attempt_ended(tmp_path: Path) -> None:
    """Attempt 1 fails, its retry waits, the run stops soon: one record, the job failed."""
    gate = Gate(failing=frozenset({0}))
    gate.let_in.add((0, 1))
    log = tmp_path / "log.jsonl"

    async def main() -> tuple[int, int]:
        with JobLog.create(log, {}) as joblog:
            runner = Runner(gate, 1, retries=1, joblog=joblog)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(runner.run, plain(1))
                await wait_until(lambda: runner.statistics().waiting == 1 and bool(gate.ran))
                runner.stop("interrupted", now=False)
            return runner.summary().failed, runner.statistics().started

    assert trio.run(main) == (1, 1)
    assert gate.ran == [(0, 1)]
    assert [(r["attempt"], r["status"]) for r in records(log)] == [(1, "failed")]


# -- the command line --------------------------------------------------------------------


def rangeexpr(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rangeexpr", "run", "--no-progress", *args],
        capture_output=True, text=True, cwd=cwd, timeout=120, check=False,
    )  # fmt: skip


def test_halt_soon_gives_up_the_jobs_waiting_for_the_pool_and_resume_runs_them(
    tmp_path: Path,
) -> None:
    """One GPU, -j4: one job runs, three wait in the pool. It fails; --halt soon stops, and
    the three waiting never run, not even the one the freed GPU goes to while the runner
    copies the failed job's output. Whichever job the pool starts first is the one that ran."""
    (tmp_path / "failing").touch()
    script = "touch ran.$X; echo X=$X; sleep 0.5; test ! -e failing"
    sweep = ("-r", "X=range:6", "--gpus", "0", "-r", "gpu=1", "-j", "4", "--shell")
    first = rangeexpr(
        tmp_path, *sweep, "--halt", "soon,fail=1", "--exec", script, "--joblog", "log.jsonl"
    )
    assert first.returncode == 1, first.stderr
    ran = sorted(p.name for p in tmp_path.glob("ran.*"))
    assert len(ran) == 1, ran  # the waiting ones never started
    found = records(tmp_path / "log.jsonl")
    assert [(f"ran.{r['index']}", r["status"]) for r in found] == [(ran[0], "failed")]
    assert "rangeexpr: 0 succeeded, 1 failed, 0 skipped" in first.stderr
    assert "stopped early by --halt soon,fail=1: 5 points never started" in first.stderr

    (tmp_path / "failing").unlink()
    for path in tmp_path.glob("ran.*"):
        path.unlink()
    again = rangeexpr(tmp_path, *sweep, "--exec", script, "--joblog", "log.jsonl", "--resume")
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in tmp_path.glob("ran.*")) == [f"ran.{i}" for i in range(6)]
    done = {r["index"] for r in records(tmp_path / "log.jsonl") if r["status"] == "succeeded"}
    assert done == set(range(6))


def test_an_interrupt_kills_the_running_job_and_gives_up_the_waiting_ones(
    tmp_path: Path,
) -> None:
    """Ctrl-C (a stop now): the running job is killed and recorded; the three waiting for
    the GPU never ran, so they have no record, and the summary counts them as not started."""
    args = ["-r", "X=range:6", "--gpus", "0", "-r", "gpu=1", "-j", "4", "--shell"]
    argv = [sys.executable, "-m", "rangeexpr", "run", "--no-progress", *args]
    script = "touch ran.$X; exec sleep 60"
    proc = subprocess.Popen(
        [*argv, "--exec", script, "--joblog", "log.jsonl"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob("ran.*")):
            assert time.monotonic() < deadline, "no job started"
            time.sleep(0.05)
        time.sleep(0.3)  # the others reach the pool
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    [ran] = [int(p.name.split(".")[1]) for p in tmp_path.glob("ran.*")]
    assert [(r["index"], r["status"]) for r in records(tmp_path / "log.jsonl")] == [(ran, "killed")]
    assert "rangeexpr: interrupted by SIGINT: 5 points never started" in err


# -- the progress bar --------------------------------------------------------------------


class Snapshot:
    def __init__(self, stats: RunStatistics):
        self.stats = stats

    def statistics(self) -> RunStatistics:
        return self.stats


@pytest.mark.parametrize(
    ("waiting", "shown"),
    [(6, "1 failed, 2 running, 6 waiting"), (0, "1 failed, 2 running ")],
)
def test_the_progress_bar_shows_waiting_jobs_only_when_there_are_some(
    capsys: pytest.CaptureFixture[str], waiting: int, shown: str
) -> None:
    runner: Any = Snapshot(RunStatistics(8, 2, 0, 1, 0, 0, waiting))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(show_run, runner, 10, lambda: 0)
            await trio.sleep(0.05)
            nursery.cancel_scope.cancel()

    trio.run(main)
    line = capsys.readouterr().err
    assert shown in line
    assert ("waiting" in line) == bool(waiting)
