"""Every sweep, view, filter and template pickles to an object that behaves the same.

``multiprocessing`` pickles what it sends to workers, so a filtered or shuffled sweep
(or a slice of one) must survive ``pickle`` and give the same points in the same order.
"""

from __future__ import annotations

import multiprocessing
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_views import apply_step

from rangeexpr import BaseSweep, Command, Sweep, Template
from rangeexpr._errors import RangeExprError
from rangeexpr._filter import Filter

_EXPRS = ["X=range:0,12", "MODEL=case:small,'big one'", "LR=linspace:0,1,3"]
_PROTOCOLS = range(2, pickle.HIGHEST_PROTOCOL + 1)


def _points(sweep: BaseSweep) -> list[tuple[int, dict[str, object]]]:
    return [(p.index, dict(p)) for p in sweep]


def _round_trip(obj: Any, protocol: int = pickle.DEFAULT_PROTOCOL) -> Any:
    return pickle.loads(pickle.dumps(obj, protocol=protocol))


def _base() -> Sweep:
    return Sweep(_EXPRS)


_VIEWS: dict[str, Callable[[], BaseSweep]] = {
    "sweep": _base,
    "slice": lambda: _base()[5:60:3],
    "shard": lambda: _base().shard(2, 5),
    "linked": lambda: Sweep(["X=range:3", "Y=case:a,b,c", "Z=range:4"], link=[("X", "Y")]),
    "where": lambda: _base().where("X % 3 != 0 and MODEL == 'small' or LR > 0.5"),
    "where-slice": lambda: _base().where("X > 4")[10:50],
    "where-shard": lambda: _base().where("X > 4").shard(1, 3),
    "where-where": lambda: _base().where("X > 4").where("LR < 1"),
    "shuffled": lambda: _base().shuffled(7),
    "shuffled-slice": lambda: _base().shuffled("seed")[3:40:2],
    "shuffled-shard": lambda: _base().shuffled(7).shard(0, 4),
    "sample": lambda: _base().sample(9, seed=3),
    "where-shuffled": lambda: _base().where("X < 6").shuffled(1),
    "shuffled-where": lambda: _base().shuffled(1).where("X < 6"),
    "where-sample": lambda: _base().where("X < 6").sample(5, seed=2),
    "linked-where-shuffled": lambda: (
        Sweep(["X=range:5", "Y=range:10,15", "Z=case:p,q"], link=[("X", "Y")])
        .where("Y - X == 10 and Z != 'q'")
        .shuffled(4)
    ),
    "huge-sample": lambda: Sweep(["A=range:0,1000000000", "B=range:0,1000000000"]).sample(20, 9),
}


@pytest.mark.parametrize("protocol", _PROTOCOLS)
@pytest.mark.parametrize("kind", sorted(_VIEWS))
def test_every_view_kind_pickles_to_the_same_points(kind: str, protocol: int) -> None:
    view = _VIEWS[kind]()
    copy = _round_trip(view, protocol)
    assert type(copy) is type(view)
    assert repr(copy) == repr(view)
    assert (copy.count_kept(), copy.max_size, copy.names) == (
        view.count_kept(),
        view.max_size,
        view.names,
    )
    assert _points(copy) == _points(view)
    point = next(iter(view))
    copied = _round_trip(point, protocol)
    assert (copied.index, dict(copied)) == (point.index, dict(point))
    assert [copied.text(n) for n in view.names] == [point.text(n) for n in view.names]


_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("slice"), st.integers(0, 30), st.integers(0, 80), st.integers(1, 3)),
        st.tuples(st.just("shard"), st.integers(0, 3), st.just(4)),
        st.tuples(st.just("where"), st.sampled_from(["X % 2 == 0", "LR < 1", "MODEL > 'c'"])),
        st.tuples(st.just("shuffled"), st.integers(0, 5)),
        st.tuples(st.just("sample"), st.integers(0, 6), st.integers(0, 5)),
    ),
    max_size=4,
)


@settings(max_examples=150)
@given(steps=_STEPS)
def test_any_chain_of_views_pickles_to_the_same_points(steps: list[tuple[Any, ...]]) -> None:
    """Law: for every composition of views v, points(unpickle(pickle(v))) == points(v)."""
    view: BaseSweep = _base()
    for step in steps:
        try:
            view = apply_step(view, step)
        except RangeExprError:  # e.g. a sample of a filtered sweep cannot be sliced
            break
    copy = _round_trip(view)
    assert _points(copy) == _points(view)
    # The copy is a working view, not a snapshot: it slices and filters like the original.
    try:
        expected = _points(view.where("X != 3"))
    except RangeExprError:
        return
    assert _points(copy.where("X != 3")) == expected


def test_a_filter_pickles_as_its_source_and_is_compiled_again() -> None:
    keep = Filter("X < Y and MODEL in ('a', 'b')", names=("X", "Y", "MODEL"))
    keep.on_rows(("X", "Y", "MODEL"))  # fills the cache of compiled closures
    copy = _round_trip(keep)
    assert copy == keep and copy.names == keep.names
    for x in (1, 3):
        point = {"X": x, "Y": 2, "MODEL": "a"}
        assert copy(point) is keep(point)
    assert len(pickle.dumps(keep)) < 200  # the source, not the closures or the AST


@pytest.mark.parametrize(
    "make",
    [
        lambda: Template("run $X ${MODEL} --lr ${LR:.3f}"),
        lambda: Command("train --x ${X:03d} --model $MODEL"),
        lambda: Command("echo ${LR:.1e} > out.$MODEL", shell=True),
    ],
)
def test_templates_and_commands_pickle_after_use(make: Callable[[], Any]) -> None:
    template = make()
    point = _base()[17]
    before = template.render(point) if isinstance(template, Template) else template.argv(point)
    copy = _round_trip(template)
    after = copy.render(point) if isinstance(copy, Template) else copy.argv(point)
    assert after == before and repr(copy) == repr(template)


def _kept_indices(sweep: BaseSweep) -> list[int]:
    return [p.index for p in sweep]


def test_a_filtered_shuffled_sweep_goes_through_a_spawned_worker() -> None:
    views = [_VIEWS["where-shuffled"](), _VIEWS["where-sample"](), _VIEWS["linked"]()]
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        got = pool.map(_kept_indices, views)
    assert got == [_kept_indices(v) for v in views]
