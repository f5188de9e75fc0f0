"""``rangeexpr expand``: stream the points as JSON Lines, CSV or a table, or count them."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from typing import TextIO

from .._points import BaseSweep
from .._text import int_text
from ._options import spec_from_args
from ._output import stdout, write_row

__all__ = ["command", "count_points"]


def command(args: argparse.Namespace) -> int:
    """Write every selected point, lazily (or with ``--count`` only how many there are)."""
    sweep = spec_from_args(args).selected()
    if args.count:
        count = count_points(sweep)
        with stdout() as out:
            out.write(int_text(count) + "\n")
        return 0
    with stdout() as out:
        if args.format == "jsonl":
            _stream_jsonl(sweep, out)
        elif args.format == "csv":
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["index", *sweep.names])
            for p in sweep:
                writer.writerow([int_text(p.index), *(p.text(n) for n in sweep.names)])
        else:
            _stream_table(sweep, out)
    return 0


def count_points(sweep: BaseSweep, *, show_progress: bool | None = None) -> int:
    """The exact number of points, for ``expand --count``: a filtered sweep is scanned.

    The scan shows a progress bar on stderr when stderr is a terminal, or when
    ``show_progress`` says so.
    """
    if not sweep.is_filtered:
        return sweep.size
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    if not show_progress:
        return sweep.count_kept()
    from ._progress import counting_bar

    total = sweep.max_size if sweep.max_size < 2**63 else None
    with counting_bar(total) as update:
        return sweep.count_kept(lambda seen, kept: update(seen))


def _stream_jsonl(sweep: BaseSweep, out: TextIO) -> None:
    """One JSON object per point; an index past ``str()``'s digit limit is written whole."""
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode
    try:
        str(sweep.full_size)  # every index is smaller, so json can write them all
    except ValueError:
        for p in sweep:
            rest = dumps(dict(p))[1:]
            out.write(f'{{"index": {int_text(p.index)}{", " if len(p) else ""}{rest}\n')
        return
    for p in sweep:
        out.write(dumps({"index": p.index, **p}) + "\n")


def _stream_table(sweep: BaseSweep, out: TextIO, probe: int = 1000) -> None:
    """An aligned table, widths taken from the first ``probe`` rows (longer ones overflow)."""
    header = ("index", *sweep.names)

    def rows() -> Iterator[tuple[str, ...]]:
        for p in sweep:
            yield (int_text(p.index), *(p.text(n) for n in sweep.names))

    it = rows()
    first = [header]
    for row in it:
        first.append(row)
        if len(first) > probe:
            break
    widths = [max(len(r[c]) for r in first) for c in range(len(header))]
    for row in first:
        write_row(row, widths, out)
    for row in it:
        write_row(row, widths, out)
