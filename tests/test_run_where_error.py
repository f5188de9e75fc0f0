"""A job source that fails mid-run (e.g. a ``--where`` that divides by zero at one point).

The law: launching stops, the jobs already started finish and are recorded (their output
printed), and then the error comes out as it is, not as a traceback or an ExceptionGroup.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing
from test_cli_run import records, run

from runner import Attempt, Job, JobLog, Outcome, Runner


class SlowBackend:
    """Job i succeeds after 1 + i s of virtual time: several are running when the source fails."""

    name = "slow"
    jobs_per_slot = 1

    def kill(self) -> None:
        """Nothing to kill: these jobs only sleep."""

    async def __aenter__(self) -> SlowBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def run(self, attempt: Attempt) -> Outcome:
        await trio.sleep(1 + attempt.job.index)
        return Outcome("succeeded", 0)


def failing_at(n: int) -> Iterator[Job]:
    for i in range(n):
        yield Job(i, ("work",), "work", {}, {"i": i})
    raise ValueError(f"no job {n}")


def test_the_sources_error_comes_after_the_started_jobs_end(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    ended: list[float] = []

    async def main() -> None:
        with JobLog.create(log, {}) as joblog:
            runner = Runner(SlowBackend(), 3, joblog=joblog)
            with pytest.raises(ValueError, match=r"^no job 5$"):
                await runner.run(failing_at(5))
            ended.append(trio.current_time())
            summary = runner.summary()
            assert (summary.succeeded, summary.stopped, summary.ok) == (5, "error", False)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert ended == [pytest.approx(1 + 4 + 2)]  # job 4 started at t=2 (job 1's slot), ran 5 s
    lines = log.read_text().splitlines()[1:]
    assert sorted(json.loads(line)["index"] for line in lines) == list(range(5))


def test_a_where_failing_mid_run_keeps_the_finished_jobs(tmp_path: Path) -> None:
    result = run(
        "-r", "X=range:10", "--where", "1/(X-5) < 0", "-j", "3", "--joblog", "log",
        "--exec", "echo $X", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    # Jobs 0-2 start before anything fails; 3 and 4 are pulled as slots free up, and once
    # all three ended they are pulled back to back with point 5, whose failure stops the
    # run: a job not started by then is given up (never run, no record), as every job not
    # started when a run stops.
    ran = sorted(int(x) for x in result.stdout.split())
    assert ran in ([0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3, 4])
    assert sorted(r["index"] for r in records(tmp_path / "log")) == ran
    assert result.stderr.startswith(f"rangeexpr: {len(ran)} succeeded, 0 failed, 0 skipped in ")
    assert result.stderr.endswith(
        "rangeexpr: error: filter failed at point 5 (X=5): division by zero in 1 / 0\n"
        "    1/(X-5) < 0\n"
        "     ^\n"
    )


def test_the_issue_repro_is_a_clean_error(tmp_path: Path) -> None:
    result = run(
        "-r", "X=range:10", "--where", "1/(X-5) > 0", "--exec", "echo $X", cwd=tmp_path
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.endswith(
        "rangeexpr: error: filter failed at point 5 (X=5): division by zero in 1 / 0\n"
        "    1/(X-5) > 0\n"
        "     ^\n"
    )
