"""``rangeexpr report LOG...``: what a sweep found, as a table, CSV, JSON Lines or HTML.

The command reads the logs (``rangeexpr._report``), aggregates with ``--by``/``--over``,
sorts and cuts with ``--sort``/``--top``, and writes the result (the HTML page:
``rangeexpr._report_html``). numpy, rich and plotly load only when needed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .._errors import RangeExprError
from ._output import OutputError, stdout

if TYPE_CHECKING:
    from .._report import JobRecords, Table

__all__ = ["command", "read_logs"]

SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".html": "html", ".htm": "html"}
PROGRESS_MIN_BYTES = 1 << 22  # smaller logs are read before a progress bar would show
HTML_TOP = 20  # rows of the HTML page's table when --top does not say


def command(args: argparse.Namespace) -> int:
    """Run ``rangeexpr report``; returns the exit code (errors raise RangeExprError)."""
    fmt = args.format or SUFFIXES.get(args.output.suffix.lower() if args.output else "", "table")
    if fmt == "html":
        from .._report_html import require_plotly

        require_plotly()  # before reading a large log for nothing
        if args.output is None and sys.stdout is not None and sys.stdout.isatty():
            raise RangeExprError("--format html writes a page, not text: give -o FILE.html")
    show = sys.stderr.isatty() and not args.no_progress
    records = read_logs(args.logs, commands=fmt == "html", show_progress=show)
    table: Table = records
    if args.by or args.over is not None:
        table = records.aggregate(args.by, args.over)
    if args.sort:
        descending = args.sort.startswith("-")
        name = args.sort[1:] if args.sort[0] in "+-" else args.sort
        table = table.sorted(records.sort_name(name, table), descending=descending)
    if args.top is not None:
        table = table.head(args.top)
    with _output(args.output) as out:
        if fmt == "html":
            from .._report_html import write_html

            if args.top is None:
                table = table.head(HTML_TOP)
            write_html(records, table, out, over=args.over, by=args.by, sort=args.sort)
        else:
            from .._report import write_table

            write_table(table, out, fmt, axes=records.axes)
    return 0


def read_logs(
    paths: Sequence[Path], *, commands: bool = False, show_progress: bool = False
) -> JobRecords:
    """``read_joblog_records``, with a progress bar on stderr for large logs."""
    from .._report import read_joblog_records

    total = 0
    for path in paths:
        with contextlib.suppress(OSError):  # a missing file: the reader says so
            total += os.stat(path).st_size
    if not show_progress or total < PROGRESS_MIN_BYTES:
        return read_joblog_records(paths, commands=commands)
    from ._progress import reading_bar

    with reading_bar(total) as update:
        return read_joblog_records(paths, commands=commands, progress=update)


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[IO[str]]:
    """The file -o names (created or replaced), else stdout."""
    if path is None:
        with stdout() as out:
            yield out
        return
    try:
        f = path.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise RangeExprError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with f:
            yield f
    except OSError as exc:  # a full disk
        raise OutputError(f"{path}: {exc.strerror or exc}") from None
