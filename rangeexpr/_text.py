"""Text shared by the parsers, sweeps and messages: values as a template writes them (SPEC
section 4), ints of any size, quoted literals, did-you-mean hints, shortened values."""

from __future__ import annotations

import difflib
import math
import re
import reprlib
from collections.abc import Sequence

from ._ast import Value

_INT = re.compile(r"[+-]?[0-9](?:_?[0-9])*")


def format_value(value: Value) -> str:
    """Ints in decimal, floats as the shortest round-trip repr without a trailing ``.0``."""
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return str(value)


def int_text(n: int) -> str:
    """An int of any size in decimal, such as a sweep's size or a point's index.

    ``str()`` refuses ints over ``sys.get_int_max_str_digits()`` digits (4300 by default),
    a guard against quadratic parsing of untrusted text. A size is computed, not parsed, so
    it is written whole: ``decimal`` converts without that limit, and without changing the
    process-wide setting that other threads rely on.
    """
    try:
        return str(n)
    except ValueError:
        from decimal import Decimal

        return str(Decimal(n))


def ascii_int(text: str) -> int:
    """An integer option such as ``--slice 3:`` (spaces around it ignored); else ValueError.

    ``int()`` also reads non-ASCII digits (Arabic-Indic, fullwidth); numbers on our command
    line, as in range expressions, are ASCII.
    """
    text = text.strip()
    if not _INT.fullmatch(text):
        raise ValueError(f"not an integer: {text!r}")
    return int(text)


# Escapes of a quoted value, the same in range expressions (``case:"a\tb"``) and filters.
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}


class EscapeError(ValueError):
    """An unknown escape in a quoted literal: ``escape`` as written, ``span`` in the source."""

    def __init__(self, escape: str, span: tuple[int, int]) -> None:
        super().__init__(f"unknown escape {escape!r}")
        self.escape = escape
        self.span = span


def unquote(literal: str, start: int = 0) -> str:
    """The string a quoted literal (quotes included) stands for, its escapes replaced.

    ``start`` is the literal's offset in its source, so that an ``EscapeError`` (each
    parser words its own message) points at the escape there.
    """
    body = literal[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            nxt = body[i + 1]  # the grammars never end a quoted literal on a lone backslash
            if nxt not in _ESCAPES:
                at = start + 1 + i
                raise EscapeError(body[i : i + 2], (at, at + 2))
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def did_you_mean(name: str, names: Sequence[str]) -> str:
    """``"; did you mean 'X'?"`` for the known name closest to ``name``, else ``""``.

    A name differing only in case wins (``x`` for ``X``, which difflib finds too far).
    """
    same_case = [n for n in names if n.lower() == name.lower()]
    close = same_case or difflib.get_close_matches(name, names, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


_SHOW = 40  # values longer than this are shortened in messages


def shorten(value: object) -> str:
    """``repr(value)``, shortened: a message never quotes a huge string or number."""
    if isinstance(value, str):
        if len(value) <= _SHOW:
            return repr(value)
        head = repr(value[: _SHOW - 10])
        return f"{head[:-1]}...{head[-1]} ({len(value)} characters)"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4 * _SHOW:
        try:
            text = str(value)
        except ValueError:  # past str()'s digit limit
            return f"an int of about {int(value.bit_length() * math.log10(2)) + 1} digits"
        digits = len(text.lstrip("-"))
        if len(text) > _SHOW:
            return f"{text[: _SHOW - 20]}...{text[-5:]} ({digits} digits)"
        return text
    return reprlib.repr(value)
