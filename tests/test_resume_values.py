"""``--resume`` by values: a grown, narrowed, reordered or re-sharded sweep reuses its log."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from test_cli_run import run

from rangeexpr import Sweep
from rangeexpr._cli._resume import Done, _read
from rangeexpr._errors import RangeExprError
from rangeexpr._spec import RunSpec
from runner import read_joblog

# every job appends its values to `ran`: how many times each point ran
EXEC = ("--exec", "sh -c 'echo $LR $SEED >> ran'")


def ran(cwd: Path) -> Counter[str]:
    return Counter((cwd / "ran").read_text().splitlines())


def lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_a_sweep_extended_by_one_seed_runs_only_the_new_points(tmp_path: Path) -> None:
    first = run(
        "-r", "LR=case:0.1,0.2", "-r", "SEED=range:3", "--joblog", "log", *EXEC, cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr
    grown = run(
        "-r", "LR=case:0.1,0.2", "-r", "SEED=range:4", "--joblog", "log", "--resume", *EXEC,
        cwd=tmp_path,
    )  # fmt: skip
    assert grown.returncode == 0, grown.stderr
    assert "2 succeeded, 0 failed, 6 skipped" in grown.stderr
    assert ran(tmp_path) == {f"{lr} {s}": 1 for lr in ("0.1", "0.2") for s in range(4)}
    # the grown run started with its own header; the log holds both runs
    headers = [line for line in lines(tmp_path / "log") if "format" in line]
    assert [h["source"]["exprs"] for h in headers] == [
        ["LR=case:0.1,0.2", "SEED=range:3"],
        ["LR=case:0.1,0.2", "SEED=range:4"],
    ]


def test_reordered_narrowed_and_resharded_sweeps_reuse_the_log(tmp_path: Path) -> None:
    base = ("--joblog", "log", *EXEC)
    first = run("-r", "LR=case:0.1,0.2", "-r", "SEED=range:3", *base, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    for args in (
        ("-r", "SEED=range:3", "-r", "LR=case:0.1,0.2"),  # reordered: other indices
        ("-r", "LR=case:0.1,0.2", "-r", "SEED=range:3", "--where", "SEED < 2"),  # narrowed
        ("-r", "SEED=range:3", "-r", "LR=case:0.1,0.2", "--shard", "1/2"),  # re-sharded
    ):
        again = run(*args, *base, "--resume", cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert "nothing left to run" in again.stderr
    assert set(ran(tmp_path).values()) == {1}


def test_a_log_that_shares_nothing_is_refused(tmp_path: Path) -> None:
    first = run(
        "-r", "LR=case:0.1,0.2", "-r", "SEED=range:2", "--joblog", "log", *EXEC, cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr
    other = run(
        "-r", "LR=case:0.1,0.2", "-r", "SEED=range:2", "--joblog", "log", "--resume",
        "--exec", "true $LR $SEED", cwd=tmp_path,
    )  # fmt: skip
    assert other.returncode == 2
    assert other.stderr.startswith(
        "rangeexpr: error: cannot resume: log is the job log of a different sweep (different exec)"
    )
    renamed = run(
        "-r", "LR=case:0.1,0.2", "-r", "S=range:2", "--joblog", "log", "--resume",
        "--exec", "sh -c 'echo $LR $S >> ran'", cwd=tmp_path,
    )  # fmt: skip
    assert renamed.returncode == 2
    assert "(different exec, variables)" in renamed.stderr


def test_dry_run_resume_says_how_many_are_done(tmp_path: Path) -> None:
    first = run(
        "-r", "LR=case:0.1,0.2", "-r", "SEED=range:3", "--joblog", "log", *EXEC, cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr
    dry = run(
        "-r", "LR=case:0.1,0.2", "-r", "SEED=range:5", "--joblog", "log", "--resume",
        "--dry-run", *EXEC, cwd=tmp_path,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert len(dry.stdout.splitlines()) == 4
    assert dry.stderr.endswith(
        "rangeexpr: 6 of 10 points done (the job log records them as succeeded), 4 to run\n"
    )


def test_a_sharded_run_records_its_shard(tmp_path: Path) -> None:
    result = run(
        "-r",
        "SEED=range:4",
        "--shard",
        "1/2",
        "--joblog",
        "log",
        "--exec",
        "true $SEED",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert lines(tmp_path / "log")[0]["shard"] == [1, 2]


# -- the lookup, in process --------------------------------------------------------------


def _log(path: Path, source: dict[str, Any], records: list[dict[str, Any]]) -> None:
    head = {"format": "rangeexpr-joblog/1", "source": source}
    path.write_text("".join(json.dumps(r) + "\n" for r in [head, *records]))


def _done(path: Path, spec: RunSpec) -> Done:
    return _read(path, spec, spec.sweep(), lambda **kw: read_joblog(path, **kw).end)


def test_values_match_by_type_and_only_succeeded_records_count(tmp_path: Path) -> None:
    spec = RunSpec(exprs=("X=range:-3,3",), command="echo $X")
    source = spec.identity()
    _log(
        tmp_path / "log",
        source,
        [
            {"index": 0, "values": {"X": -1}, "status": "succeeded"},
            {"index": 1, "values": {"X": -2}, "status": "failed"},
            {"index": 2, "values": {"X": 2.0}, "status": "succeeded"},  # a float is not 2
            {"index": 9, "values": {"X": 1, "Y": 1}, "status": "succeeded"},  # other names
        ],
    )
    done = _done(tmp_path / "log", spec)
    assert [p["X"] for p in Sweep(["X=range:-3,3"]) if p in done] == [-1]


def test_records_after_a_header_of_another_command_do_not_count(tmp_path: Path) -> None:
    spec = RunSpec(exprs=("X=range:3",), command="echo $X")
    other = RunSpec(exprs=("X=range:3",), command="true $X").identity()
    log = tmp_path / "log"
    _log(log, spec.identity(), [{"index": 0, "values": {"X": 0}, "status": "succeeded"}])
    with log.open("a") as f:
        f.write(json.dumps({"format": "rangeexpr-joblog/1", "source": other}) + "\n")
        f.write(json.dumps({"index": 1, "values": {"X": 1}, "status": "succeeded"}) + "\n")
    done = _done(log, spec)
    assert [p["X"] for p in spec.sweep() if p in done] == [0]
    assert done.last_source == other


def test_a_log_of_other_variables_is_refused(tmp_path: Path) -> None:
    spec = RunSpec(exprs=("X=range:3",), command="echo $X")
    _log(tmp_path / "log", {**spec.identity(), "exprs": ["Y=range:3"]}, [])
    with pytest.raises(RangeExprError, match=r"different sweep \(different variables\)"):
        _done(tmp_path / "log", spec)
