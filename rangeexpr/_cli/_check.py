"""``rangeexpr check``: validate the expressions, views and templates; print a summary."""

from __future__ import annotations

import argparse
import sys

from .._axes import Axis
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
    if spec.resources:  # -r cpu=1, -r 'gpu=$NGPU': their values, as a run would read them
        from .._requests import Requests

        Requests(spec.resources, full, custom=True)
    rows: list[tuple[str, ...]] = [("NAME", "KIND", "LENGTH", "FIRST", "LAST")]
    grids = ""
    if spec.grids:  # a union: a GRID column, the shared axes once, then each grid's own
        from .._union import Union  # imported only for a union

        assert isinstance(full, Union)
        rows = [("GRID", *rows[0])]
        n = len(full.shared)
        rows += [("all", *_axis_row(ax)) for ax in full.axes[:n]]
        for k, grid in enumerate(full.grids, 1):
            rows += [(str(k), *_axis_row(ax)) for ax in grid.axes[n:]]
        grids = f" (the union of grids of {' + '.join(int_text(g.size) for g in full.grids)})"
    else:
        rows += [_axis_row(ax) for ax in sweep.axes]
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    with stdout() as out:
        for row in rows:
            write_row(row, widths, out, right={len(row) - 3})
        size = int_text(sweep.max_size if sweep.is_filtered else sweep.size)
        out.write(f"at most {size} points" if sweep.is_filtered else f"{size} points")
        out.write(f"{grids}\n")
    for w in warnings:
        print(f"rangeexpr: warning: {w}", file=sys.stderr)
    return 0


def _axis_row(ax: Axis) -> tuple[str, str, str, str, str]:
    return (ax.name, ax.kind, int_text(ax.size), ax.text(0), ax.text(-1))
