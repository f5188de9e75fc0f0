"""The text a template writes for a typed value (SPEC section 4), and ints of any size as text."""

from __future__ import annotations

import re

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
