"""Sweeps and templates: iteration, random access, batches, rendering vs plain baselines."""

from __future__ import annotations

import itertools
import string

import numpy as np
from _common import interleaved, report

from rangeexpr import Sweep, Template

EXPRS = ["A=range:10", "B=linspace:0,1,10", "C=case:" + ",".join(f"c{i}" for i in range(100))]
EXPRS.append("D=arange:0,100,1.0")  # 10 x 10 x 100 x 100 = 10^6 points


def iteration() -> None:
    sweep = Sweep(EXPRS)
    lists = [list(a) for a in sweep.axes]

    def ours() -> None:
        for _ in sweep:
            pass

    def base() -> None:
        for a, b, c, d in itertools.product(*lists):
            {"A": a, "B": b, "C": c, "D": d}  # noqa: B018 - the dict is the baseline's work

    ours_t, base_t = interleaved(ours, base, repeat=5)
    report(
        "iterate 10^6 points vs itertools.product + dict per point (speed)",
        base_t / ours_t,
        0.5,
        f"{1e6 / ours_t / 1e6:.2f} M points/s",
    )


class ParameterGridStyle:
    """The ParameterGrid ``__getitem__`` algorithm: sort keys, divmod per call."""

    def __init__(self, grid: dict[str, list[object]]):
        self.grid = grid

    def __getitem__(self, ind: int) -> dict[str, object]:
        keys, values_lists = zip(*sorted(self.grid.items())[::-1], strict=True)
        sizes = [len(v) for v in values_lists]
        total = int(np.prod(sizes))
        if ind >= total:
            raise IndexError
        out = {}
        for key, v_list, n in zip(keys, values_lists, sizes, strict=True):
            ind, offset = divmod(ind, n)
            out[key] = v_list[offset]
        return out


def random_access() -> None:
    sweep = Sweep(EXPRS)
    grid = ParameterGridStyle({a.name: list(a) for a in sweep.axes})
    rng = np.random.default_rng(0)
    picks = [int(i) for i in rng.integers(0, sweep.size, 20000)]

    def ours() -> None:
        for i in picks:
            sweep[i]

    def base() -> None:
        for i in picks:
            grid[i]

    ours_t, base_t = interleaved(ours, base, repeat=5)
    report(
        "random access sweep[i] vs ParameterGrid-style __getitem__ (speed)",
        base_t / ours_t,
        5.0,
        f"{ours_t / len(picks) * 1e6:.2f} us per point",
    )


def arrays() -> None:
    sweep = Sweep(EXPRS)
    values = [np.array(list(a)) for a in sweep.axes]
    shape = tuple(len(v) for v in values)
    lo, hi = 123_456, 123_456 + 200_000

    def ours() -> None:
        sweep.arrays(lo, hi)

    def base() -> None:
        digits = np.unravel_index(np.arange(lo, hi), shape)
        {a.name: np.take(v, d) for a, v, d in zip(sweep.axes, values, digits, strict=True)}

    ours_t, base_t = interleaved(ours, base, repeat=9)
    report(
        "arrays() vs numpy.unravel_index + take (speed)",
        base_t / ours_t,
        0.8,
        f"{(hi - lo) / ours_t / 1e6:.1f} M points/s",
    )


def render() -> None:
    sweep = Sweep(["LR=linspace:0.001,0.1,5", "SEED=range:0,10", "MODEL=case:small,large"])
    text = "python train.py --lr $LR --seed ${SEED} --model $MODEL --out runs/${MODEL}_$SEED"
    ours_template = Template(text)
    std = string.Template(text)
    points = list(sweep)
    # the baseline gets the same values already as text, its best case
    mappings = [{n: p.text(n) for n in sweep.names} for p in points]

    def ours() -> None:
        for p in points:
            ours_template.render(p)

    def base() -> None:
        for m in mappings:
            std.substitute(m)

    ours_t, base_t = interleaved(ours, base, repeat=9, number=50)
    report(
        "Template.render vs string.Template.substitute (speed)",
        base_t / ours_t,
        2.0,
        f"{ours_t / len(points) * 1e6:.2f} us per render",
    )


def main() -> None:
    iteration()
    random_access()
    arrays()
    render()


if __name__ == "__main__":
    main()
