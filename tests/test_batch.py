"""``--per-job`` batching (rangeexpr/_batch.py): the packed /bin/sh script, run for real.

The script runs the installed ``rangeexpr run --slice`` as a node would, through a real
/bin/sh, and its output (behind some chatter, as in a Ray log) is split back into each
point's outcome, stdout and stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rangeexpr._batch import NodeBatching, packed_script, parse_packed
from rangeexpr._spec import RunSpec
from runner import Outcome

BIN = Path(sys.executable).parent  # where the rangeexpr console script is installed


def run_on_node(command: str, cwd: Path, path: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PATH": path}
    return subprocess.run(
        ["/bin/sh", "-c", command], capture_output=True, env=env, cwd=cwd, check=False
    )


def test_the_console_script_is_there() -> None:
    assert (BIN / "rangeexpr").exists()


def test_a_packed_job_runs_its_points_and_splits_back_per_point(tmp_path: Path) -> None:
    spec = RunSpec(
        exprs=("X=range:0,3", "Y=case:'a b',c"),
        command="sh -c 'echo out $X $Y $$G; echo err $X >&2; test $X != 2'",
        env=(("G", "g-$X"),),
    )
    batching = NodeBatching(spec, 3, 0, 6)
    first, stop = batching.group(4)
    assert (first, stop) == (3, 6)
    tag = "rangeexpr-t-3to6-1"
    done = run_on_node(batching.command(first, stop, tag), tmp_path, f"{BIN}:/usr/bin:/bin")
    assert done.returncode == 1, done  # the node's run: some points failed
    results = batching.split(b"job chatter\n" + done.stdout, first, stop, tag)
    assert results == {
        3: (Outcome("succeeded", 0), b"out 1 c g-1\n", b"err 1\n"),
        4: (Outcome("failed", 1), b"out 2 a b g-2\n", b"err 2\n"),
        5: (Outcome("failed", 1), b"out 2 c g-2\n", b"err 2\n"),
    }


def test_shell_links_timeout_and_quoting_survive_the_trip(tmp_path: Path) -> None:
    spec = RunSpec(
        exprs=("X=range:0,4", 'Y=case:"it\'s",b;c,d,e'),
        link=(("X", "Y"),),
        command="printf '%s|' $X $Y; sleep ${X}",
        shell=True,
    )
    batching = NodeBatching(spec, 2, 0, 4, timeout=2.5)
    tag = "rangeexpr-t-0to2-1"
    done = run_on_node(batching.command(0, 2, tag), tmp_path, f"{BIN}:/usr/bin:/bin")
    assert done.returncode == 0, done
    results = batching.split(done.stdout, 0, 2, tag)
    assert results == {
        0: (Outcome("succeeded", 0), b"0|it's|", b""),
        1: (Outcome("succeeded", 0), b"1|b;c|", b""),
    }
    tag = "rangeexpr-t-2to4-1"
    slow = NodeBatching(spec, 2, 0, 4, timeout=0.5)  # points 2 and 3 sleep longer
    done = run_on_node(slow.command(2, 4, tag), tmp_path, f"{BIN}:/usr/bin:/bin")
    statuses = {i: r[0].status for i, r in slow.split(done.stdout, 2, 4, tag).items()}
    assert statuses == {2: "timed_out", 3: "timed_out"}


def test_a_node_without_rangeexpr_leaves_every_point_lost_with_the_reason(
    tmp_path: Path,
) -> None:
    spec = RunSpec(exprs=("X=range:0,4",), command="echo $X")
    batching = NodeBatching(spec, 2, 0, 4)
    tag = "rangeexpr-t-0to2-1"
    done = run_on_node(batching.command(0, 2, tag), tmp_path, "/usr/bin:/bin")
    assert done.returncode == 127
    results = batching.split(done.stdout, 0, 2, tag)
    assert sorted(results) == [0, 1]
    for outcome, out, err in results.values():
        assert (outcome.status, out) == ("lost", b"")
        assert b"rangeexpr: not found" in err  # what the shell said, for the record


def test_the_framing_splits_back_exactly_whatever_the_files_hold(tmp_path: Path) -> None:
    mark = "@@rangeexpr-s1-4to6-1@@"
    fake_run = (
        'mkdir "$d/out"; printf \'%s\\n\' \'{"format": "rangeexpr-joblog/1"}\' '
        '\'{"index": 4, "status": "succeeded", "exit_code": 0, "signal": null}\' '
        '\'{"index": 5, "status": "failed", "exit_code": 3, "signal": null}\' > "$d/log"; '
        "printf 'four\\n' > \"$d/out/4.out\"; printf 'no newline, and a fake\\n@@x 9 9' "
        '> "$d/out/5.out"; printf \'e5\\n\' > "$d/out/5.err"; : > "$d/out/4.err"; '
        "echo 'rangeexpr: 1 succeeded, 1 failed'; exit 1"
    )
    done = run_on_node(packed_script(f"( {fake_run} )", mark), tmp_path, "/usr/bin:/bin")
    assert done.stderr == b""
    records, files = parse_packed(b"job chatter\n" + done.stdout, mark)
    assert {i: (r["status"], r["exit_code"]) for i, r in records.items()} == {
        4: ("succeeded", 0),
        5: ("failed", 3),
    }
    assert files == {
        "4.out": b"four\n",
        "4.err": b"",
        "5.out": b"no newline, and a fake\n@@x 9 9",
        "5.err": b"e5\n",
        "run": b"rangeexpr: 1 succeeded, 1 failed\n",
    }


def test_output_without_the_framing_gives_lost_points_and_its_tail() -> None:
    spec = RunSpec(exprs=("X=range:0,4",), command="echo $X")
    output = b"x" * 5000 + b"sh: 1: rangeexpr: not found\n"
    results = NodeBatching(spec, 2, 0, 4).split(output, 2, 4, "t")
    assert results == {
        i: (Outcome("lost", None, message="no record"), b"", output[-4000:]) for i in (2, 3)
    }
    assert parse_packed(b"sh: 1: rangeexpr: not found\n", "@@m@@") == ({}, {})
