"""AST nodes: frozen, and carrying their source span so later errors can point at a column."""

from __future__ import annotations

from dataclasses import dataclass

Value = int | float | str
Span = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument: a number of a numeric kind, or one value of a ``case`` list."""

    value: Value  # the typed value: int, float, or str
    text: str  # as written (a case value after unquoting/unescaping): `1.50` stays "1.50"
    span: Span
    quoted: bool = False


@dataclass(frozen=True, slots=True)
class RangeExpr:
    """``NAME=KIND:ARGS``, parsed and checked for arity and argument types."""

    name: str
    kind: str
    args: tuple[Arg, ...]
    source: str
    span: Span
    name_span: Span
    kind_span: Span

    def __str__(self) -> str:
        return self.source
