"""No silent empty sweeps: a run that selects no point is an error (exit 2) saying why.

A resume that finds every point done is not empty: it exits 0 and says so.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli_run import run


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--slice", "5:9"], "--slice 5:9 selects none of the sweep's 2 points"),
        (["--shard", "0/4"], "--shard 0/4 selects none of the sweep's 2 points"),
        (["--where", "1 == 0"], "--where '1 == 0' keeps no point"),
        (["--slice", "0:1", "--where", "X > 0"], "--slice 0:1 --where 'X > 0' keeps no point"),
        (["--dry-run", "--where", "X > 5"], "--where 'X > 5' keeps no point"),
    ],
    ids=["slice", "shard", "where", "slice-where", "dry-run"],
)
def test_an_empty_selection_is_an_error(tmp_path: Path, options: list[str], message: str) -> None:
    result = run("-r", "X=range:2", *options, "--exec", "touch $X", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"rangeexpr: error: nothing to run: {message}\n"
    assert list(tmp_path.iterdir()) == []


def test_a_resume_with_nothing_left_says_so(tmp_path: Path) -> None:
    args = ("-r", "X=range:3", "--joblog", "log", "--exec", "true $X")
    assert run(*args, cwd=tmp_path).returncode == 0
    result = run(*args, "--resume", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stderr.startswith("rangeexpr: 0 succeeded, 0 failed, 3 skipped in ")
    assert result.stderr.endswith("rangeexpr: nothing left to run: log records every point\n")
