"""The command line: parse arguments, build the RunSpec, call the library, print.

Layout: ``_options`` holds the parser and its converters and builds the ``RunSpec``
(``rangeexpr._spec``) from the arguments: no other module sees argparse's names. One
module per command, imported only when that command runs: ``_check``, ``_expand``,
``_run`` (with ``_resume`` for the job log's header and ``--resume``, ``_dry_run``,
``_summary`` for the end-of-run report) and ``_report``. ``_progress`` draws the progress
bars (rich), ``_output`` is the one place our own stdout is written and its failures
handled. ``check`` and ``expand`` load neither trio, rich nor the runner.

Every ``RangeExprError`` is printed as ``rangeexpr: error: MESSAGE`` with the source and a
marker, and exits 2; no input produces a traceback. Output that cannot be written (stdout
closed, a full disk) is one line on stderr and exit 1; a reader that goes away (``| head``)
ends the output quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .._errors import RangeExprError
from ._options import is_sweep_file, join_sort_values, parser
from ._output import OutputError, quiet_stdout

__all__ = ["main", "parse_args"]

EXIT_INVALID = 2
EXIT_OUTPUT = 1
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rangeexpr`` console script; returns the exit code."""
    if sys.stderr is None:  # started with 2>&-: messages go nowhere, but never crash
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        command = importlib.import_module(f"{__name__}._{args.command}")
        return int(command.command(args))
    except RangeExprError as exc:
        print(f"rangeexpr: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away: it has read all it wanted
        quiet_stdout()
        return 0
    except OutputError as exc:
        print(f"rangeexpr: error: cannot write the output: {exc}", file=sys.stderr)
        quiet_stdout()
        return EXIT_OUTPUT


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The arguments of ``rangeexpr ARGV...`` (a usage error exits 2, as argparse does).

    Expressions may stand anywhere among the options: positionals after the first run of
    them come back as "unknown" and are appended, in order, to the positional ones.
    """
    top = parser()
    args, extra = top.parse_known_args(join_sort_values(argv))  # --sort -NAME
    unknown = [a for a in extra if a.startswith("-")]
    if unknown:
        top.error(f"unrecognized arguments: {' '.join(unknown)}")
    if hasattr(args, "positional_exprs"):
        args.positional_exprs = [*args.positional_exprs, *extra]
        files = [e for e in args.positional_exprs if is_sweep_file(e)]
        if len(files) > 1:
            top.error(f"one sweep file at a time, got {' '.join(files)}")
        if files:  # ``rangeexpr run sweep.toml``: the flags given override the file
            args.positional_exprs.remove(files[0])
            args.sweep_file = files[0]
            args.given_fields = _given_fields(argv)
    elif extra:  # report: log files given after an option
        args.logs = [*args.logs, *map(Path, extra)]
    return args


# argparse names that are not a RunSpec field's ("command" is the subcommand's name)
_FIELDS = {"positional_exprs": "exprs", "exec": "command", "no_progress": "progress", "command": ""}


def _given_fields(argv: Sequence[str]) -> frozenset[str]:
    """The RunSpec fields set by an option given in ``argv`` (not left at its default).

    The same parser with every default suppressed leaves out what was not given.
    """
    from dataclasses import fields

    from .._spec import RunSpec

    top = parser()
    parsers = [top]
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers += action.choices.values()
    for p in parsers:
        p._defaults.clear()
        for action in p._actions:
            action.default = argparse.SUPPRESS
    args, _ = top.parse_known_args(join_sort_values(argv))
    known = {f.name for f in fields(RunSpec)}
    given = {_FIELDS.get(dest, dest) for dest, value in vars(args).items() if value != []}
    return frozenset(given & known)
