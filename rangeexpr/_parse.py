"""Parse range expressions: lark's parse becomes a RangeExpr, lark's errors become ours.

Lark's exceptions are translated here and nowhere else. The parser state at the error is
identified by the set of terminals it expected, which says where in ``NAME=KIND:ARGS``
the text went wrong, and so which message in the user's words applies.
"""

from __future__ import annotations

import functools
import math
import re
import sys
import unicodedata
from typing import Any, cast

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from ._ast import Arg, RangeExpr, Span
from ._errors import ParseError
from ._grammar import inline_parser
from ._text import EscapeError, unquote

__all__ = ["KINDS", "RESERVED", "RUNTIME_NAMES", "parse", "parse_number"]

KINDS = ("case", "linspace", "range", "arange", "logspace", "geomspace")
_KIND_LIST = ", ".join(KINDS)

# Arity of each numeric kind, and how to write it, for "takes ..." messages.
_ARITY: dict[str, tuple[int, int, str]] = {
    "linspace": (3, 3, "linspace:START,STOP,NUM"),
    "range": (1, 3, "range:STOP, range:START,STOP or range:START,STOP,STEP"),
    "arange": (1, 3, "arange:STOP, arange:START,STOP or arange:START,STOP,STEP"),
    "logspace": (3, 4, "logspace:START,STOP,NUM or logspace:START,STOP,NUM,BASE"),
    "geomspace": (3, 3, "geomspace:START,STOP,NUM"),
}

# Numbers are ASCII: [0-9], not \d, which also matches Arabic-Indic or fullwidth digits
# (and int() reads them).
_NUMBER = re.compile(
    r"[+-]?(?:[0-9](?:_?[0-9])*(?:\.(?:[0-9](?:_?[0-9])*)?)?|\.[0-9](?:_?[0-9])*)"
    r"(?:[eE][+-]?[0-9](?:_?[0-9])*)?"
)
_NONFINITE = re.compile(r"[+-]?(?:inf|infinity|nan)", re.IGNORECASE)
_ESCAPED = re.compile(r"\\(.)")
_WORD_AT = re.compile(r"[^\s=:,]+")
_CASE_PREFIX = re.compile(r"\s*[^=]*=\s*case\s*:")
# The variables rangeexpr sets for each job, usable in templates: a range must not shadow them.
RESERVED = "RANGEEXPR_"
RUNTIME_NAMES = ("RANGEEXPR_INDEX", "RANGEEXPR_COUNT", "RANGEEXPR_SLOT", "RANGEEXPR_GPUS")


def parse_number(text: str) -> int | float | None:
    """The int or float a literal denotes, or None if it is not a number literal.

    Raises ValueError, with a message for the user, for an integer literal longer than
    ``int()`` converts (``sys.get_int_max_str_digits()``, 4300 digits by default).
    """
    if not _NUMBER.fullmatch(text):
        return None
    return _number_value(text)


def _number_value(text: str) -> int | float:
    """``parse_number`` of a text known to match ``_NUMBER`` (a NUMBER token: the same regex)."""
    if "." in text or "e" in text or "E" in text:
        return float(text)
    limit = sys.get_int_max_str_digits()
    if limit and len(text) > limit:
        digits = sum(c.isdigit() for c in text)  # ASCII only, by the regex
        if digits > limit:
            raise ValueError(f"integer literal has {digits} digits; at most {limit}")
    return int(text)


def parse(text: str, /) -> RangeExpr:
    """Parse ``NAME=KIND:ARGS``; raise ParseError pointing at the problem."""
    if not isinstance(text, str):
        raise TypeError(f"parse() takes a str, not {type(text).__name__}")
    try:
        name_tok, kind_tok, items = cast(_Shape, _parser().parse(text))
    except UnexpectedInput as exc:
        raise _translate(text, exc) from None
    return _build(text, name_tok, kind_tok, items)


# ---------------------------------------------------------------------------
# Tokens -> AST
# ---------------------------------------------------------------------------

# What the parse returns: the NAME token, the KIND token (None for case) and the arguments,
# a NUMBER or WORD token each, or for case a QUOTED token or the BARE and ESCAPE tokens of
# one bare value each.
_CaseItem = Token | list[Token]
_Shape = tuple[Token, Token | None, list[Any]]


class _Collect(Transformer[Token, Any]):
    """The rules' callbacks, run by lark as it reduces each rule: they only gather tokens.

    Nothing here may raise: lark reduces ``number`` before it reads the rest of the text, and
    a syntax error further on must win over a bad value before it, as it does when the whole
    text is parsed before ``_build`` checks anything.
    """

    def start(self, children: list[Any]) -> _Shape:
        name_tok, (kind_tok, items) = children
        return name_tok, kind_tok, items

    def numeric(self, children: list[Any]) -> tuple[Token, list[Token]]:
        kind_tok, args = children
        return kind_tok, args

    def case(self, children: list[Any]) -> tuple[None, list[_CaseItem]]:
        return None, children[0]

    def args(self, children: list[Token]) -> list[Token]:
        return children

    def case_values(self, children: list[_CaseItem]) -> list[_CaseItem]:
        return children

    def bare(self, children: list[Token]) -> list[Token]:
        return children

    def number(self, children: list[Token]) -> Token:
        return children[0]

    word = quoted = number


@functools.cache
def _parser() -> Lark:
    return inline_parser("rangeexpr.lark", _Collect())


def _span(tok: Token) -> Span:
    assert tok.start_pos is not None and tok.end_pos is not None
    return (tok.start_pos, tok.end_pos)


def _build(source: str, name_tok: Token, kind_tok: Token | None, items: list[Any]) -> RangeExpr:
    if kind_tok is None:
        # the "case" keyword is not passed on by the parser; find it after the '='
        at = source.index("case", source.index("=", name_tok.end_pos or 0))
        kind, kind_span = "case", (at, at + 4)
        args = tuple([_case_value(source, v) for v in items])
    else:
        kind, kind_span = str(kind_tok), _span(kind_tok)
        args = tuple([_number_arg(source, a) for a in items])
        _check_numeric_args(source, kind, kind_span, args)
    if name_tok.startswith(RESERVED):
        raise ParseError(
            f"names starting with {RESERVED} are reserved for the variables rangeexpr sets "
            f"for each job ({', '.join(RUNTIME_NAMES)}): rename the range",
            source,
            _span(name_tok),
        )
    return RangeExpr(
        name=str(name_tok),
        kind=kind,
        args=args,
        source=source,
        span=(0, len(source)),
        name_span=_span(name_tok),
        kind_span=kind_span,
    )


def _number_arg(source: str, tok: Token) -> Arg:
    span, text = _span(tok), str(tok)
    if tok.type == "WORD":
        if _NONFINITE.fullmatch(text):
            raise ParseError(
                f"{text!r} is not allowed: range arguments must be finite numbers", source, span
            )
        raise ParseError(f"expected a number, got {text!r}", source, span)
    try:
        value = _number_value(text)
    except ValueError as exc:
        raise ParseError(str(exc), source, span) from None
    if isinstance(value, float) and math.isinf(value):
        raise ParseError(f"number {text} is too large for a float", source, span)
    return Arg(value, text, span)


def _check_numeric_args(source: str, kind: str, kind_span: Span, args: tuple[Arg, ...]) -> None:
    low, high, forms = _ARITY[kind]
    if not low <= len(args) <= high:
        count = f"{low}" if low == high else f"{low} to {high}"
        span = (args[high].span[0], args[-1].span[1]) if len(args) > high else kind_span
        raise ParseError(f"{kind} takes {count} arguments ({forms}), got {len(args)}", source, span)
    if kind == "range":
        for arg in args:
            if isinstance(arg.value, float):
                raise ParseError(
                    f"range takes integers only, got {arg.text}; use arange: or linspace: "
                    "for floats",
                    source,
                    arg.span,
                )
    if kind in ("linspace", "logspace", "geomspace"):
        num = args[2]
        if not isinstance(num.value, int):
            raise ParseError(f"{kind} NUM must be an integer, got {num.text}", source, num.span)
        if num.value < 0:
            raise ParseError(f"{kind} NUM must not be negative, got {num.text}", source, num.span)


def _case_value(source: str, item: _CaseItem) -> Arg:
    if isinstance(item, Token):  # quoted
        text = _unquote(source, item)
        return Arg(text, text, _span(item), quoted=True)
    span = (_span(item[0])[0], _span(item[-1])[1])
    # Bare: the raw slice keeps inner whitespace between pieces; unescape \x -> x.
    raw = source[span[0] : span[1]]
    text = _ESCAPED.sub(r"\1", raw) if "\\" in raw else raw
    try:
        number = parse_number(text)
    except ValueError as exc:
        raise ParseError(f"{exc}; quote it to keep it as a string", source, span) from None
    if isinstance(number, float) and math.isinf(number):
        number = None  # 1e999 is kept as the string it was written as
    return Arg(text if number is None else number, text, span)


def _unquote(source: str, tok: Token) -> str:
    try:
        return unquote(str(tok), _span(tok)[0])
    except EscapeError as exc:
        raise ParseError(
            f"unknown escape '{exc.escape}' in a quoted value; use \\\\ \\\" \\' \\n or \\t",
            source,
            exc.span,
        ) from None


# ---------------------------------------------------------------------------
# Lark's errors -> ParseError
# ---------------------------------------------------------------------------


def _translate(source: str, exc: UnexpectedInput) -> ParseError:
    """One message per parser state, chosen by what the parser expected there."""
    if isinstance(exc, UnexpectedToken):
        expected = set(exc.expected)
        tok = exc.token
        at_end = tok.type == "$END"
        pos = len(source) if at_end else (tok.start_pos or 0)
    else:
        assert isinstance(exc, UnexpectedCharacters)
        expected = set(exc.allowed or ())
        at_end = False
        pos = exc.pos_in_stream

    def word_span(at: int) -> Span:
        m = _WORD_AT.match(source, at)
        return (at, m.end()) if m else (at, at + 1)

    here: Span = (pos, pos + 1)
    char = source[pos] if pos < len(source) else ""
    in_case = _CASE_PREFIX.match(source) is not None
    if "NUMBER" in expected or (expected <= {"COMMA", "$END"} and not in_case):
        numeral = _non_ascii_numeral(source, word_span(pos))
        if numeral is not None:
            return numeral

    if expected == {"NAME"}:
        if at_end:
            return ParseError("empty expression: expected NAME=KIND:ARGS", source, here)
        return _bad_name(source)
    if expected == {"EQUAL"}:
        if "=" in source[pos:]:
            return _bad_name(source)
        return ParseError(
            "expected '=' after the name: write NAME=KIND:ARGS, e.g. X=range:10", source, here
        )
    if expected == {"KIND", "CASE"}:
        if at_end:
            return ParseError(f"expected a kind after '=': one of {_KIND_LIST}", source, here)
        span = word_span(pos)
        word = source[span[0] : span[1]].split(":", maxsplit=1)[0]
        span = (span[0], span[0] + max(1, len(word)))
        return ParseError(f"unknown kind {word!r}: expected one of {_KIND_LIST}", source, span)
    if expected == {"COLON"}:
        return ParseError("expected ':' after the kind, e.g. X=range:10", source, here)
    if expected == {"NUMBER", "WORD"}:
        if at_end and source.rstrip().endswith(":"):
            return ParseError("expected arguments after ':'", source, here)
        return ParseError("missing argument: expected a number", source, here)
    if expected <= {"COMMA", "$END"}:
        if in_case:
            return ParseError("expected ',' after the quoted value", source, here)
        return ParseError("expected ',' between arguments", source, here)
    if expected == {"BARE", "QUOTED", "ESCAPE"}:  # at the start of a case value
        if char and char in "\"'":
            return ParseError(f"unclosed quote: add the closing {char}", source, (pos, len(source)))
        if char == "\\":
            return _bad_escape(source, pos)
        if at_end and source.rstrip().endswith(":"):
            return ParseError("case needs at least one value", source, here)
        return ParseError('empty case value; write "" for an empty string', source, here)
    if expected <= {"BARE", "ESCAPE", "COMMA", "$END"}:  # inside a bare case value
        if char and char in "\"'":
            return ParseError(
                "a quote inside a bare value: quote the whole value, or escape the quote "
                f"as \\{char}",
                source,
                here,
            )
        if char == "\\":
            return _bad_escape(source, pos)
    return ParseError(f"unexpected character {source[pos : pos + 1]!r}", source, here)


def _non_ascii_numeral(source: str, span: Span) -> ParseError | None:
    """An argument written with a non-ASCII digit (Arabic-Indic, fullwidth): numbers are ASCII."""
    for at in range(span[0], min(span[1], len(source))):
        c = source[at]
        if not c.isascii() and c.isnumeric():
            return ParseError(
                f"{c!r} ({unicodedata.name(c, 'a numeral')}) is not an ASCII digit: "
                "write numbers with 0-9",
                source,
                (at, at + 1),
            )
    return None


def _bad_escape(source: str, pos: int) -> ParseError:
    return ParseError(
        f"invalid escape '{source[pos : pos + 2]}' in a bare value; only \\, \\\\ \\\" and \\' "
        "are escapes (quote the value to write \\n or \\t)",
        source,
        (pos, pos + 2),
    )


def _bad_name(source: str) -> ParseError:
    end = source.find("=")
    raw = source[:end] if end >= 0 else source
    stripped = raw.strip()
    if not stripped:
        return ParseError("missing name before '='", source, (0, 1))
    start = raw.find(stripped) if stripped else 0
    return ParseError(
        f"invalid name {stripped!r}: a name starts with a letter or '_' and has only "
        "letters, digits and '_'",
        source,
        (start, start + max(1, len(stripped))),
    )
