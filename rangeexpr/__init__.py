"""rangeexpr: range expressions for parameter sweeps.

The public surface is this module; the implementation lives in private modules:
``_parse`` (grammar -> AST), ``_axes`` (lazy numpy-exact axes), ``_sweep`` (lazy Cartesian
products), ``_template`` (``$NAME`` templates and commands), ``_cli`` (the command line).
"""

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
from ._sweep import Point, Sweep
from ._template import Command, Template

__all__ = [
    "Arg",
    "Axis",
    "Command",
    "EvaluationError",
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
]
