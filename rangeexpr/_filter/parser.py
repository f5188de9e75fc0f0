"""Parsing filters: the lark tree becomes the AST, lark's errors become ours.

Lark's exceptions are translated here and nowhere else, into a ``ParseError`` whose message
is in the user's words (``_explain_syntax``: what the parser expected there, and the tokens
before it, say which mistake it was) and whose span points at it.
"""

from __future__ import annotations

from typing import Any

from lark import Token, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError
from lark.visitors import Transformer_NonRecursive

from .._errors import ParseError
from .._grammar import lark_parser
from .._text import EscapeError, shorten, unquote
from .nodes import (
    MAX_DEPTH,
    MAX_INT_DIGITS,
    MAX_STR_LEN,
    Arith,
    BoolOp,
    Compare,
    Const,
    Member,
    Node,
    Span,
    Unary,
    Var,
    children,
)

__all__ = ["parse_filter"]


def _check_depth(source: str, root: Node) -> None:
    """Refuse nesting deeper than ``MAX_DEPTH``, which compiling would have to recurse into."""
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        below = children(node)
        if below and depth > MAX_DEPTH:
            raise ParseError(
                f"the filter nests operations more than {MAX_DEPTH} levels deep "
                "(parentheses, 'not', signs, '**'): write it flatter",
                source,
                node.span,
            )
        stack.extend((child, depth + 1) for child in below)


def _span(meta: Any) -> Span:
    return (meta.start_pos, meta.end_pos)


def _unescape(token: Token) -> str:
    """The string a quoted literal stands for, with the escapes of ``case`` values."""
    try:
        return unquote(str(token), token.start_pos or 0)
    except EscapeError as exc:
        raise _SyntaxProblem(
            f"unknown escape '{exc.escape}' in a string; the escapes are \\\\ \\\" \\' \\n \\t",
            exc.span,
        ) from None


class _SyntaxProblem(Exception):
    """Raised inside the transformer; turned into a ParseError with the source."""

    def __init__(self, message: str, span: Span) -> None:
        super().__init__(message)
        self.message = message
        self.span = span


@v_args(meta=True)
class _ToAst(Transformer_NonRecursive[Token, Node]):
    """One method per aliased alternative of ``filter.lark``; walks the tree in a loop."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def start(self, meta: Any, children: list[Node]) -> Node:
        return children[0]

    def var(self, meta: Any, children: list[Token]) -> Node:
        return Var(str(children[0]), _span(meta))

    def int_(self, meta: Any, children: list[Token]) -> Node:
        digits = str(children[0]).replace("_", "").lstrip("0")
        if len(digits) > MAX_INT_DIGITS:
            raise _SyntaxProblem(
                f"an integer of {len(digits)} digits: a filter's integers have at most "
                f"{MAX_INT_DIGITS} digits",
                _span(meta),
            )
        return Const(int(digits or "0"), _span(meta))

    def float_(self, meta: Any, children: list[Token]) -> Node:
        return Const(float(children[0]), _span(meta))

    def string(self, meta: Any, children: list[Token]) -> Node:
        value = _unescape(children[0])
        if len(value) > MAX_STR_LEN:
            raise _SyntaxProblem(
                f"a string of {len(value)} characters: a filter's strings have at most "
                f"{MAX_STR_LEN} characters",
                _span(meta),
            )
        return Const(value, _span(meta))

    def neg(self, meta: Any, children: list[Node]) -> Node:
        (operand,) = children
        if isinstance(operand, Const) and isinstance(operand.value, int | float):
            return Const(-operand.value, _span(meta))
        return Unary("-", operand, _span(meta))

    def pos(self, meta: Any, children: list[Node]) -> Node:
        return Unary("+", children[0], _span(meta))

    def not_(self, meta: Any, children: list[Node]) -> Node:
        return Unary("not", children[0], _span(meta))

    def chain(self, meta: Any, children: list[Any]) -> Node:
        """Operands and operator tokens alternating: ``a + b - c`` or ``a ** b``."""
        first, *rest = children
        links = tuple(
            (str(op), (op.start_pos, op.end_pos), operand)
            for op, operand in zip(rest[::2], rest[1::2])
        )
        level = _LEVEL[links[0][0]]
        if isinstance(first, Arith) and level != "**" and _LEVEL[first.links[0][0]] == level:
            # `(a + b) - c` is `a + b - c`: one flat run, however many parentheses
            return Arith(first.first, first.links + links, _span(meta))
        return Arith(first, links, _span(meta))

    def and_(self, meta: Any, children: list[Node]) -> Node:
        return _bool_op("and", children, _span(meta))

    def or_(self, meta: Any, children: list[Node]) -> Node:
        return _bool_op("or", children, _span(meta))

    def link(self, meta: Any, children: list[Any]) -> tuple[str, Span, Node]:
        op, operand = children
        return (str(op), (op.start_pos, op.end_pos), operand)

    def items(self, meta: Any, children: list[Node | None]) -> tuple[Node, ...]:
        return tuple(c for c in children if c is not None)

    def member_in(self, meta: Any, children: list[Any]) -> tuple[bool, Span, tuple[Node, ...]]:
        return (False, (meta.start_pos, meta.start_pos + 2), children[0])

    def member_not_in(self, meta: Any, children: list[Any]) -> tuple[bool, Span, tuple[Node, ...]]:
        at = self.source.index("in", meta.start_pos + 3)
        return (True, (meta.start_pos, at + 2), children[0])

    def compare(self, meta: Any, children: list[Any]) -> Node:
        first, *rest = children
        links: list[tuple[str, Span, Node]] = []
        for part in rest:
            if isinstance(part[0], bool):
                negated, op_span, items = part
                left = links[-1][2] if links else first
                member = Member(left, items, negated, (left.span[0], meta.end_pos), op_span)
                if not links:
                    return member
                chain = Compare(first, tuple(links), (meta.start_pos, left.span[1]))
                return BoolOp("and", (chain, member), _span(meta))
            links.append(part)
        return Compare(first, tuple(links), _span(meta))


_LEVEL = {"+": "+", "-": "+", "*": "*", "/": "*", "//": "*", "%": "*", "**": "**"}


def _bool_op(op: str, operands: list[Node], span: Span) -> BoolOp:
    """One flat node; a parenthesized run of the same operator is merged in, so that
    ``(A) and (B)`` built by ``where().where()...`` never nests."""
    flat: list[Node] = []
    for operand in operands:
        if isinstance(operand, BoolOp) and operand.op == op:
            flat.extend(operand.operands)
        else:
            flat.append(operand)
    return BoolOp(op, tuple(flat), span)


def parse_filter(source: str, /) -> Node:
    """Parse a filter into its AST; malformed text is a ``ParseError`` with a marker."""
    try:
        tree: Tree[Token] = lark_parser("filter.lark").parse(source)
        ast = _ToAst(source).transform(tree)
    except UnexpectedInput as exc:
        message, span = _explain_syntax(source, exc)
        raise ParseError(message, source, span) from None
    except VisitError as exc:
        problem = exc.orig_exc
        if isinstance(problem, _SyntaxProblem):
            raise ParseError(problem.message, source, problem.span) from None
        raise
    _check_depth(source, ast)
    return ast


_VALUE_STARTS = {"NAME", "INT", "FLOAT", "STRING", "LPAR", "MINUS", "PLUS", "NOT"}
_ADVICE = {
    "=": "'=' is not a comparison: write '==' to test equality",
    "&": "write 'and' instead of '&'",
    "|": "write 'or' instead of '|'",
    "!": "write '!=' for 'not equal', or 'not' to negate",
}


def _tokens_before(source: str, pos: int) -> list[Token]:
    """The tokens of ``source[:pos]`` (text that lexed fine), for context in messages."""
    try:
        return list(lark_parser("filter.lark").lex(source[:pos]))
    except UnexpectedInput:
        return []


def _unclosed_paren(tokens: list[Token]) -> int | None:
    """Offset of the last '(' left open by ``tokens``, if any."""
    opened: list[int] = []
    for tok in tokens:
        if tok.type == "LPAR":
            opened.append(tok.start_pos or 0)
        elif tok.type == "RPAR" and opened:
            opened.pop()
    return opened[-1] if opened else None


def _explain_syntax(source: str, exc: UnexpectedInput) -> tuple[str, Span | None]:
    """A message in the user's words, and the span it points at, for a lark error."""
    pos = exc.pos_in_stream if exc.pos_in_stream is not None else len(source)
    if isinstance(exc, UnexpectedCharacters):
        ch = source[pos]
        if ch in "\"'":
            return f"unclosed string: add the closing {ch}", (pos, len(source))
        if source.startswith("&&", pos) or source.startswith("||", pos):
            return _ADVICE[ch].replace(f"'{ch}'", f"'{ch * 2}'"), (pos, pos + 2)
        if ch in _ADVICE and not source.startswith("!=", pos):
            return _ADVICE[ch], (pos, pos + 1)
        return (
            f"unexpected character {ch!r}: a filter is made of variable names, numbers, "
            "quoted strings, parentheses and the operators of Python expressions",
            (pos, pos + 1),
        )
    assert isinstance(exc, UnexpectedToken)
    tok = exc.token
    expected = set(exc.expected)
    at_end = tok.type == "$END"
    tokens = _tokens_before(source, len(source) if at_end else pos)
    prev = f" after {shorten(str(tokens[-1]))}" if tokens else ""
    span = (len(source), len(source) + 1) if at_end else (pos, pos + len(tok))
    found = "the end of the filter" if at_end else shorten(str(tok))
    if not source.strip():
        return "empty filter: write a condition such as X < 3", None
    if tok.type == "RPAR" and [t.type for t in tokens[-2:]] == ["IN", "LPAR"]:
        return "'in ()' needs at least one value, e.g. X in (1, 2)", span
    if expected == {"LPAR"}:
        return (
            f"'in' needs a parenthesized list of values, e.g. X in (1, 2); found {found}",
            span,
        )
    if expected == {"IN"}:
        return f"expected 'in' after 'not' (as in X not in (1, 2)), found {found}", span
    if tok.type == "RPAR" and _unclosed_paren(tokens) is None:
        return "unmatched ')'", span
    if tok.type == "COMMA" and _unclosed_paren(tokens) is None:
        return "',' separates values only inside 'in (...)'", span
    if at_end:
        opener = _unclosed_paren(tokens)
        if opener is not None and not (expected & _VALUE_STARTS):
            return "unclosed '(': add ')'", (opener, opener + 1)
    if expected & _VALUE_STARTS and not expected & {"AND", "OR", "COMP_OP"}:
        return (
            f"expected a value (a number, a quoted string, a variable or '('){prev}, found {found}",
            span,
        )
    if tok.type in _VALUE_STARTS:
        between = f" between {shorten(str(tokens[-1]))} and {found}" if tokens else ""
        return (
            f"missing operator{between}: join conditions with 'and' / 'or', "
            "compare with == != < <= > >=",
            span,
        )
    if tok.type == "COMP_OP":
        return (
            f"a comparison cannot continue after 'in (...)': join with 'and', found {found}",
            span,
        )
    return f"unexpected {found}{prev}", span
