"""Shared helpers: time things in the same run and print ratios against a baseline.

Machines here are shared and noisy, so absolute times mean little: every benchmark measures
its baseline in the same process, interleaved with ours, and reports the ratio.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

RESULTS: list[tuple[str, float, float, bool]] = []


def best_of(fn: Callable[[], object], repeat: int = 5, number: int = 1) -> float:
    """Minimum wall time of ``number`` calls, over ``repeat`` rounds (seconds per call)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return min(times)


def interleaved(
    ours: Callable[[], object], base: Callable[[], object], repeat: int = 7, number: int = 1
) -> tuple[float, float]:
    """Time ours and the baseline alternately, so load spikes hit both alike; medians."""
    a, b = [], []
    for _ in range(repeat):
        b.append(best_of(base, 1, number))
        a.append(best_of(ours, 1, number))
    return statistics.median(a), statistics.median(b)


def report(
    name: str, ratio: float, target: float, detail: str = "", *, at_most: bool = False
) -> None:
    """Print one line: the ratio, the target, and whether it is met.

    By default the ratio is our speed over the baseline's (higher is better, target is a
    minimum); with ``at_most=True`` it is our time over the baseline's (target a maximum).
    """
    ok = ratio <= target if at_most else ratio >= target
    RESULTS.append((name, ratio, target, ok))
    mark = "ok  " if ok else "MISS"
    bound = "<=" if at_most else ">="
    extra = f"  {detail}" if detail else ""
    print(f"{mark} {name}: {ratio:.2f}x (target {bound} {target:g}x){extra}", flush=True)
