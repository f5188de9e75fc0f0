"""``rangeexpr check``: validate the expressions, views and templates; print a summary."""

from __future__ import annotations

import argparse
import sys

from .._text import int_text
from ._options import spec_from_args
from ._output import stdout, write_row

__all__ = ["command"]


def command(args: argparse.Namespace) -> int:
    """Each axis with its kind, length, first and last value; the size; the warnings."""
    spec = spec_from_args(args)
    full = spec.sweep()
    sweep = spec.selected(full)
    _, _, warnings = spec.templates(full)
    rows: list[tuple[str, ...]] = [("NAME", "KIND", "LENGTH", "FIRST", "LAST")]
    for ax in sweep.axes:
        rows.append((ax.name, ax.kind, int_text(ax.size), ax.text(0), ax.text(-1)))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    with stdout() as out:
        for row in rows:
            write_row(row, widths, out, right={2})
        size = int_text(sweep.max_size if sweep.is_filtered else sweep.size)
        out.write(f"at most {size} points\n" if sweep.is_filtered else f"{size} points\n")
    for w in warnings:
        print(f"rangeexpr: warning: {w}", file=sys.stderr)
    return 0
