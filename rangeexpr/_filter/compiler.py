"""Compiling filters: the AST becomes nested closures, evaluated without ``eval``.

Semantics are Python's, with the guards listed in ``rangeexpr._filter``: a failing
operation raises ``Failure`` (message and span, no point), which ``Filter`` turns into an
``EvaluationError`` naming the point; results past the size limits are refused, before
they are built where the size is known in advance.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, TypeAlias

from .._text import shorten
from .nodes import (
    INT_BITS,
    INT_LIMIT,
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
)

__all__ = ["Failure", "Fn", "VarAccess", "compile_node"]

Fn: TypeAlias = Callable[[Any], Any]  # a point (mapping) or a row (tuple) -> value


class Failure(Exception):
    """An operation failed on concrete values; ``Filter`` turns it into the
    ``EvaluationError`` naming the point (which a compiled closure does not know)."""

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
        raise Failure(_why(op, a, b, _TooLarge(_STR_TOO_LONG)), span)
    if isinstance(result, int) and abs(result) >= INT_LIMIT:
        raise Failure(_why(op, a, b, _TooLarge(_INT_TOO_LARGE)), span)


def _mul(a: Any, b: Any) -> Any:
    if isinstance(a, str):
        if isinstance(b, int) and len(a) * b > MAX_STR_LEN:
            raise _TooLarge(_STR_TOO_LONG)
    elif isinstance(b, str) and isinstance(a, int) and len(b) * a > MAX_STR_LEN:
        raise _TooLarge(_STR_TOO_LONG)
    return a * b


def _pow(a: Any, b: Any) -> Any:
    # a ** b >= 2 ** ((bit_length(a) - 1) * b): refused before it is computed.
    if isinstance(a, int) and isinstance(b, int) and b > 0 and (a.bit_length() - 1) * b >= INT_BITS:
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


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {shorten(value)}"


def _why(op: str, a: Any, b: Any, exc: Exception) -> str:
    """What went wrong with ``a op b``, in words."""
    negative = op == "**" and isinstance(a, int | float) and a < 0
    shown = f"({shorten(a)}) {op} {shorten(b)}" if negative else f"{shorten(a)} {op} {shorten(b)}"
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
VarAccess: TypeAlias = Callable[[str], Fn]


def compile_node(node: Node, var: VarAccess) -> Fn:
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


def _compile_unary(node: Unary, var: VarAccess) -> Fn:
    operand = compile_node(node.operand, var)
    if node.op == "not":
        return lambda p: not operand(p)
    fn = operator.neg if node.op == "-" else operator.pos
    op, span = node.op, (node.span[0], node.span[0] + 1)

    def unary(p: Any) -> Any:
        value = operand(p)
        try:
            return fn(value)
        except TypeError:
            raise Failure(f"bad operand for unary '{op}': {_describe(value)}", span) from None

    return unary


def _compile_bool(node: BoolOp, var: VarAccess) -> Fn:
    fns = [compile_node(operand, var) for operand in node.operands]
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


def _compile_arith(node: Arith, var: VarAccess) -> Fn:
    first = compile_node(node.first, var)
    if len(node.links) <= _NESTED_RUN:
        get = first
        for op, span, right in node.links:
            get = _binary(op, span, get, right, var)
        return get
    links = [(op, span, _BINARY[op], compile_node(right, var)) for op, span, right in node.links]

    def arith(p: Any) -> Any:
        a = first(p)
        for op, span, fn, operand in links:
            b = operand(p)
            try:
                result = fn(a, b)
            except _ERRORS as exc:
                raise Failure(_why(op, a, b, exc), span) from None
            cls = result.__class__
            if (cls is int and result.bit_length() >= INT_BITS) or (
                cls is str and len(result) > MAX_STR_LEN
            ):
                _refuse(op, a, b, result, span)
            a = result
        return a

    return arith


def _binary(op: str, span: Span, get_a: Fn, right: Node, var: VarAccess) -> Fn:
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
                    raise Failure(_why(op, a, b, exc), span) from None

            return mod_const

        def binary_const(p: Any) -> Any:
            a = get_a(p)
            try:
                return fn(a, b)
            except _ERRORS as exc:
                raise Failure(_why(op, a, b, exc), span) from None

        def growing_const(p: Any) -> Any:
            a = get_a(p)
            try:
                result = fn(a, b)
            except _ERRORS as exc:
                raise Failure(_why(op, a, b, exc), span) from None
            cls = result.__class__
            if (cls is int and result.bit_length() >= INT_BITS) or (
                cls is str and len(result) > MAX_STR_LEN
            ):
                _refuse(op, a, b, result, span)
            return result

        return growing_const if op in _GROWS else binary_const
    get_b = compile_node(right, var)

    def binary(p: Any) -> Any:
        a = get_a(p)
        b = get_b(p)
        try:
            return fn(a, b)
        except _ERRORS as exc:
            raise Failure(_why(op, a, b, exc), span) from None

    def growing(p: Any) -> Any:
        a = get_a(p)
        b = get_b(p)
        try:
            result = fn(a, b)
        except _ERRORS as exc:
            raise Failure(_why(op, a, b, exc), span) from None
        cls = result.__class__
        if (cls is int and result.bit_length() >= INT_BITS) or (
            cls is str and len(result) > MAX_STR_LEN
        ):
            _refuse(op, a, b, result, span)
        return result

    return growing if op in _GROWS else binary


def _compile_compare(node: Compare, var: VarAccess) -> Fn:
    if len(node.links) == 1:
        ((op, span, operand),) = node.links
        return _binary(op, span, compile_node(node.first, var), operand, var)
    first = compile_node(node.first, var)
    links = [(op, span, _BINARY[op], compile_node(right, var)) for op, span, right in node.links]

    def chain(p: Any) -> Any:
        a = first(p)
        for op, span, fn, operand in links:
            b = operand(p)
            try:
                if not fn(a, b):
                    return False
            except _ERRORS as exc:
                raise Failure(_why(op, a, b, exc), span) from None
            a = b
        return True

    return chain


def _compile_member(node: Member, var: VarAccess) -> Fn:
    operand = compile_node(node.operand, var)
    negated = node.negated
    if all(isinstance(item, Const) for item in node.items):
        # Literal lists become a frozenset: same answers as a tuple for int/float/str.
        values = frozenset(item.value for item in node.items if isinstance(item, Const))
        if negated:
            return lambda p: operand(p) not in values
        return lambda p: operand(p) in values
    items = [compile_node(item, var) for item in node.items]

    def member(p: Any) -> bool:
        value = operand(p)
        found = any(value == item(p) for item in items)
        return found != negated

    return member
