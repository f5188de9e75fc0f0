"""Making jobs (rangeexpr/_jobs.py): one factory for plain jobs, requests, derived values,
runtime variables and --workdir, and the job log showing what a late-rendered job ran."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from test_cli_run import cli, records, run

from rangeexpr import RangeExprError, Sweep
from rangeexpr._backends import make_backend
from rangeexpr._cli._options import parser, spec_from_args
from rangeexpr._jobs import make_jobs, runtime_names
from rangeexpr._requests import Requests
from rangeexpr._template import Command, Template


def test_a_plain_job_is_made_as_before() -> None:
    sweep = Sweep(["X=case:a,b", "Y=range:2"])
    jobs = list(make_jobs(sweep, Command("echo $X $Y"), {"E": Template("e$Y")}))
    assert [(j.index, j.argv, j.command) for j in jobs[:2]] == [
        (0, ("echo", "a", "0"), "echo a 0"),
        (1, ("echo", "a", "1"), "echo a 1"),
    ]
    assert jobs[1].env == {"E": "e1", "RANGEEXPR_INDEX": "1", "RANGEEXPR_COUNT": "4"}
    assert all(j.finish is None and j.name == "" and not j.request.as_dict() for j in jobs)
    assert jobs[3].values == {"X": "b", "Y": 1}


def test_requests_skip_and_names_in_one_pass() -> None:
    class Counts:
        skipped = 0

    sweep = Sweep(["N=case:1,2", "S=range:3"])
    requests = Requests((("cpu", "$N"),), sweep, custom=False)
    done = {(2, 0)}

    class Skip:
        def __contains__(self, point: object) -> bool:
            return (point["N"], point["S"]) in done  # type: ignore[index]

    counts = Counts()
    jobs = list(
        make_jobs(
            sweep, Command("run $N $S"), {}, skip=Skip(), counts=counts, requests=requests,
            named=True,
        )
    )  # fmt: skip
    assert counts.skipped == 1
    assert [j.index for j in jobs] == [0, 1, 2, 4, 5]
    assert [j.request.as_dict() for j in jobs] == [{"cpu": 1}] * 3 + [{"cpu": 2}] * 2
    assert [j.name for j in jobs] == ["N=1,S=0", "N=1,S=1", "N=1,S=2", "N=2,S=1", "N=2,S=2"]


def test_a_late_job_is_finished_with_its_slot_in_its_own_directory(tmp_path: Path) -> None:
    sweep = Sweep(["X=case:a,b"])
    env = {"RUN": Template("$X-$RANGEEXPR_SLOT")}
    workdir = Template(f"{tmp_path}/runs/$RANGEEXPR_SLOT")
    (job,) = list(make_jobs(sweep[1:], Command("echo $RUN $RANGEEXPR_GPUS"), env, workdir=workdir))
    assert job.command == (
        f"cd -- '{tmp_path}/runs/$RANGEEXPR_SLOT' && echo 'b-$RANGEEXPR_SLOT' '$RANGEEXPR_GPUS'"
    )
    assert not (tmp_path / "runs").exists()  # made when the job starts, not before
    assert job.finish is not None
    ran = job.finish({"RANGEEXPR_SLOT": "3", "RANGEEXPR_GPUS": "0,1"})
    assert ran.command == f"cd -- {tmp_path}/runs/3 && echo b-3 0,1"
    assert ran.argv[-3:] == ("echo", "b-3", "0,1")
    assert ran.env["RUN"] == "b-3" and ran.finish is None
    assert (tmp_path / "runs" / "3").is_dir()


def test_runtime_names_include_the_workdir() -> None:
    command = Command("echo $X")
    assert runtime_names(command, {}) == frozenset()
    assert runtime_names(command, {}, Template("d/$RANGEEXPR_SLOT")) == {"RANGEEXPR_SLOT"}


def test_workdir_may_name_the_slot_and_the_log_shows_what_ran(tmp_path: Path) -> None:
    result = run(
        "-j", "2", "-r", "X=range:4", "-e", "TAG=x${X}_s$RANGEEXPR_SLOT", "--joblog", "log",
        "--workdir", "runs/$RANGEEXPR_SLOT", "--exec", "sh -c 'pwd > where_$X; echo $$TAG'",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    logged = records(tmp_path / "log")
    assert len(logged) == 4
    for record in logged:
        slot, x = record["resources"]["slot"], record["values"]["X"]
        assert "$RANGEEXPR" not in record["command"]
        assert record["command"] == f"cd -- runs/{slot} && sh -c 'pwd > where_{x}; echo $TAG'"
        where = (tmp_path / "runs" / str(slot) / f"where_{x}").read_text().strip()
        assert where == os.path.realpath(tmp_path / "runs" / str(slot))
    assert sorted(result.stdout.split()) == sorted(
        f"x{r['values']['X']}_s{r['resources']['slot']}" for r in logged
    )


def test_the_log_shows_the_command_a_late_job_ran(tmp_path: Path) -> None:
    result = run(
        "-j", "2", "-r", "X=case:a,b,c", "--joblog", "log",
        "--exec", "echo $X ${RANGEEXPR_SLOT:02d} [$RANGEEXPR_GPUS]", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    logged = records(tmp_path / "log")
    assert sorted(r["command"] for r in logged) == sorted(
        f"echo {r['values']['X']} {r['resources']['slot']:02d} '[]'" for r in logged
    )
    assert sorted(result.stdout.splitlines()) == sorted(
        f"{r['values']['X']} {r['resources']['slot']:02d} []" for r in logged
    )


def test_a_range_used_only_by_the_workdir_is_used(tmp_path: Path) -> None:
    args = ("-r", "X=range:2", "-r", "Y=range:2", "--exec", "true $X")
    used = run(*args, "--workdir", "d$Y", cwd=tmp_path)
    assert used.returncode == 0, used.stderr
    assert "used by no template" not in used.stderr
    assert (tmp_path / "d1").is_dir()
    unused = run(*args, "--workdir", "d", cwd=tmp_path)
    assert "range variable Y is used by no template" in unused.stderr


def test_the_dry_run_line_goes_into_the_workdir_and_makes_nothing(tmp_path: Path) -> None:
    dry = run(
        "--dry-run", "-r", "X=case:a,b c", "-e", "D=runs/$X", "--workdir", "$D/$RANGEEXPR_SLOT",
        "--exec", "echo $X", cwd=tmp_path,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        "D=runs/a cd -- 'runs/a/$RANGEEXPR_SLOT' && echo a",
        "D='runs/b c' cd -- 'runs/b c/$RANGEEXPR_SLOT' && echo 'b c'",
    ]
    assert not (tmp_path / "runs").exists()
    # the line without its placeholder runs the job where the real run would
    line = dry.stdout.splitlines()[1].replace("$RANGEEXPR_SLOT", "0").replace("echo", "pwd >")
    (tmp_path / "runs/b c/0").mkdir(parents=True)
    subprocess.run(["sh", "-c", line], cwd=tmp_path, check=True)
    assert (tmp_path / "runs/b c/0/b c").read_text() == f"{tmp_path}/runs/b c/0\n"


def test_a_workdir_that_cannot_be_made_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    early = run("-r", "X=range:2", "--workdir", "file/d$X", "--exec", "true $X", cwd=tmp_path)
    assert early.returncode == 2
    assert "rangeexpr: error: cannot make --workdir file/d0: Not a directory" in early.stderr
    late = run(
        "-r", "X=range:2", "--joblog", "log", "--workdir", "file/$RANGEEXPR_SLOT",
        "--exec", "true $X", cwd=tmp_path,
    )  # fmt: skip
    assert late.returncode == 1
    assert "cannot make --workdir file/0: Not a directory" in late.stderr
    assert "run again with --resume" in late.stderr
    assert "Traceback" not in late.stderr
    assert records(tmp_path / "log") == []


@pytest.mark.parametrize("backend", ["slurm", "ray"])
@pytest.mark.parametrize(
    "option", [["--exec", "echo $RANGEEXPR_GPUS"], ["--workdir", "d$RANGEEXPR_SLOT"]]
)
def test_remote_backends_refuse_slots_and_gpus(backend: str, option: list[str]) -> None:
    """A remote job would run with the placeholder's text: neither Ray nor Slurm has them."""
    argv = ["run", "X=range:2", "--exec", "echo $X", *option, "--backend", backend]
    if backend == "ray":
        argv += ["--address", "http://127.0.0.1:8265"]
    spec = spec_from_args(parser().parse_args(argv))
    with pytest.raises(RangeExprError, match=r"\$RANGEEXPR_\w+ is known only to --backend local"):
        make_backend(spec, spec.selected())


def test_the_report_reads_records_with_an_output(tmp_path: Path) -> None:
    result = run("-r", "X=case:a,b", "--joblog", "log", "--results", "out", "--exec", "echo $X",
                 cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(r["output"] for r in records(tmp_path / "log")) == ["X=a", "X=b"]
    report = cli("report", "--format", "jsonl", "log", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert [json.loads(line)["X"] for line in report.stdout.splitlines()] == ["a", "b"]
