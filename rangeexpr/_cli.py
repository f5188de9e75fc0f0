"""The command line: parse arguments, call the library, print errors with a marker.

``check`` and ``expand`` live here; ``run`` is in ``_cli_run`` and imports trio and the
runner only when it runs, so validating an expression starts fast. Every
``RangeExprError`` is printed as ``rangeexpr: error: MESSAGE`` with the source and a
marker, and exits 2; no input produces a traceback. Output that cannot be written (stdout
closed, a full disk) is one line on stderr and exit 1; a reader that goes away (``| head``)
ends the output quietly.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from ._errors import RangeExprError
from ._sweep import Sweep
from ._template import Command, Template
from ._text import ascii_int, int_text
from ._view_cli import add_view_arguments, apply_view_options, count_points, view_source

__all__ = ["main"]

EXIT_INVALID = 2
EXIT_OUTPUT = 1
_RESERVED = "RANGEEXPR_"  # the prefix of the variables rangeexpr sets for each job
_FORMATS = ("jsonl", "csv", "table")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rangeexpr`` console script; returns the exit code."""
    if sys.stderr is None:  # started with 2>&-: messages go nowhere, but never crash
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    parser = _parser()
    # Expressions may stand anywhere among the options: positionals after the first run of
    # them come back as "unknown" and are appended, in order, to the positional ones.
    from ._report_cli import join_sort_values

    argv = join_sort_values(sys.argv[1:] if argv is None else argv)  # --sort -NAME
    args, extra = parser.parse_known_args(argv)
    unknown = [a for a in extra if a.startswith("-")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if hasattr(args, "positional_exprs"):
        args.positional_exprs = [*args.positional_exprs, *extra]
    elif extra:  # report: log files given after an option
        args.logs = [*args.logs, *map(Path, extra)]
    try:
        return int(args.handler(args))
    except RangeExprError as exc:
        print(f"rangeexpr: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except _OutputError as exc:
        print(f"rangeexpr: error: cannot write the output: {exc}", file=sys.stderr)
        _quiet_stdout()
        return EXIT_OUTPUT


def _quiet_stdout() -> None:
    """The reader went away (``| head``): point stdout at /dev/null so exit is silent.

    Also after a failed write, so that the interpreter's last flush of what is still
    buffered does not fail a second time.
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


class _OutputError(Exception):
    """Writing the output failed: a problem of the output, not of the input (exit 1)."""


@contextmanager
def _output() -> Iterator[TextIO]:
    """stdout, for the output of ``check`` and ``expand``; a failed write is _OutputError.

    ``>&-`` leaves ``sys.stdout`` None (and ``print`` would silently write nothing);
    ``> /dev/full`` fails in a write or the final flush, which is done here, so that
    nothing is left to fail after the exit code is chosen. A closed pipe stays a
    BrokenPipeError: that reader has read all it wanted.
    """
    out = sys.stdout
    if out is None:
        raise _OutputError("stdout is closed")
    try:
        yield out
        out.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise _OutputError(exc.strerror or str(exc)) from None


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rangeexpr",
        description="Range expressions for parameter sweeps: check, expand and run them.",
    )
    sub = parser.add_subparsers(dest="subcommand", required=True, metavar="COMMAND")

    check = sub.add_parser("check", help="validate expressions and templates, print a summary")
    _add_sweep_arguments(check)
    add_view_arguments(check)
    _add_template_arguments(check)
    check.set_defaults(handler=_check)

    expand = sub.add_parser("expand", help="stream the points of the sweep")
    _add_sweep_arguments(expand)
    add_view_arguments(expand)
    _add_selection_arguments(expand)
    expand.add_argument("--format", choices=_FORMATS, default="jsonl", help="default: jsonl")
    expand.add_argument("--count", action="store_true", help="print only the number of points")
    expand.set_defaults(handler=_expand)

    run = sub.add_parser("run", help="run the command once per point")
    _add_sweep_arguments(run)
    add_view_arguments(run)
    _add_template_arguments(run)
    _add_selection_arguments(run)
    from ._cli_run import add_run_arguments

    add_run_arguments(run)
    run.set_defaults(handler=_run)

    from ._report_cli import add_report_arguments, report_command

    report = sub.add_parser(
        "report", help="what a sweep found: job logs as a table, CSV, JSON Lines or HTML"
    )
    add_report_arguments(report)
    report.set_defaults(handler=report_command)
    return parser


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


# ---------------------------------------------------------------------------
# Building the sweep and templates from arguments
# ---------------------------------------------------------------------------


def _sweep(args: argparse.Namespace) -> Sweep:
    exprs = [*args.positional_exprs, *args.exprs]
    if not exprs:
        raise RangeExprError("no range expressions: give EXPR or -r NAME=KIND:ARGS")
    return apply_view_options(Sweep(exprs), args)


def _select(sweep: Sweep, args: argparse.Namespace) -> Sweep:
    if args.slice is not None:
        sweep = sweep[_parse_slice(args.slice)]
    if args.shard is not None:
        k, n = _parse_shard(args.shard)
        sweep = sweep.shard(k, n)
    return sweep


def _parse_slice(text: str) -> slice:
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start, stop = (ascii_int(p) if p.strip() else None for p in parts)
    except ValueError:
        raise RangeExprError(
            f"--slice takes START:STOP with integers (either may be empty), got {text!r}",
            text,
            (0, len(text)),
        ) from None
    return slice(start, stop)


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        k_text, n_text = text.split("/")
        k, n = ascii_int(k_text), ascii_int(n_text)
    except ValueError:
        raise RangeExprError(
            f"--shard takes K/N with integers, got {text!r}", text, (0, len(text))
        ) from None
    if n < 1 or not 0 <= k < n:
        raise RangeExprError(
            f"--shard {text}: need 0 <= K < N (K counts from 0)", text, (0, len(text))
        )
    return k, n


def _env_templates(args: argparse.Namespace) -> dict[str, Template]:
    """The ``-e NAME=TEMPLATE`` values; a name given twice or under ``RANGEEXPR_`` is an error.

    Neither may be settled silently: the last of two values would win unseen, and
    ``RANGEEXPR_INDEX``/``RANGEEXPR_COUNT`` are set by rangeexpr for each job.
    """
    env: dict[str, Template] = {}
    given: dict[str, str] = {}
    for item in args.env:
        name, sep, template = item.partition("=")
        key = name.strip()
        if not sep or not key.isidentifier():
            raise RangeExprError(
                f"-e takes NAME=TEMPLATE, got {item!r}", item, (0, max(1, len(name)))
            )
        at = name.index(key)
        span = (at, at + len(key))
        if key.startswith(_RESERVED):
            raise RangeExprError(
                f"-e {key}: names starting with {_RESERVED} are reserved for the variables "
                f"rangeexpr sets for each job ({_RESERVED}INDEX, {_RESERVED}COUNT)",
                item,
                span,
            )
        if key in given:
            raise RangeExprError(
                f"-e {key} is given twice ({given[key]!r}, then {item!r}): give each variable once",
                item,
                span,
            )
        given[key] = item
        env[key] = Template(template)
    return env


def _checked_templates(
    args: argparse.Namespace, sweep: Sweep, *, shell: bool = False
) -> tuple[Command | None, dict[str, Template], list[str]]:
    """The command and env templates, checked against the sweep; and the warnings."""
    command = Command(args.exec, shell=shell) if args.exec is not None else None
    env = _env_templates(args)
    used: set[str] = set()
    if command is not None:
        command.check(sweep)
        used |= command.names
    for template in env.values():
        template.check(sweep)
        used |= template.names
    warnings = []
    if command is not None or env:
        for name in sweep.names:
            if name not in used:
                warnings.append(
                    f"range variable {name} is used by no template: "
                    "it multiplies the jobs without changing them"
                )
    return command, env, warnings


# ---------------------------------------------------------------------------
# Subcommands
# ---------------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    sweep = _sweep(args)
    _, _, warnings = _checked_templates(args, sweep)
    rows: list[tuple[str, ...]] = [("NAME", "KIND", "LENGTH", "FIRST", "LAST")]
    for ax in sweep.axes:
        rows.append((ax.name, ax.kind, int_text(ax.size), ax.text(0), ax.text(-1)))
    with _output() as out:
        _print_table(rows, out, right={2})
        size = int_text(sweep.max_size if sweep.is_filtered else sweep.size)
        out.write(f"at most {size} points\n" if sweep.is_filtered else f"{size} points\n")
    for w in warnings:
        print(f"rangeexpr: warning: {w}", file=sys.stderr)
    return 0


def _expand(args: argparse.Namespace) -> int:
    sweep = _select(_sweep(args), args)
    if args.count:
        count = count_points(sweep)
        with _output() as out:
            out.write(int_text(count) + "\n")
        return 0
    with _output() as out:
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


def _stream_jsonl(sweep: Sweep, out: TextIO) -> None:
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


def _stream_table(sweep: Sweep, out: TextIO, probe: int = 1000) -> None:
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
        _write_row(row, widths, out)
    for row in it:
        _write_row(row, widths, out)


def _write_row(row: Sequence[str], widths: Sequence[int], out: TextIO, right: Any = ()) -> None:
    cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
    out.write("  ".join(cells).rstrip() + "\n")


def _print_table(rows: list[tuple[str, ...]], out: TextIO, right: Any = ()) -> None:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for row in rows:
        _write_row(row, widths, out, right)


def _run(args: argparse.Namespace) -> int:
    from ._cli_run import run_command

    if args.exec is None:
        raise RangeExprError("run needs --exec TEMPLATE: the command to run for each point")
    full = _sweep(args)
    command, env, warnings = _checked_templates(args, full, shell=args.shell)
    assert command is not None
    for w in warnings:
        print(f"rangeexpr: warning: {w}", file=sys.stderr)
    source = {
        "exprs": list(full.exprs),
        "exec": args.exec,
        "env": {k: t.source for k, t in env.items()},
        "shell": bool(args.shell),
    }
    source.update(view_source(args))
    sweep = _select(full, args)
    return run_command(args, sweep, command, env, source)
