"""The real command line, as a subprocess: output, exit codes, and no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

RANGEEXPR = [sys.executable, "-m", "rangeexpr"]


def run(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RANGEEXPR, *args], capture_output=True, text=True, timeout=60, check=False, **kw
    )  # type: ignore[call-overload]


def test_check_prints_a_summary() -> None:
    r = run("check", "X=linspace:0,1,5", "-r", "Y=case:a,b")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        "NAME  KIND      LENGTH  FIRST  LAST\n"
        "X     linspace       5  0      1\n"
        "Y     case           2  a      b\n"
        "10 points\n"
    )


def test_check_reports_an_error_with_a_marker_and_exit_2() -> None:
    r = run("check", "X=range:1,10,0")
    assert r.returncode == 2
    assert r.stderr == (
        "rangeexpr: error: range step must not be zero\n    X=range:1,10,0\n                 ^\n"
    )
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["check", "X=case:a,,b"],
        ["check"],
        ["check", "X=range:3", "X=range:4"],
        ["check", "X=range:3", "--exec", "echo $Y"],
        ["check", "X=range:3", "-e", "A=$"],
        ["check", "X=range:3", "-e", "no-equals"],
        ["expand", "X=range:3", "--shard", "3/3"],
        ["expand", "X=range:3", "--slice", "a:b"],
        ["run", "X=range:3"],
        ["check", "X=range:3", "--exec", "echo 'unclosed"],
    ],
)
def test_bad_input_exits_2_without_traceback(args: list[str]) -> None:
    r = run(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("rangeexpr: error: ")
    assert "Traceback" not in r.stderr


def test_unused_variable_is_a_warning() -> None:
    r = run("check", "X=range:3", "Y=case:a,b", "--exec", "echo $X")
    assert r.returncode == 0
    assert "warning: range variable Y is used by no template" in r.stderr


def test_expand_jsonl_is_typed() -> None:
    r = run("expand", "X=linspace:1,2,3", "Y=case:1.50,b")
    assert r.returncode == 0
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert lines[0] == {"index": 0, "X": 1.0, "Y": 1.5}
    assert lines[-1] == {"index": 5, "X": 2.0, "Y": "b"}
    assert len(lines) == 6


def test_expand_csv_table_count_slice_shard() -> None:
    csv = run("expand", "X=linspace:1,2,3", "Y=case:1.50,b", "--format", "csv", "--slice", "1:3")
    assert csv.stdout == "index,X,Y\n1,1,b\n2,1.5,1.50\n"
    table = run("expand", "X=range:9,12", "--format", "table", "--shard", "1/2")
    assert table.stdout == "index  X\n1      10\n2      11\n"
    count = run(
        "expand", "-r", "A=range:0,1000000000000000", "-r", "B=range:1000000000000000", "--count"
    )
    assert count.stdout == "1000000000000000000000000000000\n"


def test_expand_streams_and_a_closed_pipe_ends_quietly() -> None:
    proc = subprocess.Popen(
        [*RANGEEXPR, "expand", "-r", "X=range:0,1000000000000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = [proc.stdout.readline() for _ in range(3)]
    proc.stdout.close()
    assert proc.wait(timeout=30) == 0
    assert first == ['{"index": 0, "X": 0}\n', '{"index": 1, "X": 1}\n', '{"index": 2, "X": 2}\n']
    assert proc.stderr.read() == ""


def test_console_script_and_module_agree() -> None:
    import shutil

    exe = shutil.which("rangeexpr")
    if exe is None:
        pytest.skip("the console script is not installed (pip install -e .)")
    r = subprocess.run(
        [exe, "expand", "X=range:2", "--count"], capture_output=True, text=True, check=False
    )
    assert r.stdout == "2\n"


def test_import_and_check_do_not_load_the_runner() -> None:
    code = (
        "import sys, rangeexpr._cli as c; c.main(['check', 'X=case:a,b']);"
        "print(sorted(m for m in ('trio', 'httpx', 'rich') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.splitlines()[-1] == "[]"
