"""Views never lie: size, len, bool, indexing and counting are exact or a documented error.

The oracle is the list of points a view iterates (itself checked against Python models in
``test_link_where_shuffle.py`` and the sweep laws), and for filters a Python predicate
applied to the list of the sweep underneath:

- a view with random access (a product, its slices, shards, shuffles and samples) answers
  ``size == len() == count_kept() == max_size == len(points)``, ``bool() == (points != [])``,
  ``view[i] == points[i]`` for every i (negative too), ``IndexError`` past either end,
  ``view[a:b:c] == points[a:b:c]`` and ``reversed(view) == points[::-1]``;
- a filtered view (``where``, or a sample of one) answers ``count_kept() == len(points)``,
  ``bool() == (points != [])``, ``max_size >= len(points)``, ``reversed(view) ==
  points[::-1]``, and ``TypeError`` naming ``count_kept()`` for ``size``, ``len()`` and
  ``view[i]``, never a number or a point that iteration contradicts.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rangeexpr import BaseSweep, EvaluationError, ParseError, Point, Sweep, SweepError
from rangeexpr._points import check_shard, parse_shard
from rangeexpr._text import EscapeError, did_you_mean, unquote

_EXPRS = ["X=range:0,12", "M=case:small,'big one'", "LR=linspace:0,1,3"]


def _rows(points: Any) -> list[tuple[int, dict[str, object]]]:
    return [(p.index, dict(p)) for p in points]


def _row(point: Point) -> tuple[int, dict[str, object]]:
    return (point.index, dict(point))


def _check_indexed(view: BaseSweep) -> None:
    points = _rows(view)
    n = len(points)
    assert not view.is_filtered
    assert isinstance(view, Sequence)
    assert view.size == len(view) == view.count_kept() == view.max_size == n
    assert bool(view) is (n > 0)
    for i in range(-n, n):
        assert _row(view[i]) == points[i]
    for i in (n, -n - 1):
        with pytest.raises(IndexError, match="out of range"):
            view[i]
    for a, b, c in itertools.product((None, 0, 1, -2, n + 3), (None, 2, -1, n), (1, 2, -1, -3)):
        assert _rows(view[a:b:c]) == points[a:b:c], (a, b, c)
    assert _rows(reversed(view)) == points[::-1]


def _check_filtered(view: BaseSweep, expected: list[tuple[int, dict[str, object]]]) -> None:
    points = _rows(view)
    assert points == expected
    assert view.is_filtered
    assert not isinstance(view, Sequence)
    assert view.count_kept() == len(points)
    assert bool(view) is bool(points)
    assert view.max_size >= len(points)
    assert _rows(reversed(view)) == points[::-1]
    with pytest.raises(TypeError, match=r"count_kept\(\)"):
        _ = view.size
    with pytest.raises(TypeError, match=r"count_kept\(\)"):
        len(view)
    with pytest.raises(TypeError, match="no random access"):
        view[0]


# -- each kind, by hand -----------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda s: s,
        lambda s: s[5:60:3],
        lambda s: s[::-1],
        lambda s: s[70:2:-4],
        lambda s: s.shard(2, 5),
        lambda s: s.shuffled(7),
        lambda s: s.shuffled("x")[3:40:2],
        lambda s: s.shuffled(7).shard(1, 3),
        lambda s: s.shuffled(1).shuffled(2),
        lambda s: s[10:50].shuffled(3)[::-1],
        lambda s: s.sample(9, seed=3),
        lambda s: s.sample(0),
        lambda s: s[4:4],
    ],
    ids=[
        "sweep",
        "slice",
        "reversed",
        "reversed-step",
        "shard",
        "shuffled",
        "shuffled-slice",
        "shuffled-shard",
        "shuffle-of-shuffle",
        "shuffle-of-slice-reversed",
        "sample",
        "empty-sample",
        "empty-slice",
    ],
)
def test_a_random_access_view_answers_exactly(make: Any) -> None:
    _check_indexed(make(Sweep(_EXPRS)))


_WHERE = "X % 3 != 0 and M == 'small'"


def _keeps(point: dict[str, object]) -> bool:
    x = point["X"]
    assert isinstance(x, int)
    return x % 3 != 0 and point["M"] == "small"


def _keeps_both(point: dict[str, object]) -> bool:
    lr = point["LR"]
    assert isinstance(lr, float)
    return _keeps(point) and lr < 1


@pytest.mark.parametrize(
    ("make", "model", "keeps"),
    [
        (lambda s: s.where(_WHERE), lambda s: s, _keeps),
        (lambda s: s[10:50].where(_WHERE), lambda s: s[10:50], _keeps),
        (lambda s: s.where(_WHERE)[10:50], lambda s: s[10:50], _keeps),
        (lambda s: s.where(_WHERE).shard(1, 3), lambda s: s.shard(1, 3), _keeps),
        (lambda s: s.where(_WHERE).shuffled(4), lambda s: s.shuffled(4), _keeps),
        (lambda s: s.shuffled(4).where(_WHERE), lambda s: s.shuffled(4), _keeps),
        (lambda s: s.where(_WHERE).where("LR < 1"), lambda s: s, _keeps_both),
    ],
    ids=[
        "where",
        "slice-where",
        "where-slice",
        "where-shard",
        "where-shuffled",
        "shuffled-where",
        "where-where",
    ],
)
def test_a_filtered_view_answers_exactly_or_with_a_type_error(
    make: Any, model: Any, keeps: Any
) -> None:
    """The kept points are the model's points the Python predicate keeps, in its order."""
    sweep = Sweep(_EXPRS)
    _check_filtered(make(sweep), [r for r in _rows(model(sweep)) if keeps(r[1])])


def test_a_sample_of_a_filtered_sweep_answers_exactly_or_with_an_error() -> None:
    sweep = Sweep(_EXPRS)
    where = _WHERE
    kept_in_shuffle = [r for r in _rows(sweep.shuffled(5)) if _keeps(r[1])]
    sample = sweep.where(where).sample(4, seed=5)
    _check_filtered(sample, kept_in_shuffle[:4])
    assert sample.max_size == 4
    everything = sweep.where(where).sample(30, seed=5)  # more than are kept
    _check_filtered(everything, kept_in_shuffle)
    _check_filtered(sweep.where(where).sample(0), [])
    over_five = [r for r in kept_in_shuffle[:4] if int(str(r[1]["X"])) > 5]
    _check_filtered(sample.where("X > 5"), over_five)
    with pytest.raises(SweepError, match="no random access"):
        sample[1:3]


def test_a_filter_that_keeps_nothing_is_false_and_counts_zero() -> None:
    nothing = Sweep(["X=range:0,10", "Y=case:a,b"]).where("X > 100")
    assert not nothing
    assert nothing.count_kept() == 0
    assert nothing.max_size == 20
    assert list(nothing) == []
    assert not nothing.sample(3, seed=1)


def test_bool_of_a_filtered_sweep_stops_at_the_first_kept_point() -> None:
    # Point 0 is kept; any later point would fail (division by zero): bool() must not
    # look past the first kept point, on a sweep far too large to scan.
    huge = Sweep(["X=range:0,1000000000000000", "Y=range:0,1000000000000000"])
    first_only = huge.where("X == 0 and Y == 0 or 1 // (X - X) == 0")
    assert bool(first_only)
    with pytest.raises(EvaluationError, match="division by zero"):
        list(itertools.islice(first_only, 2))


def test_count_kept_reports_progress_per_batch_of_examined_points() -> None:
    sweep = Sweep(["X=range:0,10000"])
    seen: list[tuple[int, int]] = []
    assert sweep.where("X % 4 == 0").count_kept(lambda s, k: seen.append((s, k))) == 2500
    assert seen[-1] == (10000, 2500)
    assert [s for s, _ in seen] == sorted({s for s, _ in seen})  # one call per batch
    assert sweep.count_kept(lambda s, k: seen.append((-1, -1))) == 10000  # nothing to scan
    assert seen[-1] != (-1, -1)
    found: list[tuple[int, int]] = []
    assert sweep.where("X % 4 == 0").sample(10, 1).count_kept(lambda s, k: found.append((s, k)))
    assert found[-1] == (10, 10)


@pytest.mark.parametrize("size", [2**62 + 5, 2**64, 2**64 + 7, 10**30])
def test_a_huge_shuffle_iterates_what_random_access_gives(size: int) -> None:
    # Beyond int64 positions go as Python ints; up to 2**64 the shuffle still runs in numpy,
    # and iteration (batched) must agree with random access (one permute at a time).
    view = Sweep([f"X=range:0,{size}"]).shuffled(3)
    assert view.size == size == view.count_kept()
    for part in (view, view[size - 9 :], view[:: -(10**17)]):
        head = list(itertools.islice(part, 5))
        assert [p.index for p in head] == [part[i].index for i in range(5)]


# -- any chain of views -----------------------------------------------------------------

_STEPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("slice"),
            st.integers(-20, 40) | st.none(),
            st.integers(-20, 40) | st.none(),
            st.sampled_from([1, 2, 3, -1, -2]),
        ),
        st.tuples(st.just("shard"), st.integers(0, 3), st.just(4)),
        st.tuples(st.just("where"), st.sampled_from(["X % 2 == 0", "LR < 1", "M > 'c'"])),
        st.tuples(st.just("shuffled"), st.integers(0, 5)),
        st.tuples(st.just("sample"), st.integers(0, 6), st.integers(0, 5)),
    ),
    max_size=4,
)


def apply_step(view: BaseSweep, step: tuple[Any, ...]) -> BaseSweep:
    """One step of a hypothesis-drawn chain of views: a slice, shard, sample or method."""
    name, *args = step
    if name == "slice":
        return view[args[0] : args[1] : args[2]]
    if name == "shard":
        return view.shard(*args)
    if name == "sample":
        return view.sample(min(args[0], view.max_size), seed=args[1])
    result: BaseSweep = getattr(view, name)(*args)
    return result


@settings(max_examples=200, deadline=None)
@given(steps=_STEPS)
def test_every_chain_of_views_answers_what_it_iterates(steps: list[tuple[Any, ...]]) -> None:
    """Law: what a view says about itself agrees with ``list(view)``, or is an error."""
    view: BaseSweep = Sweep(_EXPRS)
    for step in steps:
        try:
            view = apply_step(view, step)
        except SweepError as exc:  # a sample of a filtered sweep has no slices or shards
            assert "no random access" in exc.message
            break
    if view.is_filtered:
        _check_filtered(view, _rows(view))
    else:
        _check_indexed(view)


# -- one implementation of each shared piece ---------------------------------------------


def test_shards_are_checked_in_one_place() -> None:
    assert parse_shard(" 1 / 3") == (1, 3) == check_shard(1, 3)
    with pytest.raises(SweepError) as caught:
        parse_shard("3/3")
    assert caught.value.message == "--shard 3/3: need 0 <= K < N (K counts from 0)"
    assert caught.value.source == "3/3"
    with pytest.raises(SweepError, match="--shard takes K/N with integers"):
        parse_shard("1/\u0663")  # not an ASCII digit
    for sweep in (Sweep(_EXPRS), Sweep(_EXPRS).shuffled(1), Sweep(_EXPRS).where("X > 1")):
        with pytest.raises(SweepError, match=r"shard 2/2: need integers 0 <= K < N"):
            sweep.shard(2, 2)


def test_unquoting_is_shared_and_points_at_the_bad_escape() -> None:
    assert unquote(r"'a\tb\\c\"'") == 'a\tb\\c"'
    with pytest.raises(EscapeError) as caught:
        unquote(r'"ok\q"', start=10)
    assert (caught.value.escape, caught.value.span) == ("\\q", (13, 15))


def test_did_you_mean_prefers_a_name_differing_only_in_case() -> None:
    assert did_you_mean("x", ["X", "Y"]) == "; did you mean 'X'?"
    assert did_you_mean("MODLE", ["MODEL", "LR"]) == "; did you mean 'MODEL'?"
    assert did_you_mean("Q", ["X", "Y"]) == ""
    # the filter's unknown-variable message uses it too
    with pytest.raises(ParseError, match="did you mean 'X'"):
        Sweep(["X=range:3"]).where("x > 1")
