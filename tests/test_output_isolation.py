"""A job's processes end with it, and its output is its own, with real processes.

What a job leaves running in its process group when its main process exits is stopped
(SIGTERM, then SIGKILL after the grace) before the attempt ends, unless the backend keeps
leftovers; kept or not, a leftover never writes into another job's output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import trio

from runner import Attempt, Job, LocalBackend, Outcome, run_jobs

REPO = Path(__file__).resolve().parents[1]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_leftover_never_writes_into_the_next_jobs_output(tmp_path: Path) -> None:
    """The issue's repro: job 0's background process would print into job 1's block."""
    script = (
        "if [ $X = 0 ]; then echo job0; (sleep .5; echo LEAK; touch marker) & "
        "else sleep 1; echo job$X; fi"
    )
    argv = ["run", "--no-progress", "-j", "1", "-r", "X=range:3", "--exec", f"sh -c '{script}'"]
    result = subprocess.run(
        [sys.executable, "-m", "rangeexpr", *argv],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"job0\njob1\njob2\n"
    assert not (tmp_path / "marker").exists()  # the leftover ended with job 0


def run_script(tmp_path: Path, script: str, backend: LocalBackend) -> Outcome:
    job = Job(0, ("sh", "-c", script), script, {}, {})
    attempt = Attempt(job, 1, None, tmp_path / "0.out", tmp_path / "0.err", trio.Event())

    async def main() -> Outcome:
        with trio.fail_after(30):  # far under the grace below: zombies must not count
            async with backend:
                return await backend.run(attempt)

    return trio.run(main)


def test_leftovers_end_with_the_job_and_zombies_are_not_waited_for(tmp_path: Path) -> None:
    """An init that does not reap leaves the killed leftovers as zombies: they are gone."""
    pids = tmp_path / "pids"
    script = f"sleep 30 & echo $! > {pids}; sleep 30 & echo $! >> {pids}; exit 3"
    outcome = run_script(tmp_path, script, LocalBackend(grace=60))
    # the main process's exit, not the leftovers'
    assert outcome == Outcome("failed", 3, output=(0, 0))
    leftovers = [int(pid) for pid in pids.read_text().split()]
    assert len(leftovers) == 2
    assert not any(alive(pid) for pid in leftovers)


def test_a_leftover_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"(trap '' TERM; exec sleep 30) & echo $! > {pids}"
    outcome = run_script(tmp_path, script, LocalBackend(grace=0.2))
    assert outcome == Outcome("succeeded", 0, output=(0, 0))
    assert not alive(int(pids.read_text()))


def test_kept_leftovers_outlive_the_job_but_write_only_their_own_output(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Job 1 runs until job 0's kept leftover has written LEAK (and then made the marker)."""
    marker = tmp_path / "marker"
    first = f"echo job0; (sleep .3; echo LEAK; echo LEAK >&2; touch {marker}) &"
    second = f"i=0; while [ ! -e {marker} ] && [ $i -lt 300 ]; do sleep .05; i=$((i+1)); done"
    jobs = [
        Job(0, ("sh", "-c", first), first, {}, {}),
        Job(1, ("sh", "-c", f"{second}; echo job1"), second, {}, {}),
    ]

    async def main() -> None:
        async with LocalBackend(keep_leftovers=True) as backend:
            summary = await run_jobs(jobs, backend, 1)
        assert summary.succeeded == 2

    trio.run(main)
    assert marker.exists()  # the leftover ran on after job 0 ended
    out, err = capfd.readouterr()
    assert out == "job0\njob1\n"
    assert err == ""
