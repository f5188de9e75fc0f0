"""Reading job logs into flat records, aggregating, sorting and writing them (issue 14).

Logs are written here line by line in the job-log format (``runner/_joblog.py``), with
the ``metrics`` objects the runner adds; one test reads logs that ``rangeexpr run`` wrote.
The HTML page is checked in a real browser in ``test_report_browser.py``.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import math
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rangeexpr import RangeExprError, _report
from rangeexpr._cli._options import add_report_arguments, join_sort_values
from rangeexpr._cli._report import command as report_command
from rangeexpr._report import JobRecords, read_joblog_records, write_table

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
EXPRS = ["LR=logspace:-3,-1,3", "OPT=case:sgd,adam", "SEED=range:2", "W=linspace:0,1,2"]


def header(exprs: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    source = {"exprs": EXPRS if exprs is None else exprs, "exec": "train $LR", "env": {}}
    return {"format": "rangeexpr-joblog/1", "source": source, "size": 24, **extra}


def record(index: int, values: dict[str, Any], **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "index": index,
        "values": values,
        "command": f"train {index}",
        "status": "succeeded",
        "exit_code": 0,
        "signal": None,
        "start": 1000.0 + index,
        "duration": 0.5,
        "attempt": 1,
        "backend_id": None,
    }
    out.update(fields)
    return out


def write_log(
    path: Path, records: list[dict[str, Any]], head: dict[str, Any] | None = None
) -> Path:
    with path.open("w", encoding="utf-8") as f:
        f.write(json.dumps(header() if head is None else head) + "\n")
        for r in records:
            f.write(json.dumps(r) + "\n")
    return path


def sweep_records(metric: Any = None) -> list[dict[str, Any]]:
    """The 24 points of EXPRS in order, ``acc`` from a formula (``metric`` overrides)."""
    out = []
    i = 0
    for lr in (0.001, 0.01, 0.1):
        for opt in ("sgd", "adam"):
            for seed in (0, 1):
                for w in (0.0, 1.0):
                    acc = round(0.5 + 0.1 * math.log10(lr) + (0.2 if opt == "adam" else 0), 6)
                    acc += seed * 0.01 + w * 0.001
                    values = {"LR": lr, "OPT": opt, "SEED": seed, "W": w}
                    metrics = {"acc": acc if metric is None else metric(i), "loss": 1 - acc}
                    out.append(record(i, values, metrics=metrics))
                    i += 1
    return out


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def test_columns_are_named_as_the_axes_and_metrics_and_typed(tmp_path: Path) -> None:
    log = write_log(tmp_path / "log.jsonl", sweep_records())
    recs = read_joblog_records(log)
    assert recs.names == (
        "index", "LR", "OPT", "SEED", "W", "status", "exit_code", "duration", "acc", "loss"
    )  # fmt: skip
    assert recs.axes == ("LR", "OPT", "SEED", "W") and recs.metrics == ("acc", "loss")
    assert recs["index"].tolist() == list(range(24))
    assert recs["LR"].dtype == np.float64 and recs["SEED"].dtype == np.int64
    assert recs["OPT"].tolist()[:4] == ["sgd", "sgd", "sgd", "sgd"]
    assert recs["W"].tolist()[:2] == [0.0, 1.0]
    assert dict(recs.kinds) == {"LR": "logspace", "OPT": "case", "SEED": "range", "W": "linspace"}
    assert recs.source is not None and recs.source["exec"] == "train $LR"
    first = next(recs.rows())
    assert first == {
        "index": 0, "LR": 0.001, "OPT": "sgd", "SEED": 0, "W": 0.0, "status": "succeeded",
        "exit_code": 0, "duration": 0.5, "acc": 0.2, "loss": 0.8,
    }  # fmt: skip
    # str and Path, one log or several, all read the same
    assert len(read_joblog_records(str(log))) == len(read_joblog_records([log])) == 24


def test_each_point_keeps_its_latest_attempt_across_retries_resumes_and_shards(
    tmp_path: Path,
) -> None:
    v = {"LR": 0.1, "OPT": "sgd", "SEED": 0, "W": 0.0}
    shard0 = [
        record(1, v, status="failed", exit_code=1, attempt=1, start=10.0, metrics={"acc": None}),
        record(0, v, status="failed", exit_code=1, attempt=1, start=11.0, metrics={"acc": 0.1}),
        record(0, v, status="failed", exit_code=2, attempt=2, start=12.0, metrics={"acc": 0.2}),
        # resumed later: attempts count from 1 again, the later start wins
        record(0, v, status="succeeded", attempt=1, start=50.0, metrics={"acc": 0.9}),
        record(1, v, status="killed", exit_code=None, signal=9, start=51.0, metrics={}),
    ]
    shard1 = [record(3, v, start=5.0, metrics={"acc": 0.3}), record(2, v, start=6.0)]
    recs = read_joblog_records(
        [write_log(tmp_path / "a.jsonl", shard0), write_log(tmp_path / "b.jsonl", shard1)]
    )
    assert recs.attempts == 7
    assert recs["index"].tolist() == [0, 1, 2, 3]
    assert recs["status"].tolist() == ["succeeded", "killed", "succeeded", "succeeded"]
    assert recs["exit_code"].tolist() == [0, None, 0, 0]
    assert np.array_equal(recs["acc"], [0.9, np.nan, np.nan, 0.3], equal_nan=True)


def test_equal_start_and_attempt_the_record_read_last_wins(tmp_path: Path) -> None:
    v = {"X": 1}
    head = header(["X=range:2"])
    log = write_log(
        tmp_path / "log.jsonl",
        [record(0, v, start=1.0, status="failed"), record(0, v, start=1.0, status="lost")],
        head,
    )
    assert read_joblog_records(log)["status"].tolist() == ["lost"]


def test_metrics_that_are_missing_or_not_numbers_are_nan_and_new_names_add_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_report, "CHUNK", 2)  # new names appear across chunk boundaries
    v = {"X": 1}
    records = [
        record(0, v),  # no metrics at all
        record(1, v, metrics={"acc": 0.5}),
        record(2, v, metrics={"acc": "high", "loss": True}),  # text and bool: not numbers
        record(3, v, metrics={"loss": 2, "acc": None}),
        record(4, v, metrics={"f1": 0.25}),
    ]
    recs = read_joblog_records(write_log(tmp_path / "log.jsonl", records, header(["X=range:5"])))
    assert recs.metrics == ("acc", "loss", "f1")
    nan = np.nan
    assert np.array_equal(recs["acc"], [nan, 0.5, nan, nan, nan], equal_nan=True)
    assert np.array_equal(recs["loss"], [nan, nan, nan, 2.0, nan], equal_nan=True)
    assert np.array_equal(recs["f1"], [nan, nan, nan, nan, 0.25], equal_nan=True)


def test_a_log_without_source_takes_axes_from_the_values_and_infers_log_scale(
    tmp_path: Path,
) -> None:
    rows = [
        record(i, {"LR": lr, "N": n, "ACT": act})
        for i, (lr, n, act) in enumerate(
            [(0.001, 1, "relu"), (0.01, 2, "tanh"), (0.1, 3, "relu"), (1.0, 4, None)]
        )
    ]
    recs = read_joblog_records(
        write_log(tmp_path / "log.jsonl", rows, {"format": "rangeexpr-joblog/1"})
    )
    assert recs.axes == ("LR", "N", "ACT") and recs.kinds == {"LR": "", "N": "", "ACT": ""}
    assert recs.is_log_axis("LR") and not recs.is_log_axis("N") and not recs.is_log_axis("ACT")
    assert recs.is_categorical("ACT") and recs["ACT"].tolist()[-1] is None
    # from the header's kinds: a linspace axis is linear whatever its values
    assert not read_joblog_records(write_log(tmp_path / "s.jsonl", sweep_records())).is_log_axis(
        "W"
    )


def test_a_truncated_last_line_is_ignored_as_on_resume(tmp_path: Path) -> None:
    log = write_log(tmp_path / "log.jsonl", sweep_records()[:3])
    with log.open("a") as f:
        f.write('{"index": 3, "values": {"LR"')
    assert read_joblog_records(log)["index"].tolist() == [0, 1, 2]


def test_index_beyond_int64_and_names_that_clash(tmp_path: Path) -> None:
    big = 2**70
    rows = [
        record(big + 1, {"status": "a"}, start=2.0),
        record(big, {"status": "b"}, metrics={"status": 1.5}),
        record(big + 1, {"status": "c"}, start=3.0),
    ]
    head = header(["status=case:a,b,c"])
    recs = read_joblog_records(write_log(tmp_path / "log.jsonl", rows, head))
    assert recs["index"].tolist() == [big, big + 1]
    # the axis keeps its name; the record's status and the metric get "_" appended
    assert recs.names[:4] == ("index", "status", "status_", "exit_code")
    assert recs.axes == ("status",) and recs.metrics == ("status__",)
    assert recs["status"].tolist() == ["b", "c"]
    assert recs.aggregate(["status"])["succeeded"].tolist() == [1, 1]  # from "status_"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        # why: not JSON at all
        ("hello\n", "is not a rangeexpr job log: its first line is not the header"),
        # why: JSON, but no format field
        ('{"index": 0}\n', "is not a rangeexpr job log: its first line is not the header"),
        # why: empty file
        ("", "is not a rangeexpr job log"),
        # why: a later format
        ('{"format": "rangeexpr-joblog/2"}\n', "is a job log in format 'rangeexpr-joblog/2'"),
        # why: a record that is not JSON; the message gives the line
        ('{"format": "rangeexpr-joblog/1"}\n{"index": 0,\n', ":2: not a job log record"),
        # why: an index that is not a whole number names no point
        (
            '{"format": "rangeexpr-joblog/1"}\n{"index": 1.0, "status": "failed"}\n',
            ':2: not a job log record ("index" is 1.0, not a whole number >= 0)',
        ),
        # why: a record without a status
        (
            '{"format": "rangeexpr-joblog/1"}\n{"index": 0}\n',
            ":2: not a job log record (no 'status')",
        ),
    ],
)
def test_files_that_are_not_job_logs(tmp_path: Path, content: str, message: str) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text(content)
    with pytest.raises(RangeExprError) as info:
        read_joblog_records(log)
    assert message in str(info.value)


def test_a_missing_file_and_logs_of_different_sweeps(tmp_path: Path) -> None:
    with pytest.raises(RangeExprError, match=r"cannot read .*nope.jsonl: No such file"):
        read_joblog_records(tmp_path / "nope.jsonl")
    a = write_log(tmp_path / "a.jsonl", sweep_records()[:2])
    b = write_log(tmp_path / "b.jsonl", [], header(["LR=logspace:-3,-1,4"]))
    with pytest.raises(RangeExprError) as info:
        read_joblog_records([a, b])
    assert str(info.value) == (
        f"{b} is the job log of a different sweep than {a} (different exprs): only logs of "
        "one sweep (its shards, its resumed runs) can be merged"
    )


def test_progress_is_reported_in_bytes_up_to_the_total(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_report, "CHUNK", 5)
    logs = [write_log(tmp_path / f"{k}.jsonl", sweep_records()) for k in "ab"]
    seen: list[int] = []
    read_joblog_records(logs, progress=seen.append)
    total = sum(p.stat().st_size for p in logs)
    assert len(seen) > 4 and seen == sorted(seen) and seen[-1] == total


def test_the_format_string_is_the_runners() -> None:
    from runner._joblog import FORMAT

    assert _report.JOBLOG_FORMAT == FORMAT


def test_reads_the_logs_that_rangeexpr_run_writes_and_resumes(tmp_path: Path) -> None:
    def run(*extra: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "rangeexpr", "run", "--no-progress", "--joblog", "log.jsonl",
             "-r", "N=range:3", "-r", "T=case:a,b", "--exec", "sh -c 'test -e ok || exit $N'",
             *extra],
            cwd=tmp_path, env=ENV, check=False, capture_output=True, timeout=60,
        )  # fmt: skip

    run()  # N=0 succeeds, N=1 and N=2 fail with exit codes 1 and 2
    first = read_joblog_records(tmp_path / "log.jsonl")
    assert first["exit_code"].tolist() == [0, 0, 1, 1, 2, 2]
    (tmp_path / "ok").touch()
    run("--resume")  # the failed ones run again and now succeed
    recs = read_joblog_records(tmp_path / "log.jsonl")
    assert recs.attempts == 10 and len(recs) == 6
    assert recs.axes == ("N", "T") and recs["N"].tolist() == [0, 0, 1, 1, 2, 2]
    assert recs["T"].tolist() == ["a", "b"] * 3
    assert set(recs["status"].tolist()) == {"succeeded"}


def test_a_log_resumed_by_a_grown_sweep_keys_points_by_values(tmp_path: Path) -> None:
    """Issue 15: the resumed run appends its own header, and its indices differ."""

    def run(lrs: str, *extra: str) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "rangeexpr", "run", "--no-progress", "--joblog", "log.jsonl",
             "-r", "SEED=range:2", "-r", f"LR=case:{lrs}",
             "--exec", "sh -c 'test $$0 != 1b || test -e fixed' $SEED$LR", *extra],
            cwd=tmp_path, env=ENV, check=False, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode in (0, 1), result.stderr

    run("a,b")  # SEED=1, LR=b (index 3) fails
    (tmp_path / "fixed").touch()
    run("a,b,c", "--resume")  # 1b is index 4 now; 0c and 1c are new
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert sum('"index"' not in line for line in lines) == 2  # two headers
    recs = read_joblog_records(tmp_path / "log.jsonl")
    assert recs.attempts == 7 and len(recs) == 6
    rows = [(r["index"], r["SEED"], r["LR"], r["status"]) for r in recs.rows()]
    assert rows == [
        (0, 0, "a", "succeeded"),
        (1, 0, "b", "succeeded"),
        (2, 0, "c", "succeeded"),
        (2, 1, "a", "succeeded"),  # its index in the first run, where it succeeded
        (4, 1, "b", "succeeded"),
        (5, 1, "c", "succeeded"),
    ]
    out = io.StringIO()
    write_table(recs.aggregate(by=["SEED"]), out, "csv")
    assert out.getvalue().splitlines()[1:] == ["0,3,3", "1,3,3"]


# ---------------------------------------------------------------------------
# Aggregating and sorting
# ---------------------------------------------------------------------------


def test_aggregate_by_and_over_agrees_with_pandas(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    rows = sweep_records(metric=lambda i: None if i % 7 == 3 else (i * 37 % 11) / 10)
    rows[5]["status"] = "failed"
    recs = read_joblog_records(write_log(tmp_path / "log.jsonl", rows))
    df = recs.to_dataframe()
    for by, over, keys in [
        (["LR", "OPT"], "SEED", ["LR", "OPT"]),
        ([], "SEED", ["LR", "OPT", "W"]),
        (["OPT"], None, ["OPT"]),
    ]:
        ours = recs.aggregate(by, over)
        theirs = df.groupby(keys)["acc"].agg(["mean", "std", "count", "min", "max"]).reset_index()
        assert ours.names[: len(keys) + 2] == (*keys, "points", "succeeded")
        for key in keys:
            assert ours[key].tolist() == theirs[key].tolist()
        for stat in ("mean", "std", "count", "min", "max"):
            np.testing.assert_allclose(ours[f"acc_{stat}"], theirs[stat], rtol=1e-12)
        assert ours["points"].tolist() == df.groupby(keys).size().tolist()
    assert recs.aggregate(["OPT"])["succeeded"].tolist() == [11, 12]  # adam (5 failed), sgd


def test_aggregate_names_must_be_axes() -> None:
    recs = JobRecords(
        {"index": np.arange(2), "LR": np.array([0.1, 0.2]), "status": np.array(["ok", "ok"])},
        axes=("LR",),
    )
    with pytest.raises(RangeExprError) as info:
        recs.aggregate(["lr"])
    assert str(info.value) == "--by: no axis named 'lr'; did you mean 'LR'? (known: LR)"
    with pytest.raises(RangeExprError, match="--over LR is also in --by"):
        recs.aggregate(["LR"], "LR")
    with pytest.raises(RangeExprError, match=r"--over: no axis named 'SEED' \(known: LR\)"):
        recs.aggregate([], "SEED")


def test_sorted_puts_missing_values_last_and_keeps_ties_in_order() -> None:
    table = _report.Table(
        {
            "i": np.arange(5),
            "x": np.array([0.5, np.nan, 0.9, 0.5, 0.1]),
            "s": np.array(["b", None, "a", "b", "c"], dtype=object),
        }
    )
    assert table.sorted("x", descending=True)["i"].tolist() == [2, 0, 3, 4, 1]
    assert table.sorted("x")["i"].tolist() == [4, 0, 3, 2, 1]
    assert table.sorted("s", descending=True)["i"].tolist() == [4, 0, 3, 2, 1]
    assert table.sorted("s")["i"].tolist() == [2, 0, 3, 4, 1]
    assert table.sorted("x", descending=True).head(2)["i"].tolist() == [2, 0]


# ---------------------------------------------------------------------------
# Writing, and the command
# ---------------------------------------------------------------------------


def report(*argv: str) -> int:
    """``rangeexpr report ARGV`` through the command's own parser (not yet wired in)."""
    parser = argparse.ArgumentParser(prog="rangeexpr report")
    add_report_arguments(parser)
    return report_command(parser.parse_args(join_sort_values(argv)))


def test_csv_and_jsonl_load_straight_into_pandas(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    rows = sweep_records(metric=lambda i: None if i == 2 else i / 10)
    rows[4].update(status="killed", exit_code=None)
    rows[6]["metrics"]["loss"] = math.inf  # json.dumps writes Infinity, as the runner would
    log = write_log(tmp_path / "log.jsonl", rows)
    assert report(str(log), "-o", str(tmp_path / "r.csv")) == 0
    assert report(str(log), "-o", str(tmp_path / "r.jsonl")) == 0
    expected = read_joblog_records(log).to_dataframe()
    for df in (pd.read_csv(tmp_path / "r.csv"), pd.read_json(tmp_path / "r.jsonl", lines=True)):
        assert list(df.columns) == list(expected.columns)
        assert df["LR"].dtype == np.float64 and df["SEED"].dtype == np.int64
        assert df["OPT"].tolist() == expected["OPT"].tolist()
        assert df["acc"].isna().tolist() == [i == 2 for i in range(24)]
        assert df["exit_code"].isna().tolist() == [i == 4 for i in range(24)]
        # read_csv's default float parser can be a few ulp off the shortest repr written
        # (float_precision="round_trip" reads it exactly)
        for name in ("LR", "W", "duration", "acc"):
            np.testing.assert_allclose(df[name], expected[name], rtol=1e-14)
        means = df.groupby("OPT")["acc"].mean()
        np.testing.assert_allclose(means, expected.groupby("OPT")["acc"].mean(), rtol=1e-14)
    assert pd.read_csv(tmp_path / "r.csv")["loss"][6] == math.inf
    assert math.isnan(pd.read_json(tmp_path / "r.jsonl", lines=True)["loss"][6])  # null
    # the aggregated table too
    assert report(str(log), "--by", "OPT", "--over", "SEED", "-o", str(tmp_path / "g.csv")) == 0
    agg = pd.read_csv(tmp_path / "g.csv")
    assert agg.columns[:4].tolist() == ["OPT", "points", "succeeded", "acc_mean"]
    assert agg["acc_count"].tolist() == [12, 11]


def test_to_dataframe_types_and_a_clear_error_without_pandas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pandas")
    rows = sweep_records()
    rows[1]["exit_code"] = None
    recs = read_joblog_records(write_log(tmp_path / "log.jsonl", rows))
    df = recs.to_dataframe()
    assert str(df["exit_code"].dtype) == "Int64" and df["exit_code"].isna().sum() == 1
    assert df["SEED"].dtype == np.int64 and df["acc"].dtype == np.float64
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if pandas were not installed
    with pytest.raises(ImportError, match=r"to_dataframe\(\) needs pandas.*pip install pandas"):
        recs.to_dataframe()


def test_table_sort_top_and_did_you_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = write_log(tmp_path / "log.jsonl", sweep_records())
    assert report(str(log), "--sort", "-acc", "--top", "2") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "index", "LR", "OPT", "SEED", "W", "status", "exit_code", "duration", "acc", "loss"
    ]  # fmt: skip
    assert lines[1].split()[:5] == ["23", "0.1", "adam", "1", "1"]
    assert lines[2].split()[:5] == ["22", "0.1", "adam", "1", "0"]
    assert len(lines) == 3
    # with --by, a metric name sorts by its mean
    assert report(str(log), "--by", "OPT", "--sort", "-acc", "--format", "jsonl") == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["OPT"] for r in out] == ["adam", "sgd"]
    with pytest.raises(RangeExprError) as info:
        report(str(log), "--sort", "-ac")
    assert str(info.value) == (
        "--sort: no column named 'ac'; did you mean 'acc'? (known: index, LR, OPT, "
        "SEED, W, status, exit_code, duration, acc, loss)"
    )
    with pytest.raises(RangeExprError, match="no column in the aggregated table named 'W'"):
        report(str(log), "--over", "W", "--sort", "W")


def test_join_sort_values() -> None:
    assert join_sort_values(["a", "--sort", "-acc", "--top", "3"]) == [
        "a", "--sort=-acc", "--top", "3"
    ]  # fmt: skip
    assert join_sort_values(["--sort", "acc", "--", "--sort", "-x"]) == [
        "--sort", "acc", "--", "--sort", "-x"
    ]  # fmt: skip
    assert join_sort_values(["--sort"]) == ["--sort"]


def test_write_table_text_shows_axis_values_exactly_and_missing_as_dash() -> None:
    table = _report.Table(
        {
            "LR": np.array([0.30000000000000004, 1e-05]),
            "acc": np.array([0.123456789, np.nan]),
            "exit_code": np.array([0, None], dtype=object),
        }
    )
    out = io.StringIO()
    write_table(table, out, "table", axes=("LR",))
    assert out.getvalue().splitlines() == [
        "                 LR       acc  exit_code",
        "0.30000000000000004  0.123457          0",
        "              1e-05         -          -",
    ]


def test_html_without_plotly_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = write_log(tmp_path / "log.jsonl", sweep_records())
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)  # as if not installed
    with pytest.raises(RangeExprError) as info:
        report(str(log), "-o", str(tmp_path / "r.html"))
    assert str(info.value) == (
        "--format html needs plotly, which is not installed: pip install 'rangeexpr[report]'"
    )
    assert not (tmp_path / "r.html").exists()


def test_html_page_is_self_contained(tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    rows = sweep_records()
    rows[0]["command"] = "train --note '<b>&'"
    log = write_log(tmp_path / "log.jsonl", rows)
    assert report(str(log), "--format", "html", "-o", str(tmp_path / "r.html")) == 0
    page = (tmp_path / "r.html").read_text()
    plotly_js = importlib.import_module("plotly.offline").get_plotlyjs()
    assert f"<script>{plotly_js}</script>" in page  # inline: the page needs no network
    assert "<h2>Points</h2>" in page and "rank them with --sort -METRIC" in page
    assert "<td class='cmd'>train --note &#x27;&lt;b&gt;&amp;&#x27;</td>" in page
    assert "'<b>&'" not in page  # escaped in the hover text too
    # with --sort, the best points first; with --over, the table is the aggregated one
    out = tmp_path / "s.html"
    assert report(str(log), "--over", "SEED", "--sort", "-acc", "--top", "3", "-o", str(out)) == 0
    page = out.read_text()
    assert "<h2>Best points</h2>" in page and "sorted by -acc" in page
    assert "<th>LR</th><th>OPT</th><th>W</th><th>points</th>" in page
    assert page.count("<tr><td") == 3


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    rows = sweep_records() * 800  # about 5 MB: above the size that shows a bar
    log = write_log(tmp_path / "log.jsonl", rows)
    assert log.stat().st_size > 4 << 20
    code = (
        "import argparse; from rangeexpr._cli._options import add_report_arguments; "
        "from rangeexpr._cli._report import command as report_command; "
        "p = argparse.ArgumentParser(); add_report_arguments(p); "
        f"report_command(p.parse_args([{str(log)!r}, '--by', 'OPT', '--format', 'csv']))"
    )
    main, child = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-c", code], env={**ENV, "TERM": "xterm", "COLUMNS": "100"},
        stdout=subprocess.PIPE, stderr=child, text=True,
    ) as proc:  # fmt: skip
        os.close(child)
        terminal = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            terminal += chunk
        out = proc.stdout.read() if proc.stdout else ""
    os.close(main)
    assert proc.returncode == 0
    assert b"reading job logs" in terminal
    assert out.splitlines()[0].startswith("OPT,points,succeeded,acc_mean")
