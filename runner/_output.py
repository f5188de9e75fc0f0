"""Copying a finished job's output files to our own stdout/stderr, one block per job.

Jobs write into files (never pipes we would have to drain), so a job printing 1 GB costs
disk, not memory. When the job ends its file is copied in chunks under one lock, so blocks
of different jobs never interleave and come in the order the jobs ended.

A reader that stalls (a pipe nobody reads, a paused terminal) never stalls the event loop:
timeouts, signals and the other jobs go on while the copy waits. A pipe or terminal is
written through a descriptor of our own, opened non-blocking on it (``/proc/self/fd/N``
gives a new open file description, so O_NONBLOCK is not forced on the shell or on others
writing there), and a write that would block waits in trio until the reader catches up.
A regular file or /dev/null never waits for a reader: it is written directly, a big file
in a worker thread (the disk may be slow). Anything else (a socket, no /proc) is written
in a worker thread.

A reader that went away (``| head``) or a stream closed from the start (``>&-``) drops the
output quietly: the jobs still run and are logged. Any other write error (a full disk) is a
StorageError.

Two options as GNU Parallel has them: a ``prefix`` (``--tag``) put before every line as it
is copied (a last line without a newline gets one), and ``InOrder`` (``-k``), which holds
finished jobs' files, never their contents, until every job started before them has been
copied.
"""

from __future__ import annotations

import codecs
import errno
import io
import os
import select
import stat
import sys
import weakref
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Literal

import trio

from ._backend import Job, StorageError

__all__ = ["ByName", "InOrder", "OutputCopier", "Scratch", "last_line"]

_CHUNK = 1 << 16
_THREAD_ABOVE = 1 << 20  # bytes: smaller files are copied inline, faster than a thread hop
_OWN = os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class OutputCopier:
    """Copies job output files to ``sys.stdout`` / ``sys.stderr`` as looked up at copy time.

    Looking the streams up late means a progress display that wraps them (rich's Live)
    gets job output through its wrapper and prints it above the bar.
    """

    def __init__(self) -> None:
        self._lock = trio.Lock()
        # Our own non-blocking descriptors on pipes and terminals, by (fd, st_dev, st_ino)
        # of the stream's descriptor: one open(2) per stream, not one per job.
        self._own: dict[tuple[int, int, int], int] = {}
        weakref.finalize(self, _close_all, self._own)

    async def move(
        self,
        path: Path,
        stream: Literal["stdout", "stderr"],
        prefix: bytes = b"",
        size: int | None = None,
    ) -> None:
        """Copy ``path`` to the named stream, then empty it for the next attempt to reuse.

        ``prefix``: put before each line. ``size``: the file's, when the backend said (an
        empty file then costs nothing; else one ``stat``: at thousands of jobs/s it shows).
        """
        if size is None:
            try:
                size = os.stat(path).st_size
            except FileNotFoundError:
                return
        if size == 0:
            return
        async with self._lock:
            target: IO[str] | None = getattr(sys, stream)
            try:
                await self._copy(path, size, target, prefix)
            except BrokenPipeError:
                self._drop(target)
            except OSError as exc:
                raise StorageError(
                    f"cannot copy job output to {stream}: {exc.strerror or exc}"
                ) from None
        os.truncate(path, 0)

    async def _copy(self, path: Path, size: int, target: IO[str] | None, prefix: bytes) -> None:
        if target is None or target.closed:  # closed when we started (``>&-``)
            return
        if not isinstance(target, io.TextIOWrapper):  # e.g. rich's wrapper: text, through it
            if size > _THREAD_ABOVE:
                await trio.to_thread.run_sync(_write_text, path, target, prefix)
            else:
                _write_text(path, target, prefix)
            return
        target.flush()
        try:
            fd = target.fileno()
        except io.UnsupportedOperation:  # in memory: never blocks
            for chunk in _chunks(path, prefix):
                target.buffer.write(chunk)
            target.buffer.flush()
            return
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) or (stat.S_ISCHR(info.st_mode) and not os.isatty(fd)):
            if size > _THREAD_ABOVE:
                await trio.to_thread.run_sync(_write, path, fd, prefix)
            else:
                _write(path, fd, prefix)
            return
        own = self._nonblocking(fd, info)
        if own is None:
            await trio.to_thread.run_sync(_write, path, fd, prefix)
            return
        for chunk in _chunks(path, prefix):
            rest = chunk
            while rest:
                try:
                    rest = rest[os.write(own, rest) :]
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(own)

    def _nonblocking(self, fd: int, info: os.stat_result) -> int | None:
        """Our own non-blocking descriptor on the pipe or terminal ``fd``; None if none."""
        key = (fd, info.st_dev, info.st_ino)
        own = self._own.get(key)
        if own is None:
            try:
                own = os.open(f"/proc/self/fd/{fd}", _OWN)
            except OSError as exc:
                if exc.errno == errno.ENXIO and stat.S_ISFIFO(info.st_mode):
                    raise BrokenPipeError(errno.EPIPE, "the reader is gone") from None
                return None  # a socket, no /proc
            self._own[key] = own
        return own

    def _drop(self, target: IO[str] | None) -> None:
        """The reader went away: point the stream at /dev/null, as a shell would leave it.

        The rest of the output is dropped quietly, and later writes (a summary) do not fail.
        """
        for own in self._own.values():
            trio.lowlevel.notify_closing(own)
            os.close(own)
        self._own.clear()
        try:
            fd = target.fileno() if target is not None else -1
        except (OSError, ValueError):
            return
        if fd >= 0:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)


def _chunks(path: Path, prefix: bytes = b"") -> Iterator[memoryview]:
    """The file in chunks; with ``prefix``, before each line (and a last newline if missing)."""
    with path.open("rb", buffering=0) as src:
        if not prefix:
            while chunk := src.read(_CHUNK):
                yield memoryview(chunk)
            return
        at_start = True
        while chunk := src.read(_CHUNK):
            tagged = chunk.replace(b"\n", b"\n" + prefix)
            if at_start:
                tagged = prefix + tagged
            at_start = chunk.endswith(b"\n")
            yield memoryview(tagged)[: len(tagged) - len(prefix) if at_start else None]
        if not at_start:
            yield memoryview(b"\n")


def _write(path: Path, fd: int, prefix: bytes = b"") -> None:
    """Copy ``path`` to ``fd``, waiting as long as it takes (inline or in a worker thread)."""
    for chunk in _chunks(path, prefix):
        rest = chunk
        while rest:
            try:
                rest = rest[os.write(fd, rest) :]
            except BlockingIOError:  # someone made the shared description non-blocking
                select.select([], [fd], [])


def _write_text(path: Path, target: IO[str], prefix: bytes = b"") -> None:
    """Copy ``path`` as decoded text, for a stream that is not a file (a display's wrapper)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for chunk in _chunks(path, prefix):
        target.write(decoder.decode(chunk))
    target.write(decoder.decode(b"", final=True))
    target.flush()


def _close_all(fds: dict[tuple[int, int, int], int]) -> None:
    for fd in fds.values():
        os.close(fd)


class ByName:
    """Output files that stay: ``DIR/<name>.out`` and ``DIR/<name>.err``.

    ``name`` is the job's (``Job.name``), or its index when it has none. Two running jobs
    never share a file: a job whose name a running job holds (two points with the same
    values) gets ``<name>~<index>``. A job started after the other one ended takes the
    name again, and its output replaces the earlier one's, as a run of the same command
    again would.
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self._running: set[str] = set()  # the stems of the running jobs' files

    def take(self, job: Job) -> tuple[Job, tuple[Path, Path]]:
        """The job, named by the stem it got, and its two files."""
        stem = job.name or str(job.index)
        while stem in self._running:
            stem = f"{stem}~{job.index}"
        self._running.add(stem)
        if stem != job.name:
            job = replace(job, name=stem)
        return job, (self.directory / f"{stem}.out", self.directory / f"{stem}.err")

    def give_back(self, paths: tuple[Path, Path]) -> None:
        self._running.discard(paths[0].name[:-4])  # without ".out"


class Scratch:
    """Temporary output files, reused: at most ``limit`` jobs run, so that many pairs exist.

    Reusing the pairs saves building two Paths per job, which shows at 10^5 jobs/s. The
    copier empties a file after copying it, so a backend that writes nothing for an attempt
    leaves nothing stale behind. A file a job's leftover process still holds is not reused:
    the local backend replaces it with a new one (see ``_local.py``).
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self._free: list[tuple[Path, Path]] = []
        self._made = 0

    def take(self, job: Job) -> tuple[Job, tuple[Path, Path]]:
        """The job, without a name (no file of its stays), and two files for it."""
        if job.name:
            job = replace(job, name="")
        if self._free:
            return job, self._free.pop()
        self._made += 1
        pair = self.directory / f"{self._made}.out", self.directory / f"{self._made}.err"
        for path in pair:  # made empty up front: stat-ing a file that is there is cheaper
            path.touch()
        return job, pair

    def give_back(self, paths: tuple[Path, Path]) -> None:
        self._free.append(paths)


class InOrder:
    """Delivers finished jobs' output in the order the jobs were started (GNU Parallel's -k).

    Job ``n`` calls ``done(n, deliver)`` when it ends (``deliver`` None if it has nothing
    to copy); ``deliver()`` runs once every job before ``n`` has delivered. Only the
    callbacks wait (each holding a job's file paths), so memory is bounded by the jobs
    finished before an earlier one; a very slow early job holds back every later job's
    output (on disk, as files) until it ends. Every number from 0 must be ``done`` once.
    """

    def __init__(self) -> None:
        self._next = 0
        self._waiting: dict[int, Callable[[], Awaitable[None]] | None] = {}
        self._delivering = False

    @property
    def waiting(self) -> int:
        """How many finished jobs wait for an earlier one."""
        return len(self._waiting)

    async def done(self, number: int, deliver: Callable[[], Awaitable[None]] | None) -> None:
        self._waiting[number] = deliver
        if self._delivering:  # the task delivering now picks this one up in turn
            return
        self._delivering = True
        try:
            while self._next in self._waiting:
                ready = self._waiting.pop(self._next)
                self._next += 1
                if ready is not None:
                    await ready()
        finally:
            self._delivering = False


def last_line(path: Path, tail: int = 4096) -> str:
    """The last non-blank line of ``path`` (from its last ``tail`` bytes), cut to 200
    characters; "" if none. For the summary of a failed job: its likely error message."""
    try:
        with path.open("rb", buffering=0) as src:
            size = os.fstat(src.fileno()).st_size
            if size == 0:
                return ""
            src.seek(max(0, size - tail))
            data = src.read(tail)
    except OSError:
        return ""
    for line in reversed(data.splitlines()):
        text = line.decode("utf-8", errors="replace").strip()
        if text:
            return text if len(text) <= 200 else text[:197] + "..."
    return ""
