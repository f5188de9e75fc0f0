"""The local backend: each attempt is a child process in its own process group.

Its own session (``setsid``) keeps the terminal's Ctrl-C away from the jobs (the runner
decides how they stop) and lets one ``killpg`` reach everything the job started,
grandchildren included, so nothing is orphaned. Stopping is SIGTERM to the group, then
SIGKILL after ``grace`` seconds if the job is still there.

Spawning is ``os.posix_spawn`` (vfork + exec) on the event loop's own thread, and the exit
is awaited on a pidfd. ``trio.lowlevel.open_process`` runs ``Popen`` in a worker thread
instead; for short jobs that thread hop and the GIL traffic around it cost more than the
job itself (0.9 against 0.5 ms per ``true`` job at -j 8 on two cores).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import signal

import trio

from ._backend import Attempt, Outcome, Status

__all__ = ["LocalBackend"]

_OUTPUT = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
_STDIN = ((os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),)
# Python ignores SIGPIPE and SIGXFSZ; an ignored signal stays ignored across exec, so the
# child gets the defaults back (as subprocess's restore_signals does): `yes | head` ends.
_DEFAULT_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, name)
)


class LocalBackend:
    """Runs attempts as local processes; environment = ours + the job's ``env``."""

    name = "local"

    def __init__(self, grace: float = 2.0):
        self.grace = grace
        self._base_env: dict[str, str] = {}
        # The cancel scopes of the attempts waiting for their process, by abort event.
        self._waiting: dict[trio.Event, set[trio.CancelScope]] = {}

    async def __aenter__(self) -> LocalBackend:
        self._base_env = dict(os.environ)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def run(self, attempt: Attempt) -> Outcome:
        if attempt.abort.is_set():
            return Outcome("killed", None)
        job = attempt.job
        try:
            pid = self._spawn(attempt)
        except OSError as exc:
            # Like a shell: 127 when the program is not there, 126 when it cannot run.
            status = 127 if isinstance(exc, FileNotFoundError) else 126
            message = f"cannot run {job.argv[0]!r}: {exc.strerror or exc}"
            with open(attempt.stderr, "ab") as err:
                err.write(f"rangeexpr: {message}\n".encode())
            return Outcome("failed", status, message=message)
        async with _Child(pid) as child:
            with trio.CancelScope() as scope:
                if attempt.timeout is not None:
                    scope.deadline = trio.current_time() + attempt.timeout
                waiting = self._scopes_of(attempt.abort)
                waiting.add(scope)
                try:
                    code = await child.wait()
                finally:
                    waiting.discard(scope)
            if not scope.cancelled_caught:
                if code == 0:
                    return Outcome("succeeded", 0)
                return Outcome("failed", None, -code) if code < 0 else Outcome("failed", code)
            ended: Status = "killed" if attempt.abort.is_set() else "timed_out"
            code = await self._terminate(child)
            return Outcome(ended, None if code < 0 else code, -code if code < 0 else None)

    def _spawn(self, attempt: Attempt) -> int:
        """Start the job with stdin from /dev/null and its output in the attempt's files."""
        job = attempt.job
        env = {**self._base_env, **job.env}
        program = _resolve(job.argv[0], env.get("PATH"))
        out = os.open(attempt.stdout, _OUTPUT, 0o666)
        try:
            err = os.open(attempt.stderr, _OUTPUT, 0o666)
            try:
                return os.posix_spawn(
                    program,
                    job.argv,
                    env,
                    file_actions=(
                        *_STDIN,
                        (os.POSIX_SPAWN_DUP2, out, 1),
                        (os.POSIX_SPAWN_DUP2, err, 2),
                    ),
                    setsid=True,
                    setsigdef=_DEFAULT_SIGNALS,
                )
            finally:
                os.close(err)
        finally:
            os.close(out)

    def _scopes_of(self, abort: trio.Event) -> set[trio.CancelScope]:
        """The waiting attempts of ``abort``; the first call starts the task that watches it.

        One watcher per run instead of one per attempt: a per-attempt watcher task and the
        nursery it needs cost as much as spawning a short job.
        """
        scopes = self._waiting.get(abort)
        if scopes is None:
            scopes = self._waiting[abort] = set()
            trio.lowlevel.spawn_system_task(_cancel_when_set, abort, scopes)
        return scopes

    async def _terminate(self, child: _Child) -> int:
        child.signal(signal.SIGTERM)
        with trio.move_on_after(self.grace):
            await child.wait()
        # SIGKILL the group even if the leader obeyed: a grandchild may ignore SIGTERM.
        child.signal(signal.SIGKILL)
        return await child.wait()


async def _cancel_when_set(abort: trio.Event, scopes: set[trio.CancelScope]) -> None:
    await abort.wait()
    for scope in list(scopes):
        scope.cancel()


class _Child:
    """A spawned process group: its exit awaited once, reaped and never left behind.

    Leaving the ``async with`` while the child still runs (the caller was cancelled) kills
    its group and reaps it, shielded, so no process outlives the runner.
    """

    def __init__(self, pid: int):
        self.pid = pid
        self.code: int | None = None  # the exit code; -N when killed by signal N
        self._fd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None

    async def __aenter__(self) -> _Child:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if self.code is None:
                self.signal(signal.SIGKILL)
                with trio.CancelScope(shield=True):
                    await self.wait()
        finally:
            if self._fd is not None:
                trio.lowlevel.notify_closing(self._fd)
                os.close(self._fd)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the whole group (the leader's pid is the group id)."""
        if self.code is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)

    async def wait(self) -> int:
        """The exit code, once the process has ended."""
        while self.code is None:
            if self._fd is not None:
                await trio.lowlevel.wait_readable(self._fd)
            else:  # no pidfd (not Linux): poll, which is cheap next to a process
                await trio.sleep(0.002)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.code = os.waitstatus_to_exitcode(status)
        return self.code


@functools.lru_cache(maxsize=256)
def _resolve(program: str, path: str | None) -> str:
    """Where ``program`` is, searched in the job's PATH as ``execvp`` would (cached).

    ``os.posix_spawnp`` would search our own PATH, not the one ``-e PATH=...`` gives.
    """
    if os.sep in program:
        return program
    found = shutil.which(program, path=path if path is not None else os.defpath)
    if found is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    return found
