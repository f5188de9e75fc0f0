"""``rangeexpr run`` end to end: the real CLI in a subprocess, running real processes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m rangeexpr ARGS`` in ``cwd``, with this checkout's code."""
    return subprocess.run(
        [sys.executable, "-m", "rangeexpr", *args],
        cwd=cwd,
        env=ENV,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return cli("run", "--no-progress", *args, cwd=cwd, timeout=timeout)


def piped(rangeexpr_args: str, reader: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``rangeexpr ARGS | READER`` through /bin/sh, for a reader that stops reading early."""
    return subprocess.run(
        f"{sys.executable} -m rangeexpr {rangeexpr_args} | {reader}",
        shell=True,
        check=False,
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )


def start(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rangeexpr", "run", "--no-progress", *args],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def records(log: Path) -> list[dict[str, Any]]:
    """The job log's attempt records (the header line dropped), complete lines only."""
    text = log.read_text() if log.exists() else ""
    return [json.loads(line) for line in text.splitlines(keepends=True)[1:] if line.endswith("\n")]


def wait_for(condition: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_every_point_runs_once_with_its_values_and_environment(tmp_path: Path) -> None:
    result = run(
        "-r",
        "X=range:4",
        "--shard",
        "1/2",
        "-e",
        "E=v$X",
        "--exec",
        "sh -c 'echo $$RANGEEXPR_INDEX/$$RANGEEXPR_COUNT $$E x=$X'",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == ["2/4 v2 x=2", "3/4 v3 x=3"]
    assert result.stderr.startswith("rangeexpr: 2 succeeded, 0 failed, 0 skipped in ")


@pytest.mark.parametrize("shell", [False, True], ids=["argv", "shell"])
def test_a_hostile_value_stays_one_argument(tmp_path: Path, shell: bool) -> None:
    result = run(
        "-r",
        "V=case:\"a b; touch PWNED\", 'x $(touch PWNED2)'",
        "--exec",
        "printf '[%s]\\n' $V",
        *(["--shell"] if shell else []),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == ["[a b; touch PWNED]", "[x $(touch PWNED2)]"]
    assert list(tmp_path.iterdir()) == []


def test_concurrency_never_exceeds_j(tmp_path: Path) -> None:
    script = "date +%s%N > $X.start; sleep 0.3; date +%s%N > $X.end"
    result = run("-r", "X=range:10", "-j", "3", "--exec", f"sh -c '{script}'", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    events = []
    for x in range(10):
        events.append((int((tmp_path / f"{x}.start").read_text()), 1))
        events.append((int((tmp_path / f"{x}.end").read_text()), -1))
    running = peak = 0
    for _, step in sorted(events):  # at equal times an end (-1) sorts before a start
        running += step
        peak = max(peak, running)
    assert peak <= 3  # the law; and jobs did overlap (a loaded machine may stagger starts)
    assert peak >= 2


def test_output_is_one_block_per_job_and_failures_exit_1(tmp_path: Path) -> None:
    script = "echo first $X; sleep 0.$X; echo second $X; [ $X != 2 ]"
    result = run("-r", "X=range:5", "-j", "5", "--exec", f"sh -c '{script}'", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 10
    for first, second in zip(lines[::2], lines[1::2], strict=True):
        assert first.replace("first", "second") == second
    assert "4 succeeded, 1 failed, 0 skipped" in result.stderr
    assert "slowest jobs:" not in result.stderr  # five near-identical jobs: nothing to say
    assert "#2      exit 1           X=2" in result.stderr


def test_results_dir_keeps_output_by_values(tmp_path: Path) -> None:
    script = "echo out $X; echo err $X >&2"
    result = run("-r", "X=range:3", "--results", "res", "--exec", f"sh -c '{script}'", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert (tmp_path / "res" / "X=2.out").read_text() == "out 2\n"
    assert (tmp_path / "res" / "X=2.err").read_text() == "err 2\n"


def test_dry_run_prints_lazily_and_runs_nothing(tmp_path: Path) -> None:
    proc = piped(
        "run --dry-run -r X=range:1000000000000 -e 'N=a $X' --exec 'touch $X'", "head -2", tmp_path
    )
    assert proc.stdout == "N='a 0' touch 0\nN='a 1' touch 1\n"
    assert proc.stderr == ""
    assert list(tmp_path.iterdir()) == []


def test_timeout_is_recorded_as_timed_out(tmp_path: Path) -> None:
    result = run(
        "-r",
        "X=case:0.1,30",
        "--timeout",
        "1",
        "--joblog",
        "log",
        "--exec",
        "sleep $X",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    by_value = {r["values"]["X"]: r for r in records(tmp_path / "log")}
    assert by_value[0.1]["status"] == "succeeded"
    assert by_value[30]["status"] == "timed_out"
    assert by_value[30]["signal"] == signal.SIGTERM
    assert 1 <= by_value[30]["duration"] < 5


def test_retries_rerun_only_failures(tmp_path: Path) -> None:
    # X=0 succeeds at once; X=1 fails once then succeeds; X=2 always fails.
    script = "[ $X = 0 ] || {{ [ $X = 1 ] && [ -e m$X ]; }} || {{ touch m$X; exit 1; }}"
    result = run(
        "-r",
        "X=range:3",
        "--retries",
        "2",
        "--joblog",
        "log",
        "--exec",
        f"sh -c '{script.format()}'",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    attempts = sorted((r["index"], r["attempt"], r["status"]) for r in records(tmp_path / "log"))
    assert attempts == [
        (0, 1, "succeeded"),
        (1, 1, "failed"),
        (1, 2, "succeeded"),
        (2, 1, "failed"),
        (2, 2, "failed"),
        (2, 3, "failed"),
    ]


def test_halt_now_kills_running_jobs(tmp_path: Path) -> None:
    began = time.monotonic()
    result = run(
        "-r",
        "X=range:20",
        "-j",
        "3",
        "--halt",
        "now,fail=1",
        "--joblog",
        "log",
        "--exec",
        # job 1 fails once jobs 0 and 2 have surely started: a job not started when the
        # run stops is given up (no record), so an instant failure could leave 0 or 2 out
        "sh -c 'if [ $X = 1 ]; then sleep 1; exit 1; fi; sleep 30'",
        cwd=tmp_path,
    )
    assert time.monotonic() - began < 20
    assert result.returncode == 1
    statuses = Counter(r["status"] for r in records(tmp_path / "log"))
    assert statuses == {"failed": 1, "killed": 2}
    assert "stopped early by --halt now,fail=1" in result.stderr


def test_halt_soon_stops_launching(tmp_path: Path) -> None:
    result = run(
        "-r",
        "X=range:20",
        "-j",
        "1",
        "--halt",
        "soon,fail=2",
        "--joblog",
        "log",
        "--exec",
        "sh -c '[ $X != 2 ] && [ $X != 4 ]'",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert [r["index"] for r in records(tmp_path / "log")] == [0, 1, 2, 3, 4]


def test_kill_9_then_resume_runs_every_point_once(tmp_path: Path) -> None:
    args = ("-r", "X=range:40", "-j", "4", "--joblog", "log")
    cmd = ("--exec", "sh -c 'echo $X >> ran; sleep 0.1'")
    proc = start(*args, *cmd, cwd=tmp_path)
    wait_for(lambda: len(records(tmp_path / "log")) >= 8)
    proc.kill()
    proc.wait()
    first = {r["index"] for r in records(tmp_path / "log") if r["status"] == "succeeded"}
    assert 8 <= len(first) < 40
    time.sleep(0.3)  # the orphaned last jobs finish their sleep
    result = run(*args, "--resume", *cmd, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{40 - len(first)} succeeded, 0 failed, {len(first)} skipped" in result.stderr
    succeeded = Counter(r["index"] for r in records(tmp_path / "log") if r["status"] == "succeeded")
    assert succeeded == dict.fromkeys(range(40), 1)
    ran = Counter(int(x) for x in (tmp_path / "ran").read_text().split())
    assert all(ran[i] == 1 for i in first)  # what had succeeded was not run again


def test_resume_against_another_sweep_is_an_error(tmp_path: Path) -> None:
    """A grown sweep resumes (by values); another command does not."""
    first = run("-r", "X=range:2", "--joblog", "log", "--exec", "true $X", cwd=tmp_path)
    assert first.returncode == 0
    result = run(
        "-r", "X=range:3", "--joblog", "log", "--resume", "--exec", "echo $X", cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr == (
        "rangeexpr: error: cannot resume: log is the job log of a different sweep "
        "(different exec); a resumed sweep may grow, shrink or be reordered, but needs the "
        "same variables, --exec and -e templates: use another --joblog file\n"
    )


def test_resume_needs_a_joblog(tmp_path: Path) -> None:
    result = run("-r", "X=range:2", "--resume", "--exec", "true", cwd=tmp_path)
    assert result.returncode == 2
    assert "--resume needs --joblog FILE" in result.stderr


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--halt", "sometimes"], "--halt must be"),
        (["-j", "0"], "must be at least 1"),
        (["--timeout", "-1"], "must be a positive number"),
        (["--retries", "x"], "expected a whole number"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path: Path, option: list[str], message: str) -> None:
    result = run("-r", "X=range:2", *option, "--exec", "true", cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_interrupt_exits_130_with_no_child_left(tmp_path: Path, signum: int) -> None:
    proc = start(
        "-r", "X=range:10", "-j", "3", "--joblog", "log", "--exec", "sleep 60", cwd=tmp_path
    )
    wait_for(lambda: len([p for p in descendants(proc.pid) if p.name() == "sleep"]) == 3)
    children = descendants(proc.pid)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert f"interrupted by {signal.Signals(signum).name}" in err
    _, alive = psutil.wait_procs(children, timeout=5)
    assert alive == []
    assert Counter(r["status"] for r in records(tmp_path / "log")) == {"killed": 3}


@pytest.mark.slow
def test_a_billion_point_sweep_runs_in_flat_memory(tmp_path: Path) -> None:
    proc = start("-r", "X=range:1000000000", "-j", "4", "--exec", "true $X", cwd=tmp_path)
    runner = psutil.Process(proc.pid)
    peak = 0
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        peak = max(peak, runner.memory_info().rss)
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    done = int(err.split(" succeeded")[0].rsplit(" ", 1)[-1])
    assert done > 200  # it really ran jobs all along
    assert peak < 100 * 2**20, f"peak RSS {peak / 2**20:.1f} MiB"


def run_on_terminal(*args: str, cwd: Path, stdout_too: bool) -> tuple[int, str, str]:
    """Run with stderr (and optionally stdout) on a pseudo-terminal; (rc, stdout, terminal)."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rangeexpr", "run", *args],
        cwd=cwd,
        env={**ENV, "COLUMNS": "120"},
        stdin=subprocess.DEVNULL,
        stdout=slave if stdout_too else subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    out = proc.stdout.read().decode() if proc.stdout else ""
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(timeout=30), out, b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("stdout_too", [False, True], ids=["stderr-tty", "both-tty"])
def test_progress_bar_on_a_terminal(tmp_path: Path, stdout_too: bool) -> None:
    rc, out, terminal = run_on_terminal(
        "-r",
        "X=range:20",
        "-j",
        "4",
        "--exec",
        "sh -c 'echo job $X; sleep 0.05'",
        cwd=tmp_path,
        stdout_too=stdout_too,
    )
    assert rc == 0
    assert "20/20" in terminal
    assert "jobs/s" in terminal
    assert "0 failed, 0 running" in terminal
    jobs_seen = re.findall(r"job (\d+)\r?\n", terminal if stdout_too else out)
    assert sorted(map(int, jobs_seen)) == list(range(20))
    assert "rangeexpr: 20 succeeded, 0 failed, 0 skipped" in terminal


def test_no_progress_keeps_the_terminal_clean(tmp_path: Path) -> None:
    rc, _, terminal = run_on_terminal(
        "--no-progress", "-r", "X=range:3", "--exec", "true $X", cwd=tmp_path, stdout_too=False
    )
    assert rc == 0
    assert "jobs/s" not in terminal
    assert terminal.startswith("rangeexpr: 3 succeeded")


@pytest.mark.slow
def test_huge_output_is_streamed_not_held(tmp_path: Path) -> None:
    """A job printing 300 MB does not grow the runner: output goes through files."""
    argv = [sys.executable, "-m", "rangeexpr", "run", "--no-progress"]
    proc = subprocess.Popen(
        [*argv, "-r", "X=case:300000000", "--exec", "head -c $X /dev/zero"],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    runner = psutil.Process(proc.pid)
    assert proc.stdout is not None
    received = peak = 0
    while chunk := proc.stdout.read(1 << 20):
        received += len(chunk)
        with contextlib.suppress(psutil.NoSuchProcess):
            peak = max(peak, runner.memory_info().rss)
    assert proc.wait(timeout=60) == 0
    assert received == 300_000_000
    assert peak < 100 * 2**20, f"peak RSS {peak / 2**20:.1f} MiB"


def test_a_closed_stdout_does_not_stop_the_jobs(tmp_path: Path) -> None:
    args = "run --no-progress -r X=range:50 -j 2 --joblog log --exec 'seq $X 5000'"
    proc = piped(args, "head -1", tmp_path)
    assert proc.stdout in ("0\n", "1\n")
    assert "Traceback" not in proc.stderr
    assert "50 succeeded" in proc.stderr
    assert len(records(tmp_path / "log")) == 50


@pytest.mark.slow
def test_a_second_interrupt_kills_at_once_and_keeps_the_records(tmp_path: Path) -> None:
    """Jobs that ignore SIGTERM would take the grace period; a second Ctrl-C does not wait."""
    stubborn = "sh -c 'trap \"\" TERM; sleep 60; echo $X'"
    log = tmp_path / "log.jsonl"
    proc = start(
        "-r", "X=range:4", "-j", "2", "--joblog", str(log), "--exec", stubborn, cwd=tmp_path
    )  # fmt: skip
    wait_for(lambda: len([p for p in descendants(proc.pid) if p.name() == "sleep"]) == 2)
    children = descendants(proc.pid)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=1.5)  # well under the 2 s grace period
    assert proc.returncode == 130, err
    assert "2 killed" in err
    records = [json.loads(line) for line in log.read_text().splitlines()[1:]]
    assert [(r["status"], r["signal"]) for r in records] == [("killed", signal.SIGKILL)] * 2
    _, alive = psutil.wait_procs(children, timeout=5)
    assert alive == []


@pytest.mark.parametrize("option", ["--joblog", "--results"])
def test_an_unwritable_log_or_results_dir_is_an_input_error(tmp_path: Path, option: str) -> None:
    (tmp_path / "file").write_text("")
    result = run("-r", "X=range:2", option, "file/sub", "--exec", "true $X", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("rangeexpr: error: cannot write file")
    assert "Not a directory" in result.stderr


def test_a_huge_sweep_starts_at_once_and_halts(tmp_path: Path) -> None:
    """10^12 points: nothing is expanded ahead, so the first jobs start at once."""
    began = time.monotonic()
    result = run(
        "-r",
        "X=range:1000000000000",
        "-j",
        "2",
        "--halt",
        "soon,fail=1",
        "--exec",
        "sh -c '[ $X -lt 5 ]'",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert time.monotonic() - began < 15
    assert re.match(r"rangeexpr: 5 succeeded, [12] failed, 0 skipped", result.stderr)  # 6 may run
