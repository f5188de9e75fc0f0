"""The seeded shuffle: a bijection for every size, stable across versions, uniform samples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rangeexpr._shuffle import Shuffle

GOLDEN = Path(__file__).parent / "data" / "shuffle_golden.json"


@pytest.mark.parametrize("seed", [0, "sweep-seed"])
def test_every_size_up_to_2000_visits_each_index_once(seed: int | str) -> None:
    for n in range(1, 2001):
        order = list(Shuffle(n, seed))
        assert sorted(order) == list(range(n)), n


def test_random_access_agrees_with_iteration_and_inverts() -> None:
    # The scalar path (any size) and the numpy batches (iteration) must give one order.
    for n in [*range(1, 300), 1023, 1024, 1025, 1999]:
        shuffle = Shuffle(n, 11)
        order = list(shuffle)
        assert [shuffle.permute(p) for p in range(n)] == order, n
        assert [shuffle.unpermute(j) for j in order] == list(range(n)), n


@pytest.mark.parametrize("n", [65_536, 65_537, 999_983, 1_000_000])
def test_large_sizes_are_bijections(n: int) -> None:
    shuffle = Shuffle(n, 5)
    out = shuffle.permute_array(np.arange(n, dtype=np.uint64))
    assert out.max() < n
    assert np.unique(out).size == n
    for p in [0, 1, n // 2, n - 1]:
        assert shuffle.permute(p) == int(out[p])


def test_huge_sizes_keep_random_access() -> None:
    n = 10**30
    shuffle = Shuffle(n, "big")
    positions = [0, 1, 2, n // 7, n - 1]
    images = [shuffle.permute(p) for p in positions]
    assert len(set(images)) == len(images)
    assert all(0 <= j < n for j in images)
    assert [shuffle.unpermute(j) for j in images] == positions
    assert list(shuffle.positions(n - 3, n)) == [shuffle.permute(p) for p in range(n - 3, n)]


def test_numpy_and_python_agree_at_the_64_bit_edge() -> None:
    for n in [2**63 + 1, 2**64]:
        shuffle = Shuffle(n, 3)
        start = n - 50
        batch = shuffle.permute_array(np.arange(start, n, dtype=np.uint64)).tolist()
        assert batch == [shuffle.permute(p) for p in range(start, n)]


def test_golden_orders_are_stable() -> None:
    doc = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert doc["cases"], "golden file holds no cases"
    for case in doc["cases"]:
        shuffle = Shuffle(int(case["n"]), case["seed"])
        first = [shuffle.permute(p) for p in range(len(case["first"]))]
        assert first == [int(v) for v in case["first"]], case
        for position, index in case["at"].items():
            assert shuffle.permute(int(position)) == int(index), case


def test_seed_text_and_int_are_the_same_seed_and_seeds_differ() -> None:
    assert list(Shuffle(500, 42)) == list(Shuffle(500, "42"))
    assert list(Shuffle(500, 42)) != list(Shuffle(500, 43))


def test_sample_is_distinct_in_range_and_roughly_uniform() -> None:
    # The first k positions of the shuffled order are the sample. With a fixed seed the
    # statistic is fixed; 85.35 is the 0.999 quantile of chi-square with 49 degrees of freedom.
    n, k, bins = 10**12, 100_000, 50
    sample = Shuffle(n, 2024).permute_array(np.arange(k, dtype=np.uint64))
    assert np.unique(sample).size == k
    assert int(sample.max()) < n
    counts = np.bincount((sample // np.uint64(n // bins)).astype(np.int64), minlength=bins)
    expected = k / bins
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 85.35, chi2


def test_sample_of_a_small_population_hits_every_value_about_equally() -> None:
    # Over many seeds, each of 20 values is the first draw about 1/20 of the time.
    n, seeds = 20, 4000
    counts = np.bincount([Shuffle(n, s).permute(0) for s in range(seeds)], minlength=n)
    expected = seeds / n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 43.82, chi2  # 0.999 quantile, 19 degrees of freedom


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="negative"):
        Shuffle(-1, 0)
    with pytest.raises(TypeError, match="int or a str"):
        Shuffle(5, 1.5)  # type: ignore[arg-type]
    with pytest.raises(IndexError, match="out of range"):
        Shuffle(5, 0).permute(5)
    with pytest.raises(IndexError, match="out of range"):
        Shuffle(5, 0).unpermute(-1)
    assert list(Shuffle(0, 0)) == []
