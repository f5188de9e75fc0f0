"""The end-of-run report on stderr: counts, elapsed time, why it stopped, the slowest jobs."""

from __future__ import annotations

import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner import Halt, Summary

__all__ = ["print_summary"]


def print_summary(summary: Summary, skipped: int, halt: Halt, interrupted: list[int]) -> None:
    """Write the report; ``halt`` is the ``--halt`` policy, shown when it stopped the run."""
    parts = [f"{summary.succeeded} succeeded", f"{summary.failed} failed"]
    if summary.killed:
        parts.append(f"{summary.killed} killed")
    if summary.lost:
        parts.append(f"{summary.lost} lost")
    parts.append(f"{skipped} skipped")
    lines = [f"rangeexpr: {', '.join(parts)} in {summary.elapsed:.2f}s"]
    if interrupted:
        lines.append(f"rangeexpr: interrupted by {signal.Signals(interrupted[0]).name}")
    elif summary.stopped == "halt":
        lines.append(f"rangeexpr: stopped early by --halt {halt}")
    if summary.message is not None:  # a lost job, or one of our files that failed
        lines.append(f"rangeexpr: stopped: {summary.message}")
    if summary.slowest:
        lines.append("rangeexpr: slowest jobs:")
        for job in summary.slowest:
            text = job.command if len(job.command) <= 70 else job.command[:67] + "..."
            lines.append(f"    #{job.index:<6} {job.duration:8.2f}s  {text}")
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()
