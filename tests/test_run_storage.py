"""Our own files failing (disk full, read-only): the run stops cleanly, nothing recorded is lost.

The runner on trio's mock clock with a disk that fills up (``os.write`` as the kernel does
it: a write that does not fit is cut short, the next one fails with ENOSPC), then the real
command with a file-size limit (``RLIMIT_FSIZE``, which root obeys too), ``/dev/full``, and a
directory that cannot be written.
"""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing
from test_cli_run import ENV, records, run

from runner import Attempt, Job, JobLog, Outcome, Runner, StorageError, read_joblog


class Backend:
    """Job i succeeds after 1 + i/100 s (virtual); ``broken`` ones cannot write their output."""

    name = "scripted"
    jobs_per_slot = 1

    def kill(self) -> None:
        """Nothing to kill: these jobs only sleep."""

    def __init__(self, broken: frozenset[int] = frozenset()):
        self.broken = broken
        self.started: list[int] = []

    async def __aenter__(self) -> Backend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def run(self, attempt: Attempt) -> Outcome:
        self.started.append(attempt.job.index)
        await trio.sleep(1 + attempt.job.index / 100)  # no two jobs end at the same time
        if attempt.job.index in self.broken:
            raise StorageError(f"cannot create {attempt.stdout}: Read-only file system")
        return Outcome("succeeded", 0)


def jobs(indices: Iterator[int] | range) -> Iterator[Job]:
    return (Job(i, ("work",), "work", {}, {"i": i}) for i in indices)


def run_runner(runner: Runner, job_source: Iterator[Job]) -> None:
    async def main() -> None:
        await runner.run(job_source)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def disk_fills_up(monkeypatch: pytest.MonkeyPatch, joblog: JobLog, records: int) -> None:
    """From now on the log's disk has room for ``records`` lines and half of the next."""
    real = os.write
    fd = joblog._fd
    torn = False

    def write(target: int, data: bytes | memoryview) -> int:
        nonlocal records, torn
        if target != fd:
            return real(target, data)
        if records > 0:
            records -= 1
            return real(target, data)
        if torn:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        torn = True
        return real(target, bytes(data[: len(data) // 2]))

    monkeypatch.setattr(os, "write", write)


def test_a_full_disk_stops_the_run_and_keeps_whole_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "log.jsonl"
    joblog = JobLog.create(log, {"source": "t"})
    disk_fills_up(monkeypatch, joblog, 3)
    backend = Backend()
    runner = Runner(backend, 2, joblog=joblog)
    run_runner(runner, jobs(range(20)))
    joblog.close()
    monkeypatch.undo()
    summary = runner.summary()
    assert summary.stopped == "storage"
    assert summary.message == f"cannot write the job log {log}: No space left on device"
    assert not summary.ok
    # two at a time: 4 takes 2's slot, then 3's record fails and nothing more starts
    assert sorted(backend.started) == [0, 1, 2, 3, 4]
    assert log.read_text().endswith("}\n")  # the torn 4th line was cut back
    done = read_joblog(log, 20).succeeded
    assert len(done) == 3

    with JobLog(log) as again:  # --resume finishes the sweep
        assert again.resume(20).succeeded == done
        run_runner(Runner(Backend(), 2, joblog=again), jobs(i for i in range(20) if i not in done))
    succeeded = Counter(json.loads(line)["index"] for line in log.read_text().splitlines()[1:])
    assert succeeded == dict.fromkeys(range(20), 1)


def test_a_backend_that_cannot_write_output_stops_the_run(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    backend = Backend(broken=frozenset({3}))
    with JobLog.create(log, {}) as joblog:
        runner = Runner(backend, 2, joblog=joblog)
        run_runner(runner, jobs(range(20)))
    summary = runner.summary()
    assert summary.stopped == "storage"
    assert summary.message is not None
    assert summary.message.startswith("cannot create ")
    assert summary.message.endswith(".out: Read-only file system")
    assert sorted(backend.started) == [0, 1, 2, 3, 4]  # 4 took 2's slot before 3 failed
    assert sorted(r["index"] for r in records(log)) == [0, 1, 2, 4]  # 3 runs again on resume


def test_a_log_on_a_full_device_fails_to_start(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as info:
        JobLog.create(Path("/dev/full"), {})
    assert str(info.value) == "cannot write the job log /dev/full: No space left on device"
    assert not Path("/dev/full.lock").exists()


def limit_file_size(size: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))


def test_a_log_that_hits_the_file_size_limit_then_resume(tmp_path: Path) -> None:
    args = ["run", "--no-progress", "-r", "X=range:40", "-j", "2", "--joblog", "log"]
    args += ["--exec", "sh -c 'echo $X >> ran'"]
    limited = subprocess.run(
        [sys.executable, "-m", "rangeexpr", *args],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: limit_file_size(2000),
        check=False,
    )
    assert limited.returncode == 1, limited.stderr
    assert "Traceback" not in limited.stderr
    assert "rangeexpr: stopped: cannot write the job log log: File too large\n" in limited.stderr
    assert limited.stderr.endswith(
        "rangeexpr: the records written are kept: "
        "once the cause is fixed, run again with --resume to finish the sweep\n"
    )
    text = (tmp_path / "log").read_text()
    assert text.endswith("}\n")
    first = {r["index"] for r in records(tmp_path / "log")}
    assert 0 < len(first) < 40
    resumed = run(*args[2:], "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    succeeded = Counter(r["index"] for r in records(tmp_path / "log"))
    assert succeeded == dict.fromkeys(range(40), 1)


def test_joblog_dev_full_stops_before_running_anything(tmp_path: Path) -> None:
    result = run("-r", "X=range:3", "--joblog", "/dev/full", "--exec", "touch $X", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        "rangeexpr: error: cannot write the job log /dev/full: No space left on device\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_stdout_on_a_full_device_stops_the_run(tmp_path: Path) -> None:
    result = subprocess.run(
        f"{sys.executable} -m rangeexpr run --no-progress -j 1 -r X=range:5 "
        "--joblog log --exec 'echo $X' > /dev/full",
        shell=True,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=ENV,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert re.search(
        r"^rangeexpr: stopped: .*stdout.*: No space left on device$", result.stderr, re.M
    )
    assert [r["index"] for r in records(tmp_path / "log")] == [0]


def read_only_dir(tmp_path: Path) -> Path:
    """A directory we cannot write: chmod stops a user; root is stopped by sysfs only."""
    if os.geteuid() != 0:
        path = tmp_path / "ro"
        path.mkdir()
        path.chmod(0o555)
        return path
    if not os.path.isdir("/sys/kernel"):
        pytest.skip("running as root, and no /sys/kernel to stand for a read-only directory")
    return Path("/sys/kernel")


def test_a_read_only_results_dir_fails_the_start_up_check(tmp_path: Path) -> None:
    results = read_only_dir(tmp_path)
    result = run("-r", "X=range:3", "--results", str(results), "--exec", "touch $X", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"rangeexpr: error: cannot write {results}: Permission denied\n"
    assert not any(p.name in "012" for p in tmp_path.iterdir())
