"""The filter language's AST: frozen nodes carrying their source span, and its limits.

A run of one operator (``a or b or ...``, ``a + b - ...``, a comparison chain, an ``in``
list) is one flat node, so its length is not limited; only nesting is (``MAX_DEPTH``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeAlias

__all__ = [
    "INT_BITS",
    "INT_LIMIT",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_STR_LEN",
    "Arith",
    "BoolOp",
    "Compare",
    "Const",
    "Member",
    "Node",
    "Span",
    "Unary",
    "Var",
    "children",
    "variables",
]

Span: TypeAlias = tuple[int, int]

# Values bigger than these are refused: a filter that builds them is a mistake, and
# building them would hang or exhaust memory. 4300 digits is also the most Python prints.
MAX_INT_DIGITS = 4300
MAX_STR_LEN = 1 << 16
MAX_DEPTH = 100  # levels of nested operations; flat runs of one operator do not count
INT_LIMIT = 10**MAX_INT_DIGITS  # |n| < this has at most MAX_INT_DIGITS digits
INT_BITS = INT_LIMIT.bit_length()  # an int with fewer bits is within the limit


@dataclass(frozen=True, slots=True)
class Const:
    """A number or string literal."""

    value: int | float | str
    span: Span


@dataclass(frozen=True, slots=True)
class Var:
    """A range variable, looked up in the point."""

    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class Unary:
    """``-x``, ``+x`` or ``not x``."""

    op: str
    operand: Node
    span: Span


@dataclass(frozen=True, slots=True)
class Arith:
    """``a + b - c ...`` left to right: each link is (operator, operator span, operand).

    One node per run of operators of one precedence level (``**`` has a single link).
    """

    first: Node
    links: tuple[tuple[str, Span, Node], ...]
    span: Span


@dataclass(frozen=True, slots=True)
class BoolOp:
    """``a and b and ...`` / ``a or b or ...``, short-circuiting, one node per run."""

    op: str
    operands: tuple[Node, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Compare:
    """``a < b <= c ...``: each link is (operator, operator span, operand)."""

    first: Node
    links: tuple[tuple[str, Span, Node], ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Member:
    """``operand in (items...)`` or ``operand not in (...)``."""

    operand: Node
    items: tuple[Node, ...]
    negated: bool
    span: Span
    op_span: Span


Node: TypeAlias = Const | Var | Unary | Arith | BoolOp | Compare | Member


def children(node: Node) -> tuple[Node, ...]:
    """The operands of ``node``, left to right."""
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Arith | Compare):
        return (node.first, *(operand for _, _, operand in node.links))
    if isinstance(node, BoolOp):
        return node.operands
    if isinstance(node, Member):
        return (node.operand, *node.items)
    return ()


def variables(node: Node) -> Iterator[Var]:
    """Every variable reference in ``node``, left to right (in a loop, not recursively)."""
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, Var):
            yield node
        else:
            stack.extend(reversed(children(node)))
