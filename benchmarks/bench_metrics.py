"""Capturing metrics (issue 14): its cost per job, and scanning a big output.

1. ``true`` jobs at -j 8 with two ``--metric`` (so every job's output is scanned and its
   metrics file looked for) vs ``xargs -P8 -n1 true``, start-up cancelled out as in
   ``bench_runner.py``: target 0.8x; and vs the same run without ``--metric``: 0.9x.
2. The metrics of a 256 MiB output whose metric is on its first line (the worst case: the
   scan, from the end, reads it all) vs ``grep -a -E 'acc[:=]' | tail -n 1``, the shell's
   way to the same answer. grep searches with SIMD; the scan runs ``bytes.rfind`` (2 to 7
   GB/s here): target 0.2x, i.e. a gigabyte of output costs well under a second.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import trio
from _common import interleaved, report
from bench_runner import BIG, SMALL, _per_job, _sh

from runner import Metric, Metrics


def bench_true_jobs(cwd: str) -> None:
    def ours(n: int, metrics: str = "--metric acc --metric 'loss=L (\\S+)'") -> None:
        _sh(
            f"{sys.executable} -m rangeexpr run --no-progress -j 8 -r X=range:{n} "
            f"{metrics} --exec 'true $X'",
            cwd,
        )

    def xargs(n: int) -> None:
        _sh(f"seq {n} | xargs -P8 -n1 true", cwd)

    per_ours, per_base = _per_job((SMALL, BIG), (SMALL, BIG), ours, xargs)
    report(
        "true jobs -j8 with --metric vs xargs -P8 (per job, start-up cancelled)",
        per_base / per_ours,
        0.8,
        f"ours {1e3 * per_ours:.2f} ms/job, xargs {1e3 * per_base:.2f} ms/job",
    )
    per_with, per_without = _per_job(
        (SMALL, BIG), (SMALL, BIG), ours, lambda n: ours(n, metrics="")
    )
    report(
        "true jobs -j8 with --metric vs without (per job, start-up cancelled)",
        per_without / per_with,
        0.9,
        f"with {1e3 * per_with:.2f} ms/job, without {1e3 * per_without:.2f} ms/job",
    )


def bench_big_output(cwd: str) -> None:
    path = Path(cwd) / "big.out"
    line = b"step 123456 of a long training run, nothing to see here ..........\n"
    with path.open("wb") as f:
        f.write(b"acc: 0.93\n")
        block = line * ((1 << 20) // len(line))
        for _ in range(256):
            f.write(block)
    metrics = Metrics([Metric.parse("acc")])

    def ours() -> None:
        assert trio.run(metrics.read, path, None) == {"acc": 0.93}

    def grep() -> None:
        out = subprocess.run(
            f"grep -a -E 'acc[:=]' {path} | tail -n 1", shell=True, check=True,
            capture_output=True,
        ).stdout  # fmt: skip
        assert out == b"acc: 0.93\n"

    t_ours, t_grep = interleaved(ours, grep, 5)
    size = path.stat().st_size / 2**20
    report(
        "metrics of a 256 MiB output, metric on line 1 (all of it read) vs grep | tail",
        t_grep / t_ours,
        0.2,
        f"ours {size / t_ours:.0f} MiB/s, grep {size / t_grep:.0f} MiB/s",
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as cwd:
        bench_true_jobs(cwd)
        bench_big_output(cwd)


if __name__ == "__main__":
    main()
