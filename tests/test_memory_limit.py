"""Memory limits for real: the kernel kills a job over its ``-r mem``, and no group is left.

These need a memory cgroup this process can make child groups in (``memory_limiter()``):
cgroup v2 with the memory controller delegated, or a writable cgroup v1 memory hierarchy,
as on the VMs this project is developed and tested on (v1). Elsewhere they are skipped:
memory is only accounted there. The detection itself is tested on fake files in
``test_resources.py``.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from runner import Attempt, Job, LocalBackend, Pool, Request
from runner._resources import MemoryLimiter, memory_limiter

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
MiB = 2**20
# Allocates and touches (a byte per page) 300 MiB for "big", 1 MiB otherwise.
ALLOCATE = (
    "import sys; b = bytearray((300 if sys.argv[1] == 'big' else 1) << 20); "
    "b[::4096] = b'x' * len(b[::4096]); print(sys.argv[1])"
)


@pytest.fixture
def limiter() -> MemoryLimiter:
    found = memory_limiter()
    if found is None:
        pytest.skip("no memory cgroup (v2 or v1) to make child groups in: only accounted here")
    return found


def rangeexpr(*args: str, cwd: Path) -> tuple[int, subprocess.CompletedProcess[str]]:
    """``rangeexpr run ARGS`` with this checkout's code: its pid (which names its groups)
    and how it ended."""
    argv = [sys.executable, "-m", "rangeexpr", "run", "--no-progress", *args]
    with subprocess.Popen(
        argv, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        out, err = proc.communicate(timeout=60)
    return proc.pid, subprocess.CompletedProcess(argv, proc.returncode, out, err)


def records(log: Path) -> dict[str, dict[str, Any]]:
    """The job log's records by the value of X."""
    lines = [json.loads(line) for line in log.read_text().splitlines()[1:]]
    return {r["values"]["X"]: r for r in lines}


def groups_of(limiter: MemoryLimiter, pid: int) -> list[Path]:
    return sorted(limiter.parent.glob(f"rangeexpr-{pid}-*"))


def test_a_job_over_its_memory_limit_is_killed_and_says_so(
    limiter: MemoryLimiter, tmp_path: Path
) -> None:
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(ALLOCATE)} $X"
    pid, done = rangeexpr(
        *("-r", "mem=64m", "-r", "X=case:small,big", "--joblog", "log.jsonl"),
        *("--exec", command),
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == "small\n"
    small, big = records(tmp_path / "log.jsonl").values()
    assert small["status"] == "succeeded"
    assert small["memory"]["limit"] == 64 * MiB
    assert big["status"] == "failed"
    assert big["signal"] == signal.SIGKILL
    assert big["message"] == "killed for going over its memory limit of 64 MiB"
    assert big["memory"]["limit"] == 64 * MiB
    peak = big["memory"]["peak"]
    assert peak is None or 32 * MiB < peak <= 64 * MiB + MiB  # v2 may lack memory.peak
    assert "X=big" in done.stderr
    assert "killed for going over its memory limit of 64 MiB" in done.stderr  # the summary
    assert groups_of(limiter, pid) == []


def test_what_a_shell_starts_is_limited_too(limiter: MemoryLimiter, tmp_path: Path) -> None:
    """The shell forks the real job before moving it into the job's group can finish (on
    cgroup v1 a move waits for the kernel): the limit still reaches it."""
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(ALLOCATE)} $X; exit $$?"
    pid, done = rangeexpr(
        *("-r", "mem=64m", "-r", "X=case:big", "--joblog", "log.jsonl", "--shell"),
        *("--exec", command),
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    big = records(tmp_path / "log.jsonl")["big"]
    assert (big["status"], big["exit_code"]) == ("failed", 128 + signal.SIGKILL)
    assert big["message"] == "killed for going over its memory limit of 64 MiB"
    assert groups_of(limiter, pid) == []


@pytest.mark.parametrize(
    ("options", "script"),
    [
        # Left the job's process group from inside its cgroup: started once the move is
        # long over, and given the time to leave before the job ends its process group.
        ((), "sleep 0.2; setsid sleep 60 >/dev/null 2>&1 & echo $$!; sleep 0.2"),
        (("--keep-leftovers",), "sleep 60 >/dev/null 2>&1 & echo $$!"),  # kept on purpose
    ],
)
def test_what_a_job_leaves_running_moves_out_and_its_group_goes(
    limiter: MemoryLimiter, tmp_path: Path, options: tuple[str, ...], script: str
) -> None:
    """A process left in a group keeps the kernel from removing it: it moves to ours."""
    pid, done = rangeexpr(
        *options, "-r", "mem=64m", "--shell", "--exec", script, "X=case:0", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    leftover = int(done.stdout)
    try:
        assert groups_of(limiter, pid) == []
        assert str(leftover) in (limiter.parent / "cgroup.procs").read_text().split()
    finally:
        os.kill(leftover, signal.SIGKILL)


def test_the_kernel_enforces_the_limit(limiter: MemoryLimiter) -> None:
    pid = os.posix_spawn(sys.executable, [sys.executable, "-c", ALLOCATE, "big"], dict(os.environ))
    limit = limiter.limit(pid, 64 * MiB)
    try:
        name = "memory.max" if limiter.version == 2 else "memory.limit_in_bytes"
        assert (limit.path / name).read_text() == f"{64 * MiB}\n"
        if (limit.path / "memory.memsw.limit_in_bytes").exists():  # v1: no swap either
            assert (limit.path / "memory.memsw.limit_in_bytes").read_text() == f"{64 * MiB}\n"
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == -signal.SIGKILL
        assert limit.oom_killed()
    finally:
        limit.close()
    assert not limit.path.exists()


def test_a_limit_that_cannot_be_set_leaves_no_group(limiter: MemoryLimiter) -> None:
    pid = os.posix_spawn("/bin/sh", ["sh", "-c", "exit 0"], dict(os.environ))
    os.waitpid(pid, 0)  # reaped: no such process any more
    with pytest.raises(ProcessLookupError):
        limiter.limit(pid, 64 * MiB)
    assert groups_of(limiter, os.getpid()) == []


def test_a_cancelled_job_leaves_no_group(limiter: MemoryLimiter, tmp_path: Path) -> None:
    """Cancelled mid-run (the run's scope ends): the job is killed, its group removed."""
    job = Job(0, ("sleep", "30"), "sleep 30", {}, {"X": 0}, Request(mem=64 * MiB))
    attempt = Attempt(job, 1, None, tmp_path / "out", tmp_path / "err", trio.Event())

    async def main() -> None:
        pool = Pool(1, cpus=[0], mem=2**30)
        async with LocalBackend(grace=0.1, pool=pool, memory=limiter) as backend:
            with trio.fail_after(10), trio.move_on_after(0.5):
                await backend.run(attempt)

    trio.run(main)
    assert groups_of(limiter, os.getpid()) == []
