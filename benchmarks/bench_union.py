"""A union of grids against a single product of the same size: iteration, random access.

The union: 4 grids, each ``MODEL`` (one value) x ``LR`` (250) x ``SEED`` (250) after a
shared ``DATA`` (2), 5*10^5 points in all. The product: ``DATA`` (2) x ``MODEL`` (4) x
``LR`` (250) x ``SEED`` (250), the same size and variables. Iteration walks every point;
random access reads 10^5 points at fixed random positions. Ratio: our speed over the
product's. Target: at least 0.8x.
"""

from __future__ import annotations

import random
from collections import deque

from _common import interleaved, report

from rangeexpr import Sweep
from rangeexpr._union import Union

SHARED = ["DATA=case:a,b"]
GRIDS = [[f"MODEL=case:m{k}", f"LR=linspace:0.{k + 1},1,250", "SEED=range:250"] for k in range(4)]
PRODUCT = [*SHARED, "MODEL=case:m0,m1,m2,m3", "LR=linspace:0.1,1,250", "SEED=range:250"]


def main() -> None:
    union, product = Union(SHARED, GRIDS), Sweep(PRODUCT)
    assert union.size == product.size
    ours, base = interleaved(lambda: deque(union, 0), lambda: deque(product, 0), repeat=5)
    report("union iteration vs one product", base / ours, 0.8, f"{union.size} points")
    picks = random.Random(0).choices(range(union.size), k=10**5)
    ours, base = interleaved(
        lambda: [union[i] for i in picks], lambda: [product[i] for i in picks], repeat=5
    )
    report("union random access vs one product", base / ours, 0.8, f"{len(picks)} reads")


if __name__ == "__main__":
    main()
