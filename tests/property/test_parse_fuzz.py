"""Law: no input, however malformed, raises anything but RangeExprError (or succeeds).

Checked over arbitrary text and over near-valid mutations of valid expressions (a
character inserted, deleted or replaced), the inputs most likely to hit an untranslated
lark error or a crash in evaluation. A number written with a non-ASCII digit is never
read as a number.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from rangeexpr import RangeExprError, Sweep, axis

VALID = [
    json.loads(p.read_text(encoding="utf-8"))["expr"]
    for p in sorted((Path(__file__).parent.parent / "data" / "valid").glob("*.json"))
]
# Besides ASCII: digits int() would read (Arabic-Indic, fullwidth, superscript), and an
# integer literal longer than int() reads.
ALPHABET = st.sampled_from(
    [
        *list("=:,.-+_eE0123456789 \"'\\abcXYZ\n\t"),
        "inf",
        "nan",
        "case",
        *"\u0663\uff13\u00b2\u0969",
        "9" * 4301,
    ]
)


def evaluate(text: str) -> None:
    try:
        ax = axis(text)
    except RangeExprError as exc:
        assert exc.message
        str(exc)  # rendering the marker never fails
        return
    if ax.kind != "case":  # a number is ASCII: text with a digit like '٣' is no number
        assert not any(c.isnumeric() and not c.isascii() for c in text), text
    if ax.size:
        for value in (ax[0], ax[-1]):
            assert not isinstance(value, float) or math.isfinite(value)
        ax.text(0)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text(text: str) -> None:
    evaluate(text)


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(VALID), st.data())
def test_near_valid_mutations(base: str, data: st.DataObject) -> None:
    text = base
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        op = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = data.draw(ALPHABET)
        if op == "insert":
            text = text[:at] + piece + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at] + piece + text[at + 1 :]
    evaluate(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(VALID), max_size=3))
def test_sweeps_of_valid_expressions_only_fail_on_duplicates(exprs: list[str]) -> None:
    try:
        Sweep(exprs)
    except RangeExprError as exc:
        assert "duplicate name" in exc.message
