"""The runner's scheduling with a scripted in-process backend, on trio's mock clock.

Every test runs in virtual time (``MockClock(autojump_threshold=0)``): a job "taking" 10 s
costs nothing, so retries, timeouts and halting are checked exactly and instantly.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from runner import (
    Attempt,
    BackendError,
    Halt,
    Job,
    JobLog,
    Outcome,
    Runner,
    Status,
    parse_halt,
    read_joblog,
    run_jobs,
)
from runner._joblog import JobLogError

# A script says, for (index, attempt number), how long the attempt runs and how it ends.
Script = Callable[[int, int], tuple[float, Status]]


class ScriptedBackend:
    """Sleeps as scripted, honours abort and timeout like a real backend, counts overlap."""

    name = "scripted"

    def __init__(self, script: Script, output: bool = False, jobs_per_slot: int = 1):
        self.script = script
        self.output = output
        self.jobs_per_slot = jobs_per_slot
        self.running = 0
        self.max_running = 0
        self.attempts: list[tuple[int, int]] = []
        self.kills = 0

    async def __aenter__(self) -> ScriptedBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def run(self, attempt: Attempt) -> Outcome:
        index = attempt.job.index
        self.attempts.append((index, attempt.attempt))
        duration, status = self.script(index, attempt.attempt)
        if self.output:
            attempt.stdout.write_text(f"out {index}.{attempt.attempt}\nsecond line\n")
            attempt.stderr.write_text(f"err {index}\n")
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            limit = attempt.timeout if attempt.timeout is not None else float("inf")
            with trio.move_on_after(min(duration, limit)):
                await attempt.abort.wait()
                return Outcome("killed", None, 15)
            if duration > limit:
                return Outcome("timed_out", None, 15)
            return Outcome(status, 0 if status == "succeeded" else 1)
        finally:
            self.running -= 1

    def kill(self) -> None:
        self.kills += 1


def job(index: int) -> Job:
    return Job(index, ("work", str(index)), f"work {index}", {}, {"i": index})


def jobs(n: int) -> Iterator[Job]:
    return (job(i) for i in range(n))


def run(fn: Callable[[], object]) -> None:
    trio.run(fn, clock=trio.testing.MockClock(autojump_threshold=0))  # type: ignore[arg-type]


def test_never_more_than_the_limit_and_everything_runs() -> None:
    backend = ScriptedBackend(lambda i, a: (1 + i % 3, "succeeded"))

    async def main() -> None:
        summary = await run_jobs(jobs(50), backend, 4)
        assert (summary.succeeded, summary.failed, summary.stopped) == (50, 0, None)
        assert summary.ok

    run(main)
    assert backend.max_running == 4
    assert sorted(i for i, _ in backend.attempts) == list(range(50))


def test_a_shared_limiter_caps_two_runs_together() -> None:
    backend = ScriptedBackend(lambda i, a: (1, "succeeded"))

    async def main() -> None:
        limiter = trio.CapacityLimiter(3)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_jobs, jobs(10), backend, limiter)
            nursery.start_soon(run_jobs, jobs(10), backend, limiter)

    run(main)
    assert backend.max_running == 3


def test_a_limit_counts_slots_of_jobs_per_slot_jobs() -> None:
    """A backend packing 3 jobs into one remote job gets 3 jobs per slot of the limit."""
    backend = ScriptedBackend(lambda i, a: (1, "succeeded"), jobs_per_slot=3)

    async def main() -> None:
        await run_jobs(jobs(20), backend, 2)

    run(main)
    assert backend.max_running == 6


def test_a_limiter_passed_in_is_used_as_it_is() -> None:
    backend = ScriptedBackend(lambda i, a: (1, "succeeded"), jobs_per_slot=3)

    async def main() -> None:
        await run_jobs(jobs(20), backend, trio.CapacityLimiter(2))

    run(main)
    assert backend.max_running == 2


def test_jobs_are_pulled_only_when_a_slot_is_free() -> None:
    """An endless job source is safe: at most `limit` jobs pulled ahead of the finished."""
    pulled = 0
    ahead = 0
    backend = ScriptedBackend(lambda i, a: (1, "succeeded"))

    async def main() -> None:
        runner = Runner(backend, 5)

        def endless() -> Iterator[Job]:
            nonlocal pulled, ahead
            for i in itertools.count():
                finished = runner.statistics().finished
                ahead = max(ahead, pulled - finished)
                if finished >= 100:
                    runner.stop("halt", now=False)
                pulled += 1
                yield job(i)

        summary = await runner.run(endless())
        assert summary.stopped == "halt"

    run(main)
    assert ahead <= 5
    assert pulled <= 100 + 5


def test_retries_rerun_only_failures_and_stop_at_the_first_success() -> None:
    # job 0 fails twice then succeeds; job 1 always fails; job 2 succeeds; job 3 times out.
    def script(i: int, attempt: int) -> tuple[float, Status]:
        if i == 0:
            return 1, "succeeded" if attempt == 3 else "failed"
        if i == 3:
            return 100, "succeeded"
        return 1, "failed" if i == 1 else "succeeded"

    backend = ScriptedBackend(script)

    async def main() -> None:
        summary = await run_jobs(jobs(4), backend, 2, retries=2, timeout=10)
        assert (summary.succeeded, summary.failed) == (2, 2)

    run(main)
    tries = {i: max(a for j, a in backend.attempts if j == i) for i in range(4)}
    assert tries == {0: 3, 1: 3, 2: 1, 3: 3}


def test_timeout_reaches_the_backend_and_is_recorded(tmp_path: Path) -> None:
    backend = ScriptedBackend(lambda i, a: (5 if i == 1 else 1, "succeeded"))
    log = tmp_path / "log.jsonl"

    async def main() -> None:
        joblog = JobLog.create(log, {"source": "t"})
        summary = await run_jobs(jobs(3), backend, 3, timeout=2.5, joblog=joblog)
        joblog.close()
        assert (summary.succeeded, summary.failed) == (2, 1)

    run(main)
    records = [json.loads(line) for line in log.read_text().splitlines()[1:]]
    by_index = {r["index"]: r for r in records}
    assert by_index[1]["status"] == "timed_out"
    assert by_index[1]["duration"] == pytest.approx(2.5)
    assert by_index[0]["status"] == "succeeded"


def test_halt_soon_stops_launching_and_lets_running_jobs_finish() -> None:
    # jobs 0-3 start at t=0; 1 fails at t=1 (job 4 takes its slot), 2 fails at t=2: halt.
    def script(i: int, attempt: int) -> tuple[float, Status]:
        return (i, "failed") if i in (1, 2) else (5, "succeeded")

    backend = ScriptedBackend(script)

    async def main() -> None:
        summary = await run_jobs(jobs(100), backend, 4, halt=parse_halt("soon,fail=2"))
        assert summary.stopped == "halt"
        assert (summary.succeeded, summary.failed, summary.killed) == (3, 2, 0)
        assert trio.current_time() == pytest.approx(6)  # job 4 ran to its end

    run(main)
    assert sorted(i for i, _ in backend.attempts) == [0, 1, 2, 3, 4]


def test_halt_now_kills_the_running_jobs() -> None:
    backend = ScriptedBackend(lambda i, a: (1, "failed") if i == 2 else (5, "succeeded"))

    async def main() -> None:
        summary = await run_jobs(jobs(100), backend, 4, halt=parse_halt("now,fail=1"))
        assert summary.stopped == "halt"
        assert (summary.succeeded, summary.failed, summary.killed) == (0, 1, 3)
        assert trio.current_time() == pytest.approx(1)

    run(main)


def test_halt_percentage_counts_finished_jobs() -> None:
    # one job at a time; every 4th fails: 25% after job 3 (1 of 4) -> halt at 25%.
    backend = ScriptedBackend(lambda i, a: (1, "failed") if i % 4 == 3 else (1, "succeeded"))

    async def main() -> None:
        summary = await run_jobs(jobs(100), backend, 1, halt=parse_halt("soon,fail=25%"))
        assert (summary.succeeded, summary.failed, summary.stopped) == (3, 1, "halt")

    run(main)


def test_a_lost_job_stops_the_run_with_its_message() -> None:
    class LosingBackend(ScriptedBackend):
        async def run(self, attempt: Attempt) -> Outcome:
            if attempt.job.index == 5:
                self.attempts.append((5, attempt.attempt))
                await trio.sleep(1)
                return Outcome("lost", None, message="the Ray head went away")
            return await super().run(attempt)

    backend = LosingBackend(lambda i, a: (3, "succeeded"))

    async def main() -> None:
        summary = await run_jobs(jobs(100), backend, 8)
        assert summary.stopped == "lost"
        assert summary.lost == 1
        assert summary.message == "job 5 was lost: the Ray head went away"
        assert not summary.ok

    run(main)
    assert len(backend.attempts) == 8  # no job launched after the loss


def test_stop_now_kills_running_jobs_and_each_gets_a_record(tmp_path: Path) -> None:
    backend = ScriptedBackend(lambda i, a: (100, "succeeded"))
    log = tmp_path / "log.jsonl"

    async def main() -> None:
        joblog = JobLog.create(log, {})
        runner = Runner(backend, 3, joblog=joblog)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runner.run, jobs(10))
            await trio.sleep(7)
            runner.stop("interrupted")
        joblog.close()
        stats = runner.statistics()
        assert (stats.killed, stats.running, stats.started) == (3, 0, 3)

    run(main)
    statuses = [json.loads(line)["status"] for line in log.read_text().splitlines()[1:]]
    assert statuses == ["killed"] * 3


def test_kill_stops_now_and_tells_the_backend(tmp_path: Path) -> None:
    backend = ScriptedBackend(lambda i, a: (100, "succeeded"))
    log = tmp_path / "log.jsonl"

    async def main() -> None:
        joblog = JobLog.create(log, {})
        runner = Runner(backend, 2, joblog=joblog)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runner.run, jobs(10))
            await trio.sleep(7)
            runner.kill()
        joblog.close()
        assert runner.summary().stopped == "interrupted"

    run(main)
    assert backend.kills == 1
    statuses = [json.loads(line)["status"] for line in log.read_text().splitlines()[1:]]
    assert statuses == ["killed"] * 2


def test_output_is_copied_as_one_block_per_job(capfd: pytest.CaptureFixture[str]) -> None:
    backend = ScriptedBackend(lambda i, a: (3 - i, "succeeded"), output=True)

    async def main() -> None:
        await run_jobs(jobs(3), backend, 3)

    run(main)
    out, err = capfd.readouterr()
    # jobs end in reverse order; each block stays whole.
    assert out == "".join(f"out {i}.1\nsecond line\n" for i in (2, 1, 0))
    assert err == "err 2\nerr 1\nerr 0\n"


def test_a_job_that_writes_nothing_shows_no_earlier_jobs_output(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Scratch files are reused; one left behind is empty, so nothing stale is copied."""

    class EvenOnly(ScriptedBackend):
        async def run(self, attempt: Attempt) -> Outcome:
            if attempt.job.index % 2 == 0:
                attempt.stdout.write_text(f"out {attempt.job.index}\n")
            return Outcome("succeeded", 0)

    async def main() -> None:
        await run_jobs(jobs(5), EvenOnly(lambda i, a: (0, "succeeded")), 1)

    run(main)
    assert capfd.readouterr().out == "out 0\nout 2\nout 4\n"


def test_the_output_sizes_a_backend_reports_spare_the_lookup(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Outcome.output`` (0, 0): nothing is looked up or copied; (n, 0): stdout only; None:
    each file is looked at, as a backend that does not say needs."""
    import runner._output

    looked: list[str] = []
    real_stat = runner._output.os.stat

    def counting_stat(path: object, *args: object, **kwargs: object) -> object:
        looked.append(Path(str(path)).suffix)
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    class Sized(ScriptedBackend):
        async def run(self, attempt: Attempt) -> Outcome:
            i = attempt.job.index
            if i == 1:
                attempt.stdout.write_text("one\n")
            if i == 2:
                attempt.stdout.write_text("two\n")
                return Outcome("succeeded", 0)
            return Outcome("succeeded", 0, output=(4 if i == 1 else 0, 0))

    monkeypatch.setattr(runner._output.os, "stat", counting_stat)

    async def main() -> None:
        await run_jobs(jobs(3), Sized(lambda i, a: (0, "succeeded")), 1)

    run(main)
    assert capfd.readouterr().out == "one\ntwo\n"
    assert sorted(looked) == [".err", ".out"]  # job 2's two files; none of 0's and 1's


def test_results_dir_keeps_the_files_by_index(tmp_path: Path) -> None:
    backend = ScriptedBackend(lambda i, a: (1, "succeeded"), output=True)

    async def main() -> None:
        await run_jobs(jobs(3), backend, 2, results_dir=tmp_path / "res")

    run(main)
    names = sorted(p.name for p in (tmp_path / "res").iterdir())
    assert names == ["0.err", "0.out", "1.err", "1.out", "2.err", "2.out"]
    assert (tmp_path / "res" / "1.out").read_text() == "out 1.1\nsecond line\n"


def test_a_backend_exception_propagates() -> None:
    class Broken(ScriptedBackend):
        async def run(self, attempt: Attempt) -> Outcome:
            raise RuntimeError("backend bug")

    async def main() -> None:
        await run_jobs(jobs(3), Broken(lambda i, a: (1, "succeeded")), 2)

    with pytest.raises(BaseExceptionGroup) as info:
        run(main)
    assert info.group_contains(RuntimeError, match="backend bug")


def test_a_broken_backend_cancels_the_run_and_its_error_is_raised_as_it_is() -> None:
    """One ``except BackendError`` catches a backend's failure, at start or mid-run."""

    class Breaks(ScriptedBackend):
        async def run(self, attempt: Attempt) -> Outcome:
            if attempt.job.index == 3:
                await trio.sleep(2)
                raise BackendError("the cluster went away")
            return await super().run(attempt)

    backend = Breaks(lambda i, a: (100, "succeeded"))
    runner = Runner(backend, 4)

    async def main() -> None:
        with pytest.raises(BackendError, match=r"^the cluster went away$"):
            await runner.run(jobs(10))

    run(main)
    assert backend.attempts == [(0, 1), (1, 1), (2, 1)]  # none launched after, all cancelled
    assert (runner.summary().stopped, runner.statistics().running) == ("error", 0)


def test_statistics_and_repr_show_the_state() -> None:
    backend = ScriptedBackend(lambda i, a: (1, "failed" if i == 0 else "succeeded"))

    async def main() -> None:
        runner = Runner(backend, 2)
        await runner.run(jobs(3))
        assert runner.statistics().finished == 3
        assert repr(runner) == (
            "<Runner scripted running=0 succeeded=2 failed=1 killed=0 lost=0 stopped=None>"
        )
        with pytest.raises(RuntimeError, match="runs once"):
            await runner.run(jobs(1))

    run(main)


def test_slowest_jobs_are_kept_slowest_first() -> None:
    backend = ScriptedBackend(lambda i, a: (float(i % 7), "succeeded"))

    async def main() -> None:
        summary = await run_jobs(jobs(20), backend, 20)
        assert [(s.index, s.duration) for s in summary.slowest] == [
            (13, 6.0),
            (6, 6.0),
            (19, 5.0),
            (12, 5.0),
            (5, 5.0),
        ]

    run(main)


# --halt values: what GNU Parallel accepts (and its old numeric forms), and what it does not.
HALT_VALID = {
    "never": Halt(),
    "0": Halt(),
    "1": Halt("soon", 1),
    "2": Halt("now", 1),
    "now": Halt("now", 1),
    "soon": Halt("soon", 1),
    "now,fail=3": Halt("now", 3),
    "soon,fail=10%": Halt("soon", 10, percent=True),
    "soon,fail=2.5%": Halt("soon", 2.5, percent=True),
}
HALT_INVALID = [
    "later",  # not a mode
    "now,fail=0",  # zero failures would halt before anything ran
    "soon,fail=1.5",  # a count must be whole
    "soon,fail=150%",  # more than all jobs
    "now,success=1",  # only fail= is supported
    "",
]


@pytest.mark.parametrize(("text", "halt"), HALT_VALID.items())
def test_parse_halt(text: str, halt: Halt) -> None:
    assert parse_halt(text) == halt


@pytest.mark.parametrize("text", HALT_INVALID)
def test_parse_halt_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="--halt"):
        parse_halt(text)


def test_runner_rejects_bad_settings() -> None:
    backend = ScriptedBackend(lambda i, a: (1, "succeeded"))
    with pytest.raises(ValueError, match="retries"):
        Runner(backend, 1, retries=-1)
    with pytest.raises(ValueError, match="timeout"):
        Runner(backend, 1, timeout=0)


def test_joblog_round_trip_and_a_line_cut_short(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    log = JobLog.create(path, {"source": {"exprs": ["X=range:3"]}})
    log.record(job(0), 1, Outcome("succeeded", 0), 1.0, 0.5)
    log.record(job(1), 1, Outcome("failed", 2), 1.0, 0.5)
    log.record(job(1), 2, Outcome("succeeded", 0, backend_id="b1"), 2.0, 0.5)
    log.close()
    whole = path.stat().st_size
    with path.open("a") as f:
        f.write('{"index": 2, "status": "succ')  # the runner was killed mid-write
    resumed = read_joblog(path)
    assert resumed.header["source"] == {"exprs": ["X=range:3"]}
    assert resumed.succeeded == {0, 1}
    assert resumed.end == whole
    with JobLog(path) as again:
        assert again.resume(3).succeeded == {0, 1}
        again.record(job(2), 1, Outcome("succeeded", 0), 3.0, 0.5)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r.get("index") for r in lines] == [None, 0, 1, 1, 2]
    assert lines[3]["backend_id"] == "b1"
    assert set(lines[1]) >= {
        "index",
        "values",
        "command",
        "status",
        "exit_code",
        "signal",
        "start",
        "duration",
        "attempt",
        "backend_id",
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ('{"index": 0}\n', "not a rangeexpr job log"),
        ("hello\n", "not a JSON line"),
    ],
)
def test_read_joblog_rejects_other_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text(content)
    with pytest.raises(JobLogError, match=message):
        read_joblog(path)
