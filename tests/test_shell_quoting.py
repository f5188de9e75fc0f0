"""End to end, through the installed ``rangeexpr``: ``--shell`` values arrive exactly and
run nothing, the dry-run line runs the same job, and bad specs are clean errors (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RANGEEXPR = str(Path(sys.executable).with_name("rangeexpr"))
# the values of the issue: a command substitution, a space, a lone single quote
HOSTILE = 'X=case:"$(touch pwned)","a  b","it\'s",\'`touch pwned2` "q" \\\\\''
EXPECTED = sorted(["<$(touch pwned)>", "<a  b>", "<it's>", '<`touch pwned2` "q" \\>'])


def rangeexpr(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RANGEEXPR, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )


def test_quoted_placeholders_get_exactly_the_value(tmp_path: Path) -> None:
    for template in ('printf "<%s>\\n" "$X"', "printf '<%s>\\n' '$X'", "printf '<%s>\\n' $X"):
        done = rangeexpr(
            "run", "--no-progress", "-r", HOSTILE, "--exec", template, "--shell", cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
        assert sorted(done.stdout.splitlines()) == EXPECTED
        assert list(tmp_path.iterdir()) == []


def test_the_dry_run_line_runs_the_same_job(tmp_path: Path) -> None:
    template = 'printf \'<%s>\\n\' "$$(printf %s "$X")"'
    dry = rangeexpr("run", "--dry-run", "-r", HOSTILE, "--exec", template, "--shell", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    outputs = [
        subprocess.run(
            ["/bin/sh", "-c", line], cwd=tmp_path, capture_output=True, text=True, check=True
        ).stdout
        for line in lines
    ]
    assert sorted(o.rstrip("\n") for o in outputs) == EXPECTED
    assert list(tmp_path.iterdir()) == []


def test_specs_and_arithmetic_that_fail_are_clean_errors(tmp_path: Path) -> None:
    cases = [
        (
            ("check", "-r", "X=range:-1,3", "--exec", "echo ${X:c}"),
            "cannot format -1 of ${X} with 'c'",
        ),
        (("check", "-r", f"X=case:{'9' * 400}", "--exec", "echo ${X:f}"), "an int of 400 digits"),
        (
            ("run", "--dry-run", "-r", "X=case:1,a", "--exec", "echo $$(( $X ))", "--shell"),
            "not an integer",
        ),
        (
            ("run", "--dry-run", "-r", "X=case:1", "--exec", "echo \\$X", "--shell"),
            "a backslash before",
        ),
    ]
    for args, message in cases:
        done = rangeexpr(*args, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr
