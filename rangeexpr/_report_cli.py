"""``rangeexpr report LOG...``: what a sweep found, as a table, CSV, JSON Lines or HTML.

Only argparse at import; numpy, rich and plotly load when the command runs. The command
reads the logs (``_report``), aggregates with ``--by``/``--over``, sorts and cuts with
``--sort``/``--top``, and writes the result (the HTML page: ``_report_html``).

argparse reads ``--sort -acc`` as ``--sort`` missing its value followed by an unknown
option ``-acc``; ``join_sort_values`` rewrites it to ``--sort=-acc`` before parsing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ._errors import RangeExprError

if TYPE_CHECKING:
    from ._report import JobRecords, Table

__all__ = ["add_report_arguments", "join_sort_values", "report_command"]

FORMATS = ("table", "csv", "jsonl", "html")
SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".html": "html", ".htm": "html"}
PROGRESS_MIN_BYTES = 1 << 22  # smaller logs are read before a progress bar would show
HTML_TOP = 20  # rows of the HTML page's table when --top does not say
_SORT_VALUE = re.compile(r"-[A-Za-z_]\w*")


def join_sort_values(argv: Sequence[str]) -> list[str]:
    """``--sort -NAME`` as ``--sort=-NAME``, which argparse can read; the rest unchanged."""
    out: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg == "--":
            out.append(arg)
            out.extend(it)
            break
        if arg == "--sort":
            value = next(it, None)
            if value is not None and _SORT_VALUE.fullmatch(value):
                out.append(f"--sort={value}")
                continue
            out.append(arg)
            if value is not None:
                out.append(value)
            continue
        out.append(arg)
    return out


def _names_arg(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected NAME[,NAME...], got {text!r}")
    return names


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return n


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``rangeexpr report``."""
    parser.add_argument(
        "logs",
        nargs="+",
        type=Path,
        metavar="LOG",
        help="job logs written by `rangeexpr run --joblog` (several are merged, e.g. one "
        "per shard); each point shows its latest attempt",
    )
    parser.add_argument(
        "--by",
        type=_names_arg,
        default=(),
        metavar="A,B",
        help="one row per group of points with equal values of these axes: each metric's "
        "mean, std, count, min and max over the other axes",
    )
    parser.add_argument(
        "--over",
        metavar="AXIS",
        help="aggregate each metric over this axis (e.g. a seed): one row per combination "
        "of the other axes (or of the --by axes)",
    )
    parser.add_argument(
        "--sort",
        metavar="[-]NAME",
        help="order the rows by a column, -NAME for largest first; with --by/--over, a "
        "metric NAME means its mean",
    )
    parser.add_argument("--top", type=_positive_int, metavar="N", help="only the first N rows")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="default: from -o's suffix (.csv, .jsonl, .html), else table; "
        "html needs plotly: pip install 'rangeexpr[report]'",
    )
    parser.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write to FILE instead of stdout"
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar while reading (one shows on a terminal for large logs)",
    )


def report_command(args: argparse.Namespace) -> int:
    """Run ``rangeexpr report``; returns the exit code (errors raise RangeExprError)."""
    fmt = args.format or SUFFIXES.get(args.output.suffix.lower() if args.output else "", "table")
    if fmt == "html":
        from ._report_html import require_plotly

        require_plotly()  # before reading a large log for nothing
        if args.output is None and sys.stdout.isatty():
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
            from ._report_html import write_html

            if args.top is None:
                table = table.head(HTML_TOP)
            write_html(records, table, out, over=args.over, by=args.by, sort=args.sort)
        else:
            from ._report import write_table

            write_table(table, out, fmt, axes=records.axes)
    return 0


def read_logs(
    paths: Sequence[Path], *, commands: bool = False, show_progress: bool = False
) -> JobRecords:
    """``read_joblog_records``, with a progress bar on stderr (rich) for large logs."""
    from ._report import read_joblog_records

    total = 0
    for path in paths:
        with contextlib.suppress(OSError):  # a missing file: the reader says so
            total += os.stat(path).st_size
    if not show_progress or total < PROGRESS_MIN_BYTES:
        return read_joblog_records(paths, commands=commands)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    stderr = Console(stderr=True)  # stdout carries the report
    with Progress("reading job logs", *columns, transient=True, console=stderr) as bar:
        task = bar.add_task("read", total=total)
        return read_joblog_records(
            paths, commands=commands, progress=lambda done: bar.update(task, completed=done)
        )


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[IO[str]]:
    """The file -o names (created or replaced), else stdout."""
    if path is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    try:
        f = path.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise RangeExprError(f"cannot write {path}: {exc.strerror or exc}") from None
    with f:
        yield f
