"""A job log read by --resume: every record must say exactly which point it is.

``data/joblog_invalid/*.txt``: a ``# why`` line, one record line, then the exact error
(``{log}`` stands for the log's path). Each record is read as line 3 of a log for a
10-point sweep, after the header and one valid record, so the error must name line 3.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli_run import run

from runner import JobLogError, read_joblog

DATA = Path(__file__).parent / "data" / "joblog_invalid"
INVALID = sorted(DATA.glob("*.txt"))
HEADER = {"format": "rangeexpr-joblog/1", "source": {"exprs": ["X=range:10"]}}
VALID = {"index": 0, "status": "succeeded"}


def write_log(path: Path, *records: str) -> Path:
    lines = [json.dumps(HEADER), json.dumps(VALID), *records]
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def test_vectors_were_found() -> None:
    assert len(INVALID) >= 12


@pytest.mark.parametrize("vector", INVALID, ids=[p.stem for p in INVALID])
def test_a_record_that_names_no_point_makes_the_log_invalid(tmp_path: Path, vector: Path) -> None:
    why, record, expected = vector.read_text().split("\n", 2)
    assert why.startswith("# "), "the first line says why the record is invalid"
    log = write_log(tmp_path / "log.jsonl", record)
    with pytest.raises(JobLogError) as info:
        read_joblog(log, 10)
    assert str(info.value) == expected.rstrip("\n").format(log=log)


@pytest.mark.parametrize(
    ("records", "succeeded"),
    [
        ([], {0}),
        (['{"index": 9, "status": "succeeded", "extra": [1]}'], {0, 9}),
        (['{"index": 5, "status": "failed"}', '{"index": 5, "status": "killed"}'], {0}),
    ],
)
def test_valid_logs(tmp_path: Path, records: list[str], succeeded: set[int]) -> None:
    """Indices 0 and 9 are the ends of the range; only "succeeded" counts as done."""
    log = write_log(tmp_path / "log.jsonl", *records)
    assert read_joblog(log, 10).succeeded == succeeded


def test_the_header_is_checked_before_the_records(tmp_path: Path) -> None:
    """A log of another (bigger) sweep is refused as that, not for an index out of range."""
    log = write_log(tmp_path / "log.jsonl", '{"index": 50, "status": "succeeded"}')
    seen: list[dict[str, object]] = []
    with pytest.raises(JobLogError, match=":3: "):
        read_joblog(log, 10, check_header=seen.append)
    assert seen == [HEADER]

    def refuse(header: dict[str, object]) -> None:
        raise JobLogError("another sweep")

    with pytest.raises(JobLogError, match=r"^another sweep$"):
        read_joblog(log, 10, check_header=refuse)


@pytest.mark.parametrize("index", ['"abc"', "1.9", "true", "-1"])
def test_resume_with_an_invalid_record_is_a_clean_error(tmp_path: Path, index: str) -> None:
    first = run("-r", "X=range:10", "--joblog", "log", "--exec", "true $X", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    lines = (tmp_path / "log").read_text().splitlines(keepends=True)
    lines[2] = json.dumps(json.loads(lines[2]) | {"index": "@"}).replace('"@"', index) + "\n"
    (tmp_path / "log").write_text("".join(lines))
    for dry_run in ([], ["--dry-run"]):
        result = run(
            "-r", "X=range:10", "--joblog", "log", "--resume", *dry_run, "--exec", "true $X",
            cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 2
        assert result.stderr == (
            f'rangeexpr: error: cannot resume: log:3: "index" is {index}, '
            "not a point of the sweep (a whole number >= 0)\n"
        )
