"""Sweep files: ``rangeexpr run|check|expand sweep.toml``, flags over the file, errors in it."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli_run import cli

from rangeexpr._cli import parse_args
from rangeexpr._cli._options import spec_from_args
from rangeexpr._errors import RangeExprError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "tests" / "data" / "sweep_example.toml"


def spec(*argv: str):  # type: ignore[no-untyped-def]
    return spec_from_args(parse_args(argv))


def test_the_file_and_the_command_line_expand_to_the_same_points(tmp_path: Path) -> None:
    from_file = cli("expand", str(EXAMPLE), cwd=tmp_path)
    assert from_file.returncode == 0, from_file.stderr
    flags = cli(
        "expand", "-r", "MODEL=case:small,big", "-r", "LR=logspace:-3,-1,3", "-r", "SEED=range:2",
        "--where", "not (MODEL == 'big' and LR > 0.01)", cwd=tmp_path,
    )  # fmt: skip
    assert flags.returncode == 0, flags.stderr
    assert from_file.stdout == flags.stdout
    assert len(from_file.stdout.splitlines()) == 10


def test_check_on_a_file_shows_the_same_table(tmp_path: Path) -> None:
    from_file = cli("check", str(EXAMPLE), cwd=tmp_path)
    flags = cli(
        "check", "-r", "MODEL=case:small,big", "-r", "LR=logspace:-3,-1,3", "-r", "SEED=range:2",
        "--where", "not (MODEL == 'big' and LR > 0.01)",
        "--exec", "echo train --lr $LR --seed $SEED --out runs/$MODEL", cwd=tmp_path,
    )  # fmt: skip
    assert from_file.returncode == 0, from_file.stderr
    assert (from_file.stdout, from_file.stderr) == (flags.stdout, flags.stderr)
    assert "at most 12 points" in from_file.stdout


def test_flags_override_the_file() -> None:
    s = spec(
        "run", str(EXAMPLE), "-r", "SEED=range:5", "-r", "X=range:2", "-j", "7", "--where", "X > 0"
    )
    assert s.exprs == ("MODEL=case:small,big", "LR=logspace:-3,-1,3", "SEED=range:5", "X=range:2")
    assert (s.jobs, s.where, s.joblog) == (7, "X > 0", "sweep.jsonl")
    assert s.command == "echo train --lr $LR --seed $SEED --out runs/$MODEL"
    assert spec("run", str(EXAMPLE)).jobs == 2  # the file's, not the default


def test_run_on_a_file_runs_its_command(tmp_path: Path) -> None:
    result = cli("run", "--no-progress", str(EXAMPLE), "--where", "SEED == 0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines())[0] == "train --lr 0.001 --seed 0 --out runs/big"
    assert (tmp_path / "sweep.jsonl").exists()  # the file's joblog


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'exec = "echo $X"\n[ranges]\nX = "rang:3"\n',
            "f.toml:3:6: unknown kind 'rang'",
        ),
        ('exec = "echo $Y"\n[ranges]\nX = "range:3"\n', "f.toml:1:14: $Y is not defined"),
        (
            'exec = "echo $X"\njob = 3\n[ranges]\nX = "range:3"\n',
            "f.toml:2:1: run spec: unknown key 'job'",
        ),
        (
            'exec = "echo $X"\njobs = 0\n[ranges]\nX = "range:3"\n',
            "f.toml:2:1: run spec: jobs must be",
        ),
        ('exec = "echo $X"\n[ranges]\nX = range\n', "f.toml:3:5: Invalid value"),
        ("[ranges]\nX = 3\n", "f.toml:2:1: X must be a range"),
    ],
)
def test_errors_point_into_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "f.toml"
    path.write_text(text)
    with pytest.raises(RangeExprError) as info:
        spec("check", str(path))
    assert str(info.value).startswith(f"{path}:{message.removeprefix('f.toml:')}")
    line = int(message.split(":")[1])
    assert f"\n    {text.splitlines()[line - 1]}\n" in str(info.value)  # the line, marked


def test_a_missing_file_is_a_clean_error(tmp_path: Path) -> None:
    result = cli("check", "nope.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("rangeexpr: error: cannot read the sweep file nope.toml:")


def test_version(tmp_path: Path) -> None:
    result = cli("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("rangeexpr ")


def test_workdir_runs_each_job_in_its_own_directory(tmp_path: Path) -> None:
    result = cli(
        "run", "--no-progress", "-r", "X=range:2", "--workdir", "runs/x$X",
        "--exec", "sh -c 'pwd > where'", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for x in (0, 1):
        assert (tmp_path / "runs" / f"x{x}" / "where").read_text().strip().endswith(f"runs/x{x}")
    bad = cli("run", "-r", "X=range:2", "--workdir", "runs/$Y", "--exec", "true $X", cwd=tmp_path)
    assert bad.returncode == 2
    assert "$Y is not defined" in bad.stderr
