"""Linked axes, filtered, shuffled and sampled sweeps: each against a plain-Python model."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rangeexpr import BaseSweep, Sweep
from rangeexpr._cli import main
from rangeexpr._cli._expand import count_points
from rangeexpr._errors import EvaluationError, ParseError, RangeExprError, SweepError
from rangeexpr._spec import RunSpec
from rangeexpr._views import FilteredSweep, ShuffledSweep


def _rows(sweep: BaseSweep) -> list[tuple[int, dict[str, object]]]:
    return [(p.index, dict(p)) for p in sweep]


# -- linked axes ------------------------------------------------------------------------


def test_linked_axes_are_zip_inside_the_product() -> None:
    exprs = ["X=range:0,3", "Z=case:a,b", "Y=case:p,q,r", "W=linspace:0,1,3"]
    sweep = Sweep(exprs, link=[("X", "Y", "W")])
    xs, zs, ys, ws = (list(Sweep([e]).axis(e[0])) for e in exprs)
    # The group sits where X (its first member) is: (X, Y, W) slowest, Z fastest.
    expected = [
        {"X": x, "Z": z, "Y": y, "W": w} for (x, y, w), z in itertools.product(zip(xs, ys, ws), zs)
    ]
    assert sweep.size == 6
    assert sweep.names == ("X", "Z", "Y", "W")
    assert [dict(p) for p in sweep] == expected
    assert [dict(sweep[i]) for i in range(6)] == expected
    assert [p.index for p in sweep] == list(range(6))
    assert [dict(p) for p in sweep[2:5]] == expected[2:5]
    assert [dict(p) for p in sweep.shard(1, 3)] == expected[2:4]
    assert sweep[3].text("Y") == "q"
    assert sweep.arrays(0, 6)["Y"].tolist() == [e["Y"] for e in expected]


def test_a_linked_group_takes_the_position_of_its_first_member() -> None:
    sweep = Sweep(["A=range:0,2", "B=range:0,3", "C=range:10,13"], link=[("C", "B")])
    # C leads the group, so the group is the fastest digit; A stays slowest.
    assert [(p["A"], p["B"], p["C"]) for p in sweep] == [
        (a, b, b + 10) for a in range(2) for b in range(3)
    ]


def test_linked_sweeps_stay_lazy_at_any_size() -> None:
    n = 10**30
    sweep = Sweep([f"X=range:0,{n}", f"Y=range:{n},{2 * n}", "Z=case:a,b"], link=[("X", "Y")])
    assert sweep.size == 2 * n
    point = sweep[2 * n - 1]
    assert (point["X"], point["Y"], point["Z"]) == (n - 1, 2 * n - 1, "b")
    assert [p["Y"] - p["X"] for p in sweep.shard(7, 10)[:4]] == [n] * 4


def test_linking_axes_of_different_lengths_names_both_lengths() -> None:
    with pytest.raises(SweepError) as caught:
        Sweep(["X=range:0,3", "Y=case:a,b"], link=[("X", "Y")])
    assert caught.value.message == (
        "cannot link X and Y: X has 3 values but Y has 2; "
        "linked axes advance together, so they need the same length"
    )
    assert caught.value.source == "Y=case:a,b"


@pytest.mark.parametrize(
    ("link", "message"),
    [
        ([("X", "Q")], "cannot link 'Q': no range defines it (the sweep defines: X, Y, Z)"),
        ([("X", "y")], "did you mean 'Y'?"),
        ([("X",)], "a link needs at least two names"),
        ([("X", "Y"), ("Z", "Y")], "'Y' is linked twice"),
        ([("X", "Y"), ("Y", "Z")], "'Y' is linked twice"),
    ],
)
def test_bad_links(link: list[tuple[str, ...]], message: str) -> None:
    with pytest.raises(SweepError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Sweep(["X=range:0,2", "Y=range:0,2", "Z=range:0,2"], link=link)


# -- filters ----------------------------------------------------------------------------


def test_a_filtered_sweep_keeps_indices_and_bounds_its_size() -> None:
    sweep = Sweep(["X=range:0,4", "Y=range:0,4", "M=case:small,big"])
    kept = sweep.where('X < Y and M != "small"')
    assert isinstance(kept, FilteredSweep)
    assert kept.is_filtered and not sweep.is_filtered
    assert kept.max_size == sweep.size == 32
    expected = [(p.index, dict(p)) for p in sweep if p["X"] < p["Y"] and p["M"] != "small"]
    assert _rows(kept) == expected
    assert kept.count_kept() == len(expected) == 6
    # Slices and shards cut the unfiltered positions, then filter.
    assert _rows(kept[10:20]) == [r for r in expected if 10 <= r[0] < 20]
    assert _rows(kept.shard(1, 2)) == [r for r in expected if r[0] >= 16]
    assert kept.arrays(0, 8)["Y"].tolist() == [1, 2, 3]


def test_filters_combine_and_count_reports_progress() -> None:
    sweep = Sweep(["X=range:0,10000"])
    both = sweep.where("X % 2 == 0").where("X < 100")
    assert [p["X"] for p in both] == list(range(0, 100, 2))
    seen: list[tuple[int, int]] = []
    assert both.count_kept(lambda s, k: seen.append((s, k))) == 50
    assert seen[-1] == (10000, 50)


def test_filter_errors_are_found_before_any_point_is_read() -> None:
    sweep = Sweep(["X=range:0,3", "MODEL=case:a,b"])
    with pytest.raises(ParseError, match="unknown variable 'Y'"):
        sweep.where("X < Y")
    with pytest.raises(ParseError, match="expected a value"):
        sweep.where("X <")


def test_a_type_clash_names_the_point() -> None:
    kept = Sweep(["X=linspace:0,1,3", "MODEL=case:a,b"]).where("MODEL < X")
    with pytest.raises(EvaluationError) as caught:
        list(kept)
    assert caught.value.message == (
        "filter failed at point 0 (X=0.0, MODEL='a'): "
        "'<' is not defined between str 'a' and float 0.0"
    )


@settings(max_examples=60, deadline=None)
@given(
    a=st.integers(1, 6),
    b=st.integers(1, 6),
    cut=st.integers(-3, 8),
    op=st.sampled_from(["<", "<=", "==", "!=", ">"]),
    start=st.integers(0, 40),
    stop=st.integers(0, 40),
)
def test_a_filtered_sweep_is_the_sweep_filtered_in_python(
    *, a: int, b: int, cut: int, op: str, start: int, stop: int
) -> None:
    """Law: sweep.where(e) == [p for p in sweep if e(p)], also for slices and shuffles."""
    sweep = Sweep([f"X=range:0,{a}", f"Y=arange:0,{b}", "L=case:u,v"])
    expr = f"X + Y {op} {cut} or L == 'v' and X == Y"

    def holds(p: dict[str, object]) -> bool:
        x, y = p["X"], p["Y"]
        assert isinstance(x, int) and isinstance(y, int)
        left = x + y
        cmp = {"<": left < cut, "<=": left <= cut, "==": left == cut}
        cmp |= {"!=": left != cut, ">": left > cut}
        return cmp[op] or (p["L"] == "v" and x == y)

    assert _rows(sweep.where(expr)) == [r for r in _rows(sweep) if holds(r[1])]
    assert _rows(sweep.where(expr)[start:stop]) == [
        r for r in _rows(sweep[start:stop]) if holds(r[1])
    ]
    assert _rows(sweep.where(expr).shuffled(7)) == [
        r for r in _rows(sweep.shuffled(7)) if holds(r[1])
    ]


# -- shuffle and sample -----------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 1000, 4097])
def test_a_shuffled_sweep_visits_every_point_once_and_agrees_with_random_access(
    size: int,
) -> None:
    sweep = Sweep([f"X=range:0,{size}", "Y=case:a,b"])
    shuffled = sweep.shuffled("s")
    assert isinstance(shuffled, ShuffledSweep)
    rows = _rows(shuffled)
    assert sorted(rows, key=lambda r: r[0]) == _rows(sweep)
    assert [(shuffled[i].index, dict(shuffled[i])) for i in range(shuffled.size)] == rows
    assert _rows(shuffled[3:50:2]) == rows[3:50:2]
    parts = [_rows(shuffled.shard(k, 3)) for k in range(3)]
    assert parts[0] + parts[1] + parts[2] == rows
    assert shuffled.arrays(0, 10)["X"].tolist() == [r[1]["X"] for r in rows[:10]]
    assert shuffled[-1].index == rows[-1][0]


def test_the_shuffle_of_a_slice_or_linked_sweep_is_a_permutation_of_it() -> None:
    sweep = Sweep(["X=range:0,50", "Y=range:0,50", "Z=range:0,50"], link=[("X", "Z")])
    part = sweep[100:2000:3]
    assert sorted(_rows(part.shuffled(1))) == _rows(part)
    assert sorted(_rows(sweep.shuffled(2))) == _rows(sweep)


def test_a_huge_shuffled_sweep_keeps_random_access() -> None:
    sweep = Sweep(["X=range:0,1000000000000000", "Y=range:0,1000000000000000"])
    shuffled = sweep.shuffled(42)
    assert shuffled.size == 10**30
    first = list(itertools.islice(shuffled, 5))
    assert [shuffled[i].index for i in range(5)] == [p.index for p in first]
    assert shuffled[10**30 - 1].index < 10**30
    assert list(shuffled.shard(999, 1000)[:2]) == [shuffled[999 * 10**27 + i] for i in range(2)]


def test_the_same_seed_gives_the_same_order_and_int_seeds_equal_their_text() -> None:
    sweep = Sweep(["X=range:0,100"])
    assert _rows(sweep.shuffled(5)) == _rows(sweep.shuffled("5"))
    assert _rows(sweep.shuffled(5)) != _rows(sweep.shuffled(6))


def test_a_sample_is_the_first_k_of_the_shuffle() -> None:
    sweep = Sweep(["X=range:0,1000", "Y=case:a,b,c"])
    sample = sweep.sample(50, seed=9)
    rows = _rows(sample)
    assert rows == _rows(sweep.shuffled(9))[:50]
    assert len({r[0] for r in rows}) == 50
    assert sample.size == 50
    assert _rows(sample.shard(1, 2)) == rows[25:]
    assert sweep.sample(0, 1).size == 0
    assert sweep.sample(3000, 1).size == 3000


def test_sampling_more_than_the_sweep_holds_is_an_error() -> None:
    with pytest.raises(SweepError, match="cannot sample 11 distinct points from a sweep of 10"):
        Sweep(["X=range:0,10"]).sample(11, 0)
    with pytest.raises(SweepError, match="whole number"):
        Sweep(["X=range:0,10"]).sample(-1, 0)


def test_a_sample_of_a_filtered_sweep_has_k_kept_points() -> None:
    sweep = Sweep(["X=range:0,100"])
    sample = sweep.where("X % 10 == 0").sample(4, 3)
    rows = _rows(sample)
    assert len(rows) == 4
    assert all(r[1]["X"] % 10 == 0 for r in rows)
    assert rows == [r for r in _rows(sweep.shuffled(3)) if r[1]["X"] % 10 == 0][:4]
    assert sample.is_filtered and sample.count_kept() == 4
    assert list(sweep.where("X > 97").sample(5, 3)) == list(sweep.where("X > 97").shuffled(3))
    with pytest.raises(SweepError, match="no random access"):
        sample.shard(0, 2)
    # Refused when asked, not later on the first point of an iteration.
    with pytest.raises(SweepError, match="no random access"):
        sample.shuffled(1)
    with pytest.raises(SweepError, match="no random access"):
        sample.sample(2, 1)


def test_sampling_is_roughly_uniform() -> None:
    # 10 000 draws from 10**12 points, counted in 20 bins of X; 43.82 is the 0.999
    # quantile of chi-square with 19 degrees of freedom.
    sweep = Sweep(["X=range:0,1000000", "Y=range:0,1000000"])
    counts = [0] * 20
    for point in sweep.sample(10_000, seed=1):
        x = point["X"]
        assert isinstance(x, int)
        counts[x * 20 // 1_000_000] += 1
    expected = 10_000 / 20
    assert sum((c - expected) ** 2 / expected for c in counts) < 43.82


@pytest.mark.parametrize(
    "expr",
    [
        "A=range:-5,1000000000,7",
        "A=arange:0.5,70000.5,0.25",
        "A=arange:0,300000",
        "A=linspace:-1,1,100001",
        "A=logspace:0,3,70001",
        "A=geomspace:1,1000,70001",
    ],
)
def test_batch_decoding_of_large_axes_equals_random_access(expr: str) -> None:
    # Large axes are decoded with numpy in batches; values and types must be exactly those
    # of random access (Axis._at), for every kind.
    sweep = Sweep([expr, "B=case:1,x,2.5"])
    shuffled = sweep.shuffled(3)
    head = list(itertools.islice(shuffled, 3000))
    for point in head[::7]:
        expected = sweep[point.index]
        assert dict(point) == dict(expected)
        assert [type(v) for v in point.values()] == [type(v) for v in expected.values()]
    linked = Sweep([expr, expr.replace("A=", "C=")], link=[("A", "C")])
    for point in itertools.islice(linked[5000:], 0, 3000, 11):
        expected = linked[point.index]
        assert dict(point) == dict(expected)
        assert [type(v) for v in point.values()] == [type(v) for v in expected.values()]


# -- the command line: RunSpec (rangeexpr/_spec.py) builds the same views -----------------


def test_a_run_spec_builds_the_same_sweep_as_the_library() -> None:
    exprs = ("X=range:0,20", "Y=range:0,20", "M=case:a,b")
    plain = Sweep(exprs)
    spec = RunSpec(exprs, link=(("X", "Y"),), where="X % 2 == 0", shuffle="7")
    expected = Sweep(exprs, link=[("X", "Y")]).where("X % 2 == 0").shuffled(7)
    assert _rows(spec.selected()) == _rows(expected)
    assert spec.identity()["link"] == [["X", "Y"]]
    assert (spec.identity()["where"], spec.identity()["shuffle"]) == ("X % 2 == 0", "7")
    assert _rows(RunSpec(exprs, sample=5, seed="3").selected()) == _rows(plain.sample(5, 3))
    # a sample takes --shuffle's seed when --seed is not given, and seed 0 without either
    assert _rows(RunSpec(exprs, sample=5, shuffle="3").selected()) == _rows(plain.sample(5, 3))
    assert _rows(RunSpec(exprs, sample=5).selected()) == _rows(plain.sample(5))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"seed": "3"}, "--seed goes with --sample K"),
        ({"sample": 2, "seed": "3", "shuffle": "4"}, "disagree"),
        ({"where": "Q > 1"}, "unknown variable 'Q'"),
        ({"link": (("X", "Q"),)}, "cannot link 'Q'"),
        ({"sample": 500}, "cannot sample 500 distinct points from a sweep of 40"),
    ],
)
def test_bad_view_options(options: dict[str, object], message: str) -> None:
    spec = RunSpec(("X=range:0,20", "Y=case:a,b"), **options)  # type: ignore[arg-type]  # mixed value types
    with pytest.raises(RangeExprError, match=message):
        spec.selected()


def test_count_points_scans_only_filtered_sweeps(capsys: pytest.CaptureFixture[str]) -> None:
    sweep = Sweep(["X=range:0,10000", "Y=case:a,b"])
    assert count_points(sweep) == 20000
    assert count_points(sweep.where("X < 10"), show_progress=True) == 20
    assert count_points(sweep.where("X < 10"), show_progress=False) == 20
    assert count_points(sweep.where("X < 10").sample(5, 1)) == 5
    assert list(reversed(sweep.where("X < 2"))) == list(sweep.where("X < 2"))[::-1]
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("argv", [["--link", "X"], ["--sample", "-1"], ["--sample", "x"]])
def test_malformed_view_options_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["expand", "X=range:3", *argv])
    assert caught.value.code == 2


# -- end to end: run --where --shuffle, killed, then --resume ----------------------------

_REPO = Path(__file__).resolve().parents[1]
_E2E_EXPRS = ["X=range:0,60", "Y=case:a,b"]
_E2E_WHERE = "X % 3 != 0 and Y == 'a'"


def _rangeexpr(*argv: str) -> list[str]:
    return [sys.executable, "-m", "rangeexpr", *argv]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(_REPO)}


def _succeeded(log: Path) -> list[int]:
    indices = []
    for line in log.read_text(encoding="utf-8").splitlines()[1:]:
        with contextlib.suppress(ValueError):  # a line cut short by the kill
            record = json.loads(line)
            if record.get("status") == "succeeded":
                indices.append(int(record["index"]))
    return indices


@pytest.mark.slow
def test_run_where_shuffle_resumes_after_a_kill_and_runs_each_kept_point_once(
    tmp_path: Path,
) -> None:
    log = tmp_path / "log.jsonl"
    argv = [
        "run",
        *(a for e in _E2E_EXPRS for a in ("-r", e)),
        "--where",
        _E2E_WHERE,
        "--shuffle",
        "11",
        "--exec",
        "sleep 0.05",
        "-j",
        "4",
        "--joblog",
        str(log),
        "--no-progress",
    ]
    first = subprocess.Popen(
        _rangeexpr(*argv),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(600):  # until a dozen jobs are logged (60 s at most)
            if log.exists() and len(_succeeded(log)) >= 12:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the first run logged too few jobs")
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the runner and its jobs, as a crash would
        first.wait()
    done_before = _succeeded(log)
    sweep = Sweep(_E2E_EXPRS).where(_E2E_WHERE)
    kept = [p.index for p in sweep.shuffled(11)]
    assert len(kept) == 40
    assert len(done_before) < len(kept), "the kill came too late to test resuming"

    second = subprocess.run(
        _rangeexpr(*argv, "--resume"), env=_env(), capture_output=True, text=True, check=False
    )
    assert second.returncode == 0, second.stderr
    done = _succeeded(log)
    assert sorted(done) == sorted(kept), "every kept point exactly once, and nothing else"
    # The resumed run went on in the shuffled order: what it ran is the rest of `kept`.
    resumed = done[len(done_before) :]
    assert sorted(resumed, key=kept.index) == [i for i in kept if i not in done_before]

    other = subprocess.run(
        _rangeexpr(*[a if a != "11" else "12" for a in argv], "--resume"),
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    # Another shuffle seed is another order of the same points: resume by values finds
    # every kept point done.
    assert other.returncode == 0, other.stderr
    assert "nothing left to run" in other.stderr
