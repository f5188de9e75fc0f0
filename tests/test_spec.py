"""The run specification: identity as old job logs hold it, JSON, mappings, node argv, views."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rangeexpr import RangeExprError, Sweep
from rangeexpr._cli import parse_args
from rangeexpr._cli._options import spec_from_args
from rangeexpr._spec import RunSpec

REPO = Path(__file__).resolve().parents[1]
# Job-log headers written by the CLI before the RunSpec (commit e6c5836): the argv of each
# run, the header's "source", runner._ray.sweep_identity(source) and the node command line
# runner._ray.node_run_command(source, 2, 5, jobs=3, timeout=node_timeout) gave.
HEADERS = [
    json.loads(line)
    for line in (REPO / "tests" / "data" / "joblog_headers.jsonl").read_text().splitlines()
]
IDS = [case["why"] for case in HEADERS]


def spec_of(*argv: str) -> RunSpec:
    return spec_from_args(parse_args(["run", *argv]))


def test_the_golden_headers_were_found() -> None:
    assert len(HEADERS) >= 8


@pytest.mark.parametrize("case", HEADERS, ids=IDS)
def test_identity_is_the_source_old_job_logs_hold(case: dict[str, Any]) -> None:
    spec = spec_of(*case["argv"])
    assert spec.identity() == case["source"]
    assert list(spec.identity()) == list(case["source"])  # the same keys, in the same order
    assert spec.sweep_id() == case["sweep_id"]


@pytest.mark.parametrize("case", HEADERS, ids=IDS)
def test_node_argv_is_the_old_node_command(case: dict[str, Any]) -> None:
    spec = spec_of(*case["argv"])
    argv = spec.node_argv(
        2, 5, jobs=3, joblog="$d/log", results="$d/out", timeout=case["node_timeout"]
    )
    assert argv == shlex.split(case["node_command"])


def test_a_job_log_written_before_the_run_spec_resumes(tmp_path: Path) -> None:
    case = next(c for c in HEADERS if c["why"] == "link, where, shuffle")
    header = {
        "format": "rangeexpr-joblog/1",
        "source": case["source"],
        "size": 9,
        "version": "0.1.0",
        "started": "2026-12-01T22:51:30+00:00",
    }
    log = tmp_path / "log"
    log.write_text(json.dumps(header) + "\n")
    argv = [*case["argv"], "--joblog", str(log), "--resume", "--no-progress"]
    result = subprocess.run(
        [sys.executable, "-m", "rangeexpr", "run", *argv],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("rangeexpr: 2 succeeded, 0 failed, 0 skipped in ")
    # A wider --where resumes by values: only the newly kept point runs.
    other = [a.replace("X < 2", "X < 3") for a in argv]
    grown = subprocess.run(
        [sys.executable, "-m", "rangeexpr", "run", *other],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=60,
    )
    assert grown.returncode == 0, grown.stderr
    assert grown.stderr.startswith("rangeexpr: 1 succeeded, 0 failed, 2 skipped in ")


# -- JSON and plain mappings ---------------------------------------------------------------

_text = st.text(max_size=12)
_name = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True).filter(
    lambda n: not n.startswith("RANGEEXPR_")
)
_seconds = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False)
_shards = st.integers(1, 50).flatmap(lambda n: st.tuples(st.integers(0, n - 1), st.just(n)))
_env = st.dictionaries(_name, _text, max_size=3).map(lambda d: tuple(d.items()))
_link = st.lists(st.lists(_name, min_size=2, max_size=3).map(tuple), max_size=2).map(tuple)
_bound = st.none() | st.integers(-(10**30), 10**30)

specs = st.builds(
    RunSpec,
    exprs=st.lists(_text, max_size=3).map(tuple),
    link=_link,
    where=st.none() | _text,
    shuffle=st.none() | _text,
    sample=st.none() | st.integers(0, 10**20),
    seed=st.none() | _text,
    slice=st.none() | st.tuples(_bound, _bound),
    shard=st.none() | _shards,
    command=st.none() | _text,
    env=_env,
    shell=st.booleans(),
    jobs=st.integers(1, 10**6),
    retries=st.integers(0, 100),
    timeout=st.none() | _seconds,
    halt=st.none() | _text,
    joblog=st.none() | _text,
    resume=st.booleans(),
    results=st.none() | _text,
    dry_run=st.booleans(),
    progress=st.booleans(),
    keep_leftovers=st.booleans(),
    backend=st.sampled_from(["local", "ray"]),
    address=st.none() | _text,
    per_job=st.integers(1, 1000),
    entrypoint_num_cpus=_seconds,
)


@given(specs)
def test_json_round_trip_gives_an_equal_spec(spec: RunSpec) -> None:
    """Law: from_json(to_json(s)) == s, and the JSON holds every field by name."""
    text = spec.to_json()
    assert RunSpec.from_json(text) == spec
    assert set(json.loads(text)) == set(RunSpec.__dataclass_fields__)


def test_from_mapping_takes_toml_shapes() -> None:
    spec = RunSpec.from_mapping(
        {
            "exprs": ["X=range:3"],
            "link": [["X", "Y"]],
            "env": {"A": "$X", "B": "b"},
            "timeout": 5,
            "slice": [1, None],
            "shard": [0, 2],
        }
    )
    assert spec == RunSpec(
        ("X=range:3",),
        link=(("X", "Y"),),
        env=(("A", "$X"), ("B", "b")),
        timeout=5.0,
        slice=(1, None),
        shard=(0, 2),
    )


def test_from_mapping_refuses_an_unknown_key_listing_the_known_ones() -> None:
    with pytest.raises(RangeExprError) as info:
        RunSpec.from_mapping({"exprs": ["X=range:3"], "job": 4})
    message = str(info.value)
    assert message.startswith("run spec: unknown key 'job'; did you mean 'jobs'? (known: exprs, ")
    assert ", per_job, entrypoint_num_cpus, " in message and message.endswith(")")
    with pytest.raises(RangeExprError, match="exprs is required"):
        RunSpec.from_mapping({"jobs": 4})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # why: a bool is an int to Python, not a count of jobs
        ({"jobs": True}, "run spec: jobs must be a whole number >= 1, not True"),
        ({"jobs": 0}, "run spec: jobs must be a whole number >= 1, not 0"),
        ({"retries": -1}, "run spec: retries must be a whole number >= 0, not -1"),
        ({"timeout": float("inf")}, "run spec: timeout must be a positive number of seconds"),
        ({"shard": [2, 2]}, "run spec: shard must be [K, N] with 0 <= K < N, or null"),
        ({"link": [["X"]]}, "run spec: link must be a list of groups of two or more axis names"),
        ({"backend": "slurmm"}, "run spec: backend must be one of local, ray, slurm, not 'slurmm'"),
        ({"exprs": "X=range:3"}, "run spec: exprs must be a list of range expressions"),
        # why: the same checks as -e on the command line
        ({"env": {"RANGEEXPR_INDEX": "1"}}, "-e RANGEEXPR_INDEX: names starting with RANGEEXPR_"),
        ({"env": [["A", "1"], ["A", "2"]]}, "-e A is given twice ('A=1', then 'A=2')"),
        ({"env": {"not a name": "1"}}, "-e takes NAME=TEMPLATE, got 'not a name=1'"),
    ],
)
def test_a_bad_field_is_named(data: dict[str, Any], message: str) -> None:
    with pytest.raises(RangeExprError) as info:
        RunSpec.from_mapping({"exprs": ["X=range:3"], **data})
    assert str(info.value).startswith(message)


def test_bad_json_and_huge_values_are_short_errors() -> None:
    with pytest.raises(RangeExprError, match=r"^run spec: not JSON: Expecting"):
        RunSpec.from_json("{")
    with pytest.raises(RangeExprError, match=r"^run spec: expected a JSON object$"):
        RunSpec.from_json("[]")
    with pytest.raises(RangeExprError) as info:
        RunSpec.from_mapping({"exprs": ["X=range:3"], "jobs": "9" * 100_000})
    assert len(str(info.value)) < 200


# -- the sweep it selects ------------------------------------------------------------------


def _rows(points: Any) -> list[tuple[int, dict[str, Any]]]:
    return [(p.index, dict(p)) for p in points]


def test_selected_is_the_library_composition() -> None:
    exprs = ["X=range:0,20", "Y=range:0,20", "M=case:a,b"]
    spec = spec_of(*exprs, "--link", "X,Y", "--where", "X % 2 == 0", "--shuffle", "7",
                   "--slice", "2:", "--shard", "1/3", "--exec", "true")  # fmt: skip
    library = Sweep(exprs, link=[("X", "Y")]).where("X % 2 == 0").shuffled(7)[2:].shard(1, 3)
    assert _rows(spec.selected()) == _rows(library)
    plain = Sweep(exprs)
    assert _rows(spec_of(*exprs, "--sample", "5", "--seed", "3").selected()) == _rows(
        plain.sample(5, 3)
    )
    # a sample takes --shuffle's seed when --seed is not given, and seed 0 without either
    assert _rows(spec_of(*exprs, "--sample", "5", "--shuffle", "3").selected()) == _rows(
        plain.sample(5, 3)
    )
    assert _rows(spec_of(*exprs, "--sample", "5").selected()) == _rows(plain.sample(5))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"resume": True}, "--resume needs --joblog FILE"),
        ({"per_job": 2}, "--address and --per-job apply only to --backend ray"),
        ({"backend": "ray", "keep_leftovers": True}, "--keep-leftovers applies only to"),
        ({"halt": "sometimes"}, "--halt must be 'never', 'now', 'soon'"),
    ],
)
def test_check_run_refuses_options_that_contradict(data: dict[str, Any], message: str) -> None:
    spec = RunSpec.from_mapping({"exprs": ["X=range:3"], **data})
    with pytest.raises(RangeExprError, match=message):
        spec.check_run()


def test_the_selection_is_shown_as_options() -> None:
    spec = spec_of("X=range:3", "--slice=-1:", "--shard", "0/2", "--where", "X > 1",
                   "--sample", "1", "--exec", "true")  # fmt: skip
    assert spec.selection() == "--slice -1: --shard 0/2 --where 'X > 1' --sample 1"
    assert spec_of("X=range:3", "--exec", "true").selection() == "the sweep"
