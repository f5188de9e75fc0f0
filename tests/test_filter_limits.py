"""Hostile filters: long runs work, deep nesting and huge values are clean errors.

A run of one operator (``or``, ``and``, ``+``, comparisons, ``in`` lists) of any length is
a legitimate filter and must build, compile and evaluate without recursing per operand;
nesting deeper than ``MAX_DEPTH`` is a ``ParseError`` with a marker; no operation builds
an integer over ``MAX_INT_DIGITS`` digits or a string over ``MAX_STR_LEN`` characters, and
messages quote values shortened.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rangeexpr import Sweep
from rangeexpr._errors import EvaluationError, ParseError
from rangeexpr._filter import MAX_DEPTH, MAX_INT_DIGITS, MAX_STR_LEN, Filter

_REPO = Path(__file__).resolve().parents[1]
_LONG = 2000  # operands in a flat run: past the default recursion limit


# -- long flat runs work ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "keeps"),
    [
        (" or ".join(f"X == {i}" for i in range(0, 2 * _LONG, 2)), lambda x: x % 2 == 0),
        (" and ".join(f"X != {i}" for i in range(1, 2 * _LONG, 2)), lambda x: x % 2 == 0),
        ("X" + " + 1" * _LONG + f" > {_LONG + 4}", lambda x: x > 4),
        ("X" + " - 1 + 1" * _LONG + " < 3", lambda x: x < 3),
        ("X" + " * 1" * _LONG + " % 2 == 0", lambda x: x % 2 == 0),
        ("X" + " <= X" * _LONG + " < 5", lambda x: x < 5),
        (f"X in ({', '.join(str(i) for i in range(0, 2 * _LONG, 2))})", lambda x: x % 2 == 0),
        (f"X in ({', '.join(f'Y + {i}' for i in range(0, 2 * _LONG, 2))})", lambda x: x % 2 == 0),
        ("(" * 500 + "X" + ")" * 500 + " < 3", lambda x: x < 3),  # parentheses alone
        ("(" * 500 + "X" + " + 0)" * 500 + " < 3", lambda x: x < 3),  # (((X + 0) + 0) ...)
        ("(" * 500 + "X < 5" + ") and X > 1" * 500, lambda x: 1 < x < 5),
    ],
    ids=[
        "or",
        "and",
        "plus",
        "minus-plus",
        "times",
        "compare",
        "in",
        "in-exprs",
        "parens",
        "left-nested-plus",
        "left-nested-and",
    ],
)
def test_a_long_run_of_one_operator_works(expr: str, keeps: object) -> None:
    assert callable(keeps)
    keep = Filter(expr, names=("X", "Y"))
    for x in range(12):
        assert keep({"X": x, "Y": 0}) is keeps(x), x
    sweep = Sweep(["X=range:12", "Y=range:1"]).where(expr)
    assert [p["X"] for p in sweep] == [x for x in range(12) if keeps(x)]


def test_six_hundred_or_terms_agree_with_python_also_after_more_wheres() -> None:
    expr = " or ".join(f"X == {i * 7}" for i in range(600))
    keep = Filter(expr)
    for x in range(100):
        assert keep({"X": x}) is bool(eval(expr, {}, {"X": x}))
    # Each .where() wraps the filter so far in parentheses: still one flat run.
    view = Sweep(["X=range:400"]).where(expr)
    for i in range(MAX_DEPTH + 5):
        view = view.where(f"X != {14 * i}")
    assert [p["X"] for p in view] == list(range(7, 400, 14))


# -- nesting: up to MAX_DEPTH works, deeper is a ParseError with a marker ---------------


def _nested(kind: str, depth: int) -> str:
    return {
        "not": "not " * depth + "X > 0",
        "minus": "-" * depth + "X < 0",
        "power": "1 ** " * depth + "X == 1",
        "right-parens": "X" + " + (X" * depth + ")" * depth + " > 0",
        "in": "X in (" * depth + "1" + ",)" * depth,
    }[kind]


_KINDS = ["not", "minus", "power", "right-parens", "in"]


@pytest.mark.parametrize("kind", _KINDS)
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 5000])
def test_nesting_past_the_limit_is_a_parse_error_with_a_marker(kind: str, depth: int) -> None:
    legit = _nested(kind, MAX_DEPTH - 2)  # just inside the limit: evaluates as in Python
    keep = Filter(legit, names=("X",))
    for x in (1, 2):
        assert keep({"X": x}) is bool(eval(legit, {}, {"X": x}))
    expr = _nested(kind, depth)
    with pytest.raises(ParseError) as caught:
        Filter(expr, names=("X",))
    assert f"more than {MAX_DEPTH} levels deep" in caught.value.message
    assert caught.value.span is not None and caught.value.source == expr
    assert "^" in str(caught.value)


# -- sizes: literals ---------------------------------------------------------------------


def test_an_integer_literal_over_the_limit_is_a_parse_error_at_the_literal() -> None:
    Filter("X < " + "9" * MAX_INT_DIGITS)  # the limit itself is fine
    Filter("X < " + "0" * 100 + "9" * MAX_INT_DIGITS)  # leading zeros do not count
    expr = "X < " + "9" * (MAX_INT_DIGITS + 1)
    with pytest.raises(ParseError) as caught:
        Filter(expr)
    assert caught.value.message == (
        f"an integer of {MAX_INT_DIGITS + 1} digits: a filter's integers have at most "
        f"{MAX_INT_DIGITS} digits"
    )
    assert caught.value.span == (4, len(expr))


def test_a_string_literal_over_the_limit_is_a_parse_error_at_the_literal() -> None:
    Filter("X < '" + "a" * MAX_STR_LEN + "'")
    expr = "X < '" + "a" * (MAX_STR_LEN + 1) + "'"
    with pytest.raises(ParseError) as caught:
        Filter(expr)
    assert caught.value.message.startswith(f"a string of {MAX_STR_LEN + 1} characters")
    assert caught.value.span == (4, len(expr))


# -- sizes: every operation --------------------------------------------------------------

_BIG = 10 ** (MAX_INT_DIGITS - 1)  # MAX_INT_DIGITS digits


@pytest.mark.parametrize(
    "expr",
    [
        "10 ** 5000 / 0 > X",  # the message must not print the 5001-digit int
        "2 ** 14300 > X",
        "X ** 100000 > 1",
        "(-10) ** 4300 > X",
        f"{_BIG} * 10 > X",
        f"{_BIG} * {_BIG} * {_BIG} > X",
        f"{9 * _BIG} + {_BIG} > X",
        f"-{9 * _BIG} - {_BIG} < X",
        "'ab' * 40000 > S",
        "S * 100000 > S",
        "100000 * S > S",
        f"'{'a' * 40000}' + '{'a' * 40000}' > S",
        " + ".join(["('a' * 1000000)"] * 200) + " > S",  # 25 s and 427 MB per point, once
        " + ".join(["('a' * 60000)"] * 200) + " > S",
        "S" + " + S" * 200 + " > S",
    ],
)
def test_no_operation_builds_a_value_over_the_limits(expr: str) -> None:
    keep = Filter(expr, names=("X", "S"))
    tracemalloc.start()
    try:
        with pytest.raises(EvaluationError) as caught:
            keep({"X": 7, "S": "s" * 1000})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = caught.value.message
    assert "is too large: a filter's" in message
    assert len(message) < 400, message
    assert peak < 4 * MAX_STR_LEN + 200_000  # a few limit-sized values at most


def test_the_limits_are_exact() -> None:
    assert Filter(f"{_BIG} * 9 + {_BIG - 1} > X")({"X": 1})  # 10**4300 - 1
    assert Filter(f"-{_BIG} * 9 - {_BIG - 1} < X")({"X": 1})
    assert Filter("'ab' * 32768 > X")({"X": "a"})
    assert Filter(f"S + 'a' == 'a' * {MAX_STR_LEN}")({"S": "a" * (MAX_STR_LEN - 1)})
    for past in (f"{_BIG} * 9 + {_BIG} > X", "'ab' * 32768 + 'a' > X", "X * 65537 > 'a'"):
        with pytest.raises(EvaluationError, match="is too large: a filter's"):
            Filter(past)({"X": "a"} if "X *" in past else {"X": 1})


def test_messages_quote_huge_values_shortened() -> None:
    keep = Filter("X / 0 > 1 or S + 1 > 0")
    with pytest.raises(EvaluationError) as caught:
        keep({"X": 10**5000, "S": ""})
    message = caught.value.message
    assert len(message) < 300, message
    assert "an int of about 5001 digits" in message

    with pytest.raises(EvaluationError) as caught:
        Filter("S + 1 > 0")({"S": "q" * 100_000})
    message = caught.value.message
    assert len(message) < 300, message
    assert "'qqqqqqqqqqqqqqqqqqqqqqqqqqqqqq...' (100000 characters)" in message

    with pytest.raises(EvaluationError) as caught:
        Filter("X + 'a' > 0")({"X": 3 * 10**1000})
    assert "30000000000000000000...00000 (1001 digits)" in caught.value.message


@pytest.mark.parametrize(
    "expr",
    ["X '" + "a" * 60_000 + "'", "X < " + "9" * 4000 + " 5", "Q" * 100_000 + " > 1"],
    ids=["string", "integer", "name"],
)
def test_syntax_errors_quote_long_tokens_shortened(expr: str) -> None:
    with pytest.raises(ParseError) as caught:
        Filter(expr, names=("X",))
    assert len(caught.value.message) < 200, caught.value.message


# Random arithmetic over values near the limits: either the filter's answer is Python's
# (then every intermediate was within the limits, so asking Python is safe), or it is an
# EvaluationError; never another exception, never a large allocation.

_LEAF = st.sampled_from(
    ["X", "S", "2", "-3", "0", "1.5", f"{_BIG}", "'ab'", "'q' * 30000", "10 ** 4000"]
)
_EXPR = st.recursive(
    _LEAF,
    lambda inner: st.tuples(inner, st.sampled_from(["+", "-", "*", "**", "//", "%"]), inner).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})"
    ),
    max_leaves=5,
)


@settings(max_examples=200)
@given(expr=_EXPR, x=st.sampled_from([0, 5, -7, 10**4299, 2.5]))
def test_arithmetic_is_pythons_or_a_clean_error(expr: str, x: float) -> None:
    source = f"{expr} == X"
    keep = Filter(source, names=("X", "S"))
    point: dict[str, float | str] = {"X": x, "S": "s" * 50}
    tracemalloc.start()
    try:
        try:
            got: bool | None = keep(point)
        except EvaluationError as exc:
            assert len(exc.message) < 500
            got = None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MAX_STR_LEN + 200_000
    if got is not None:
        assert got is bool(eval(source, {}, dict(point)))


# -- end to end: the installed command exits 2 with the message, never a traceback -------


def _expand(where: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rangeexpr", "expand", "-r", "X=range:10", "--where", where],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(_REPO)},
        check=False,
    )


def test_cli_runs_a_filter_of_six_hundred_or_terms() -> None:
    done = _expand(" or ".join(f"X == {i}" for i in range(3, 603)))
    assert done.returncode == 0, done.stderr
    assert [line[:12] for line in done.stdout.splitlines()][:2] == ['{"index": 3,', '{"index": 4,']
    assert len(done.stdout.splitlines()) == 7


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("not " * 1000 + "X > 0", f"more than {MAX_DEPTH} levels deep"),
        ("10**5000 / 0 > X", "the result of 10 ** 5000 is too large"),
        ("X < " + "9" * 4400, "an integer of 4400 digits"),
        (" + ".join(["('a' * 1000000)"] * 200) + " > 'b'", "is too large"),
    ],
    ids=["deep-not", "huge-power", "long-literal", "long-strings"],
)
def test_cli_reports_hostile_filters_cleanly(where: str, message: str) -> None:
    done = _expand(where)
    assert done.returncode == 2
    assert done.stderr.startswith("rangeexpr: error: ")
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert "^" in done.stderr  # the marker under the source
