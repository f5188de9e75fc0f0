"""Command-line options for linked, filtered, shuffled and sampled sweeps.

``--link X,Y``, ``--where EXPR``, ``--shuffle SEED``, ``--sample K [--seed S]``, for
``check``, ``expand`` and ``run``. Only argparse is imported here: the sweep views (and
numpy, which they use) load only when an option asks for them, so a plain ``rangeexpr
check`` starts as fast as before.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from ._errors import RangeExprError

if TYPE_CHECKING:
    from ._sweep import Sweep

__all__ = ["add_view_arguments", "apply_view_options", "count_points", "view_source"]


def count_points(sweep: Sweep, *, show_progress: bool | None = None) -> int:
    """The exact number of points, for ``expand --count``: a filtered sweep is scanned.

    The scan shows a progress bar on stderr (rich) when stderr is a terminal, or when
    ``show_progress`` says so.
    """
    if not sweep.is_filtered:
        return sweep.size
    from ._views import FilteredSweep, _FirstKept

    assert isinstance(sweep, FilteredSweep | _FirstKept)
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    if not show_progress:
        return sweep.count_kept()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = (BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    stderr = Console(stderr=True)  # stdout carries the count itself
    with Progress("counting kept points", *columns, transient=True, console=stderr) as bar:
        task = bar.add_task("count", total=sweep.max_size if sweep.max_size < 2**63 else None)
        return sweep.count_kept(lambda seen, kept: bar.update(task, completed=seen))


def _link_arg(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(","))
    if len(names) < 2 or not all(names):
        raise argparse.ArgumentTypeError(f"expected NAME,NAME[,...], got {text!r}")
    return names


def _count_arg(text: str) -> int:
    from ._text import ascii_int

    try:
        k = ascii_int(text)
    except ValueError:
        k = -1
    if k < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return k


def add_view_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--link``, ``--where``, ``--shuffle``, ``--sample`` and ``--seed``."""
    group = parser.add_argument_group("linking, filtering and ordering the points")
    group.add_argument(
        "--link",
        action="append",
        type=_link_arg,
        default=[],
        metavar="X,Y",
        help="advance these axes together (same length) instead of as a product; "
        "the group sits where its first name is (repeatable)",
    )
    group.add_argument(
        "--where",
        metavar="EXPR",
        help="keep only the points where EXPR holds, e.g. 'X < Y and MODEL != \"small\"' "
        "(point indices stay those of the unfiltered sweep)",
    )
    group.add_argument(
        "--shuffle",
        metavar="SEED",
        help="visit the points in a pseudo-random order fixed by SEED (same on every machine)",
    )
    group.add_argument(
        "--sample",
        type=_count_arg,
        metavar="K",
        help="only K distinct points chosen at random (the first K of the --seed shuffle)",
    )
    group.add_argument(
        "--seed", metavar="S", help="the seed of --sample (default: --shuffle's, else 0)"
    )


def apply_view_options(sweep: Sweep, args: argparse.Namespace) -> Sweep:
    """The sweep the options ask for: linked, filtered, then shuffled or sampled.

    Call it on the whole sweep, before ``--slice`` / ``--shard``, so that every machine
    of a shard plan cuts the same shuffled (or filtered) order.
    """
    link = getattr(args, "link", None) or []
    if link:
        from ._sweep import Sweep

        if sweep.size != sweep.full_size:
            raise RangeExprError("--link applies to the whole sweep, before slicing")
        sweep = Sweep(sweep.exprs, link=link)
    if getattr(args, "where", None) is not None:
        sweep = sweep.where(args.where)
    shuffle_seed, sample_k = getattr(args, "shuffle", None), getattr(args, "sample", None)
    seed = getattr(args, "seed", None)
    if seed is not None and sample_k is None:
        raise RangeExprError("--seed goes with --sample K (for a shuffle, use --shuffle SEED)")
    if sample_k is not None:
        if seed is not None and shuffle_seed is not None and seed != shuffle_seed:
            raise RangeExprError(
                f"--seed {seed} and --shuffle {shuffle_seed} disagree: a sample is the first K "
                "of the shuffled order, so give one seed"
            )
        chosen = seed if seed is not None else shuffle_seed if shuffle_seed is not None else 0
        return sweep.sample(sample_k, _seed_value(chosen))
    if shuffle_seed is not None:
        return sweep.shuffled(_seed_value(shuffle_seed))
    return sweep


def _seed_value(text: int | str) -> int | str:
    """``--shuffle 42`` is the same seed as ``Sweep.shuffled(42)`` (seeds compare as text)."""
    return str(text)


def view_source(args: argparse.Namespace) -> dict[str, Any]:
    """What the view options add to the job log's ``source`` (so --resume checks them)."""
    out: dict[str, Any] = {}
    if getattr(args, "link", None):
        out["link"] = [list(group) for group in args.link]
    for name in ("where", "shuffle", "sample", "seed"):
        value = getattr(args, name, None)
        if value is not None:
            out[name] = value
    return out
