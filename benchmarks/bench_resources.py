"""Resources per job through ``rangeexpr run``: real processes, read back from the jobs.

1. GPU packing, real ``sleep 0.2`` jobs over ``--gpus 0,1,2,3`` (fake ids) at ``-j 8``, so
   the GPUs, not the slots, bound the run. Time is the jobs' own: from the first job's
   clock reading at its start to the last one's at its end (our start-up excluded). Ratios
   are that time over the optimum's (lower is better):

   - 40 jobs with ``gpu=1``: ideal 10 rounds = 2 s (target <= 1.15x);
   - 40 jobs of ``gpu=1`` or ``gpu=2`` (a fixed random sequence, a ``-r 'gpu=$G'``
     template) (target <= 1.3x). With one duration an optimal schedule runs in rounds and
     sizes 1 and 2 always fill 4 GPUs but in the last round, so the optimum is
     ``0.2 * ceil(GPU units / 4)``.

   Each run also checks, from the jobs' own start and end times and environment, that no
   two running jobs shared a GPU or a slot; a run that did is reported as a miss.
2. ``true`` jobs with ``-r cpu=1`` at ``-j 8`` vs ``xargs -P8 -n1 true``, per job with
   each tool's start-up cancelled out (as ``bench_runner.py``) (target >= 0.8x). On a
   machine with fewer than 8 cores, ``cpu=1`` runs only as many jobs at once as it has.
"""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import interleaved, report

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
DURATION = 0.2
GPUS = "0,1,2,3"
# bash's $EPOCHREALTIME is ``date +%s.%N`` without two forks per job (bash >= 5).
JOB = """\
start=$EPOCHREALTIME
sleep 0.2
echo "$start $EPOCHREALTIME $RANGEEXPR_SLOT $RANGEEXPR_GPUS" > "$1.span"
"""
SMALL, BIG = 100, 1300


def _rangeexpr(args: list[str], cwd: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "rangeexpr", "run", "--no-progress", *args],
        check=True, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def packing(sizes: list[int]) -> tuple[float, bool]:
    """Run one ``sleep 0.2`` job per GPU count in ``sizes``; the jobs' span and whether
    no two running jobs shared a GPU or a slot."""
    with tempfile.TemporaryDirectory() as cwd:
        Path(cwd, "job.sh").write_text(JOB)
        requests = ["-r", "gpu=1"]
        if set(sizes) != {1}:
            requests = ["-r", "gpu=$G", "-r", f"G=case:{','.join(map(str, sizes))}"]
            requests += ["--link", "N,G"]
        _rangeexpr(
            ["-j", "8", "--gpus", GPUS, *requests, "-r", f"N=range:{len(sizes)}",
             "--exec", "bash job.sh $N"],
            cwd,
        )  # fmt: skip
        spans = []
        for n in range(len(sizes)):
            start, end, slot, gpus = Path(cwd, f"{n}.span").read_text().split()
            spans.append((float(start), float(end), int(slot), tuple(gpus.split(","))))
    elapsed = max(end for _, end, _, _ in spans) - min(start for start, _, _, _ in spans)
    return elapsed, _never_shared(spans)


def _never_shared(spans: list[tuple[float, float, int, tuple[str, ...]]]) -> bool:
    for i, (start, end, slot, gpus) in enumerate(spans):
        for other_start, other_end, other_slot, other_gpus in spans[i + 1 :]:
            overlap = start < other_end and other_start < end
            if overlap and (slot == other_slot or set(gpus) & set(other_gpus)):
                return False
    return True


def _report_packing(name: str, sizes: list[int], target: float) -> None:
    optimum = DURATION * math.ceil(sum(sizes) / 4)
    elapsed, ok = packing(sizes)
    detail = f"{elapsed:.2f} s, optimum {optimum:.1f} s"
    detail += ", no GPU or slot shared" if ok else ", A GPU OR SLOT WAS SHARED"
    report(name, elapsed / optimum if ok else math.inf, target, detail, at_most=True)


def bench_cpu_requests() -> None:
    with tempfile.TemporaryDirectory() as cwd:

        def ours(n: int) -> None:
            _rangeexpr(["-j", "8", "-r", "cpu=1", "-r", f"X=range:{n}", "--exec", "true $X"], cwd)

        def xargs(n: int) -> None:
            subprocess.run(
                f"seq {n} | xargs -P8 -n1 true", shell=True, check=True, cwd=cwd,
                stdout=subprocess.DEVNULL,
            )  # fmt: skip

        big_ours, big_base = interleaved(lambda: ours(BIG), lambda: xargs(BIG), 3)
        small_ours, small_base = interleaved(lambda: ours(SMALL), lambda: xargs(SMALL), 3)
        per_ours = (big_ours - small_ours) / (BIG - SMALL)
        per_base = (big_base - small_base) / (BIG - SMALL)
    report(
        "true jobs -r cpu=1 -j8 vs xargs -P8 (per job, start-up cancelled)",
        per_base / per_ours,
        0.8,
        f"ours {1e3 * per_ours:.2f} ms/job, xargs {1e3 * per_base:.2f} ms/job, "
        f"{len(os.sched_getaffinity(0))} cores",
    )


def main() -> None:
    _report_packing("40 x sleep 0.2, gpu=1 over 4 GPUs vs ideal", [1] * 40, 1.15)
    rng = random.Random(13)
    mixed = [rng.choice((1, 2)) for _ in range(40)]
    _report_packing(
        f"40 x sleep 0.2, gpu=1|2 ({mixed.count(2)} of 2) over 4 GPUs vs optimum", mixed, 1.3
    )
    bench_cpu_requests()


if __name__ == "__main__":
    main()
