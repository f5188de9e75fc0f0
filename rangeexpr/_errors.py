"""The one public error type and its subclasses.

Hierarchy::

    ValueError
    └── RangeExprError          bad input: carries .source and .span
        ├── ParseError          the text does not match the grammar
        ├── EvaluationError     well-formed, but the values make no sense (empty axis, step 0)
        ├── SweepError          the expressions do not fit together (duplicate names, ...)
        └── TemplateError       a template names an unknown variable or has a bad placeholder

Every error renders as the message, the source indented four spaces, and a marker under
the span, so the CLI can print ``str(error)`` as it is.
"""

from __future__ import annotations

__all__ = [
    "EvaluationError",
    "ParseError",
    "RangeExprError",
    "RangeExprWarning",
    "SweepError",
    "TemplateError",
]


class RangeExprError(ValueError):
    """Invalid input. ``span`` is a half-open ``(start, end)`` offset range into ``source``."""

    def __init__(self, message: str, source: str = "", span: tuple[int, int] | None = None):
        super().__init__(message)
        self.message = message
        self.source = source
        self.span = span

    def __str__(self) -> str:
        if self.span is None or not self.source:
            return self.message
        return f"{self.message}\n{render_marker(self.source, self.span)}"


class ParseError(RangeExprError):
    """The text is not a well-formed range expression."""


class EvaluationError(RangeExprError):
    """The expression is well-formed but its arguments give no usable axis."""


class SweepError(RangeExprError):
    """The expressions of a sweep do not fit together."""


class TemplateError(RangeExprError):
    """A template is malformed or names a variable that no range defines."""


class RangeExprWarning(UserWarning):
    """Valid, but probably not what was meant (e.g. a variable no template uses)."""


_SHOWN = 200  # a longer source line is shown as a window of this many characters
_BEFORE = 60  # of which this many come before the span


def render_marker(source: str, span: tuple[int, int]) -> str:
    """The source line holding the span, indented four spaces, and ``~~^`` under the span.

    A line longer than ``_SHOWN`` characters (a 5000-digit literal, a long command) is cut
    to a window around the span start, with ``...`` where text was left out, so an error
    stays a few lines long whatever the input.
    """
    start, end = span
    start = max(0, min(start, len(source)))
    end = max(start + 1, min(end, len(source)))
    line_start = source.rfind("\n", 0, start) + 1
    line_end = source.find("\n", start)
    if line_end < 0:
        line_end = len(source)
    line = source[line_start:line_end]
    col = start - line_start
    width = max(1, min(end, line_end) - start)
    if len(line) > _SHOWN:
        lo = max(0, min(col - _BEFORE, len(line) - _SHOWN))
        hi = lo + _SHOWN
        head = "..." if lo > 0 else ""
        tail = "..." if hi < len(line) else ""
        width = max(1, min(width, hi - col))
        line, col = f"{head}{line[lo:hi]}{tail}", col - lo + len(head)
    return f"    {line}\n    {' ' * col}{'~' * (width - 1)}^"
