"""The local backend: each attempt is a child process in its own process group.

Its own session (``setsid``) keeps the terminal's Ctrl-C away from the jobs (the runner
decides how they stop) and lets one ``killpg`` reach everything the job started,
grandchildren included. Stopping is SIGTERM to the group, then SIGKILL after ``grace``
seconds if the job is still there.

A job's process group ends with the job, so nothing is orphaned: when its main process
exits, whatever it left running in the group (``cmd &``) gets SIGTERM, then SIGKILL after
``grace``, and the attempt ends once they are gone. ``keep_leftovers=True`` lets them run
on, for jobs that start daemons. A process that leaves the group (``setsid``, a daemon that
forks twice) is out of reach either way.

A job's output is its own. Its files are opened without following a symlink; a path that
is not a regular file (a directory, a FIFO, a symlink) is refused with StorageError: our
file failed, not the job. A file that another process still has open (a leftover of an
earlier job, kept or out of reach, still writing to it) or that has other hard links is
replaced by a new file instead of being emptied, so nothing written through an old
descriptor or another name lands in this attempt's output.

Spawning is ``os.posix_spawn`` (vfork + exec) on the event loop's own thread, and the exit
is awaited on a pidfd. ``trio.lowlevel.open_process`` runs ``Popen`` in a worker thread
instead; for short jobs that thread hop and the GIL traffic around it cost more than the
job itself: 0.89 ms per ``true`` job at -j 8 on two cores against 0.69 ms here (and 0.58
with the scheduler hint of ``_sched.py``, which entering the backend applies to its thread).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import shutil
import signal
import stat
from pathlib import Path

import trio

from ._backend import Attempt, Job, NotStarted, Outcome, Status, StorageError
from ._resources import (
    Grant,
    MemoryLimit,
    MemoryLimiter,
    Pool,
    ResourceError,
    format_size,
    pin_tree,
    process_group,
    spawn_pinned,
)
from ._sched import favour_dispatch

__all__ = ["LocalBackend"]

_PIN_LATE = 0.001  # seconds after the spawn (see _pin_late)
_HAVE_PIDFD = hasattr(os, "pidfd_open")  # Linux; elsewhere the exit is polled
_HAVE_LEASES = hasattr(fcntl, "F_SETLEASE")  # Linux; elsewhere a reused file is replaced
# O_NONBLOCK: opening a FIFO must fail (no reader) or succeed at once, never wait for a
# reader; it is cleared once the file is known to be a regular one.
_OUTPUT = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_WHY_NOT = {
    errno.ELOOP: "it is a symbolic link (output files never follow one)",
    errno.ENXIO: "it is not a regular file",  # a FIFO without a reader, a socket
}
_STDIN = ((os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),)
# Python ignores SIGPIPE and SIGXFSZ; an ignored signal stays ignored across exec, so the
# child gets the defaults back (as subprocess's restore_signals does): `yes | head` ends.
_DEFAULT_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, name)
)


class LocalBackend:
    """Runs attempts as local processes; environment = ours + the job's ``env``.

    ``grace``: seconds between SIGTERM and SIGKILL. ``keep_leftovers``: let the processes
    a job leaves in its group when its main process exits run on (daemons), instead of
    ending them with the job; a job that is stopped (timeout, abort) loses its whole group
    either way.

    Entering it gives the calling thread (the one running trio) a short scheduler slice
    for the rest of its life, jobs keeping the default (``_sched.py``;
    ``RANGEEXPR_NO_SCHED_HINT=1`` turns it off).

    With a ``pool`` (``_resources.Pool``) each attempt first waits until its job's
    ``request`` fits (shown as waiting: ``Attempt.queued``; a stop, soon or now, ends the
    wait and the job never starts), then runs with what it was given: its slot and GPUs in
    the environment (``RANGEEXPR_SLOT``, ``RANGEEXPR_GPUS``, ``CUDA_VISIBLE_DEVICES``,
    thread counts), pinned to its cores, and with ``memory`` (a cgroup limiter, where one
    could be made) held to its memory. The job log records the request and the grant, and for a
    limited job its ``memory`` limit and peak, and why it failed if it went over. A request
    the pool can never grant fails the attempt with the reason; callers check requests
    before running (``Pool.check``).
    """

    name = "local"
    jobs_per_slot = 1

    def __init__(
        self,
        grace: float = 2.0,
        *,
        keep_leftovers: bool = False,
        pool: Pool | None = None,
        memory: MemoryLimiter | None = None,
    ):
        self.grace = grace
        self.keep_leftovers = keep_leftovers
        self.pool = pool
        self.memory = memory
        self._base_env: dict[str, str] = {}
        # The running children, by the abort event of their attempts (one per run).
        self._running: dict[trio.Event, set[_Child]] = {}
        # The attempts waiting for their resources, by abort event: cancelled on giving up.
        self._waiting: dict[trio.Event, set[trio.CancelScope]] = {}

    async def __aenter__(self) -> LocalBackend:
        self._base_env = dict(os.environ)
        favour_dispatch()  # short jobs: the dispatcher's wake-up latency sets the pace
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def run(self, attempt: Attempt) -> Outcome:
        """Run one attempt; StorageError if its output files cannot be opened, NotStarted
        if the run stopped before it started."""
        if attempt.give_up.is_set():
            raise NotStarted
        if self.pool is None:
            return await self._run(attempt, attempt.job, None)
        return await self._run_in_pool(attempt, self.pool)

    async def _run_in_pool(self, attempt: Attempt, pool: Pool) -> Outcome:
        """Wait for the job's resources, then run it with them. Giving up (a stop, soon or
        now, or ``kill()``) ends the wait: the job never starts (NotStarted)."""
        job = attempt.job
        try:
            pool.check(job.request)
        except ResourceError as exc:
            _write_note(attempt.stderr, f"rangeexpr: {exc}\n")
            return Outcome("failed", None, message=str(exc))
        give_up = attempt.give_up
        waiting = self._waiting.get(attempt.abort)
        if waiting is None:  # the run's first wait: its watcher ends the waits on giving up
            waiting = self._waiting[attempt.abort] = set()
            trio.lowlevel.spawn_system_task(self._give_up_waits, give_up, attempt.abort)
        attempt.queued()
        began = trio.current_time()
        scope = trio.CancelScope()
        waiting.add(scope)
        try:
            with scope:
                async with pool.allocate(job.request) as grant:
                    waiting.discard(scope)
                    await attempt.settled()  # a failure that freed this may stop the run
                    if give_up.is_set():
                        raise NotStarted
                    attempt.started()
                    queued = trio.current_time() - began
                    finished = None
                    if job.finish is not None:
                        job = finished = job.finish(
                            {
                                "RANGEEXPR_SLOT": str(grant.slot),
                                "RANGEEXPR_GPUS": ",".join(grant.gpus),
                            }
                        )
                    outcome = await self._run(attempt, job, grant, queued, finished)
                    if outcome.status != "succeeded":  # before its grant goes to another,
                        attempt.ending()  # if _run did not give it back (it never ran)
                    return outcome
        finally:
            waiting.discard(scope)
        raise NotStarted  # the wait was cancelled: the run gave it up, or kill()

    @staticmethod
    async def _hand_on(attempt: Attempt, grant: Grant, pool: Pool, status: Status) -> None:
        """The job's processes are gone: give its resources back and let a job that gets
        them start before this one's records are written (a core or GPU idles meanwhile).

        A failure first says so (``ending``), so the next job waits until the runner has
        judged it. Two checkpoints, shielded (the job's end must be recorded): trio runs
        the tasks woken together in either order, so after one this task may still run
        before the one it woke.
        """
        if status != "succeeded":
            attempt.ending()
        if pool.release(grant):
            await trio.lowlevel.cancel_shielded_checkpoint()
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def _give_up_waits(self, give_up: trio.Event, abort: trio.Event) -> None:
        """When ``abort``'s run gives up the jobs not started, end their waits.

        A run that never does keeps its watcher until trio cancels system tasks at the end
        of ``trio.run``, as ``_stop_on_abort``.
        """
        await give_up.wait()
        for scope in self._waiting.pop(abort, ()):
            scope.cancel()

    async def _run(
        self,
        attempt: Attempt,
        job: Job,
        grant: Grant | None = None,
        queued: float = 0.0,
        finished: Job | None = None,
    ) -> Outcome:
        """Spawn ``job`` (on ``grant``'s cores, with its environment) and wait for it; its
        outcome, with what a pool's job waited (``queued``) and, when it was rendered at
        its start, the job as it ran (``finished``), for its record."""
        running = self._running_of(attempt.abort)
        extra: dict[str, object] | None = None
        if grant is not None:
            extra = {"resources": {"request": job.request.as_dict(), **grant.as_dict()}}
        out = _open_output(attempt.stdout)
        try:
            err = _open_output(attempt.stderr)
        except BaseException:
            os.close(out)
            raise
        limit: MemoryLimit | None = None
        try:
            try:
                pid, pin_late = self._spawn(job, out, err, grant)
                child = _Child(pid)
                if self.memory is not None and grant is not None and grant.mem:
                    with contextlib.suppress(OSError):  # not enforced: still accounted
                        limit = self.memory.limit(child.pid, grant.mem)
            except OSError as exc:
                # Like a shell: 127 when the program is not there, 126 when it cannot run.
                exit_code = 127 if isinstance(exc, FileNotFoundError) else 126
                why = f"cannot run {job.argv[0]!r}: {exc.strerror or exc}"
                with contextlib.suppress(OSError):  # the outcome carries the message anyway
                    os.write(err, f"rangeexpr: {why}\n".encode())
                return Outcome(
                    "failed", exit_code, message=why, extra=extra, queued=queued, job=finished
                )
            running.add(child)
            try:
                if pin_late and grant is not None:
                    await _pin_late(child, grant.cpus)
                status, code, sig = await self._wait(child, attempt.timeout)
                if not (self.keep_leftovers or child.aborted or child.timed_out):
                    await child.end_leftovers(self.grace)
                if grant is not None and self.pool is not None:
                    await self._hand_on(attempt, grant, self.pool, status)
                # What the job left in its files, from the descriptors we still hold: the
                # runner need not look them up (a path lookup per file, per job).
                output = os.fstat(out).st_size, os.fstat(err).st_size
            finally:
                running.discard(child)
                await child.close()
                if limit is not None:  # read, then remove the group, also when cancelled
                    over, peak = limit.oom_killed(), limit.peak()
                    limit.close()
        finally:
            os.close(out)
            os.close(err)
        message = None
        if limit is not None:
            extra = {**(extra or {}), "memory": {"limit": limit.max, "peak": peak}}
            if over and status == "failed":
                message = f"killed for going over its memory limit of {format_size(limit.max)}"
        return Outcome(
            status,
            code,
            sig,
            message=message,
            extra=extra,
            queued=queued,
            job=finished,  # the record shows the command as it ran
            output=output,
        )

    async def _wait(
        self, child: _Child, timeout: float | None
    ) -> tuple[Status, int | None, int | None]:
        """Wait for the job's main process, stopping it at ``timeout``; how it ended: status,
        exit code, signal."""
        if timeout is None:
            await child.wait()
        else:
            with trio.move_on_after(timeout):
                await child.wait()
            if child.code is None and not child.aborted:  # out of time
                child.timed_out = True
                child.signal(signal.SIGTERM)
                with trio.move_on_after(self.grace):
                    await child.wait()
        if child.aborted or child.timed_out:
            await child.kill()
        code = child.code
        assert code is not None  # kill() reaps it
        status: Status = "succeeded" if code == 0 else "failed"
        if child.timed_out or child.aborted:  # we stopped it: whatever it exited with
            status = "timed_out" if child.timed_out else "killed"
        return status, None if code < 0 else code, -code if code < 0 else None

    def kill(self) -> None:
        """SIGKILL every running job's group at once, skipping the grace (a second Ctrl-C).

        The attempts still end normally, as "killed", so the runner writes their records;
        those still waiting for their resources never start (NotStarted).
        """
        for running in self._running.values():
            for child in running:
                child.aborted = True
                child.signal(signal.SIGKILL)
        for waiting in self._waiting.values():
            for scope in waiting:
                scope.cancel()

    def _spawn(self, job: Job, out: int, err: int, grant: Grant | None) -> tuple[int, bool]:
        """Start the job with stdin from /dev/null and its output on ``out`` and ``err``;
        its pid, and whether what it starts at once must be pinned later (``_pin_late``).

        With a ``grant``: its variables added to the environment, and pinned to its cores
        (``spawn_pinned``).
        """
        if grant is None or self.pool is None:
            env = {**self._base_env, **job.env}
        else:
            env = {**self._base_env, **job.env, **self.pool.environment(grant, job.env)}
        program = _resolve(job.argv[0], env.get("PATH"))

        def spawn() -> int:
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

        return spawn_pinned(spawn, () if grant is None else grant.cpus)

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

    def signal(self, sig: int) -> bool:
        """Send ``sig`` to the whole group (the leader's pid is the group id); False if empty."""
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            return False
        except PermissionError:  # a member we may not signal (setuid): still there
            pass
        return True

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

    async def end_leftovers(self, grace: float) -> None:
        """End what the exited leader left in its group: SIGTERM, then SIGKILL after ``grace``.

        Called right after the leader was reaped, with no checkpoint between: Linux hands
        out pids in turn, so the group id cannot name another group yet. Usually nothing is
        left, and this is one system call.
        """
        if not self.signal(signal.SIGTERM):
            return
        try:
            if not await _group_ends(self.pid, grace):
                self.signal(signal.SIGKILL)
                await _group_ends(self.pid, grace)  # at once, unless stuck in the kernel
        except BaseException:  # cancelled: leave nothing behind
            self.signal(signal.SIGKILL)
            raise

    async def close(self) -> None:
        """Reap the child, killing its group first if it still runs (we were cancelled)."""
        if self.code is None:
            with trio.CancelScope(shield=True):
                await self.kill()
        if self._fd is not None:
            trio.lowlevel.notify_closing(self._fd)
            os.close(self._fd)
            self._fd = None


async def _pin_late(child: _Child, cpus: tuple[int, ...]) -> None:
    """Pin what the job started before it was pinned itself (``spawn_pinned``), once its
    exec is over: 1 ms in, if it still runs. Reading /proc sooner would wait for the exec."""
    with trio.move_on_after(_PIN_LATE):
        await child.wait()
    if child.code is None:
        pin_tree(child.pid, cpus)


async def _group_ends(pgid: int, within: float) -> bool:
    """Wait up to ``within`` seconds for group ``pgid`` to have no live process left."""
    delay = 0.001
    with trio.move_on_after(within):
        while _live_in_group(pgid):
            await trio.sleep(delay)
            delay = min(2 * delay, 0.05)
        return True
    return False


def _live_in_group(pgid: int) -> bool:
    """Whether group ``pgid`` has a process that is not a zombie.

    ``killpg(pgid, 0)`` also finds zombies, which stay until their parent, or an init that
    does not reap, collects them; /proc tells them apart (Linux; elsewhere they count).
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    members = process_group(pgid)
    return members is None or bool(members)


def _write_note(path: Path, note: str) -> None:
    """Write ``note`` as the attempt's whole stderr (why it did not run)."""
    fd = _open_output(path)
    try:
        os.write(fd, note.encode())
    finally:
        os.close(fd)


def _open_output(path: Path) -> int:
    """A descriptor on ``path``, empty and written by nobody else; StorageError if none.

    The file is created, or reused if it is a regular file with no other link and nobody
    else has it open; otherwise it is replaced by a new one (``O_EXCL``).
    """
    try:
        fd = os.open(path, _OUTPUT, 0o666)
        try:
            replace = _must_replace(fd, path)
        except BaseException:
            os.close(fd)
            raise
        if replace:
            os.close(fd)
            os.unlink(path)
            fd = os.open(path, _OUTPUT | os.O_EXCL, 0o666)
        fcntl.fcntl(fd, fcntl.F_SETFL, 0)  # clear O_NONBLOCK: the job gets a plain file
        if fd < 3:  # stdio was closed when we started: keep clear of the child's 0-2
            fd, low = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3), fd
            os.close(low)
        return fd
    except StorageError:
        raise
    except OSError as exc:
        why = _WHY_NOT.get(exc.errno or 0, exc.strerror or str(exc))
        raise StorageError(f"cannot write {path}: {why}") from None


def _must_replace(fd: int, path: Path) -> bool:
    """Whether the file open on ``fd`` must be replaced by a new one; empties it if not."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise StorageError(f"cannot write {path}: it is not a regular file")
    if info.st_nlink > 1 or _open_elsewhere(fd):
        return True
    if info.st_size:
        os.ftruncate(fd, 0)
    return False


def _open_elsewhere(fd: int) -> bool:
    """Whether another open file description has this file, e.g. a job's leftover process.

    Linux grants a write lease only when nobody else has the file open (fcntl(2),
    F_SETLEASE); it is taken and dropped at once, about 3 µs. Where no lease can be had
    (another file system, another owner) the answer is yes: the file is replaced, which is
    safe, only slower (a new inode costs 20 to 70 µs on ext4). Someone opening the file in
    the instant the lease is held breaks it with a signal to us: F_SETSIG makes that
    SIGURG, ignored by default, instead of SIGIO, which would end the process; it is set
    before every lease, since dropping a lease resets it.
    """
    if not _HAVE_LEASES:
        return True
    try:
        fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
    except OSError:
        return True
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    return False


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
