"""The local backend: each attempt is a child process in its own process group.

Its own session (``start_new_session=True``) keeps the terminal's Ctrl-C away from the
jobs (the runner decides how they stop) and lets one ``killpg`` reach everything the job
started, grandchildren included, so nothing is orphaned. Stopping is SIGTERM to the group,
then SIGKILL after ``grace`` seconds if the job is still there.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
from typing import Literal

import trio

from ._backend import Attempt, Outcome

__all__ = ["LocalBackend"]


class LocalBackend:
    """Runs attempts as local processes; environment = ours + the job's ``env``."""

    name = "local"

    def __init__(self, grace: float = 2.0):
        self.grace = grace
        self._base_env = dict(os.environ)

    async def __aenter__(self) -> LocalBackend:
        self._base_env = dict(os.environ)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def run(self, attempt: Attempt) -> Outcome:
        if attempt.abort.is_set():
            return Outcome("killed", None)
        job = attempt.job
        env = self._base_env | dict(job.env)
        with attempt.stdout.open("wb") as out, attempt.stderr.open("wb") as err:
            try:
                process = await trio.lowlevel.open_process(
                    list(job.argv),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    env=env,
                    start_new_session=True,
                )
            except OSError as exc:
                # Like a shell: 127 when the program is not there, 126 when it cannot run.
                status = 127 if isinstance(exc, FileNotFoundError) else 126
                message = f"cannot run {job.argv[0]!r}: {exc.strerror or exc}"
                err.write(f"rangeexpr: {message}\n".encode())
                return Outcome("failed", status, message=message)
        try:
            ended = await self._wait(process, attempt)
        finally:
            if process.returncode is None:  # cancelled from outside: leave nothing behind
                _killpg(process.pid, signal.SIGKILL)
                with trio.CancelScope(shield=True):
                    await process.wait()
        code = process.returncode
        assert code is not None  # waited for above
        if ended is not None:
            return Outcome(ended, None if code < 0 else code, -code if code < 0 else None)
        if code == 0:
            return Outcome("succeeded", 0)
        if code < 0:
            return Outcome("failed", None, -code)
        return Outcome("failed", code)

    async def _wait(
        self, process: trio.Process, attempt: Attempt
    ) -> Literal["killed", "timed_out"] | None:
        """Wait for the process; if aborted or out of time, stop it and say which."""
        ended: Literal["killed", "timed_out"] | None = None
        deadline = math.inf if attempt.timeout is None else trio.current_time() + attempt.timeout
        async with trio.open_nursery() as nursery:

            async def watch_abort() -> None:
                nonlocal ended
                await attempt.abort.wait()
                ended = "killed"
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch_abort)
            with trio.move_on_at(deadline):
                await process.wait()
            if process.returncode is None and ended is None:
                ended = "timed_out"
            nursery.cancel_scope.cancel()
        if process.returncode is None:
            await self._terminate(process)
        return ended

    async def _terminate(self, process: trio.Process) -> None:
        _killpg(process.pid, signal.SIGTERM)
        with trio.move_on_after(self.grace):
            await process.wait()
        # SIGKILL the group even if the leader obeyed: a grandchild may ignore SIGTERM.
        _killpg(process.pid, signal.SIGKILL)
        await process.wait()


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
