"""Writing our own output: the one place that handles a stdout that cannot be written.

A reader that goes away (``| head``) has read all it wanted: the BrokenPipeError reaches
``main``, which points stdout at /dev/null (``quiet_stdout``) and exits 0. Any other
failure (stdout closed by ``>&-``, a full disk) is an ``OutputError``: one line on stderr,
exit 1. Job output copied by the runner is the runner's (``runner/_output.py``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Container, Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

__all__ = ["OutputError", "quiet_stdout", "stdout", "write_row"]


class OutputError(Exception):
    """Writing the output failed: a problem of the output, not of the input (exit 1)."""


@contextmanager
def stdout() -> Iterator[TextIO]:
    """``sys.stdout``, flushed at the end; a failed write is OutputError.

    ``>&-`` leaves ``sys.stdout`` None (and ``print`` would silently write nothing);
    ``> /dev/full`` fails in a write or the final flush, which is done here, so that
    nothing is left to fail after the exit code is chosen. A closed pipe stays a
    BrokenPipeError: that reader has read all it wanted.
    """
    out = sys.stdout
    if out is None:
        raise OutputError("stdout is closed")
    try:
        yield out
        out.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError(exc.strerror or str(exc)) from None


def quiet_stdout() -> None:
    """Point stdout at /dev/null, so that exiting writes nothing more.

    After the reader went away, and after a failed write, so that the interpreter's last
    flush of what is still buffered does not fail a second time.
    """
    if sys.stdout is None:  # closed at start (``>&-``): nothing is buffered
        return
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # not a file (a StringIO in a test), or closed
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def write_row(
    row: Sequence[str], widths: Sequence[int], out: TextIO, right: Container[int] = ()
) -> None:
    """One line of an aligned table: columns two spaces apart, those in ``right`` flush right."""
    cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
    out.write("  ".join(cells).rstrip() + "\n")
