"""Hostile and careless input to the library (issue 11): a clean error or the exact answer.

- integers past ``int()``'s 4300-digit limit: a literal is refused with a marker, while a
  size or an index (computed, not parsed) is written whole;
- numbers are ASCII: a digit like '\u0663' or '\uff13' is pointed at, or stays a case
  string;
- an inf or nan element is refused at construction, naming the index, with no warning;
- misuse of the API is a TypeError or RangeExprError, never an AttributeError.
"""

from __future__ import annotations

import sys
import unicodedata
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from rangeexpr import (
    EvaluationError,
    ParseError,
    RangeExprError,
    Sweep,
    axis,
    parse,
)
from rangeexpr._text import ascii_int, int_text

LIMIT = sys.get_int_max_str_digits()
BIG = int("9" * LIMIT)  # the largest literal int() reads


@pytest.fixture
def unlimited_str() -> Iterator[None]:
    """str() of any int, to compute the expected text in a test (restored after)."""
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(LIMIT)


# ---------------------------------------------------------------------------
# Integers past the int/str digit limit
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda n: f"X=range:{n}",
        lambda n: f"X=range:0,{n},7",
        lambda n: f"X=arange:-{n}",
        lambda n: f"X=case:a,{n}",
        lambda n: f"X=linspace:0,1,{n}",
    ],
)
def test_a_literal_past_the_digit_limit_is_a_parse_error(make: Callable[[str], str]) -> None:
    text = make("1" * (LIMIT + 1))
    with pytest.raises(ParseError) as info:
        axis(text)
    assert info.value.message.startswith(f"integer literal has {LIMIT + 1} digits; at most {LIMIT}")
    assert info.value.span is not None
    start, end = info.value.span
    assert text[start:end].lstrip("-") == "1" * (LIMIT + 1)
    assert len(str(info.value)) < 600  # the marker shows a window, not 4301 digits


def test_a_literal_at_the_digit_limit_is_a_number() -> None:
    ax = axis(f"X=range:{'9' * LIMIT}")
    assert ax[-1] == BIG - 1
    assert axis(f"X=case:{'1_' * (LIMIT - 1)}1")[0] == int("1" * LIMIT)


def test_a_long_number_in_a_case_list_can_be_quoted_to_stay_a_string() -> None:
    digits = "7" * (LIMIT + 1)
    with pytest.raises(ParseError, match="quote it to keep it as a string"):
        axis(f"X=case:{digits}")
    assert axis(f'X=case:"{digits}"')[0] == digits


def test_a_size_and_an_index_past_the_limit_are_exact(unlimited_str: None) -> None:
    sweep = Sweep([f"X=range:-{BIG},{BIG}", "Y=case:a,b"])
    size = 2 * (2 * BIG)
    assert sweep.size == size
    sys.set_int_max_str_digits(LIMIT)  # as in a user's process, from here on
    assert int_text(size) == "3" + "9" * (LIMIT - 1) + "6"
    assert repr(sweep).endswith(f"size={int_text(size)}>")
    assert repr(sweep.axis("X")).endswith(f"size={int_text(2 * BIG)}>")
    last = sweep[-1]
    assert last.index == size - 1
    assert repr(last).startswith(f"Point({int_text(size - 1)}: X={BIG - 1!r}")
    assert repr(sweep[size - 2 :]).startswith(
        f"<Sweep {list(sweep.exprs)!r} [{int_text(size - 2)}:"
    )
    with pytest.raises(IndexError, match=f"sweep index {int_text(size)} out of range"):
        sweep[size]
    with pytest.raises(IndexError, match="axis index -"):
        sweep.axis("X")[-(2 * BIG) - 1]


def test_int_text_is_str_of_any_int(unlimited_str: None) -> None:
    for n in (0, -1, 10**LIMIT, -(10**LIMIT) - 123, 7**20000):
        expected = str(n)
        sys.set_int_max_str_digits(LIMIT)
        assert int_text(n) == expected
        sys.set_int_max_str_digits(0)


# ---------------------------------------------------------------------------
# Numbers are ASCII
# ---------------------------------------------------------------------------

NON_ASCII_NUMERALS = [chr(c) for c in range(0x80, sys.maxunicode + 1) if chr(c).isnumeric()]


def test_no_non_ascii_numeral_is_read_as_a_number() -> None:
    """Every numeral outside ASCII (about 1900: Arabic-Indic, fullwidth, '²', '½', ...)."""
    assert len(NON_ASCII_NUMERALS) > 1000
    for c in NON_ASCII_NUMERALS:
        for text in (f"X=range:{c}", f"X=range:1{c}", f"X=linspace:0,{c},3", f"X=arange:-{c}"):
            with pytest.raises(ParseError) as info:
                axis(text)
            assert info.value.span == (text.index(c), text.index(c) + 1), (text, info.value)
            assert info.value.message == (
                f"{c!r} ({unicodedata.name(c, 'a numeral')}) is not an ASCII digit: "
                "write numbers with 0-9"
            )
        assert axis(f"X=case:{c},1{c},{c}.5")[:] and list(axis(f"X=case:{c},1{c},{c}.5")) == [
            c,
            f"1{c}",
            f"{c}.5",
        ]


@pytest.mark.parametrize(
    "text", ["\u0663", "\uff13", " \uff13 ", "1\u0663", "1_", "_1", "1 2", "", "+", "0x10"]
)
def test_ascii_int_refuses_what_int_would_read_or_should_not(text: str) -> None:
    with pytest.raises(ValueError):
        ascii_int(text)


@pytest.mark.parametrize(("text", "value"), [("3", 3), (" -12 ", -12), ("+1_000", 1000)])
def test_ascii_int_reads_ascii_integers(text: str, value: int) -> None:
    assert ascii_int(text) == value


# ---------------------------------------------------------------------------
# Non-finite values and numeric overflow
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("X=logspace:0,400,3", "logspace gives inf at index 2: 10 ** 400 is too large"),
        ("X=logspace:0,400,1001", "logspace gives inf at index 771: 10 ** 308.4"),
        ("X=logspace:0,2000,11,2", "logspace gives inf at index 6: 2 ** 1200 is too large"),
        ("X=logspace:1e308,1,2,99999999999999999999", "logspace gives inf at index 0:"),
        ("X=logspace:0,1,2,1" + "0" * 400, "logspace BASE is too large for a float"),
        ("X=linspace:-1" + "0" * 400 + ",0,2", "linspace START is too large for a float"),
        ("X=geomspace:1" + "0" * 400 + ",1,2", "geomspace START is too large for a float"),
        ("X=arange:0.5,1" + "0" * 400, "arange STOP is too large for a float"),
        ("X=arange:1" + "0" * 400 + ",0,-1", "arange has too many values"),
    ],
)
def test_overflow_is_an_evaluation_error_without_a_warning(text: str, message: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(EvaluationError) as info:
            axis(text)
    assert info.value.message.startswith(message)
    assert info.value.span is not None


def test_no_overflow_warning_from_values_that_numpy_replaces() -> None:
    """geomspace's ends are START and STOP: 10 ** log10(STOP) may round up to inf unseen."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ax = axis("X=geomspace:1.7976931348622103e308,1.7976931348623157e308,2")
        assert list(ax) == [1.7976931348622103e308, 1.7976931348623157e308]
        assert ax.array(np.arange(2))[0] == 1.7976931348622103e308
        assert axis("X=geomspace:1.7976931348623157e308,1,1")[0] == 1.7976931348623157e308


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("X=range:0,1,100000000000000000000", [0]),  # a step past int64, one element
        ("X=arange:1e308,1.7976931348623157e308,1e308", [1e308]),  # START + STEP is inf
    ],
)
def test_batches_of_extreme_but_valid_axes(text: str, values: list[object]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sweep = Sweep([text, "Y=case:a,b"])
        arrays = sweep.arrays(0, sweep.size)
    assert arrays["X"].tolist() == [v for v in values for _ in "ab"]
    assert [p["X"] for p in sweep] == arrays["X"].tolist()


# ---------------------------------------------------------------------------
# Library misuse: TypeError (or RangeExprError), never AttributeError
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Sweep([1]), "expression 0 is int"),
        (lambda: Sweep(["X=range:3", None]), "expression 1 is NoneType"),
        (lambda: Sweep([["X=range:3"]]), "expression 0 is list"),
        (lambda: Sweep([b"X=range:3"]), "expression 0 is bytes"),
        (lambda: Sweep("X=range:3"), r"not a str: write Sweep\(\['X=range:3'\]\)"),
        (lambda: Sweep(b"X=range:3"), "got bytes"),
        (lambda: Sweep(None), "got NoneType"),
        (lambda: Sweep(3), "got int"),
        (lambda: Sweep({"X=range:3": 1}), "got dict"),
        (lambda: Sweep(["X=range:3", "Y=range:3"], link="XY"), "not 'XY'"),
        (lambda: Sweep(["X=range:3", "Y=range:3"], link=["XY"]), "not 'XY'"),
        (lambda: Sweep(["X=range:3", "Y=range:3"], link=[(1, 2)]), "not int: 1"),
        (lambda: Sweep(["X=range:3", "Y=range:3"], link=None), "not None"),
        (lambda: axis(123), "not int"),
        (lambda: axis(None), "not NoneType"),
        (lambda: axis(b"X=range:3"), "not bytes"),
        (lambda: axis(["X=range:3"]), "not list"),
        (lambda: parse(b"X=range:3"), "not bytes"),
        (lambda: axis("X=range:3")["0"], "integer"),
        (lambda: axis("X=range:3").text(None), "integer"),
    ],
)
def test_misuse_is_a_type_error_that_says_what_was_wrong(
    call: Callable[[], Any], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        call()


def test_a_linked_sweep_still_works_with_tuples_and_lists() -> None:
    for link in ([("X", "Y")], [["X", "Y"]], (("X", "Y"),)):
        sweep = Sweep(["X=range:3", "Y=case:a,b,c"], link=link)
        assert [tuple(p.values()) for p in sweep] == [(0, "a"), (1, "b"), (2, "c")]


def test_a_range_expr_error_is_still_a_value_error() -> None:
    with pytest.raises(ValueError):
        Sweep(["X=range:٣"])
    assert issubclass(RangeExprError, ValueError)
