"""GPU packing: the pool of runner/_resources.py against the ideal schedule, on the wall clock.

Jobs here are ``trio.sleep(0.2)`` holding a grant, not processes: this measures the pool's
order and wake-ups (the lead switches it to real ``sleep 0.2`` jobs once the local backend
takes a pool). Requests are pulled as the runner would, through a window of ``2 * slots``
jobs waiting or running. Ratios are our time over the optimum's (lower is better):

- 40 jobs with ``gpu=1`` over 4 GPUs: ideal 10 rounds = 2 s (target <= 1.15x);
- 40 jobs of ``gpu=1`` or ``gpu=2`` (a fixed random sequence) over 4 GPUs (target <= 1.3x).
  With one duration an optimal schedule runs in rounds (shift every job left to a
  multiple of the duration) and sizes 1 and 2 always fill 4 GPUs (2+2, 2+1+1, 1+1+1+1)
  but in the last round, so the optimum is ``0.2 * ceil(GPU units / 4)``.

Each run also checks, from the jobs' own start and end times, that no two running jobs
shared a GPU or a slot; a run that did is reported as a miss.
"""

from __future__ import annotations

import math
import random
import time

import trio
from _common import report

from runner._resources import Pool, Request

DURATION = 0.2
GPUS = ("0", "1", "2", "3")


def packing(sizes: list[int]) -> tuple[float, bool]:
    """Run one job per GPU count in ``sizes``; the wall time and whether nothing was shared."""
    pool = Pool(len(GPUS), cpus=[0], mem=1, gpus=GPUS)
    spans: list[tuple[float, float, int, tuple[str, ...]]] = []

    async def job(size: int, window: trio.CapacityLimiter, token: object) -> None:
        try:
            async with pool.allocate(Request(gpu=size)) as grant:
                start = time.perf_counter()
                await trio.sleep(DURATION)
                spans.append((start, time.perf_counter(), grant.slot, grant.gpus))
        finally:
            window.release_on_behalf_of(token)

    async def main() -> None:
        window = trio.CapacityLimiter(2 * pool.slots)
        async with trio.open_nursery() as nursery:
            for size in sizes:
                token = object()
                await window.acquire_on_behalf_of(token)
                nursery.start_soon(job, size, window, token)

    t0 = time.perf_counter()
    trio.run(main)
    return time.perf_counter() - t0, _never_shared(spans)


def _never_shared(spans: list[tuple[float, float, int, tuple[str, ...]]]) -> bool:
    for i, (start, end, slot, gpus) in enumerate(spans):
        for other_start, other_end, other_slot, other_gpus in spans[i + 1 :]:
            overlap = start < other_end and other_start < end
            if overlap and (slot == other_slot or set(gpus) & set(other_gpus)):
                return False
    return True


def _report(name: str, sizes: list[int], target: float) -> None:
    optimum = DURATION * math.ceil(sum(sizes) / len(GPUS))
    elapsed, ok = packing(sizes)
    detail = f"{elapsed:.2f} s, optimum {optimum:.1f} s"
    detail += ", no GPU or slot shared" if ok else ", A GPU OR SLOT WAS SHARED"
    report(name, elapsed / optimum if ok else math.inf, target, detail, at_most=True)


def main() -> None:
    _report("40 x gpu=1 over 4 GPUs vs ideal", [1] * 40, 1.15)
    rng = random.Random(13)
    mixed = [rng.choice((1, 2)) for _ in range(40)]
    _report(f"40 x gpu=1|2 ({mixed.count(2)} of 2) over 4 GPUs vs optimum", mixed, 1.3)


if __name__ == "__main__":
    main()
