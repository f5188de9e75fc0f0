"""Filters: the boolean expressions of ``--where`` and ``Sweep.where``.

The text is parsed once (``grammar/filter.lark``) into a small frozen AST, and the AST is
compiled once into nested closures, so keeping or dropping a point costs a few Python
calls and never runs ``eval``. Semantics are Python's (chained comparisons, ``and``/``or``
short-circuit, ``//`` and ``%`` floor, ``**`` right-associative), with three guards: a
type clash or a division by zero is an ``EvaluationError`` naming the point, ``**`` and
string repetition refuse results too large to build, and a negative number to a
fractional power (complex in Python) is an error rather than a silent complex value.
"""

from __future__ import annotations

import difflib
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from lark import Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

from ._errors import EvaluationError, ParseError
from ._grammar import lark_parser

__all__ = ["Filter", "FilterValue", "parse_filter"]

FilterValue: TypeAlias = int | float | str | bool
Span: TypeAlias = tuple[int, int]
_Fn: TypeAlias = Callable[[Any], Any]  # a point (mapping) or a row (tuple) -> value

# Results bigger than this many bits (ints) or characters (strings) are refused: a filter
# that builds them is a mistake, and building them would hang or exhaust memory.
_MAX_INT_BITS = 1 << 20
_MAX_STR_LEN = 1 << 20


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
class Binary:
    """An arithmetic operation; ``op_span`` locates the operator for error markers."""

    op: str
    left: Node
    right: Node
    span: Span
    op_span: Span


@dataclass(frozen=True, slots=True)
class BoolOp:
    """``left and right`` / ``left or right``, short-circuiting."""

    op: str
    left: Node
    right: Node
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


Node: TypeAlias = Const | Var | Unary | Binary | BoolOp | Compare | Member


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
class _ToAst(Transformer[Token, Node]):
    """One method per aliased alternative of ``filter.lark``."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def _op_span(self, op: str, left: Node, right: Node) -> Span:
        # Anonymous operator tokens are dropped from the tree; the operator is the first
        # occurrence of its text between the two operands (only spaces and ")" precede it).
        at = self.source.index(op, left.span[1], right.span[0])
        return (at, at + len(op))

    def start(self, meta: Any, children: list[Node]) -> Node:
        return children[0]

    def var(self, meta: Any, children: list[Token]) -> Node:
        return Var(str(children[0]), _span(meta))

    def int_(self, meta: Any, children: list[Token]) -> Node:
        return Const(int(children[0]), _span(meta))

    def float_(self, meta: Any, children: list[Token]) -> Node:
        return Const(float(children[0]), _span(meta))

    def string(self, meta: Any, children: list[Token]) -> Node:
        return Const(_unescape(children[0]), _span(meta))

    def neg(self, meta: Any, children: list[Node]) -> Node:
        (operand,) = children
        if isinstance(operand, Const) and not isinstance(operand.value, str):
            return Const(-operand.value, _span(meta))
        return Unary("-", operand, _span(meta))

    def pos(self, meta: Any, children: list[Node]) -> Node:
        return Unary("+", children[0], _span(meta))

    def not_(self, meta: Any, children: list[Node]) -> Node:
        return Unary("not", children[0], _span(meta))

    def _binary(self, op: str, meta: Any, children: list[Node]) -> Node:
        left, right = children
        return Binary(op, left, right, _span(meta), self._op_span(op, left, right))

    def add(self, meta: Any, children: list[Node]) -> Node:
        return self._binary("+", meta, children)

    def sub(self, meta: Any, children: list[Node]) -> Node:
        return self._binary("-", meta, children)

    def mul(self, meta: Any, children: list[Node]) -> Node:
        return self._binary("*", meta, children)

    def truediv(self, meta: Any, children: list[Node]) -> Node:
        return self._binary("/", meta, children)

    def floordiv(self, meta: Any, children: list[Node]) -> Node:
        return self._binary("//", meta, children)

    def mod(self, meta: Any, children: list[Node]) -> Node:
        return self._binary("%", meta, children)

    def pow_(self, meta: Any, children: list[Node]) -> Node:
        return self._binary("**", meta, children)

    def and_(self, meta: Any, children: list[Node]) -> Node:
        return BoolOp("and", children[0], children[1], _span(meta))

    def or_(self, meta: Any, children: list[Node]) -> Node:
        return BoolOp("or", children[0], children[1], _span(meta))

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
                return BoolOp("and", chain, member, _span(meta))
            links.append(part)
        return Compare(first, tuple(links), _span(meta))


def parse_filter(source: str, /) -> Node:
    """Parse a filter into its AST; malformed text is a ``ParseError`` with a marker."""
    try:
        tree: Tree[Token] = lark_parser("filter.lark").parse(source)
        return _ToAst(source).transform(tree)
    except UnexpectedInput as exc:
        message, span = _explain_syntax(source, exc)
        raise ParseError(message, source, span) from None
    except VisitError as exc:
        problem = exc.orig_exc
        if isinstance(problem, _SyntaxProblem):
            raise ParseError(problem.message, source, problem.span) from None
        raise


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
    prev = f" after {str(tokens[-1])!r}" if tokens else ""
    span = (len(source), len(source) + 1) if at_end else (pos, pos + len(tok))
    found = "the end of the filter" if at_end else repr(str(tok))
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
        between = f" between {str(tokens[-1])!r} and {found}" if tokens else ""
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


def _mul(a: Any, b: Any) -> Any:
    if (isinstance(a, str) or isinstance(b, str)) and len(a if isinstance(a, str) else b) * (
        b if isinstance(a, str) else a
    ) > _MAX_STR_LEN:
        raise OverflowError
    return a * b


def _pow(a: Any, b: Any) -> Any:
    if (
        isinstance(a, int)
        and isinstance(b, int)
        and b > 0
        and abs(a) > 1
        and a.bit_length() * b > _MAX_INT_BITS
    ):
        raise OverflowError
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


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _why(op: str, a: Any, b: Any, exc: Exception) -> str:
    """What went wrong with ``a op b``, in words."""
    if isinstance(exc, ZeroDivisionError):
        return f"division by zero in {a!r} {op} {b!r}"
    if isinstance(exc, OverflowError):
        return f"the result of {a!r} {op} {b!r} is too large"
    if isinstance(exc, ValueError):
        base = f"({a!r})" if isinstance(a, int | float) and a < 0 else repr(a)
        return f"{base} {op} {b!r}: {exc}"
    return f"'{op}' is not defined between {_describe(a)} and {_describe(b)}"


_ERRORS = (TypeError, ArithmeticError, ValueError)


# How a compiled filter reads a variable: from a mapping by name (``Filter.__call__``) or
# from a row tuple by position (``Filter.on_rows``, for sweeps). Either way a C-level
# ``operator.itemgetter``, so a variable costs no Python frame.
_VarAccess: TypeAlias = Callable[[str], _Fn]


def _compile(node: Node, var: _VarAccess) -> _Fn:
    """A closure computing ``node`` on a point, reading variables through ``var``."""
    if isinstance(node, Const):
        value = node.value
        return lambda p: value
    if isinstance(node, Var):
        return var(node.name)
    if isinstance(node, Unary):
        return _compile_unary(node, var)
    if isinstance(node, Binary):
        return _compile_binary(node.op, node.op_span, node.left, node.right, var)
    if isinstance(node, BoolOp):
        left, right = _compile(node.left, var), _compile(node.right, var)
        if node.op == "and":
            return lambda p: left(p) and right(p)
        return lambda p: left(p) or right(p)
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


def _compile_binary(op: str, span: Span, left: Node, right: Node, var: _VarAccess) -> _Fn:
    fn = _BINARY[op]
    get_a = _compile(left, var)
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

        return binary_const
    get_b = _compile(right, var)

    def binary(p: Any) -> Any:
        a = get_a(p)
        b = get_b(p)
        try:
            return fn(a, b)
        except _ERRORS as exc:
            raise _Failure(_why(op, a, b, exc), span) from None

    return binary


def _compile_compare(node: Compare, var: _VarAccess) -> _Fn:
    if len(node.links) == 1:
        ((op, span, operand),) = node.links
        return _compile_binary(op, span, node.first, operand, var)
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


def _variables(node: Node) -> Iterable[Var]:
    """Every variable reference in ``node``, left to right."""
    if isinstance(node, Var):
        yield node
    elif isinstance(node, Unary):
        yield from _variables(node.operand)
    elif isinstance(node, Binary | BoolOp):
        yield from _variables(node.left)
        yield from _variables(node.right)
    elif isinstance(node, Compare):
        yield from _variables(node.first)
        for _, _, operand in node.links:
            yield from _variables(operand)
    elif isinstance(node, Member):
        yield from _variables(node.operand)
        for item in node.items:
            yield from _variables(item)


def _unknown_name(source: str, var: Var, known: Iterable[str]) -> ParseError:
    names = list(dict.fromkeys(known))
    close = difflib.get_close_matches(var.name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    defined = ", ".join(names) if names else "none"
    return ParseError(
        f"unknown variable {var.name!r} in filter (the sweep defines: {defined}){hint}",
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

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Filter) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)


def _where(point: Mapping[str, FilterValue]) -> str:
    """``point 7 (X=0.5, MODEL='small')``: the point's index, if it has one, and values."""
    values = ", ".join(f"{name}={value!r}" for name, value in point.items())
    index = getattr(point, "index", None)
    return f"point {index} ({values})" if index is not None else f"({values})"
