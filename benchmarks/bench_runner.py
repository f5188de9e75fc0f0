"""The runner against xargs, GNU Parallel, Python's own start-up, and a bare trio loop.

1. ``true`` jobs at -j 8: the per-job cost with each tool's start-up cancelled out, i.e.
   (time for BIG jobs - time for SMALL jobs) / (BIG - SMALL), ours vs ``xargs -P8 -n1`` and
   ``parallel -j8`` (installed with apt-get if missing; skipped with a message if not).
2. Cold start: ``rangeexpr run`` with one job vs ``python3 -c "import trio, lark, numpy"``.
3. An in-process no-op backend through the full runner vs a bare trio loop that takes a
   limiter token per job and starts a no-op task; and the peak RSS of 10^6 jobs of each,
   each measured in a fresh interpreter. The no-op backend reports, as the protocol lets
   every backend do (``Outcome.output``), that it left no output; a backend that does not
   say costs the runner a ``stat`` of each output file per job (~2 us each here).

``RANGEEXPR_NO_SCHED_HINT=1`` in the environment runs 1 and 2 without the local backend's
scheduler hint (``runner/_sched.py``), to see what it is worth.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import interleaved, report

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
SMALL, BIG = 100, 1300
PARALLEL_SMALL, PARALLEL_BIG = 50, 350  # GNU Parallel costs ms per job: fewer keep it short


def _sh(command: str, cwd: str) -> None:
    subprocess.run(
        command, shell=True, check=True, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _ours(n: int, cwd: str) -> None:
    _sh(
        f"{sys.executable} -m rangeexpr run --no-progress -j 8 -r X=range:{n} --exec 'true $X'", cwd
    )


def _per_job(
    ours: tuple[int, int], base: tuple[int, int], run_ours: object, run_base: object
) -> tuple[float, float]:
    """Seconds per job of ours and the baseline, start-up cancelled out (medians)."""
    assert callable(run_ours) and callable(run_base)
    big_ours, big_base = interleaved(lambda: run_ours(ours[1]), lambda: run_base(base[1]), 3)
    small_ours, small_base = interleaved(lambda: run_ours(ours[0]), lambda: run_base(base[0]), 3)
    return (
        (big_ours - small_ours) / (ours[1] - ours[0]),
        (big_base - small_base) / (base[1] - base[0]),
    )


def _have_parallel() -> bool:
    if shutil.which("parallel"):
        return True
    print("   installing GNU Parallel (apt-get install parallel) ...", flush=True)
    try:
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "parallel"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"   skipped the GNU Parallel comparison: cannot install it ({exc})")
        return False
    return shutil.which("parallel") is not None


def bench_processes(cwd: str) -> None:
    def xargs(n: int) -> None:
        _sh(f"seq {n} | xargs -P8 -n1 true", cwd)

    ours, base = _per_job((SMALL, BIG), (SMALL, BIG), lambda n: _ours(n, cwd), xargs)
    report(
        "true jobs -j8 vs xargs -P8 (per job, start-up cancelled)",
        base / ours,
        0.8,
        f"ours {1e3 * ours:.2f} ms/job, xargs {1e3 * base:.2f} ms/job",
    )
    if not _have_parallel():
        return

    def parallel(n: int) -> None:
        _sh(f"seq {n} | parallel --will-cite -j8 true", cwd)

    ours, base = _per_job(
        (SMALL, BIG), (PARALLEL_SMALL, PARALLEL_BIG), lambda n: _ours(n, cwd), parallel
    )
    report(
        "true jobs -j8 vs GNU parallel -j8 (per job, start-up cancelled)",
        base / ours,
        3,
        f"ours {1e3 * ours:.2f} ms/job, parallel {1e3 * base:.2f} ms/job",
    )


def bench_cold_start(cwd: str) -> None:
    ours, base = interleaved(
        lambda: _ours(1, cwd),
        lambda: _sh(f"{sys.executable} -c 'import trio, lark, numpy'", cwd),
        7,
    )
    report(
        "cold start: run one job vs python -c 'import trio, lark, numpy'",
        base / ours,
        1 / 1.3,
        f"ours {1e3 * ours:.0f} ms, imports alone {1e3 * base:.0f} ms",
    )


# Runs in a fresh interpreter: ``python -c _NOOP noop|bare N`` prints "seconds peak-KiB", the
# peak RSS as VmHWM: ru_maxrss carries this process's over the spawn and exec.
_NOOP = """
import sys, time
import trio
from runner import Job, Outcome, run_jobs


class NoopBackend:
    name = "noop"
    jobs_per_slot = 1
    def kill(self): pass
    async def __aenter__(self): return self
    async def __aexit__(self, *exc): return None
    async def run(self, attempt):
        await trio.lowlevel.checkpoint()
        return Outcome("succeeded", 0, output=(0, 0))  # it wrote nothing, and says so


def jobs(n):
    return (Job(i, ("true",), "true", {}, {"X": i}) for i in range(n))


async def ours(n):
    await run_jobs(jobs(n), NoopBackend(), 8)


async def bare(n):
    limiter = trio.CapacityLimiter(8)

    async def task(token):
        await trio.lowlevel.checkpoint()
        limiter.release_on_behalf_of(token)

    async with trio.open_nursery() as nursery:
        iterator = iter(jobs(n))
        while True:
            token = object()
            await limiter.acquire_on_behalf_of(token)
            job = next(iterator, None)
            if job is None:
                break
            nursery.start_soon(task, token)


which, n = sys.argv[1], int(sys.argv[2])
t0 = time.perf_counter()
trio.run(ours if which == "noop" else bare, n)
print(time.perf_counter() - t0, int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]))
"""


def _inprocess(which: str, n: int) -> tuple[float, int]:
    out = subprocess.run(
        [sys.executable, "-c", _NOOP, which, str(n)],
        check=True, capture_output=True, text=True, env=ENV,
    ).stdout.split()  # fmt: skip
    return float(out[0]), int(out[1]) * 1024


def bench_noop_backend() -> None:
    n = 200_000
    # Alternate the two, each in a fresh interpreter timing only its own loop; medians.
    loops = [(_inprocess("bare", n)[0], _inprocess("noop", n)[0])[::-1] for _ in range(5)]
    ours_loop = sorted(a for a, _ in loops)[2]
    bare_loop = sorted(b for _, b in loops)[2]
    _, rss_ours = _inprocess("noop", 1_000_000)
    _, rss_bare = _inprocess("bare", 1_000_000)
    report(
        "no-op backend through the runner vs bare trio loop (jobs/s)",
        bare_loop / ours_loop,
        0.6,
        f"ours {n / ours_loop:,.0f} jobs/s, bare {n / bare_loop:,.0f} jobs/s; "
        f"peak RSS for 10^6 jobs: ours {rss_ours / 2**20:.0f} MiB, bare {rss_bare / 2**20:.0f} MiB",
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as cwd:
        bench_processes(cwd)
        bench_cold_start(cwd)
    bench_noop_backend()


if __name__ == "__main__":
    main()
