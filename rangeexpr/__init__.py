"""rangeexpr: range expressions for parameter sweeps.

The public surface is this module; the implementation lives in private modules, in
pipeline order: ``_parse`` (grammar -> AST), ``_axes`` (lazy numpy-exact axes),
``_layout`` (mixed radix: index -> values), ``_points`` (``Point``, and ``BaseSweep``: what
every sweep and view answers), ``_views`` (random-access sweeps; filtered, shuffled and
sampled views, with ``_filter`` and ``_shuffle``), ``_sweep`` (the lazy Cartesian
product), ``_template`` (``$NAME`` templates and commands), ``_report`` (job logs as flat
records; imported on first use, as it loads numpy), ``_cli`` (the command line).
"""

from typing import TYPE_CHECKING

from ._ast import Arg, RangeExpr
from ._axes import Axis, axis
from ._errors import (
    EvaluationError,
    ParseError,
    RangeExprError,
    RangeExprWarning,
    SweepError,
    TemplateError,
)
from ._parse import parse
from ._points import BaseSweep, Point
from ._sweep import Sweep
from ._template import Command, Template

if TYPE_CHECKING:
    from ._report import JobRecords, read_joblog_records


def __getattr__(name: str) -> object:
    """``read_joblog_records`` and ``JobRecords`` load numpy: imported on first use."""
    if name in ("read_joblog_records", "JobRecords"):
        from . import _report

        return getattr(_report, name)
    raise AttributeError(f"module 'rangeexpr' has no attribute {name!r}")


__all__ = [
    "Arg",
    "Axis",
    "BaseSweep",
    "Command",
    "EvaluationError",
    "JobRecords",
    "ParseError",
    "Point",
    "RangeExpr",
    "RangeExprError",
    "RangeExprWarning",
    "Sweep",
    "SweepError",
    "Template",
    "TemplateError",
    "axis",
    "parse",
    "read_joblog_records",
]
