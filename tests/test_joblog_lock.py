"""One writer per job log: a second run is refused before it runs anything, lines never tear.

Unit tests on ``JobLog`` in this process (two ``JobLog`` objects lock like two processes:
``flock`` belongs to an open file, not to a process), then the issue's repro end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from test_cli_run import ENV, records, run, start, wait_for

from runner import Job, JobLog, Outcome, read_joblog
from runner._joblog import JobLogBusy


def job(index: int) -> Job:
    return Job(index, ("work",), "work", {}, {"i": index})


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    with JobLog.create(log, {}), pytest.raises(JobLogBusy) as info:
        JobLog(log)
    assert info.value.pid == os.getpid()
    assert str(info.value) == (
        f"{log} is in use by another run (PID {os.getpid()}): a job log has one writer at a "
        "time; wait for that run to end, or use another --joblog file"
    )


def test_the_lock_goes_with_close_and_leaves_no_file(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    JobLog.create(log, {}).close()
    with JobLog(log) as again:
        again.resume()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.jsonl"]


def test_another_name_for_the_same_log_is_the_same_lock(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    (tmp_path / "link").symlink_to(log)
    with JobLog.create(log, {}), pytest.raises(JobLogBusy):
        JobLog(tmp_path / "link")


def test_a_lock_file_left_by_a_killed_run_is_taken_over(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    (tmp_path / "log.jsonl.lock").write_text("999999999\n")  # nobody holds its flock
    with JobLog.create(log, {}) as joblog:
        joblog.record(job(0), 1, Outcome("succeeded", 0), 0.0, 0.1)
        assert (tmp_path / "log.jsonl.lock").read_text() == f"{os.getpid()}\n"


def test_records_are_appended_after_what_another_writer_added(tmp_path: Path) -> None:
    """O_APPEND: even a writer that ignores the lock cannot be overwritten, nor overwrite."""
    log = tmp_path / "log.jsonl"
    with JobLog.create(log, {}) as joblog:
        joblog.record(job(0), 1, Outcome("succeeded", 0), 0.0, 0.1)
        with log.open("a") as rogue:
            rogue.write('{"index": 7, "status": "failed"}\n')
        joblog.record(job(1), 1, Outcome("succeeded", 0), 0.0, 0.1)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line.get("index") for line in lines] == [None, 0, 7, 1]


def test_resume_cuts_a_torn_last_line_before_appending(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    with JobLog.create(log, {}) as joblog:
        joblog.record(job(0), 1, Outcome("succeeded", 0), 0.0, 0.1)
    with log.open("a") as f:
        f.write('{"index": 1, "sta')  # killed mid-write
    with JobLog(log) as joblog:
        assert joblog.resume(5).succeeded == {0}
        joblog.record(job(1), 1, Outcome("succeeded", 0), 0.0, 0.1)
    assert read_joblog(log, 5).succeeded == {0, 1}


def test_a_second_run_on_a_log_in_use_stops_before_running_anything(tmp_path: Path) -> None:
    cmd = ("--exec", "sh -c 'echo $X >> ran; sleep 0.2'")
    first = start("-r", "X=range:20", "-j", "2", "--joblog", "log", *cmd, cwd=tmp_path)
    wait_for(lambda: len(records(tmp_path / "log")) >= 2)
    second = run("-r", "X=range:20", "--joblog", "log", "--resume", *cmd, cwd=tmp_path)
    assert second.returncode == 2
    assert second.stderr == (
        f"rangeexpr: error: cannot use the job log: log is in use by another run "
        f"(PID {first.pid}): a job log has one writer at a time; wait for that run to end, "
        "or use another --joblog file\n"
    )
    assert first.wait(timeout=60) == 0
    ran = Counter(int(x) for x in (tmp_path / "ran").read_text().split())
    assert ran == dict.fromkeys(range(20), 1)
    assert Counter(r["index"] for r in records(tmp_path / "log")) == dict.fromkeys(range(20), 1)


def test_the_issue_repro_two_resumes_at_once(tmp_path: Path) -> None:
    """Two resumed runs started together: one runs, the other is refused or finds it done."""
    rangeexpr = f"{sys.executable} -m rangeexpr run --no-progress -r X=range:400"
    job_ = "--exec 'sh -c \"echo $X >>runs.txt\"' --joblog c.jsonl"
    script = (
        f"{rangeexpr} {job_} --slice 0:50 2>/dev/null || exit 9\n"
        f"for i in 1 2; do {rangeexpr} {job_} -j4 --resume >/dev/null 2>err$i & done\n"
        "wait\n"
    )
    subprocess.run(script, shell=True, cwd=tmp_path, env=ENV, check=True, timeout=120)
    for err in ("err1", "err2"):
        text = (tmp_path / err).read_text()
        assert "Traceback" not in text
        assert "succeeded" in text or "is in use by another run (PID " in text
    exec_ = ("--exec", 'sh -c "echo $X >>runs.txt"')
    final = run("-r", "X=range:400", *exec_, "--joblog", "c.jsonl", "--resume", cwd=tmp_path)
    assert final.returncode == 0, final.stderr
    assert "0 succeeded, 0 failed, 400 skipped" in final.stderr
    ran = Counter(int(x) for x in (tmp_path / "runs.txt").read_text().split())
    assert ran == dict.fromkeys(range(400), 1)  # no point ran twice
    succeeded = Counter(r["index"] for r in records(tmp_path / "c.jsonl"))
    assert succeeded == dict.fromkeys(range(400), 1)  # every line whole, none lost


def test_a_log_that_is_not_a_file_is_not_locked(tmp_path: Path) -> None:
    """``--joblog /dev/stderr`` or a pipe is a stream: two runs may share it, no lock file."""
    with JobLog.create(Path("/dev/null"), {}), JobLog.create(Path("/dev/null"), {}) as second:
        second.record(job(0), 1, Outcome("succeeded", 0), 0.0, 0.1)
    assert not Path("/dev/null.lock").exists()
