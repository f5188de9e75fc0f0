"""The end-of-run report on stderr: what went wrong first, then the rest.

After the one-line count: the jobs that did not succeed (index, values, how they ended,
the last line of their stderr), the points ``--halt`` or an interrupt left unstarted
(never run, also those that were waiting for resources or in a cluster's queue: they have
no record, and ``--resume`` runs them), why the run stopped, how many jobs reported each
metric, and the slowest jobs, only when some stand out from the rest (a handful of
near-identical jobs say nothing).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .._points import Point
from .._text import format_value, int_text

if TYPE_CHECKING:
    from runner import FailedJob, Halt, Job, Summary

    from .._points import BaseSweep

__all__ = ["job_tag", "print_summary", "values_text"]

SHOW_FAILED = 10  # failed jobs listed; the job log has the rest
SLOW_AMONG = 10  # the slowest jobs are listed only among this many attempts or more
SLOW_RATIO = 2.0  # ... and only those this many times slower than the median
SLOW_MARGIN = 1.0  # ... and at least this many seconds slower


def print_summary(
    summary: Summary,
    skipped: int,
    halt: Halt,
    interrupted: list[int],
    *,
    metrics: Sequence[str] = (),
    sweep: BaseSweep | None = None,
    started: int = 0,
    resumed: bool = False,
) -> None:
    """Write the report; ``halt`` is the ``--halt`` policy, shown when it stopped the run.

    ``metrics``: the names asked for (each gets a count, 0 included); ``sweep``,
    ``started`` and ``resumed`` say how many points a halt or an interrupt left unstarted.
    """
    parts = [f"{summary.succeeded} succeeded", f"{summary.failed} failed"]
    if summary.killed:
        parts.append(f"{summary.killed} killed")
    if summary.lost:
        parts.append(f"{summary.lost} lost")
    parts.append(f"{skipped} skipped")
    lines = [f"rangeexpr: {', '.join(parts)} in {summary.elapsed:.2f}s"]
    lines += _failures(summary)
    unstarted = _unstarted(sweep, started, skipped, resumed)
    if interrupted:
        name = signal.Signals(interrupted[0]).name
        lines.append(f"rangeexpr: interrupted by {name}{unstarted}")
    elif summary.stopped == "halt":
        lines.append(f"rangeexpr: stopped early by --halt {halt}{unstarted}")
    if summary.message is not None:  # a lost job, or one of our files that failed
        lines.append(f"rangeexpr: stopped: {summary.message}")
    lines += _metrics(summary, metrics)
    lines += _slowest(summary)
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()


def values_text(values: Mapping[str, object]) -> str:
    """``NAME=VALUE ...`` as a template writes the values (a case value as written)."""
    if isinstance(values, Point):
        return " ".join(f"{name}={values.text(name)}" for name in values)
    return " ".join(f"{name}={_value(value)}" for name, value in values.items())


def job_tag(job: Job) -> str:
    """What ``--tag`` puts before each line of a job's output (the runner adds a tab)."""
    text = values_text(job.values)
    return f"#{int_text(job.index)} {text}" if text else f"#{int_text(job.index)}"


def _value(value: object) -> str:
    return format_value(value) if isinstance(value, int | float | str) else str(value)


def _failures(summary: Summary) -> list[str]:
    """The jobs that did not succeed, in the order they ended, the first SHOW_FAILED."""
    total = summary.failed + summary.killed + summary.lost
    if not total:
        return []
    shown = summary.failures[:SHOW_FAILED]
    lines = ["rangeexpr: jobs that did not succeed:"]
    for job in shown:
        values = _cut(values_text(job.values), 60)
        line = f"    #{int_text(job.index):<6} {_ending(job):<16} {values}"
        why = job.stderr or job.message
        if why:
            line += f"  | {_cut(why, 100)}"
        lines.append(line)
    if total > len(shown):
        lines.append(f"    ... and {total - len(shown)} more (the job log has every one)")
    return lines


def _ending(job: FailedJob) -> str:
    """How a job ended, in a few words: ``exit 3``, ``timed out``, ``killed (SIGTERM)``."""
    if job.status == "failed":
        if job.exit_code is not None:
            return f"exit {job.exit_code}"
        return f"signal {_signal(job.signal)}" if job.signal is not None else "failed"
    what = {"timed_out": "timed out", "killed": "killed", "lost": "lost"}[job.status]
    return f"{what} ({_signal(job.signal)})" if job.signal is not None else what


def _signal(number: int | None) -> str:
    try:
        return signal.Signals(number or 0).name
    except ValueError:
        return str(number)


def _unstarted(sweep: BaseSweep | None, started: int, skipped: int, resumed: bool) -> str:
    """``: N points never started``; "at most" when the count cannot be exact."""
    if sweep is None:
        return ""
    exact = not sweep.is_filtered and not resumed  # resumed: some left may be done already
    total = sweep.size if not sweep.is_filtered else sweep.max_size
    left = max(0, total - started - skipped)
    if left == 0:
        return ""
    noun = "point" if left == 1 else "points"
    return f": {'' if exact else 'at most '}{int_text(left)} {noun} never started"


def _metrics(summary: Summary, asked: Sequence[str]) -> list[str]:
    """How many jobs reported each metric: the ones asked for, then the file's others."""
    reported = dict(summary.metrics)
    names = [*asked, *(name for name in reported if name not in asked)]
    if not names:
        return []
    jobs = summary.succeeded + summary.failed + summary.killed + summary.lost
    counts = ", ".join(f"{name} {reported.get(name, 0)}" for name in names)
    lines = [f"rangeexpr: jobs reporting each metric (of {jobs}): {counts}"]
    for name in asked:
        if jobs and not reported.get(name):
            lines.append(
                f"rangeexpr: no job reported {name}: they print lines like '{name}: 0.95', "
                f"or give its format with --metric '{name}=REGEX'"
            )
    return lines


def _slowest(summary: Summary) -> list[str]:
    """The slowest attempts, only those well above the median of enough attempts."""
    median = summary.median
    if median is None or summary.attempts < SLOW_AMONG:
        return []
    slow = [
        job
        for job in summary.slowest
        if job.duration >= SLOW_RATIO * median and job.duration >= median + SLOW_MARGIN
    ]
    if not slow:
        return []
    lines = [f"rangeexpr: slowest jobs (the median took {median:.2f}s):"]
    for job in slow:
        lines.append(f"    #{int_text(job.index):<6} {job.duration:8.2f}s  {_cut(job.command, 70)}")
    return lines


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())  # one line: no newlines or tabs from a value
    return text if len(text) <= width else text[: width - 3] + "..."
