"""No silent clobbering: an existing job log or another sweep's results are never replaced."""

from __future__ import annotations

from pathlib import Path

from test_cli_run import run


def test_an_existing_joblog_without_resume_is_an_error(tmp_path: Path) -> None:
    args = ("-r", "X=range:3", "--joblog", "log", "--exec", "true $X")
    assert run(*args, cwd=tmp_path).returncode == 0
    before = (tmp_path / "log").read_text()
    again = run(*args, cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr == (
        "rangeexpr: error: --joblog log exists: give --resume to continue it (the points it "
        "records as succeeded are skipped), --overwrite to replace it, or another file\n"
    )
    assert (tmp_path / "log").read_text() == before
    replaced = run(*args[:1], "X=range:1", *args[2:], "--overwrite", cwd=tmp_path)
    assert replaced.returncode == 0, replaced.stderr
    assert len((tmp_path / "log").read_text().splitlines()) == 2


def test_results_of_another_sweep_are_refused(tmp_path: Path) -> None:
    first = run("-r", "X=range:2", "--results", "out", "--exec", "echo first $X", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "out" / ".rangeexpr-sweep").exists()
    second = run("-r", "X=range:2", "--results", "out", "--exec", "echo second $X", cwd=tmp_path)
    assert second.returncode == 2
    assert "--results out holds the outputs of another sweep" in second.stderr
    assert (tmp_path / "out" / "X=0.out").read_text() == "first 0\n"
    again = run("-r", "X=range:2", "--results", "out", "--exec", "echo first $X", cwd=tmp_path)
    assert again.returncode == 0, again.stderr  # the same sweep may write its own outputs
    forced = run(
        "-r", "X=range:2", "--results", "out", "--exec", "echo second $X", "--overwrite",
        cwd=tmp_path,
    )  # fmt: skip
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "out" / "X=0.out").read_text() == "second 0\n"


def test_a_directory_of_files_rangeexpr_did_not_write_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "X=0.out").write_text("precious\n")
    result = run("-r", "X=range:2", "--results", "out", "--exec", "echo $X", cwd=tmp_path)
    assert result.returncode == 2
    assert "holds files rangeexpr did not write" in result.stderr
    assert (tmp_path / "out" / "X=0.out").read_text() == "precious\n"
    (tmp_path / "empty").mkdir()
    fine = run("-r", "X=range:2", "--results", "empty", "--exec", "echo $X", cwd=tmp_path)
    assert fine.returncode == 0, fine.stderr


def test_a_grown_sweep_resuming_its_log_keeps_its_results_directory(tmp_path: Path) -> None:
    base = ("--joblog", "log", "--results", "out", "--exec", "echo $X")
    assert run("-r", "X=range:2", *base, cwd=tmp_path).returncode == 0
    grown = run("-r", "X=range:3", *base, "--resume", cwd=tmp_path)
    assert grown.returncode == 0, grown.stderr
    assert "1 succeeded, 0 failed, 2 skipped" in grown.stderr
