"""Metrics from each job (issue 14): printed ``NAME: X`` / ``NAME=X`` lines, a regex, or a
JSON file; the last value wins, a missing or non-number value is null, never a failure;
through the real CLI into the job log, then ``rangeexpr report`` on that log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from runner import Metric, MetricError, Metrics
from runner._metrics import _BLOCK, number, read_file, scan

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def rangeexpr(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rangeexpr", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def values(path: Path, *texts: str) -> dict[str, object]:
    metrics = [Metric.parse(t) for t in texts]
    return {m.name: number(scan(path, metrics).get(m.name)) for m in metrics}


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "out"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


@pytest.mark.parametrize(
    "line",
    [
        "acc: 0.95",
        "acc=0.95",
        "acc = 0.95",
        "  acc:\t0.95  ",
        "epoch 3 - loss: 0.2 - acc: 0.95 - lr: 1",
        "{'acc': 0.95, 'loss': 0.1}",
        '{"loss": 0.1, "acc": 0.95}',
        "step=3 acc=0.95;",
        "acc acc: 0.95",
        "val_acc: 0.5 acc: 0.95",
    ],
)
def test_the_formats_a_name_finds(tmp_path: Path, line: str) -> None:
    assert values(write(tmp_path, line + "\n"), "acc") == {"acc": 0.95}


@pytest.mark.parametrize(
    "line", ["accuracy: 1", "val_acc: 1", "train/acc=1", "x.acc=1", "acc 1", "accacc: 1", "Acc: 1"]
)
def test_other_names_are_not_taken_for_it(tmp_path: Path, line: str) -> None:
    assert values(write(tmp_path, line + "\n"), "acc") == {"acc": None}


def test_the_last_value_printed_wins(tmp_path: Path) -> None:
    path = write(tmp_path, "acc: 0.1\nloss=3\nacc: 0.2\nacc=0.3 and more\nloss=2\ndone\n")
    assert values(path, "acc", "loss") == {"acc": 0.3, "loss": 2}


@pytest.mark.parametrize("text", ["acc: n/a", "acc: nan", "acc=inf", "acc: 95%", "acc:", ""])
def test_missing_or_not_a_number_is_none(tmp_path: Path, text: str) -> None:
    assert values(write(tmp_path, text + "\n"), "acc") == {"acc": None}


def test_a_later_non_number_hides_an_earlier_number(tmp_path: Path) -> None:
    """The last value is the job's final word, even when it is not a number."""
    assert values(write(tmp_path, "acc: 0.5\nacc: diverged\n"), "acc") == {"acc": None}


def test_numbers_keep_their_kind() -> None:
    assert number(b"12") == 12 and type(number(b"12")) is int
    assert number(b"-1e-3") == -0.001
    assert number(b" 7 ") == 7
    assert type(number(b"1" * 30)) is float  # beyond 18 digits: a float
    assert number(b"1e999") is None  # overflows to inf
    assert number(None) is None


def test_a_regex_gives_other_formats(tmp_path: Path) -> None:
    path = write(tmp_path, "L 0.5\nvalidation loss is 0.25 (best)\nL 0.4\n")
    got = values(path, r"vloss=validation loss is (\S+)", r"loss=^L (\S+)$")
    assert got == {"vloss": 0.25, "loss": 0.4}


@pytest.mark.parametrize(
    ("text", "message", "span"),
    [
        ("1acc", "NAME or NAME=REGEX", (0, 4)),
        ("=x", "NAME or NAME=REGEX", (0, 1)),
        ("acc=(", "bad regex", (4, 5)),  # the unterminated group
        ("acc=acc", "exactly one group", (4, 7)),
        ("acc=(a)(b)", "exactly one group", (4, 10)),
    ],
)
def test_bad_metrics_say_what_and_where(text: str, message: str, span: tuple[int, int]) -> None:
    with pytest.raises(MetricError, match=message) as info:
        Metric.parse(text)
    assert info.value.span == span


def test_the_scan_sees_whole_lines_across_blocks(tmp_path: Path) -> None:
    """Blocks are read from the end; a metric line across a block boundary is whole."""
    filler = b"x" * 99 + b"\n"
    for cut in range(-12, 12, 3):  # the metric line straddles the last block's start
        body = filler * (3 * _BLOCK // 100)
        head = len(body) - _BLOCK + cut
        body = body[:head] + b"\nacc: 0.77\n" + body[head:]
        path = write(tmp_path, body)
        assert values(path, "acc") == {"acc": 0.77}, cut


def test_an_early_metric_is_found_in_a_big_output(tmp_path: Path) -> None:
    path = write(tmp_path, b"acc: 0.1\nloss: 9\n" + b"y" * 300 + b"\n" + b"z\n" * (2 * _BLOCK))
    assert values(path, "acc", "loss") == {"acc": 0.1, "loss": 9}


def test_a_very_long_line_is_scanned_in_pieces(tmp_path: Path) -> None:
    path = write(tmp_path, b"acc: 0.5\n" + b"q" * (9 * _BLOCK) + b" acc: 0.6\n")
    assert values(path, "acc") == {"acc": 0.6}


def test_a_huge_output_is_not_read_whole(tmp_path: Path) -> None:
    """A 64 GiB (sparse) output with its metric at the end: read backwards, a block."""
    path = tmp_path / "huge"
    with path.open("wb") as f:
        f.truncate(64 << 30)
        f.seek(0, 2)
        f.write(b"\nacc: 0.99\n")
    got = trio.run(Metrics([Metric.parse("acc")]).read, path, None)
    assert got == {"acc": 0.99}


def test_the_json_file_way(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('{"acc": 0.5, "n": 3, "bad": "x", "flag": true, "inf": 1e999}')
    assert read_file(path) == {"acc": 0.5, "n": 3, "bad": None, "flag": None, "inf": None}
    assert not path.exists()  # removed once read
    for text in ["[1, 2]", "not json", ""]:
        path.write_text(text)
        assert read_file(path) == {}
    assert read_file(tmp_path / "never-written.json") == {}


def test_the_file_wins_over_printed_values_and_adds_its_own(tmp_path: Path) -> None:
    out = write(tmp_path, "acc: 0.1\nloss: 2\n")
    file = tmp_path / "m.json"
    file.write_text('{"acc": 0.9, "f1": 0.3}')
    metrics = Metrics([Metric.parse("acc"), Metric.parse("loss")])
    assert trio.run(metrics.read, out, file) == {"acc": 0.9, "loss": 2, "f1": 0.3}


# -- through the CLI and the job log ---------------------------------------------------------


def records(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()[1:]]


def test_metrics_reach_the_job_log_and_the_report(tmp_path: Path) -> None:
    """A sweep whose jobs print a metric: the best point and the per-axis means, no code."""
    result = rangeexpr(
        "run", "--no-progress", "-j", "3", "-r", "DEPTH=range:1,4", "-r", "SEED=range:3",
        "--metric", "acc", "--metric", "loss", "--joblog", "log.jsonl", "--shell",
        "--exec", 'echo "epoch 1 acc: 0.1"; echo "acc: 0.$DEPTH$SEED"; echo loss=n/a',
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "rangeexpr: jobs reporting each metric (of 9): acc 9, loss 0" in result.stderr
    assert "no job reported loss" in result.stderr
    got = {r["index"]: r["metrics"] for r in records(tmp_path / "log.jsonl")}
    assert got == {3 * (d - 1) + s: {"acc": float(f"0.{d}{s}"), "loss": None}
                   for d in range(1, 4) for s in range(3)}  # fmt: skip

    best = rangeexpr("report", "log.jsonl", "--sort", "-acc", "--top", "1", "--format", "csv",
                     cwd=tmp_path)  # fmt: skip
    assert best.returncode == 0, best.stderr
    header, row = best.stdout.splitlines()
    assert dict(zip(header.split(","), row.split(","), strict=True))["DEPTH"] == "3"
    assert row.startswith("8,3,2,succeeded,")

    means = rangeexpr("report", "log.jsonl", "--by", "DEPTH", "--over", "SEED", "--format",
                      "jsonl", cwd=tmp_path)  # fmt: skip
    assert means.returncode == 0, means.stderr
    rows = [json.loads(line) for line in means.stdout.splitlines()]
    assert [(r["DEPTH"], round(r["acc_mean"], 9), r["acc_count"]) for r in rows] == [
        (1, 0.11, 3),
        (2, 0.21, 3),
        (3, 0.31, 3),
    ]


def test_a_job_writes_its_metrics_file(tmp_path: Path) -> None:
    """$RANGEEXPR_METRICS_FILE: fresh for each attempt, read after it, then removed."""
    (tmp_path / "job.sh").write_text(
        '[ -e "$RANGEEXPR_METRICS_FILE" ] && exit 9\n'  # never a stale one
        'printf \'{"f1": 0.%s, "attempt": %s}\' "$1" "$(cat n 2>/dev/null || echo 1)" '
        '> "$RANGEEXPR_METRICS_FILE"\n'
        '[ "$1" != 2 ] || [ -e n ] || { echo 2 > n; exit 1; }\n'
        "echo acc: 1\n"
    )
    result = rangeexpr(
        "run", "--no-progress", "-j", "1", "-r", "X=range:1,4", "--metric", "acc",
        "--retries", "1", "--joblog", "log.jsonl", "--results", "res",
        "--exec", "sh job.sh $X", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    got = [(r["index"], r["attempt"], r["status"], r["metrics"])
           for r in records(tmp_path / "log.jsonl")]  # fmt: skip
    assert got == [
        (0, 1, "succeeded", {"acc": 1, "f1": 0.1, "attempt": 1}),
        (1, 1, "failed", {"acc": None, "f1": 0.2, "attempt": 1}),  # a failure keeps its metrics
        (1, 2, "succeeded", {"acc": 1, "f1": 0.2, "attempt": 2}),
        (2, 1, "succeeded", {"acc": 1, "f1": 0.3, "attempt": 2}),
    ]
    names = {p.name for p in (tmp_path / "res").iterdir()}
    assert {f"X={x}.{s}" for x in range(1, 4) for s in ("err", "out")} <= names
    assert not [name for name in names if "metrics" in name]  # read, then removed
    assert "rangeexpr: jobs reporting each metric (of 3): acc 3, f1 3, attempt 3" in result.stderr


def test_no_metric_no_metrics_field(tmp_path: Path) -> None:
    result = rangeexpr("run", "--no-progress", "-r", "X=range:2", "--joblog", "log.jsonl",
                       "--exec", "echo acc: $X", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert all("metrics" not in r for r in records(tmp_path / "log.jsonl"))
    assert "metric" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metric", "acc=(a)(b)"], "exactly one group"),
        (["--metric", "acc", "--metric", "acc=x(.)"], "--metric acc is given twice"),
        (["--metric", "9lives"], "NAME or NAME=REGEX"),
    ],
)
def test_a_bad_metric_is_a_usage_error(tmp_path: Path, args: list[str], message: str) -> None:
    result = rangeexpr("run", "-r", "X=range:2", *args, "--exec", "true $X", cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
