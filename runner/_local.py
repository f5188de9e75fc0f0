"""The local backend: each attempt is a child process in its own process group.

Its own session (``setsid``) keeps the terminal's Ctrl-C away from the jobs (the runner
decides how they stop) and lets one ``killpg`` reach everything the job started,
grandchildren included, so nothing is orphaned. Stopping is SIGTERM to the group, then
SIGKILL after ``grace`` seconds if the job is still there.

Spawning is ``os.posix_spawn`` (vfork + exec) on the event loop's own thread, and the exit
is awaited on a pidfd. ``trio.lowlevel.open_process`` runs ``Popen`` in a worker thread
instead; for short jobs that thread hop and the GIL traffic around it cost more than the
job itself: 0.89 ms per ``true`` job at -j 8 on two cores against 0.69 ms here (and 0.58
with the scheduler hint of ``_sched.py``).
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

_HAVE_PIDFD = hasattr(os, "pidfd_open")  # Linux; elsewhere the exit is polled
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
        # The running children, by the abort event of their attempts (one per run).
        self._running: dict[trio.Event, set[_Child]] = {}

    async def __aenter__(self) -> LocalBackend:
        self._base_env = dict(os.environ)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def run(self, attempt: Attempt) -> Outcome:
        if attempt.abort.is_set():
            return Outcome("killed", None)
        running = self._running_of(attempt.abort)
        try:
            child = _Child(self._spawn(attempt))
        except OSError as exc:
            # Like a shell: 127 when the program is not there, 126 when it cannot run.
            exit_code = 127 if isinstance(exc, FileNotFoundError) else 126
            message = f"cannot run {attempt.job.argv[0]!r}: {exc.strerror or exc}"
            with open(attempt.stderr, "ab") as err:
                err.write(f"rangeexpr: {message}\n".encode())
            return Outcome("failed", exit_code, message=message)
        running.add(child)
        try:
            if attempt.timeout is None:
                await child.wait()
            else:
                with trio.move_on_after(attempt.timeout):
                    await child.wait()
                if child.code is None and not child.aborted:  # out of time
                    child.timed_out = True
                    child.signal(signal.SIGTERM)
                    with trio.move_on_after(self.grace):
                        await child.wait()
            if child.aborted or child.timed_out:
                await child.kill()
        finally:
            running.discard(child)
            await child.close()
        code = child.code
        assert code is not None  # close() reaps it
        status: Status = "succeeded" if code == 0 else "failed"
        if child.timed_out or child.aborted:  # we stopped it: whatever it exited with
            status = "timed_out" if child.timed_out else "killed"
        return Outcome(status, None if code < 0 else code, -code if code < 0 else None)

    def kill_now(self) -> None:
        """SIGKILL every running job's group at once, skipping the grace (a second Ctrl-C).

        The attempts still end normally, as "killed", so the runner writes their records.
        """
        for running in self._running.values():
            for child in running:
                child.aborted = True
                child.signal(signal.SIGKILL)

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

    def _running_of(self, abort: trio.Event) -> set[_Child]:
        """The running children of ``abort``'s run; the first call starts its watcher.

        One watcher per run stops every child when the run aborts, so an attempt needs no
        cancel scope or watcher task of its own: those cost as much as a short job.
        """
        running = self._running.get(abort)
        if running is None:
            running = self._running[abort] = set()
            trio.lowlevel.spawn_system_task(self._stop_on_abort, abort, running)
        return running

    async def _stop_on_abort(self, abort: trio.Event, running: set[_Child]) -> None:
        """On abort: SIGTERM every running job's group, then SIGKILL them after ``grace``.

        A run that never aborts keeps its watcher until trio cancels system tasks at the
        end of ``trio.run``.
        """
        try:
            await abort.wait()
            for child in running:
                child.aborted = True
                child.signal(signal.SIGTERM)
            await trio.sleep(self.grace)
            for child in running:
                child.signal(signal.SIGKILL)
        finally:
            self._running.pop(abort, None)


class _Child:
    """A spawned process group, awaited on a pidfd and reaped exactly once."""

    __slots__ = ("_fd", "aborted", "code", "pid", "timed_out")

    def __init__(self, pid: int):
        self.pid = pid
        self.code: int | None = None  # the exit code; -N when killed by signal N
        self.aborted = self.timed_out = False  # why we signalled it, if we did
        self._fd = os.pidfd_open(pid) if _HAVE_PIDFD else None

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the whole group (the leader's pid is the group id)."""
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

    async def kill(self) -> int:
        """SIGKILL the group, even if the leader is gone (a grandchild may ignore SIGTERM)."""
        self.signal(signal.SIGKILL)
        return await self.wait()

    async def close(self) -> None:
        """Reap the child, killing its group first if it still runs (we were cancelled)."""
        if self.code is None:
            with trio.CancelScope(shield=True):
                await self.kill()
        if self._fd is not None:
            trio.lowlevel.notify_closing(self._fd)
            os.close(self._fd)
            self._fd = None


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
