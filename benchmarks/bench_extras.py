"""Shuffle, sample and filter: each against its natural baseline, timed in the same run.

Ratios are speeds (baseline time / our time), so higher is better:
- iterating a shuffled sweep vs the same sweep unshuffled (target >= 0.3x);
- ``sample(100_000)`` of a 10^18-point sweep, points built, vs
  ``random.sample(range(10**18), 100_000)``, bare ints (target >= 0.5x);
- iterating a filter that keeps half the points vs the unfiltered sweep (target >= 0.3x).
"""

from __future__ import annotations

import random
from collections import deque

from _common import interleaved, report

EXPRS = ["X=range:0,500", "LR=linspace:0.001,0.1,200", "MODEL=case:small,medium,large"]


def _drain(iterable: object) -> None:
    deque(iterable, maxlen=0)  # type: ignore[call-overload]


def shuffled_iteration() -> None:
    from rangeexpr import Sweep

    sweep = Sweep(EXPRS)
    shuffled = sweep.shuffled(1)
    ours, base = interleaved(lambda: _drain(shuffled), lambda: _drain(sweep), repeat=5)
    per = ours / sweep.size * 1e6
    report(
        "iterate a shuffled sweep vs unshuffled (speed)",
        base / ours,
        0.3,
        f"{per:.2f} us per point, {sweep.size} points",
    )


def sample_huge() -> None:
    from rangeexpr import Sweep

    sweep = Sweep(["X=range:0,1000000", "Y=range:0,1000000", "Z=range:0,1000000"])
    assert sweep.size == 10**18
    k = 100_000
    rng = random.Random(0)
    ours, base = interleaved(
        lambda: _drain(sweep.sample(k, 7)),
        lambda: rng.sample(range(10**18), k),
        repeat=7,
    )
    report(
        "sample 100000 points of 10^18 vs random.sample(range(10**18)) (speed)",
        base / ours,
        0.5,
        f"{ours * 1e3:.0f} ms vs {base * 1e3:.0f} ms",
    )


def filtered_iteration() -> None:
    from rangeexpr import Sweep

    sweep = Sweep(EXPRS)
    kept = sweep.where("X % 2 == 0")
    assert kept.count_kept() == sweep.size // 2
    ours, base = interleaved(lambda: _drain(kept), lambda: _drain(sweep), repeat=5)
    report(
        "iterate a filter keeping half vs unfiltered (speed)",
        base / ours,
        0.3,
        f"{ours / sweep.size * 1e6:.2f} us per point scanned",
    )


def main() -> None:
    shuffled_iteration()
    sample_huge()
    filtered_iteration()


if __name__ == "__main__":
    main()
