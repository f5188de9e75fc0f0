"""The text a template writes for a typed value (SPEC section 4)."""

from __future__ import annotations

from ._ast import Value


def format_value(value: Value) -> str:
    """Ints in decimal, floats as the shortest round-trip repr without a trailing ``.0``."""
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return str(value)
