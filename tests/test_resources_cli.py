"""Resources per job through ``rangeexpr run``: the real CLI in a subprocess, real processes.

What the jobs were given is read from the jobs themselves (their environment, their
arguments, their own ``date +%s.%N`` at start and end), not from our bookkeeping: two jobs
whose lifetimes overlap must never hold the same slot or a common GPU. The GPU ids are
fake (``--gpus 0,1,2,3``): no job here touches a GPU.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
for _name in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS"):
    ENV.pop(_name, None)

# Each job records its start, its environment, its arguments and its end.
JOB = """\
date +%s.%N > "$1.start"
env > "$1.env"
printf '%s\\n' "$2" "$3" > "$1.args"
grep Cpus_allowed_list /proc/self/status > "$1.cpus"
sleep 0.3
date +%s.%N > "$1.end"
"""


def rangeexpr(*args: str, cwd: Path, command: str = "run") -> subprocess.CompletedProcess[str]:
    extra = ["--no-progress"] if command == "run" else []
    return subprocess.run(
        [sys.executable, "-m", "rangeexpr", command, *extra, *args],
        cwd=cwd,
        env=ENV,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _jobs_seen(directory: Path, count: int) -> list[dict[str, Any]]:
    seen = []
    for n in range(count):
        env = _env(directory / f"{n}.env")
        slot_arg, gpus_arg = (directory / f"{n}.args").read_text().split("\n")[:2]
        seen.append(
            {
                "n": n,
                "start": float((directory / f"{n}.start").read_text()),
                "end": float((directory / f"{n}.end").read_text()),
                "slot": env["RANGEEXPR_SLOT"],
                "gpus": env["RANGEEXPR_GPUS"],
                "cuda": env["CUDA_VISIBLE_DEVICES"],
                "slot_arg": slot_arg,
                "gpus_arg": gpus_arg,
                "env": env,
            }
        )
    return seen


def test_the_backendai_seed_command_prints_its_four_lines(tmp_path: Path) -> None:
    result = rangeexpr(
        "--exec",
        'python3 -c "import os; print(\\"Hello world, {}\\".format(os.environ[\\"CASENO\\"]))"',
        "-r",
        "cpu=1",
        "-r",
        "mem=256m",
        "-e",
        "CASENO=$X",
        "--env-range=X=case:1,2,3,4",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == [f"Hello world, {n}" for n in (1, 2, 3, 4)]


def test_running_jobs_never_share_a_slot_or_a_gpu(tmp_path: Path) -> None:
    """Mixed gpu=1 / gpu=2 requests (a template) over four fake GPUs, three slots."""
    (tmp_path / "job.sh").write_text(JOB)
    ngpu = [1, 2, 1, 1, 2, 1, 2, 1, 1, 1, 2, 1]
    result = rangeexpr(
        "-j",
        "3",
        "--gpus",
        "0,1,2,3",
        "-r",
        "gpu=$NGPU",
        "-r",
        f"N=range:{len(ngpu)}",
        "-r",
        f"NGPU=case:{','.join(map(str, ngpu))}",
        "--link",
        "N,NGPU",
        "--joblog",
        "log.jsonl",
        "--exec",
        "sh job.sh $N $RANGEEXPR_SLOT $RANGEEXPR_GPUS",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    seen = _jobs_seen(tmp_path, len(ngpu))
    for job in seen:
        gpus = job["gpus"].split(",")
        assert len(gpus) == ngpu[job["n"]]
        assert set(gpus) <= {"0", "1", "2", "3"}
        assert job["cuda"] == job["gpus"] == job["gpus_arg"]  # env and template agree
        assert job["slot"] == job["slot_arg"]
        assert job["slot"] in {"0", "1", "2"}
    overlapping = 0
    for a, b in itertools.combinations(seen, 2):
        if a["start"] < b["end"] and b["start"] < a["end"]:
            overlapping += 1
            assert a["slot"] != b["slot"], (a, b)
            assert not set(a["gpus"].split(",")) & set(b["gpus"].split(",")), (a, b)
    assert overlapping > 0  # the jobs did run side by side: the check above checked something
    # the job log records each job's request and what it was given, as the job saw it
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    by_index = {r["index"]: r for r in records[1:]}
    for job in seen:
        resources = by_index[job["n"]]["resources"]
        assert resources["request"] == {"gpu": ngpu[job["n"]]}
        assert str(resources["slot"]) == job["slot"]
        assert ",".join(resources["gpus"]) == job["gpus"]
        assert resources["cpus"] == []


def test_a_cpu_request_pins_the_job_and_sets_thread_counts(tmp_path: Path) -> None:
    (tmp_path / "job.sh").write_text(JOB)
    result = rangeexpr(
        "-j",
        "2",
        "-r",
        "cpu=1",
        "-e",
        "OMP_NUM_THREADS=7",
        "-r",
        "N=range:2",
        "--joblog",
        "log.jsonl",
        "--exec",
        "sh job.sh $N $RANGEEXPR_SLOT x",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    for record in records[1:]:
        n = record["index"]
        env = _env(tmp_path / f"{n}.env")
        assert env["OMP_NUM_THREADS"] == "7"  # the user's -e wins
        assert env["OPENBLAS_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
        assert "CUDA_VISIBLE_DEVICES" not in env  # no GPUs in the pool: left alone
        [core] = record["resources"]["cpus"]
        allowed = (tmp_path / f"{n}.cpus").read_text().split(":")[1].strip()
        assert allowed == str(core)  # pinned to the core the log names
        assert record["resources"]["request"] == {"cpu": 1}


def test_an_infeasible_request_is_refused_before_anything_runs(tmp_path: Path) -> None:
    result = rangeexpr(
        "--gpus", "0", "-r", "gpu=2", "-r", "X=range:3", "--exec", "touch ran$X", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "a job asks for gpu=2, but there is 1 GPU (0)" in result.stderr
    assert "Traceback" not in result.stderr
    # a template: the point asking for 3 GPUs is found before anything runs
    result = rangeexpr(
        "--gpus",
        "0,1",
        "-r",
        "gpu=$G",
        "-r",
        "G=case:1,3",
        "--exec",
        "touch ran$G",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "a job asks for gpu=3, but there are 2 GPUs (0,1)" in result.stderr
    # a resource the local machine cannot account for
    result = rangeexpr(
        "--resources", "tpu=1", "-r", "X=range:2", "--exec", "touch ran", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "there is no resource 'tpu' here" in result.stderr
    assert not list(tmp_path.glob("ran*"))


def test_r_with_neither_a_range_nor_a_resource_says_both_forms(tmp_path: Path) -> None:
    result = rangeexpr("-r", "X=3", "--exec", "echo $X", cwd=tmp_path)
    assert result.returncode == 2
    assert "-r X=3: expected a range NAME=KIND:ARGS (e.g. X=case:3 or X=range:3)" in result.stderr
    assert "or a resource request NAME=VALUE with NAME one of cpu, mem, gpu" in result.stderr
    assert "Traceback" not in result.stderr


def test_backendai_parity_warnings_at_check_time(tmp_path: Path) -> None:
    result = rangeexpr(
        "-r",
        "X=case:a,a,b",
        "--exec",
        "echo $X > out.txt && cat out.txt",
        cwd=tmp_path,
        command="check",
    )
    assert result.returncode == 0, result.stderr
    assert "warning: X lists 'a' more than once" in result.stderr
    assert "--exec holds shell syntax (> &&) but runs without a shell" in result.stderr
    quiet = rangeexpr(
        "-r", "X=case:a,b", "--dry-run", "--shell", "--exec", "echo $X > o", cwd=tmp_path
    )
    assert quiet.returncode == 0, quiet.stderr
    assert "warning" not in quiet.stderr
