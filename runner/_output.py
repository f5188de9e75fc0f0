"""Copying a finished job's output files to our own stdout/stderr, one block per job.

Jobs write into files (never pipes we would have to drain), so a job printing 1 GB costs
disk, not memory. When the job ends its file is copied in chunks under one lock, so
blocks of different jobs never interleave. Big files are copied in a worker thread so the
event loop (signals, other jobs) keeps running meanwhile.
"""

from __future__ import annotations

import codecs
import io
import os
import sys
from pathlib import Path
from typing import IO, Literal

import trio

__all__ = ["ByIndex", "OutputCopier", "Scratch"]

_CHUNK = 1 << 16
_THREAD_ABOVE = 1 << 20  # bytes: smaller files are copied inline, faster than a thread hop


class OutputCopier:
    """Copies job output files to ``sys.stdout`` / ``sys.stderr`` as looked up at copy time.

    Looking the streams up late means a progress display that wraps them (rich's Live)
    gets job output through its wrapper and prints it above the bar.
    """

    def __init__(self) -> None:
        self._lock = trio.Lock()

    async def move(self, path: Path, stream: Literal["stdout", "stderr"]) -> None:
        """Copy ``path`` to the named stream, then empty it for the next attempt to reuse.

        An empty or absent file costs one ``stat``: at thousands of jobs/s that matters.
        """
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            return
        if size == 0:
            return
        async with self._lock:
            target: IO[str] = getattr(sys, stream)
            if size > _THREAD_ABOVE:
                await trio.to_thread.run_sync(_copy, path, target)
            else:
                _copy(path, target)
        os.truncate(path, 0)


def _copy(path: Path, target: IO[str]) -> None:
    """Stream ``path`` into ``target``; a reader that went away (``| head``) is not an error.

    Jobs keep running and logging when nobody reads their output any more: the stream is
    pointed at /dev/null, as a shell would leave it, and the rest is dropped quietly.
    """
    try:
        _stream(path, target)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, target.fileno())
        os.close(devnull)


def _stream(path: Path, target: IO[str]) -> None:
    """Raw bytes when ``target`` is a real file, else decoded text (e.g. through rich)."""
    with path.open("rb") as src:
        if isinstance(target, io.TextIOWrapper):
            target.flush()
            while chunk := src.read(_CHUNK):
                target.buffer.write(chunk)
            target.buffer.flush()
            return
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while chunk := src.read(_CHUNK):
            target.write(decoder.decode(chunk))
        target.write(decoder.decode(b"", final=True))
        target.flush()


class ByIndex:
    """Output files that stay: ``DIR/<index>.out`` and ``DIR/<index>.err``."""

    def __init__(self, directory: Path):
        self.directory = directory

    def take(self, index: int) -> tuple[Path, Path]:
        return self.directory / f"{index}.out", self.directory / f"{index}.err"

    def give_back(self, paths: tuple[Path, Path]) -> None:
        return None


class Scratch:
    """Temporary output files, reused: at most ``limit`` jobs run, so that many pairs exist.

    Reusing the pairs saves building two Paths per job, which shows at 10^5 jobs/s. The
    copier empties a file after copying it, so a backend that writes nothing for an attempt
    leaves nothing stale behind.
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self._free: list[tuple[Path, Path]] = []
        self._made = 0

    def take(self, index: int) -> tuple[Path, Path]:
        if self._free:
            return self._free.pop()
        self._made += 1
        pair = self.directory / f"{self._made}.out", self.directory / f"{self._made}.err"
        for path in pair:  # made empty up front: stat-ing a file that is there is cheaper
            path.touch()
        return pair

    def give_back(self, paths: tuple[Path, Path]) -> None:
        self._free.append(paths)
