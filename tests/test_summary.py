"""The end-of-run summary leads with what went wrong (issue 14): the jobs that did not
succeed, with their index, values, exit code and last stderr line; the points ``--halt``
left unstarted; a slowest-jobs list only when some stand out; metrics reported."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from test_cli_run import run

from rangeexpr._cli import _summary
from runner import FailedJob, Halt, SlowJob, Summary


def summary_lines(stderr: str) -> list[str]:
    """The summary: from the count line to the end, elapsed time masked."""
    lines = stderr.splitlines()
    first = next(i for i, line in enumerate(lines) if " succeeded, " in line)
    out = lines[first:]
    out[0] = out[0].rsplit(" in ", 1)[0]
    return out


def test_failed_jobs_are_listed_with_values_exit_code_and_last_stderr_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "job.sh").write_text(
        'case "$1" in\n'
        '  0.1) echo "Traceback:" >&2; echo "ValueError: lr $1 diverged" >&2; echo >&2; exit 3;;\n'
        "  1) exit 4;;\n"
        "esac\n"
    )
    result = run(
        "-j", "1", "-r", "LR=case:0.01,0.1,1", "-r", "SEED=range:2", "--exec",
        "sh job.sh $LR $SEED", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert summary_lines(result.stderr) == [
        "rangeexpr: 2 succeeded, 4 failed, 0 skipped",
        "rangeexpr: jobs that did not succeed:",
        "    #2      exit 3           LR=0.1 SEED=0  | ValueError: lr 0.1 diverged",
        "    #3      exit 3           LR=0.1 SEED=1  | ValueError: lr 0.1 diverged",
        "    #4      exit 4           LR=1 SEED=0",
        "    #5      exit 4           LR=1 SEED=1",
    ]


def test_a_timed_out_job_says_so(tmp_path: Path) -> None:
    (tmp_path / "job.sh").write_text("echo started >&2; sleep 3\n")
    result = run(
        "-r", "X=range:2", "--timeout", "0.5", "--exec", "sh job.sh $X", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    lines = summary_lines(result.stderr)
    assert lines[1] == "rangeexpr: jobs that did not succeed:"
    assert sorted(lines[2:]) == [  # either may end first
        "    #0      timed out (SIGTERM) X=0  | started",
        "    #1      timed out (SIGTERM) X=1  | started",
    ]


def test_halt_says_how_many_points_never_started(tmp_path: Path) -> None:
    result = run(
        "-j", "1", "-r", "X=range:10", "--halt", "soon,fail=1", "--exec", "test $X -lt 2",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert summary_lines(result.stderr) == [
        "rangeexpr: 2 succeeded, 1 failed, 0 skipped",
        "rangeexpr: jobs that did not succeed:",
        "    #2      exit 1           X=2",
        "rangeexpr: stopped early by --halt soon,fail=1: 7 points never started",
    ]


def test_no_slowest_list_for_near_identical_jobs(tmp_path: Path) -> None:
    result = run("-j", "4", "-r", "X=range:12", "--exec", "sleep 0.0$X", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert summary_lines(result.stderr) == ["rangeexpr: 12 succeeded, 0 failed, 0 skipped"]


def _summary_of(**fields: object) -> Summary:
    base: dict[str, object] = {"succeeded": 20, "failed": 0, "killed": 0, "lost": 0}
    base |= {"elapsed": 3.0, "slowest": (), "stopped": None}
    return Summary(**{**base, **fields})  # type: ignore[arg-type]


def _printed(summary: Summary, **options: object) -> list[str]:
    err = io.StringIO()
    old, sys.stderr = sys.stderr, err
    try:
        _summary.print_summary(summary, 0, Halt(), [], **options)  # type: ignore[arg-type]
    finally:
        sys.stderr = old
    return err.getvalue().splitlines()[1:]


SLOW = (SlowJob(7, 9.5, "train --lr 7"), SlowJob(3, 1.9, "train --lr 3"))


@pytest.mark.parametrize(
    ("attempts", "median", "shown"),
    [
        (20, 0.5, [7, 3]),  # both well above the median
        (20, 1.0, [7]),  # 1.9 s is not twice the median
        (20, 5.0, []),  # nothing stands out
        (5, 0.5, []),  # a handful of jobs: a slowest list says nothing
    ],
)
def test_the_slowest_only_when_they_stand_out(
    attempts: int, median: float, shown: list[int]
) -> None:
    lines = _printed(_summary_of(slowest=SLOW, median=median, attempts=attempts))
    listed = [int(line.split()[0][1:]) for line in lines[1:]]
    assert listed == shown
    if shown:
        assert lines[0] == f"rangeexpr: slowest jobs (the median took {median:.2f}s):"


def test_metric_counts_and_a_hint_for_one_nobody_reported() -> None:
    summary = _summary_of(metrics=(("acc", 18), ("f1", 20)))
    assert _printed(summary, metrics=["acc", "loss"]) == [
        "rangeexpr: jobs reporting each metric (of 20): acc 18, loss 0, f1 20",
        "rangeexpr: no job reported loss: they print lines like 'loss: 0.95', "
        "or give its format with --metric 'loss=REGEX'",
    ]


def test_only_the_first_failures_are_listed() -> None:
    failures = tuple(
        FailedJob(i, {"X": i}, "killed", None, 15, "", None) for i in range(_summary.SHOW_FAILED)
    )
    lines = _printed(_summary_of(killed=25, failures=failures))
    assert lines[1] == "    #0      killed (SIGTERM) X=0"
    assert lines[-1] == f"    ... and {25 - _summary.SHOW_FAILED} more (the job log has every one)"
