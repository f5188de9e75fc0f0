"""Unions of grids: several products grid after grid, lazy, from a file or from --grid."""

from __future__ import annotations

import pickle
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cli_run import cli

from rangeexpr import Sweep
from rangeexpr._errors import SweepError
from rangeexpr._union import Union

REPO = Path(__file__).resolve().parents[1]
UNION_FILE = REPO / "tests" / "data" / "sweep_union.toml"
FLAGS = (
    "-r", "SEED=range:2",
    "--grid", "-r", "MODEL=case:small", "-r", "LR=linspace:0.1,0.3,3",
    "--grid", "-r", "MODEL=case:big", "-r", "LR=logspace:-4,-3,2",
)  # fmt: skip


def brute(shared: list[str], grids: list[list[str]]) -> list[tuple[int, dict[str, Any]]]:
    """The union by hand: each grid's points, their indices running on."""
    points = [dict(p) for grid in grids for p in Sweep([*shared, *grid])]
    return list(enumerate(points))


def as_list(points: Any) -> list[tuple[int, dict[str, Any]]]:
    return [(p.index, dict(p)) for p in points]


# the grids: each a B axis of a kind of its own, after a shared A
_GRID = st.sampled_from(
    ["B=case:z", "B=range:3", "B=case:x,y", "B=range:5,9", "B=linspace:0,1,4", "B=case:1,1.0"]
)
_SHARED = st.sampled_from([[], ["A=range:2"], ["A=case:p,q,r"]])


@settings(max_examples=60, deadline=None)
@given(
    shared=_SHARED,
    grids=st.lists(st.lists(_GRID, min_size=1, max_size=1), min_size=1, max_size=4),
    cut=st.tuples(st.integers(-20, 20) | st.none(), st.integers(-20, 20) | st.none()),
    step=st.sampled_from([None, 1, 2, -1, -3]),
    shards=st.integers(1, 5),
    seed=st.integers(0, 3),
)
def test_a_union_is_its_grids_one_after_the_other(
    *,
    shared: list[str],
    grids: list[list[str]],
    cut: tuple[int | None, int | None],
    step: int | None,
    shards: int,
    seed: int,
) -> None:
    union = Union(shared, grids)
    expected = brute(shared, grids)
    assert union.size == len(union) == union.full_size == len(expected)
    assert as_list(union) == expected
    assert [(union[i].index, dict(union[i])) for i in range(-len(expected), 0)] == expected
    part = slice(cut[0], cut[1], step)
    assert as_list(union[part]) == expected[part]
    assert as_list(union[part][::-1]) == expected[part][::-1]  # a view of a view
    assert [p for k in range(shards) for p in as_list(union.shard(k, shards))] == expected
    shuffled = union.shuffled(seed)
    got = as_list(shuffled)
    assert sorted(got, key=lambda pair: pair[0]) == expected
    assert [(shuffled[i].index, dict(shuffled[i])) for i in range(len(got))] == got
    assert as_list(union.sample(len(expected) // 2, seed)) == got[: len(expected) // 2]
    where = "B != 'x' and B != 3" if shared != ["A=range:2"] else "A == 1"
    kept = as_list(union.where(where))
    assert kept == [(i, p) for i, p in expected if _holds(where, p)]
    if expected:  # arrays: one column per name, in the union's order
        cols = union.arrays(0, len(expected))
        assert list(cols) == list(union.names)
        for name in union.names:
            assert [str(v) for v in cols[name].tolist()] == [
                str(p[name]) for _, p in expected
            ] or _mixed(grids)


def _holds(where: str, point: dict[str, Any]) -> bool:
    from rangeexpr._filter import Filter

    return Filter(where)(point)


def _mixed(grids: list[list[str]]) -> bool:
    """Whether numpy promotes one column's types across the grids (ints among floats)."""
    return len({g[0].split(":")[0] for g in grids}) > 1


def test_a_union_pickles_with_its_view_and_its_points() -> None:
    union = Union(["A=range:2"], [["B=case:x"], ["B=range:3"]])[1:7:2]
    again = pickle.loads(pickle.dumps(union))
    assert as_list(again) == as_list(union)
    assert as_list(union) == [(1, {"A": 1, "B": "x"}), (3, {"A": 0, "B": 1}), (5, {"A": 1, "B": 0})]
    point = pickle.loads(pickle.dumps(union[2]))
    assert point.index == 5 and point.text("B") == "0"
    shuffled = pickle.loads(pickle.dumps(Union([], [["B=range:3"], ["B=range:4"]]).shuffled(1)))
    assert sorted(p.index for p in shuffled) == list(range(7))


def test_points_of_a_later_grid_keep_their_text_and_union_index() -> None:
    union = Union(["S=range:2"], [["LR=case:0.10"], ["LR=case:1e-3,2.50"]])
    p = union[5]
    assert (p.index, p.text("LR"), p["LR"], p.text("S")) == (5, "2.50", 2.5, "1")
    assert repr(p) == "Point(5: S=1, LR=2.5)"


def test_a_grid_that_redefines_a_shared_name_is_an_error() -> None:
    with pytest.raises(SweepError, match=r"^grid 2: duplicate name 'S'") as err:
        Union(["S=range:2"], [["B=range:2"], ["S=case:3"]])
    assert err.value.source == "S=case:3"


def test_an_empty_grid_or_grids_of_other_variables_are_errors() -> None:
    with pytest.raises(SweepError, match="grid 2 is empty"):
        Union([], [["B=range:2"], []])
    with pytest.raises(SweepError, match="grid 2 lacks B and adds C: every grid defines"):
        Union(["A=range:2"], [["B=range:2"], ["C=range:2"]])


def test_the_file_and_the_flags_expand_to_the_same_points(tmp_path: Path) -> None:
    from_file = cli("expand", str(UNION_FILE), cwd=tmp_path)
    flags = cli("expand", *FLAGS, cwd=tmp_path)
    assert from_file.returncode == 0, from_file.stderr
    assert flags.returncode == 0, flags.stderr
    assert from_file.stdout == flags.stdout
    rows = from_file.stdout.splitlines()
    assert len(rows) == 10
    assert rows[6] == '{"index": 6, "SEED": 0, "MODEL": "big", "LR": 0.0001}'


def test_check_shows_each_grid_and_the_total(tmp_path: Path) -> None:
    """The README's sweep file: check and expand accept it as written."""
    checked = cli("check", str(UNION_FILE), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines() == [
        "GRID  NAME   KIND      LENGTH  FIRST   LAST",
        "all   SEED   range          2  0       1",
        "1     MODEL  case           1  small   small",
        "1     LR     linspace       3  0.1     0.3",
        "2     MODEL  case           1  big     big",
        "2     LR     logspace       2  0.0001  0.001",
        "10 points (the union of grids of 6 + 4)",
    ]
    assert checked.stderr == ""
    counted = cli("expand", "--count", str(UNION_FILE), cwd=tmp_path)
    assert counted.stdout == "10\n"


def test_a_template_is_checked_on_every_grid(tmp_path: Path) -> None:
    bad = cli(
        "check", "-r", "S=range:2", "--grid", "-r", "N=range:3", "--grid", "-r", "N=case:x",
        "--exec", "echo ${N:03d}", cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "cannot format 'x' of ${N} with '03d'" in bad.stderr  # grid 2's value


def test_grid_errors_from_a_file_point_at_the_grid(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(
        '[ranges]\nS = "range:2"\n\n[[grid]]\nB = "case:1"\n\n[[grid]]\nC = "case:1"\n'
    )
    out = cli("check", "s.toml", cwd=tmp_path)
    assert out.returncode == 2
    assert "s.toml:7:1: grid 2 lacks B and adds C" in out.stderr
    assert "Traceback" not in out.stderr


def test_resume_over_a_union_runs_only_the_points_a_grown_grid_adds(tmp_path: Path) -> None:
    def run(lrs: str) -> subprocess.CompletedProcess[str]:
        return cli(
            "run", "--no-progress", "--joblog", "log", "--exec", "sh -c 'echo $M $LR $S >> ran'",
            "-r", "S=range:2", "--grid", "-r", "M=case:small", "-r", "LR=case:0.1",
            "--grid", "-r", "M=case:big", "-r", f"LR=case:{lrs}", *(["--resume"] * ("," in lrs)),
            cwd=tmp_path,
        )  # fmt: skip

    first = run("0.001")
    assert first.returncode == 0, first.stderr
    grown = run("0.001,0.002")
    assert grown.returncode == 0, grown.stderr
    assert "2 succeeded, 0 failed, 4 skipped" in grown.stderr
    ran = Counter((tmp_path / "ran").read_text().splitlines())
    assert ran == {f"{m} {lr} {s}": 1 for m, lr in [("small", "0.1"), ("big", "0.001"),
                                                     ("big", "0.002")] for s in (0, 1)}  # fmt: skip


def test_a_node_run_of_a_union_names_the_same_grids() -> None:
    from rangeexpr._cli import parse_args
    from rangeexpr._cli._options import spec_from_args

    spec = spec_from_args(parse_args(["expand", *FLAGS]))
    assert spec.grids == (
        ("MODEL=case:small", "LR=linspace:0.1,0.3,3"),
        ("MODEL=case:big", "LR=logspace:-4,-3,2"),
    )
    argv = spec.node_argv(2, 5, jobs=1, joblog="log", results="out", timeout=None)
    node = spec_from_args(parse_args(argv[1:]))
    assert (node.exprs, node.grids) == (spec.exprs, spec.grids)
    assert node.identity() == spec.identity()
