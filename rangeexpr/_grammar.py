"""Find the Lark grammars and build each parser once.

The grammars live in ``grammar/`` at the top of the checkout and are copied into the wheel
as ``rangeexpr/grammar/`` (see pyproject.toml), so both places are looked at, the
installed one first. Parsers are LALR in strict mode (a grammar conflict fails at once),
with positions on every node, and cached by lark between processes for a fast start.
"""

from __future__ import annotations

import functools
from pathlib import Path

from lark import Lark

_HERE = Path(__file__).resolve().parent
_PLACES = (_HERE / "grammar", _HERE.parent / "grammar")


def grammar_path(filename: str) -> Path:
    """The grammar file, from the installed package or else from the checkout."""
    for place in _PLACES:
        path = place / filename
        if path.is_file():
            return path
    raise FileNotFoundError(f"grammar {filename!r} not found in {[str(p) for p in _PLACES]}")


@functools.cache
def lark_parser(filename: str) -> Lark:
    """The LALR parser for one grammar file, built once per process."""
    text = grammar_path(filename).read_text(encoding="utf-8")
    return Lark(
        text,
        parser="lalr",
        strict=True,
        propagate_positions=True,
        maybe_placeholders=False,
        cache=True,
    )
