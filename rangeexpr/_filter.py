"""Filters: the boolean expressions of ``--where`` and ``Sweep.where``.

The text is parsed once (``grammar/filter.lark``) into a small frozen AST, and the AST is
compiled once into nested closures, so keeping or dropping a point costs a few Python
calls and never runs ``eval``. Semantics are Python's (chained comparisons, ``and``/``or``
short-circuit, ``//`` and ``%`` floor, ``**`` right-associative), with these guards:

- a type clash or a division by zero is an ``EvaluationError`` naming the point, and a
  negative number to a fractional power (complex in Python) is an error, not a complex;
- no value is built past the limits: integers of at most ``MAX_INT_DIGITS`` digits and
  strings of at most ``MAX_STR_LEN`` characters, for literals and for every result of
  ``+ - * **`` (checked before the work where the size is known in advance), so no
  filter can hang or exhaust memory on one point; messages quote values shortened;
- a run of one operator (``a or b or ...``, ``a + b - ...``, comparisons, ``in`` lists)
  is one flat node, built and evaluated in a loop, so its length is not limited; what
  nests (parentheses around operations, ``not``, signs, ``**``) may go ``MAX_DEPTH``
  levels deep, and deeper is a ``ParseError``, never a ``RecursionError``.

A ``Filter`` pickles as its source (the compiled closures are rebuilt on unpickling), so
filtered sweeps can be sent to other processes.
"""

from __future__ import annotations

import difflib
import math
import operator
import reprlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from lark import Token, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError
from lark.visitors import Transformer_NonRecursive

from ._errors import EvaluationError, ParseError
from ._grammar import lark_parser

__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "MAX_STR_LEN", "Filter", "FilterValue", "parse_filter"]

FilterValue: TypeAlias = int | float | str | bool
Span: TypeAlias = tuple[int, int]
_Fn: TypeAlias = Callable[[Any], Any]  # a point (mapping) or a row (tuple) -> value

# Values bigger than these are refused: a filter that builds them is a mistake, and
# building them would hang or exhaust memory. 4300 digits is also the most Python prints.
MAX_INT_DIGITS = 4300
MAX_STR_LEN = 1 << 16
MAX_DEPTH = 100  # levels of nested operations; flat runs of one operator do not count
_INT_LIMIT = 10**MAX_INT_DIGITS  # |n| < this has at most MAX_INT_DIGITS digits
_INT_BITS = _INT_LIMIT.bit_length()  # an int with fewer bits is within the limit


# ---------------------------------------------------------------------------
# The AST
# ---------------------------------------------------------------------------


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


def _children(node: Node) -> tuple[Node, ...]:
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


def _check_depth(source: str, root: Node) -> None:
    """Refuse nesting deeper than ``MAX_DEPTH``, which compiling would have to recurse into."""
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        children = _children(node)
        if children and depth > MAX_DEPTH:
            raise ParseError(
                f"the filter nests operations more than {MAX_DEPTH} levels deep "
                "(parentheses, 'not', signs, '**'): write it flatter",
                source,
                node.span,
            )
        stack.extend((child, depth + 1) for child in children)


# ---------------------------------------------------------------------------
# Parsing: lark tree -> AST, with lark's exceptions translated at one boundary
# ---------------------------------------------------------------------------


def _span(meta: Any) -> Span:
    return (meta.start_pos, meta.end_pos)


def _unescape(token: Token) -> str:
    """The string a quoted literal stands for, with the escapes of ``case`` values."""
    text = str(token)
    body = text[1:-1]
    out: list[str] = []
    i = 0
    escapes = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            if nxt not in escapes:
                start = (token.start_pos or 0) + 1 + i
                raise _SyntaxProblem(
                    f"unknown escape '\\{nxt}' in a string; the escapes are \\\\ \\\" \\' \\n \\t",
                    (start, start + 2),
                )
            out.append(escapes[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


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
    prev = f" after {_show(str(tokens[-1]))}" if tokens else ""
    span = (len(source), len(source) + 1) if at_end else (pos, pos + len(tok))
    found = "the end of the filter" if at_end else _show(str(tok))
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
        between = f" between {_show(str(tokens[-1]))} and {found}" if tokens else ""
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


# ---------------------------------------------------------------------------
# Compiling: AST -> nested closures
# ---------------------------------------------------------------------------


class _Failure(Exception):
    """An operation failed on concrete values; ``Filter.__call__`` adds the point."""

    def __init__(self, message: str, span: Span) -> None:
        super().__init__(message)
        self.message = message
        self.span = span


class _TooLarge(OverflowError):
    """A result over the size limits, refused (before it is built, where that is known)."""


_INT_TOO_LARGE = f"a filter's integers have at most {MAX_INT_DIGITS} digits"
_STR_TOO_LONG = f"a filter's strings have at most {MAX_STR_LEN} characters"
_GROWS = frozenset({"+", "-", "*", "**"})  # results that can be larger than the operands


def _refuse(op: str, a: Any, b: Any, result: Any, span: Span) -> None:
    """Fail if ``result`` is over the limits (called when a cheap test says it may be).

    Results of ``+ - * **`` are checked after the fact: the operands are within the
    limits, so a result is at most about twice the limit in size. What could be far
    larger (``str * int``, ``int ** int``) is refused before it is built, in ``_mul`` and
    ``_pow``.
    """
    if isinstance(result, str) and len(result) > MAX_STR_LEN:
        raise _Failure(_why(op, a, b, _TooLarge(_STR_TOO_LONG)), span)
    if isinstance(result, int) and abs(result) >= _INT_LIMIT:
        raise _Failure(_why(op, a, b, _TooLarge(_INT_TOO_LARGE)), span)


def _mul(a: Any, b: Any) -> Any:
    if isinstance(a, str):
        if isinstance(b, int) and len(a) * b > MAX_STR_LEN:
            raise _TooLarge(_STR_TOO_LONG)
    elif isinstance(b, str) and isinstance(a, int) and len(b) * a > MAX_STR_LEN:
        raise _TooLarge(_STR_TOO_LONG)
    return a * b


def _pow(a: Any, b: Any) -> Any:
    # a ** b >= 2 ** ((bit_length(a) - 1) * b): refused before it is computed.
    if (
        isinstance(a, int)
        and isinstance(b, int)
        and b > 0
        and (a.bit_length() - 1) * b >= _INT_BITS
    ):
        raise _TooLarge(_INT_TOO_LARGE)
    result = a**b
    if isinstance(result, complex):
        raise ValueError("a negative number to a fractional power has no real value")
    return result


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, str):  # str % x is printf-style formatting in Python, not arithmetic
        raise TypeError
    return a % b


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": _mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": _mod,
    "**": _pow,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}

_SHOW = 40  # values longer than this are shortened in messages


def _show(value: Any) -> str:
    """``repr(value)``, shortened: a message never quotes a huge string or number."""
    if isinstance(value, str):
        if len(value) <= _SHOW:
            return repr(value)
        head = repr(value[: _SHOW - 10])
        return f"{head[:-1]}...{head[-1]} ({len(value)} characters)"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4 * _SHOW:
        if value.bit_length() >= _INT_BITS and abs(value) >= _INT_LIMIT:  # str() would fail
            return f"an int of about {int(value.bit_length() * math.log10(2)) + 1} digits"
        text = str(value)
        digits = len(text.lstrip("-"))
        if len(text) > _SHOW:
            return f"{text[: _SHOW - 20]}...{text[-5:]} ({digits} digits)"
        return text
    return reprlib.repr(value)


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {_show(value)}"


def _why(op: str, a: Any, b: Any, exc: Exception) -> str:
    """What went wrong with ``a op b``, in words."""
    negative = op == "**" and isinstance(a, int | float) and a < 0
    shown = f"({_show(a)}) {op} {_show(b)}" if negative else f"{_show(a)} {op} {_show(b)}"
    if isinstance(exc, ZeroDivisionError):
        return f"division by zero in {shown}"
    if isinstance(exc, _TooLarge):
        return f"the result of {shown} is too large: {exc}"
    if isinstance(exc, OverflowError):
        return f"the result of {shown} is too large"
    if isinstance(exc, ValueError):
        return f"{shown}: {exc}"
    return f"'{op}' is not defined between {_describe(a)} and {_describe(b)}"


_ERRORS = (TypeError, ArithmeticError, ValueError)


# How a compiled filter reads a variable: from a mapping by name (``Filter.__call__``) or
# from a row tuple by position (``Filter.on_rows``, for sweeps). Either way a C-level
# ``operator.itemgetter``, so a variable costs no Python frame.
_VarAccess: TypeAlias = Callable[[str], _Fn]


def _compile(node: Node, var: _VarAccess) -> _Fn:
    """A closure computing ``node`` on a point, reading variables through ``var``.

    It recurses once per level of nesting (at most ``MAX_DEPTH``), never per operand of a
    flat run: long runs compile to a loop over a list of closures.
    """
    if isinstance(node, Const):
        value = node.value
        return lambda p: value
    if isinstance(node, Var):
        return var(node.name)
    if isinstance(node, Unary):
        return _compile_unary(node, var)
    if isinstance(node, Arith):
        return _compile_arith(node, var)
    if isinstance(node, BoolOp):
        return _compile_bool(node, var)
    if isinstance(node, Compare):
        return _compile_compare(node, var)
    return _compile_member(node, var)


def _compile_unary(node: Unary, var: _VarAccess) -> _Fn:
    operand = _compile(node.operand, var)
    if node.op == "not":
        return lambda p: not operand(p)
    fn = operator.neg if node.op == "-" else operator.pos
    op, span = node.op, (node.span[0], node.span[0] + 1)

    def unary(p: Any) -> Any:
        value = operand(p)
        try:
            return fn(value)
        except TypeError:
            raise _Failure(f"bad operand for unary '{op}': {_describe(value)}", span) from None

    return unary


def _compile_bool(node: BoolOp, var: _VarAccess) -> _Fn:
    fns = [_compile(operand, var) for operand in node.operands]
    if len(fns) == 2:
        left, right = fns
        if node.op == "and":
            return lambda p: left(p) and right(p)
        return lambda p: left(p) or right(p)
    *init, last = fns
    if node.op == "and":

        def all_(p: Any) -> Any:
            for fn in init:
                value = fn(p)
                if not value:
                    return value
            return last(p)

        return all_

    def any_(p: Any) -> Any:
        for fn in init:
            value = fn(p)
            if value:
                return value
        return last(p)

    return any_


# Runs of up to this many operators compile to nested closures (faster; one Python frame
# per operator at evaluation), longer runs to one loop, so evaluation stays within
# _NESTED_RUN frames per level of nesting.
_NESTED_RUN = 3


def _compile_arith(node: Arith, var: _VarAccess) -> _Fn:
    first = _compile(node.first, var)
    if len(node.links) <= _NESTED_RUN:
        get = first
        for op, span, right in node.links:
            get = _binary(op, span, get, right, var)
        return get
    links = [(op, span, _BINARY[op], _compile(right, var)) for op, span, right in node.links]

    def arith(p: Any) -> Any:
        a = first(p)
        for op, span, fn, operand in links:
            b = operand(p)
            try:
                result = fn(a, b)
            except _ERRORS as exc:
                raise _Failure(_why(op, a, b, exc), span) from None
            cls = result.__class__
            if (cls is int and result.bit_length() >= _INT_BITS) or (
                cls is str and len(result) > MAX_STR_LEN
            ):
                _refuse(op, a, b, result, span)
            a = result
        return a

    return arith


def _binary(op: str, span: Span, get_a: _Fn, right: Node, var: _VarAccess) -> _Fn:
    """``get_a(p) op right``, checking the result's size if ``op`` can grow it.

    The size test is written out in each closure rather than called: a call would cost
    more than the arithmetic it guards.
    """
    fn = _BINARY[op]
    if isinstance(right, Const):  # the common `X < 3`: no call for the constant
        b = right.value
        if op == "%":  # the common `X % 2 == 0`: _mod inlined

            def mod_const(p: Any) -> Any:
                a = get_a(p)
                try:
                    if a.__class__ is str:
                        raise TypeError
                    return a % b
                except _ERRORS as exc:
                    raise _Failure(_why(op, a, b, exc), span) from None

            return mod_const

        def binary_const(p: Any) -> Any:
            a = get_a(p)
            try:
                return fn(a, b)
            except _ERRORS as exc:
                raise _Failure(_why(op, a, b, exc), span) from None

        def growing_const(p: Any) -> Any:
            a = get_a(p)
            try:
                result = fn(a, b)
            except _ERRORS as exc:
                raise _Failure(_why(op, a, b, exc), span) from None
            cls = result.__class__
            if (cls is int and result.bit_length() >= _INT_BITS) or (
                cls is str and len(result) > MAX_STR_LEN
            ):
                _refuse(op, a, b, result, span)
            return result

        return growing_const if op in _GROWS else binary_const
    get_b = _compile(right, var)

    def binary(p: Any) -> Any:
        a = get_a(p)
        b = get_b(p)
        try:
            return fn(a, b)
        except _ERRORS as exc:
            raise _Failure(_why(op, a, b, exc), span) from None

    def growing(p: Any) -> Any:
        a = get_a(p)
        b = get_b(p)
        try:
            result = fn(a, b)
        except _ERRORS as exc:
            raise _Failure(_why(op, a, b, exc), span) from None
        cls = result.__class__
        if (cls is int and result.bit_length() >= _INT_BITS) or (
            cls is str and len(result) > MAX_STR_LEN
        ):
            _refuse(op, a, b, result, span)
        return result

    return growing if op in _GROWS else binary


def _compile_compare(node: Compare, var: _VarAccess) -> _Fn:
    if len(node.links) == 1:
        ((op, span, operand),) = node.links
        return _binary(op, span, _compile(node.first, var), operand, var)
    first = _compile(node.first, var)
    links = [(op, span, _BINARY[op], _compile(right, var)) for op, span, right in node.links]

    def chain(p: Any) -> Any:
        a = first(p)
        for op, span, fn, operand in links:
            b = operand(p)
            try:
                if not fn(a, b):
                    return False
            except _ERRORS as exc:
                raise _Failure(_why(op, a, b, exc), span) from None
            a = b
        return True

    return chain


def _compile_member(node: Member, var: _VarAccess) -> _Fn:
    operand = _compile(node.operand, var)
    negated = node.negated
    if all(isinstance(item, Const) for item in node.items):
        # Literal lists become a frozenset: same answers as a tuple for int/float/str.
        values = frozenset(item.value for item in node.items if isinstance(item, Const))
        if negated:
            return lambda p: operand(p) not in values
        return lambda p: operand(p) in values
    items = [_compile(item, var) for item in node.items]

    def member(p: Any) -> bool:
        value = operand(p)
        found = any(value == item(p) for item in items)
        return found != negated

    return member


def _variables(node: Node) -> Iterator[Var]:
    """Every variable reference in ``node``, left to right (in a loop, not recursively)."""
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, Var):
            yield node
        else:
            stack.extend(reversed(_children(node)))


def _unknown_name(source: str, var: Var, known: Iterable[str]) -> ParseError:
    names = list(dict.fromkeys(known))
    close = difflib.get_close_matches(var.name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    defined = ", ".join(names) if names else "none"
    return ParseError(
        f"unknown variable {_show(var.name)} in filter (the sweep defines: {defined}){hint}",
        source,
        var.span,
    )


# ---------------------------------------------------------------------------
# The public object
# ---------------------------------------------------------------------------


class Filter:
    """A parsed, compiled filter: ``Filter("X < Y", names=("X", "Y"))(point) -> bool``.

    With ``names`` given, every variable must be one of them (checked here, so errors show
    at ``check`` time, not halfway through a run).
    """

    __slots__ = ("_fn", "_on_rows", "ast", "names", "source")

    def __init__(self, source: str, /, *, names: Iterable[str] | None = None) -> None:
        self.source = source
        self.ast = parse_filter(source)
        used = list(_variables(self.ast))
        if names is not None:
            ordered = list(names)
            known = frozenset(ordered)
            for var in used:
                if var.name not in known:
                    raise _unknown_name(source, var, ordered)
        self.names = frozenset(var.name for var in used)
        self._fn = _compile(self.ast, operator.itemgetter)
        self._on_rows: dict[tuple[str, ...], Callable[[tuple[Any, ...]], Any]] = {}

    def on_rows(self, names: Sequence[str]) -> Callable[[tuple[Any, ...]], Any]:
        """The filter compiled for value rows in ``names`` order: faster than by name.

        The result is truthy to keep; a failing operation raises a private error that
        ``failure(exc, point)`` turns into the ``EvaluationError`` for that point.
        """
        key = tuple(names)
        fn = self._on_rows.get(key)
        if fn is None:
            where = {name: k for k, name in enumerate(key)}
            for var in _variables(self.ast):
                if var.name not in where:
                    raise _unknown_name(self.source, var, key)
            fn = self._on_rows[key] = _compile(self.ast, lambda n: operator.itemgetter(where[n]))
        return fn

    def failure(self, exc: Exception, point: Mapping[str, FilterValue]) -> EvaluationError:
        """The error for ``exc``, raised by an ``on_rows`` function at ``point``."""
        if not isinstance(exc, _Failure):
            raise TypeError("not a filter failure") from exc
        return EvaluationError(
            f"filter failed at {_where(point)}: {exc.message}", self.source, exc.span
        )

    @staticmethod
    def failures() -> type[Exception]:
        """The exception type ``on_rows`` functions raise (catch it, then ``failure``)."""
        return _Failure

    def __call__(self, point: Mapping[str, FilterValue]) -> bool:
        """Whether ``point`` is kept; a failing operation is an ``EvaluationError``."""
        try:
            return bool(self._fn(point))
        except _Failure as failure:
            raise self.failure(failure, point) from None
        except KeyError as exc:
            name = exc.args[0] if exc.args else "?"
            var = next((v for v in _variables(self.ast) if v.name == name), None)
            if var is None:
                raise
            raise _unknown_name(self.source, var, point.keys()) from None

    def __repr__(self) -> str:
        return f"Filter({self.source!r})"

    def __reduce__(self) -> tuple[type[Filter], tuple[str]]:
        """Pickled as its source (closures do not pickle); compiled again when unpickled."""
        return (Filter, (self.source,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Filter) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)


def _where(point: Mapping[str, FilterValue]) -> str:
    """``point 7 (X=0.5, MODEL='small')``: the point's index, if it has one, and values."""
    values = ", ".join(f"{name}={_show(value)}" for name, value in point.items())
    index = getattr(point, "index", None)
    return f"point {index} ({values})" if index is not None else f"({values})"
