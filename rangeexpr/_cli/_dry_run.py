"""``run --dry-run``: print each job as one /bin/sh line, run nothing."""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from .._errors import RangeExprError
from .._points import BaseSweep
from .._spec import RunSpec
from .._template import Command, Template
from ._output import stdout

__all__ = ["dry_run"]


def dry_run(
    spec: RunSpec,
    sweep: BaseSweep,
    command: Command,
    env: Mapping[str, Template],
    skip: frozenset[int],
) -> int:
    """``NAME=value`` assignments first, then the command line; lazily, point by point.

    The points in ``skip`` (succeeded, says the job log) are left out.
    """
    templates = tuple(env.items())
    seen = 0
    with stdout() as out:
        write = out.write
        for point in sweep:
            seen += 1
            if point.index in skip:
                continue
            assignments = "".join(
                f"{name}={shlex.quote(template.render(point))} " for name, template in templates
            )
            write(f"{assignments}{command.line(point)}\n")
    if seen == 0:
        raise RangeExprError(f"nothing to run: {spec.selection()} keeps no point")
    return 0
