"""The real command line, as a subprocess: output, exit codes, and no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.parametrize(
    "args", [["check", "X=case:a,b"], ["expand", "X=linspace:0,1,5", "Y=range:3", "--count"]]
)
def test_import_and_check_do_not_load_the_runner(args: list[str]) -> None:
    code = (
        f"import sys, rangeexpr._cli as c; c.main({args!r});"
        "print(sorted({m.split('.')[0] for m in sys.modules}"
        " & {'trio', 'httpx', 'rich', 'numpy', 'runner'}))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.splitlines()[-1] == "[]"


def test_a_run_loads_neither_the_filter_parser_nor_the_sweep_file_reader(tmp_path: Path) -> None:
    """Start-up pays only for what the command line uses: no --where, no sweep file."""
    code = (
        "import sys, rangeexpr._cli as c\n"
        "try:\n"
        "    c.main(['run', '--no-progress', '-r', 'X=range:1', '--exec', 'true $X'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('rangeexpr._filter',"
        " 'rangeexpr._sweepfile', 'tomllib'))))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert r.stdout.splitlines()[-1] == "[]"


# ---------------------------------------------------------------------------
# Hostile input (issue 11): huge numbers, non-ASCII digits, -e names, unwritable output
# ---------------------------------------------------------------------------

LIMIT = sys.get_int_max_str_digits()
_SCRIPT = Path(sys.executable).with_name("rangeexpr")
INSTALLED = [str(_SCRIPT)] if _SCRIPT.exists() else RANGEEXPR  # the console script
NINES = "9" * LIMIT  # the longest literal int() reads; sizes and indices grow past it


def test_sizes_and_indices_past_the_digit_limit_print_exactly() -> None:
    big = int(NINES)
    exprs = [f"X=range:-{NINES},{NINES}", "Y=case:a,b"]
    size = 4 * big  # 4301 digits: str() refuses it
    digits = "3" + "9" * (LIMIT - 1) + "6"
    assert size == int(digits[:LIMIT]) * 10 + int(digits[LIMIT:])  # digits is its text
    check = run("check", *exprs)
    assert check.returncode == 0, check.stderr[-500:]
    assert check.stdout.splitlines()[-1] == f"{digits} points"
    assert f"  {'1' + '9' * (LIMIT - 1) + '8'}  " in check.stdout.splitlines()[1]
    count = run("expand", *exprs, "--count")
    assert (count.returncode, count.stdout) == (0, digits + "\n")
    last = digits[:-1] + "5"
    jsonl = run("expand", *exprs, "--slice=-1:")
    assert jsonl.stdout == f'{{"index": {last}, "X": {NINES[:-1]}8, "Y": "b"}}\n'
    assert json.loads(jsonl.stdout, parse_int=str)["index"] == last  # valid JSON
    csv = run("expand", *exprs, "--slice=-1:", "--format", "csv")
    assert csv.stdout == f"index,X,Y\n{last},{NINES[:-1]}8,b\n"
    table = run("expand", *exprs, "--slice=-1:", "--format", "table")
    assert table.stdout.splitlines()[1].split() == [last, NINES[:-1] + "8", "b"]
    where = run("check", *exprs, "--where", 'Y == "b"')
    assert where.stdout.splitlines()[-1] == f"at most {digits} points"


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        (f"X=range:1{NINES}", f"integer literal has {LIMIT + 1} digits; at most {LIMIT}"),
        (f"X=case:1{NINES}", "quote it to keep it as a string"),
        ("X=logspace:1e308,1,2,99999999999999999999", "logspace gives inf at index 0"),
        ("X=linspace:0,1" + "0" * 400 + ",3", "linspace STOP is too large for a float"),
    ],
)
def test_numbers_too_large_are_clean_errors(expr: str, message: str) -> None:
    r = run("check", expr)
    assert r.returncode == 2
    assert r.stderr.startswith("rangeexpr: error: ") and message in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr) < 1000


def test_an_infinite_value_is_an_error_naming_the_index_with_no_numpy_warning() -> None:
    r = run("expand", "X=logspace:0,400,3")
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == (
        "rangeexpr: error: logspace gives inf at index 2: 10 ** 400 is too large for a float\n"
        "    X=logspace:0,400,3\n"
        "               ~~~~~~^\n"
    )


def test_numbers_are_ascii_on_the_command_line() -> None:
    for digit in ("\u0663", "\uff13"):  # ARABIC-INDIC and FULLWIDTH DIGIT THREE
        r = run("expand", f"X=range:{digit}")
        assert r.returncode == 2 and "is not an ASCII digit" in r.stderr, r.stderr
        case = run("expand", f"X=case:{digit},3")
        assert [json.loads(line)["X"] for line in case.stdout.splitlines()] == [digit, 3]
        for option in (["--slice", f"{digit}:"], ["--shard", f"0/{digit}"], ["--sample", digit]):
            r = run("expand", "X=range:10", *option)
            assert r.returncode == 2, (option, r.stdout)
            assert "Traceback" not in r.stderr


@pytest.mark.parametrize("sub", [["check"], ["run", "--exec", "true $X", "--dry-run"]])
@pytest.mark.parametrize(
    ("env", "message"),
    [
        (["RANGEEXPR_INDEX=7"], "-e RANGEEXPR_INDEX: names starting with RANGEEXPR_ are reserved"),
        (["RANGEEXPR_COUNT=$X"], "-e RANGEEXPR_COUNT: names starting with RANGEEXPR_ are"),
        (["RANGEEXPR_MINE=1"], "-e RANGEEXPR_MINE: names starting with RANGEEXPR_ are"),
        (["A=1", "A=2"], "-e A is given twice ('A=1', then 'A=2'): give each variable once"),
        (["A=$X", "B=1", " A =2"], "-e A is given twice ('A=$X', then ' A =2')"),
    ],
)
def test_env_names_reserved_or_given_twice_are_errors(
    sub: list[str], env: list[str], message: str
) -> None:
    args = [a for item in env for a in ("-e", item)]
    r = run(*sub, "X=range:3", *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith(f"rangeexpr: error: {message}"), r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["expand", "X=range:3"],
        ["expand", "X=range:100000", "--format", "csv"],
        ["expand", "X=range:100000", "--format", "table"],
        ["expand", "X=range:3", "--count"],
        ["check", "X=range:3"],
        ["run", "X=range:3", "--exec", "true $X", "--dry-run"],  # a traceback before issue 12
        ["report", str(Path(__file__).parent / "data" / "joblog_report.jsonl")],  # likewise
    ],
)
def test_output_that_cannot_be_written_is_one_line_and_exit_1(args: list[str]) -> None:
    closed = subprocess.run(
        ["sh", "-c", 'exec "$@" >&-', "sh", *INSTALLED, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (closed.returncode, closed.stderr) == (
        1,
        "rangeexpr: error: cannot write the output: stdout is closed\n",
    )
    with open("/dev/full", "w") as full:
        r = subprocess.run(
            [*INSTALLED, *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    assert (r.returncode, r.stderr) == (
        1,
        "rangeexpr: error: cannot write the output: No space left on device\n",
    )
