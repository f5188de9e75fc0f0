"""The command line's options: the parser, its converters, and the RunSpec built from them.

This is the only module that knows argparse's names for things; the commands get a
``RunSpec`` (``spec_from_args``) and never pass the namespace on. Only argparse and the
spec load here, so ``rangeexpr check`` starts fast; a command's module is imported when
it runs.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from .._spec import BACKENDS, RunSpec, parse_env, parse_link, parse_shard, parse_slice
from .._text import ascii_int

__all__ = [
    "EXPAND_FORMATS",
    "REPORT_FORMATS",
    "add_report_arguments",
    "is_sweep_file",
    "join_sort_values",
    "parser",
    "spec_from_args",
    "whole_number",
]

EXPAND_FORMATS = ("jsonl", "csv", "table")
REPORT_FORMATS = ("table", "csv", "jsonl", "html")
_SORT_VALUE = re.compile(r"-[A-Za-z_]\w*")


def is_sweep_file(text: str) -> bool:
    """Whether a command-line argument names a sweep file rather than an expression (the
    file's module, and tomllib, are loaded only when one does)."""
    return text.endswith(".toml") and "=" not in text


def parser() -> argparse.ArgumentParser:
    """The ``rangeexpr`` parser; ``args.command`` names the command's module."""
    top = argparse.ArgumentParser(
        prog="rangeexpr",
        description="Range expressions for parameter sweeps: check, expand and run them.",
    )
    top.add_argument("--version", action=_Version, help="print the version and exit")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check", help="validate expressions and templates, print a summary")
    _add_sweep_arguments(check)
    _add_view_arguments(check)
    _add_template_arguments(check)

    expand = sub.add_parser("expand", help="stream the points of the sweep")
    _add_sweep_arguments(expand)
    _add_view_arguments(expand)
    _add_selection_arguments(expand)
    expand.add_argument("--format", choices=EXPAND_FORMATS, default="jsonl", help="default: jsonl")
    expand.add_argument("--count", action="store_true", help="print only the number of points")

    run = sub.add_parser("run", help="run the command once per point")
    _add_sweep_arguments(run)
    _add_view_arguments(run)
    _add_template_arguments(run)
    _add_selection_arguments(run)
    _add_run_arguments(run)

    report = sub.add_parser(
        "report", help="what a sweep found: job logs as a table, CSV, JSON Lines or HTML"
    )
    add_report_arguments(report)
    return top


class _Version(argparse.Action):
    """``--version`` (issue 15): the installed version, looked up only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help=str(kwargs.get("help")))

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            text = version("rangeexpr")
        except PackageNotFoundError:
            text = "(not installed)"
        print(f"rangeexpr {text}")
        parser.exit()


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    """The run ``check``, ``expand`` or ``run`` was asked for (options it lacks: defaults)."""
    given = vars(args)

    def opt_str(name: str) -> str | None:
        value = given.get(name)
        return None if value is None else str(value)

    slice_text, shard_text = given.get("slice"), given.get("shard")
    # -r NAME=VALUE is a request when NAME is a resource.
    exprs: tuple[str, ...] = tuple(args.exprs)
    grids, exprs = _grids(exprs, given.get("grids") or [])  # --grid
    requests: tuple[tuple[str, str], ...] = ()
    if exprs:
        from .._requests import split_exprs

        exprs, requests = split_exprs(exprs)
    spec = RunSpec(
        exprs=(*args.positional_exprs, *exprs),
        link=tuple(args.link),
        where=args.where,
        shuffle=args.shuffle,
        sample=args.sample,
        seed=args.seed,
        slice=None if slice_text is None else parse_slice(slice_text),
        shard=None if shard_text is None else parse_shard(shard_text),
        command=opt_str("exec"),
        env=parse_env(given.get("env", ())),
        shell=given.get("shell", False),
        jobs=given.get("jobs", 1),
        retries=given.get("retries", 0),
        timeout=given.get("timeout"),
        halt=opt_str("halt"),
        joblog=opt_str("joblog"),
        resume=given.get("resume", False),
        results=opt_str("results"),
        dry_run=given.get("dry_run", False),
        progress=not given.get("no_progress", False),
        keep_leftovers=given.get("keep_leftovers", False),
        backend=given.get("backend", "local"),
        address=opt_str("address"),
        per_job=given.get("per_job", 1),
        entrypoint_num_cpus=given.get("entrypoint_num_cpus", 1.0),
        # slurm
        partition=opt_str("partition"),
        time_limit=opt_str("time_limit"),
        sbatch_options=tuple(given.get("sbatch_options", ())),
        # results
        metrics=tuple(given.get("metrics", ())),
        tag=given.get("tag", False),
        keep_order=given.get("keep_order", False),
        # growing sweeps
        grids=grids,
        overwrite=given.get("overwrite", False),
        workdir=opt_str("workdir"),
        # resources
        resources=(*requests, *given.get("resources", ())),
        gpus=opt_str("gpus"),
    )
    # a sweep file (``rangeexpr run sweep.toml``), the flags given over it
    if given.get("sweep_file") is not None:
        from .._sweepfile import spec_from_file

        return spec_from_file(given["sweep_file"], spec, given.get("given_fields", ()))
    return spec


# unions of grids
def _grids(
    exprs: tuple[str, ...], starts: Sequence[int]
) -> tuple[tuple[tuple[str, ...], ...], tuple[str, ...]]:
    """The ``-r`` values cut at each ``--grid``: the grids, and the shared ranges before
    the first (with the resource requests of every grid, which apply to every job)."""
    if not starts:
        return (), exprs
    from .._requests import split_exprs

    grids, requests = [], []
    for a, b in zip(starts, [*starts[1:], len(exprs)]):
        ranges, asked = split_exprs(exprs[a:b])
        grids.append(ranges)
        requests += [f"{name}={value}" for name, value in asked]
    return tuple(grids), (*exprs[: starts[0]], *requests)


class _Grid(argparse.Action):
    """``--grid`` (issue 15): the ``-r`` ranges after it, up to the next, are one grid."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=[], help=str(kwargs.get("help")))

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        starts = list(getattr(namespace, self.dest, None) or [])
        setattr(namespace, self.dest, [*starts, len(getattr(namespace, "exprs", None) or [])])


# ---------------------------------------------------------------------------
# Converters: an option's text to its value, or a usage error (exit 2)
# ---------------------------------------------------------------------------


def whole_number(least: int) -> Callable[[str], int]:
    """An ASCII integer option (``ascii_int``) of at least ``least``."""

    def convert(text: str) -> int:
        try:
            value = ascii_int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
        if value < 0 <= least:
            raise argparse.ArgumentTypeError(f"must not be negative, not {value}")
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}")
        return value

    return convert


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")
    return value


def _halt(text: str) -> str:
    """A ``--halt`` policy, checked now (a usage error) and kept as given."""
    from runner import parse_halt

    try:
        parse_halt(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _link(text: str) -> tuple[str, ...]:
    try:
        return parse_link(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _resource(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` of ``--resources`` (issue 13), checked when the run starts."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUE, such as cpu=2, mem=4g, gpu=1 or a custom resource, got {text!r}"
        )
    return name.strip(), value


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected NAME[,NAME...], got {text!r}")
    return names


# ---------------------------------------------------------------------------
# Option groups
# ---------------------------------------------------------------------------


def _add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "positional_exprs",
        nargs="*",
        metavar="EXPR",
        help="a range expression NAME=KIND:ARGS, e.g. LR=linspace:0.001,0.1,5",
    )
    p.add_argument(
        "-r",
        "--exec-range",
        "--env-range",
        dest="exprs",
        action="append",
        default=[],
        metavar="EXPR",
        help="a range expression (same as EXPR; may repeat)",
    )
    p.add_argument(
        "--grid",
        dest="grids",
        action=_Grid,
        help="start a grid: the -r ranges after it, up to the next --grid, are one product "
        "of a union of grids, run grid after grid; the ranges before the first --grid (and "
        "EXPR) are shared by every grid (may repeat)",
    )


def _add_view_arguments(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("linking, filtering and ordering the points")
    group.add_argument(
        "--link",
        action="append",
        type=_link,
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
        type=whole_number(0),
        metavar="K",
        help="only K distinct points chosen at random (the first K of the --seed shuffle)",
    )
    group.add_argument(
        "--seed", metavar="S", help="the seed of --sample (default: --shuffle's, else 0)"
    )


def _add_template_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exec", metavar="TEMPLATE", help="the command template, e.g. 'train --lr $LR'")
    p.add_argument(
        "-e",
        "--env",
        dest="env",
        action="append",
        default=[],
        metavar="NAME=TEMPLATE",
        help="an environment variable for each job (may repeat)",
    )


def _add_selection_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--slice", metavar="START:STOP", help="only points START..STOP-1 (as Python)")
    p.add_argument("--shard", metavar="K/N", help="only part K of N (K from 0)")


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-j",
        "--max-parallel",
        dest="jobs",
        type=whole_number(1),
        default=os.cpu_count() or 1,
        metavar="N",
        help="run at most N jobs at once (default: the number of CPUs)",
    )
    p.add_argument(
        "--shell",
        action="store_true",
        help="run the command through /bin/sh -c, every substituted value shell-quoted",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print the commands (and -e values), run nothing"
    )
    p.add_argument("--joblog", metavar="FILE", help="write a JSON Lines record per finished job")
    p.add_argument(
        "--resume",
        action="store_true",
        help="skip the points --joblog FILE records as succeeded, and append to it",
    )
    # growing sweeps
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --joblog, and write into a --results directory holding "
        "another sweep's outputs",
    )
    p.add_argument(
        "--workdir",
        metavar="TEMPLATE",
        help="run each job in its own directory (a template, e.g. runs/$LR), created first",
    )
    p.add_argument(
        "--retries",
        type=whole_number(0),
        default=0,
        metavar="N",
        help="run a failed or timed-out job up to N more times",
    )
    p.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="terminate a job running longer (SIGTERM, then SIGKILL after 2 s)",
    )
    p.add_argument(
        "--halt",
        type=_halt,
        metavar="now|soon[,fail=N|N%]",
        help="stop early on failures, as GNU Parallel: 'soon' lets running jobs finish, "
        "'now' kills them (default: never)",
    )
    p.add_argument(
        "--results",
        metavar="DIR",
        help="keep each job's output in DIR/NAME.out and DIR/NAME.err, NAME the point's "
        "values (e.g. LR=0.01,SEED=3), so a grown sweep keeps its files",
    )
    # a node's run of a batch (``_batch.py``): its outputs are mapped back by index
    p.add_argument("--results-by-index", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")
    # results
    results = p.add_argument_group("results: metrics and output")
    results.add_argument(
        "--metric",
        dest="metrics",
        action="append",
        default=[],
        metavar="NAME[=REGEX]",
        help="record a number each job reports, in the job log: the last 'NAME: X' or "
        "'NAME=X' it prints, or REGEX's one group; or what it writes to the JSON file named "
        "by $RANGEEXPR_METRICS_FILE (may repeat)",
    )
    results.add_argument(
        "--tag",
        action="store_true",
        help="prefix each line of a job's output with its index and values, and a tab",
    )
    results.add_argument(
        "-k",
        "--keep-order",
        action="store_true",
        help="print the jobs' outputs in the sweep's order, not as they finish",
    )
    p.add_argument(
        "--keep-leftovers",
        action="store_true",
        help="let processes a job leaves running in the background outlive it (default: when "
        "the job's main process exits, they get SIGTERM, then SIGKILL 2 s later)",
    )
    p.add_argument("--backend", choices=BACKENDS, default="local", help="where jobs run")
    p.add_argument(
        "--address", metavar="URL", help="the Ray dashboard, e.g. http://HOST:8265 (ray only)"
    )
    p.add_argument(
        "--entrypoint-num-cpus",
        type=_positive_float,
        default=1.0,
        metavar="CPUS",
        help="CPUs Ray reserves for each job (ray only; default 1)",
    )
    p.add_argument(
        "--per-job",
        type=whole_number(1),
        default=1,
        metavar="K",
        help="pack K consecutive points into one Ray job or Slurm array task "
        "(ray and slurm only; default 1)",
    )
    # slurm
    slurm = p.add_argument_group("the Slurm backend (-j is the array throttle %N)")
    slurm.add_argument("--partition", metavar="NAME", help="sbatch --partition (slurm only)")
    slurm.add_argument(
        "--time",
        dest="time_limit",
        metavar="LIMIT",
        help="sbatch --time: each array task's Slurm time limit, e.g. 1:00:00 (slurm only)",
    )
    slurm.add_argument(
        "--sbatch-option",
        dest="sbatch_options",
        action="append",
        default=[],
        metavar="OPT",
        help="pass OPT to sbatch as it is, written --sbatch-option=--qos=low (slurm only; "
        "may repeat)",
    )
    # resources
    resources = p.add_argument_group(
        "resources per job (-r cpu=1 -r mem=256m -r gpu=1 is the short form)"
    )
    resources.add_argument(
        "--resources",
        dest="resources",
        action="append",
        type=_resource,
        default=[],
        metavar="NAME=VALUE",
        help="what each job needs: cpu=2, mem=4g (k, m, g, t; a bare number is MiB), gpu=1; "
        "a value may be a template (gpu=$NGPU); with --backend ray also Ray's custom "
        "resources (may repeat)",
    )
    resources.add_argument(
        "--gpus",
        metavar="LIST|auto|none",
        help="the GPUs jobs share (local): ids such as 0,1,2,3; auto reads "
        "CUDA_VISIBLE_DEVICES, else nvidia-smi -L (default: auto if a job asks for a GPU, "
        "else none)",
    )


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    """Add the arguments of ``rangeexpr report``."""
    p.add_argument(
        "logs",
        nargs="+",
        type=Path,
        metavar="LOG",
        help="job logs written by `rangeexpr run --joblog` (several are merged, e.g. one "
        "per shard); each point shows its latest attempt",
    )
    p.add_argument(
        "--by",
        type=_names,
        default=(),
        metavar="A,B",
        help="one row per group of points with equal values of these axes: each metric's "
        "mean, std, count, min and max over the other axes",
    )
    p.add_argument(
        "--over",
        metavar="AXIS",
        help="aggregate each metric over this axis (e.g. a seed): one row per combination "
        "of the other axes (or of the --by axes)",
    )
    p.add_argument(
        "--sort",
        metavar="[-]NAME",
        help="order the rows by a column, -NAME for largest first; with --by/--over, a "
        "metric NAME means its mean",
    )
    p.add_argument("--top", type=whole_number(1), metavar="N", help="only the first N rows")
    p.add_argument(
        "--format",
        choices=REPORT_FORMATS,
        help="default: from -o's suffix (.csv, .jsonl, .html), else table; "
        "html needs plotly: pip install 'rangeexpr[report]'",
    )
    p.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write to FILE instead of stdout"
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar while reading (one shows on a terminal for large logs)",
    )


def join_sort_values(argv: Sequence[str]) -> list[str]:
    """``--sort -NAME`` as ``--sort=-NAME``, which argparse can read; the rest unchanged.

    argparse reads ``--sort -acc`` as ``--sort`` missing its value followed by an unknown
    option ``-acc``.
    """
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
