"""``run --dry-run``: print each job as one /bin/sh line, run nothing."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping

from .._errors import RangeExprError
from .._jobs import LATE_NAMES, RUNTIME_NAMES, Placeholder, in_directory
from .._points import BaseSweep, Point
from .._spec import RunSpec
from .._template import Command, Derived, Template, WithRuntime
from ._output import stdout
from ._resume import Done

__all__ = ["dry_run"]


def dry_run(
    spec: RunSpec,
    sweep: BaseSweep,
    command: Command,
    env: Mapping[str, Template],
    skip: Done | None,
) -> int:
    """``NAME=value`` assignments first, then the command line (with ``--workdir``, the
    ``cd`` into it first); lazily, point by point.

    The points in ``skip`` (succeeded, says the job log) are left out, and counted on
    stderr: how many are done and how many would run.
    """
    templates = tuple(env.items())
    workdir = None if spec.workdir is None else Template(spec.workdir)
    derived = Derived.needed(env, command, workdir)
    used = command.names.union(*(t.names for t in env.values()))
    if workdir is not None:
        used |= workdir.names
    runtime = used & set(RUNTIME_NAMES)
    # known only when a job starts: shown as placeholders, as the job log shows them
    late = {name: Placeholder(name) for name in runtime & LATE_NAMES}
    count = sweep.full_size
    seen = done = 0
    with stdout() as out:
        write = out.write
        for point in sweep:
            seen += 1
            if skip is not None and point in skip:
                done += 1
                continue
            values: Point | WithRuntime = point
            if runtime:
                early = {"RANGEEXPR_INDEX": point.index, "RANGEEXPR_COUNT": count}
                values = WithRuntime(point, {**early, **late})
            if derived is None:
                texts = {name: template.render(values) for name, template in templates}
            else:
                texts, values = derived.render(values)
            assignments = "".join(f"{name}={shlex.quote(text)} " for name, text in texts.items())
            line = command.line(values)
            if workdir is not None:  # as the job runs it: the directory is not made
                line = in_directory(workdir.render(values), (), line)[1]
            write(f"{assignments}{line}\n")
    if seen == 0:
        raise RangeExprError(f"nothing to run: {spec.selection()} keeps no point")
    if skip is not None:
        print(
            f"rangeexpr: {done} of {seen} points done (the job log records them as "
            f"succeeded), {seen - done} to run",
            file=sys.stderr,
        )
    return 0
