"""Result files named by the point's values (``--results DIR``: ``DIR/LR=0.01,SEED=3.out``).

Names do not move when a sweep grows, so a resumed, grown sweep never writes a new point's
output over an old point's file; two running jobs never share a file.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest
import trio
from test_batch import BIN, run_on_node
from test_cli_run import records, run

from rangeexpr import Sweep, Template
from rangeexpr._batch import NodeBatching
from rangeexpr._jobs import ResultNames, result_name
from rangeexpr._spec import RunSpec
from runner import Attempt, Job, Outcome, Runner
from runner._output import ByName, Scratch


def names(*exprs: str) -> list[str]:
    return [result_name(p) for p in Sweep(list(exprs))]


def test_names_are_the_values_as_templates_write_them() -> None:
    assert names("LR=linspace:0,0.5,3", "SEED=range:2") == [
        "LR=0,SEED=0", "LR=0,SEED=1", "LR=0.25,SEED=0", "LR=0.25,SEED=1",
        "LR=0.5,SEED=0", "LR=0.5,SEED=1",
    ]  # fmt: skip
    assert names("X=case:1.50,1e-07,-3") == ["X=1.50", "X=1e-07", "X=-3"]  # as written


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("'big one'", "M=big%20one"),  # a space
        ("a/b", "M=a%2Fb"),  # a directory separator
        ('"x,y=z"', "M=x%2Cy%3Dz"),  # the separators of the name itself
        ("50%", "M=50%25"),  # the escape character
        ("~home", "M=%7Ehome"),  # our own suffix's mark
        ("ünï", "M=%C3%BCn%C3%AF"),  # UTF-8, then escaped: the name is ASCII
        ('""', "M="),  # an empty value
        ("..", "M=.."),  # never a name of its own: always after NAME=
        ("a+b-c_d.e@f", "M=a+b-c_d.e@f"),  # kept as they are
    ],
)
def test_special_characters_are_percent_encoded(value: str, name: str) -> None:
    assert names(f"M=case:{value}") == [name]


def test_every_name_splits_back_into_the_values_templates_render() -> None:
    sweep = Sweep(["A=case:'x, y=1',50%,~,é/ü", "B=logspace:-3,0,4", "C=case:a,a"])
    made = ResultNames()
    seen = set()
    for point in sweep:
        name = made(point)
        assert name == result_name(point)
        pairs = [pair.split("=") for pair in name.split(",")]
        assert [(k, unquote(v)) for k, v in pairs] == [
            (k, Template(f"${k}").render(point)) for k in point
        ]
        seen.add(name)
    assert len(seen) == sweep.size // 2  # C's two copies of "a": the same name


def test_a_long_name_is_cut_and_hashed_within_the_file_name_limit() -> None:
    long_a, long_b = "a" * 300, "a" * 299 + "b"
    name_a, name_b = names(f"M=case:{long_a},{long_b}")
    for name in (name_a, name_b):
        assert len(name.encode()) == 200  # and so "NAME.out" < 255 bytes, with room to spare
        assert re.fullmatch(r"M=a+~[0-9a-f]{16}", name)
    assert name_a != name_b  # the same prefix, told apart by the hash
    # a cut never splits an escape: what is left is whole %XX's
    (escaped,) = names("M=case:" + "é" * 150)
    assert len(escaped) <= 200
    assert re.fullmatch(r"M=(%C3%A9)+~[0-9a-f]{16}", escaped)
    (short,) = names("M=case:" + "a" * 198)
    assert short == "M=" + "a" * 198  # 200 bytes: kept whole


def test_a_grown_sweep_keeps_every_old_file_and_adds_its_own(tmp_path: Path) -> None:
    """SEED varies fastest: growing it moves every later point's index (3 -> 4 for
    LR=0.01,SEED=0), where index-named files were overwritten by the new points."""
    (tmp_path / "run.txt").write_text("first\n")
    base = ["-r", "LR=case:0.1,0.01", "--joblog", "log", "--results", "out", "--shell"]
    command = ["--exec", "echo $LR $SEED; cat run.txt"]
    first = run(*base, "-r", "SEED=range:3", *command, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    old = {p.name: p.read_text() for p in (tmp_path / "out").glob("*.out")}
    assert old == {
        f"LR={lr},SEED={seed}.out": f"{lr} {seed}\nfirst\n"
        for lr in ("0.1", "0.01")
        for seed in range(3)
    }
    (tmp_path / "run.txt").write_text("second\n")
    grown = run(*base, "-r", "SEED=range:4", *command, "--resume", cwd=tmp_path)
    assert grown.returncode == 0, grown.stderr
    assert "2 succeeded, 0 failed, 6 skipped" in grown.stderr
    now = {p.name: p.read_text() for p in (tmp_path / "out").glob("*.out")}
    assert now == {
        **old,
        "LR=0.1,SEED=3.out": "0.1 3\nsecond\n",
        "LR=0.01,SEED=3.out": "0.01 3\nsecond\n",
    }
    assert sorted(p.name for p in (tmp_path / "out").glob("*.err")) == sorted(
        name.replace(".out", ".err") for name in now
    )
    logged = [r for r in records(tmp_path / "log") if "index" in r]  # and a second header
    new = [r for r in logged if r["values"]["SEED"] == 3]
    assert sorted((r["index"], r["output"]) for r in new) == [
        (3, "LR=0.1,SEED=3"),
        (7, "LR=0.01,SEED=3"),
    ]


def test_two_running_jobs_with_the_same_values_get_a_file_each(tmp_path: Path) -> None:
    result = run(
        "-j", "3", "-r", "X=case:a,a,b", "--joblog", "log", "--results", "out",
        "--exec", "sh -c 'sleep 1; echo $RANGEEXPR_INDEX'", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    logged = records(tmp_path / "log")
    outputs = {r["index"]: r["output"] for r in logged}
    assert outputs[2] == "X=b"
    assert sorted([outputs[0], outputs[1]]) in (["X=a", "X=a~1"], ["X=a", "X=a~0"])
    for index, stem in outputs.items():  # each record names the file holding its output
        assert (tmp_path / "out" / f"{stem}.out").read_text() == f"{index}\n"
    starts = sorted(r["start"] for r in logged)
    assert starts[-1] - starts[0] < 0.9  # they did run at the same time


def test_the_same_values_run_one_after_the_other_share_their_file(tmp_path: Path) -> None:
    """Documented: the later run of the same values replaces the earlier one's output."""
    result = run(
        "-j", "1", "-r", "X=case:a,a", "--joblog", "log", "--results", "out",
        "--exec", "echo $RANGEEXPR_INDEX", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [r["output"] for r in records(tmp_path / "log")] == ["X=a", "X=a"]
    assert (tmp_path / "out" / "X=a.out").read_text() == "1\n"


def test_without_results_no_name_and_no_output_field(tmp_path: Path) -> None:
    result = run("-r", "X=range:2", "--joblog", "log", "--exec", "true $X", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert all("output" not in r for r in records(tmp_path / "log"))


def job(index: int, name: str = "") -> Job:
    return Job(index, ("true",), "true", {}, {}, name=name)


def test_by_name_gives_running_jobs_distinct_files_and_reuses_freed_ones(tmp_path: Path) -> None:
    files = ByName(tmp_path)
    a, a_paths = files.take(job(4, "X=a"))
    b, b_paths = files.take(job(5, "X=a"))
    c, _ = files.take(job(6, "X=a"))
    d, d_paths = files.take(job(7))
    assert [a.name, b.name, c.name, d.name] == ["X=a", "X=a~5", "X=a~6", "7"]
    assert a_paths == (tmp_path / "X=a.out", tmp_path / "X=a.err")
    assert b_paths[0] == tmp_path / "X=a~5.out"
    assert d_paths == (tmp_path / "7.out", tmp_path / "7.err")
    files.give_back(a_paths)
    again, _ = files.take(job(8, "X=a"))
    assert again.name == "X=a"  # free again: the later run takes the name
    files.give_back(b_paths)
    files.give_back(d_paths)
    assert files.take(job(5, "X=a"))[0].name == "X=a~5"  # X=a is still running
    assert files.take(job(7))[0].name == "7"


def test_scratch_files_leave_no_name_for_the_record(tmp_path: Path) -> None:
    plain, _ = Scratch(tmp_path).take(job(1, "X=a"))
    assert plain.name == ""


class Echo:
    """A backend writing each attempt's index into its stdout file."""

    name = "echo"
    jobs_per_slot = 1

    async def __aenter__(self) -> Echo:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def kill(self) -> None:
        return None

    async def run(self, attempt: Attempt) -> Outcome:
        await trio.sleep(0.01)
        attempt.stdout.write_text(f"{attempt.job.index}\n")
        return Outcome("succeeded", 0)


def test_the_runner_names_result_files_by_job_name(tmp_path: Path) -> None:
    jobs = [job(0, "X=a"), job(1, "X=a"), job(2)]

    async def main() -> None:
        await Runner(Echo(), 3, results_dir=tmp_path).run(jobs)

    trio.run(main)
    assert {p.name: p.read_text() for p in tmp_path.glob("*.out")} == {
        "X=a.out": "0\n",
        "X=a~1.out": "1\n",
        "2.out": "2\n",
    }


def test_a_node_names_its_files_by_index_so_duplicates_map_back(tmp_path: Path) -> None:
    spec = RunSpec(exprs=("X=case:a,a,b",), command="sh -c 'echo $X $RANGEEXPR_INDEX'")
    batching = NodeBatching(spec, 3, 0, 3)
    command = batching.command(0, 3, "t-0")
    assert "--results-by-index" in command
    done = run_on_node(command, tmp_path, f"{BIN}:/usr/bin:/bin")
    assert done.returncode == 0, done
    results = batching.split(done.stdout, 0, 3, "t-0")
    assert {i: out for i, (_, out, _) in results.items()} == {
        0: b"a 0\n",
        1: b"a 1\n",
        2: b"b 2\n",
    }
