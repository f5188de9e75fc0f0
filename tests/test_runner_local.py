"""The local process backend against real processes (short ones: this is the real clock)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest
import trio

from runner import Attempt, Job, LocalBackend, NotStarted, Outcome


def attempt(
    tmp_path: Path,
    argv: tuple[str, ...],
    *,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    abort: trio.Event | None = None,
) -> Attempt:
    job = Job(7, argv, " ".join(argv), env or {}, {})
    return Attempt(
        job,
        1,
        timeout,
        tmp_path / "7.out",
        tmp_path / "7.err",
        trio.Event() if abort is None else abort,
    )


def run_one(a: Attempt, grace: float = 2.0) -> Outcome:
    async def main() -> Outcome:
        async with LocalBackend(grace=grace) as backend:
            return await backend.run(a)

    return trio.run(main)


def test_exit_status_and_output_files(tmp_path: Path) -> None:
    ok = attempt(tmp_path, ("sh", "-c", "echo out; echo err >&2"))
    assert run_one(ok) == Outcome("succeeded", 0, output=(4, 4))  # "out\n", "err\n"
    assert ok.stdout.read_text() == "out\n"
    assert ok.stderr.read_text() == "err\n"
    assert run_one(attempt(tmp_path, ("sh", "-c", "exit 3"))) == Outcome("failed", 3, output=(0, 0))


def test_death_by_signal_is_a_failure_with_the_signal(tmp_path: Path) -> None:
    outcome = run_one(attempt(tmp_path, ("sh", "-c", "kill -USR1 $$")))
    assert outcome == Outcome("failed", None, signal.SIGUSR1, output=(0, 0))


def test_environment_is_ours_plus_the_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_PARENT", "p")
    a = attempt(
        tmp_path,
        ("sh", "-c", 'echo "$FROM_PARENT $LR $RANGEEXPR_INDEX"'),
        env={"LR": "0.1", "RANGEEXPR_INDEX": "7"},
    )
    run_one(a)
    assert a.stdout.read_text() == "p 0.1 7\n"


def test_a_missing_program_fails_like_a_shell_would(tmp_path: Path) -> None:
    a = attempt(tmp_path, ("no-such-program-here", "x"))
    outcome = run_one(a)
    assert (outcome.status, outcome.exit_code) == ("failed", 127)
    assert "cannot run 'no-such-program-here'" in a.stderr.read_text()


def test_a_program_that_cannot_run_fails_with_126(tmp_path: Path) -> None:
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\necho hi\n")
    outcome = run_one(attempt(tmp_path, (str(script),)))
    assert (outcome.status, outcome.exit_code) == ("failed", 126)


def test_the_program_is_searched_in_the_jobs_own_path(tmp_path: Path) -> None:
    """``-e PATH=...`` decides where the program is found, as for any exec'd command."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "only-in-job-path"
    tool.write_text("#!/bin/sh\necho found $1\n")
    tool.chmod(0o755)
    a = attempt(tmp_path, ("only-in-job-path", "it"), env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert run_one(a) == Outcome("succeeded", 0, output=(9, 0))
    assert a.stdout.read_text() == "found it\n"
    missing = attempt(tmp_path, ("only-in-job-path",))  # not on our own PATH
    assert run_one(missing).exit_code == 127


def test_jobs_get_sigpipe_back_and_stdin_from_dev_null(tmp_path: Path) -> None:
    """Python ignores SIGPIPE; a job must not inherit that (``yes | head`` must end)."""
    a = attempt(tmp_path, ("sh", "-c", "grep SigIgn /proc/self/status; cat; yes | head -n 1"))
    assert run_one(a).status == "succeeded"
    ignored_line, rest = a.stdout.read_text().split("\n", 1)
    ignored = int(ignored_line.split()[1], 16)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        assert not ignored & (1 << (sig - 1)), sig
    assert rest == "y\n"  # `cat` read an empty stdin


def test_abort_during_a_timeout_reports_killed(tmp_path: Path) -> None:
    async def main() -> Outcome:
        abort = trio.Event()
        async with LocalBackend() as backend, trio.open_nursery() as nursery:
            nursery.start_soon(lambda: _set_later(abort, 0.2))
            return await backend.run(attempt(tmp_path, ("sleep", "30"), timeout=20, abort=abort))

    assert trio.run(main) == Outcome("killed", None, signal.SIGTERM, output=(0, 0))


async def _set_later(event: trio.Event, seconds: float) -> None:
    await trio.sleep(seconds)
    event.set()


def test_timeout_terminates_then_reports_timed_out(tmp_path: Path) -> None:
    outcome = run_one(attempt(tmp_path, ("sleep", "30"), timeout=0.2))
    assert outcome == Outcome("timed_out", None, signal.SIGTERM, output=(0, 0))


def test_timeout_kills_a_job_that_ignores_sigterm(tmp_path: Path) -> None:
    stubborn = ("sh", "-c", "trap '' TERM; echo ready; sleep 30")
    outcome = run_one(attempt(tmp_path, stubborn, timeout=0.3), grace=0.2)
    assert outcome.status == "timed_out"
    assert outcome.signal == signal.SIGKILL


def alive_in_sessions(sids: list[int]) -> list[int]:
    """Live (non-zombie) processes of these sessions, after giving SIGKILL a moment to land."""
    deadline = time.monotonic() + 2
    while True:
        alive = []
        for proc in psutil.process_iter(["status"]):
            with contextlib.suppress(OSError):
                if os.getsid(proc.pid) in sids and proc.info["status"] != psutil.STATUS_ZOMBIE:
                    alive.append(proc.pid)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def test_abort_kills_the_whole_process_group(tmp_path: Path) -> None:
    """A job's background grandchildren die with it: nothing is orphaned."""
    pidfile = tmp_path / "pid"
    script = f"echo $$ > {pidfile}; sleep 30 & sleep 30 & wait"

    async def main() -> Outcome:
        abort = trio.Event()
        async with LocalBackend() as backend, trio.open_nursery() as nursery:
            result: list[Outcome] = []

            async def go() -> None:
                result.append(
                    await backend.run(attempt(tmp_path, ("sh", "-c", script), abort=abort))
                )

            nursery.start_soon(go)
            while not pidfile.exists() or not pidfile.read_text().strip():
                await trio.sleep(0.02)
            await trio.sleep(0.1)
            abort.set()
        return result[0]

    outcome = trio.run(main)
    assert outcome.status == "killed"
    assert alive_in_sessions([int(pidfile.read_text())]) == []


def test_cancelling_the_run_leaves_no_process(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = f"echo $$ > {pidfile}; sleep 30 & sleep 30"

    async def main() -> None:
        async with LocalBackend() as backend:
            with trio.move_on_after(0.5):
                await backend.run(attempt(tmp_path, ("sh", "-c", script)))

    trio.run(main)
    assert alive_in_sessions([int(pidfile.read_text())]) == []


def test_an_abort_before_start_runs_nothing(tmp_path: Path) -> None:
    abort = trio.Event()
    abort.set()
    a = attempt(tmp_path, (sys.executable, "-c", "open('x', 'w')"), abort=abort)
    with pytest.raises(NotStarted):
        run_one(a)
    assert not a.stdout.exists()


def test_kill_ends_a_job_that_ignores_sigterm_without_the_grace(tmp_path: Path) -> None:
    """A second Ctrl-C: SIGKILL at once, and the attempt still ends as "killed"."""
    ready = tmp_path / "ready"
    stubborn = ("sh", "-c", f"trap '' TERM; touch {ready}; sleep 60")

    async def main() -> Outcome:
        abort = trio.Event()
        async with LocalBackend(grace=60) as backend, trio.open_nursery() as nursery:
            result: list[Outcome] = []

            async def go() -> None:
                result.append(await backend.run(attempt(tmp_path, stubborn, abort=abort)))

            nursery.start_soon(go)
            while not ready.exists():
                await trio.sleep(0.02)
            abort.set()  # SIGTERM, ignored: the grace would run for a minute
            await trio.sleep(0.1)
            backend.kill()
        return result[0]

    assert trio.run(main) == Outcome("killed", None, signal.SIGKILL, output=(0, 0))
