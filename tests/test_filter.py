"""The filter language: data vectors with exact messages, and Python as the oracle.

Vector files (adding a case means adding a file):

- ``data/filter/valid/*.txt``: a ``#`` line saying what the case shows, the expression,
  then lines ``{point as JSON} -> keep|drop``;
- ``data/filter/invalid/*.txt``: a ``#`` line saying why it is invalid, the expression, an
  optional ``point: {JSON}`` line (the error then comes from evaluating at that point),
  then the exact error text, marker line included.

Every vector is checked against the variables ``NAMES``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rangeexpr._errors import EvaluationError, ParseError, RangeExprError
from rangeexpr._filter import Filter

DATA = Path(__file__).parent / "data" / "filter"
VALID = sorted((DATA / "valid").glob("*.txt"))
INVALID = sorted((DATA / "invalid").glob("*.txt"))
NAMES = ("X", "Y", "MODEL", "android", "order", "notes", "inside")


def test_the_vector_globs_found_files() -> None:
    assert len(VALID) >= 10
    assert len(INVALID) >= 20


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_vector(path: Path) -> None:
    comment, expr, *rows = path.read_text(encoding="utf-8").splitlines()
    assert comment.startswith("#"), "the first line says what the case shows"
    assert rows, "a valid vector needs at least one point"
    keep = Filter(expr, names=NAMES)
    for row in rows:
        point_json, verdict = row.rsplit(" -> ", 1)
        assert keep(json.loads(point_json)) is (verdict == "keep"), row


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_vector(path: Path) -> None:
    comment, expr, *rest = path.read_text(encoding="utf-8").split("\n")
    assert comment.startswith("#"), "the first line says why the case is invalid"
    point = None
    if rest[0].startswith("point: "):
        point = json.loads(rest.pop(0).removeprefix("point: "))
    expected = "\n".join(rest).rstrip("\n")
    with pytest.raises(RangeExprError) as caught:
        keep = Filter(expr, names=NAMES)
        assert point is not None, "the expression parsed, but the vector gives no point"
        keep(point)
    assert str(caught.value) == expected
    assert caught.value.source == expr
    assert isinstance(caught.value, EvaluationError if point is not None else ParseError)


def test_errors_name_the_point_index_when_there_is_one() -> None:
    class Point(dict[str, object]):
        index = 7

    with pytest.raises(EvaluationError) as caught:
        Filter("X < 'a'")(Point(X=1.5))
    assert caught.value.message.startswith("filter failed at point 7 (X=1.5): '<'")


def test_a_name_missing_from_the_point_is_reported_when_names_were_not_given() -> None:
    keep = Filter("X < W")
    assert keep.names == frozenset({"X", "W"})
    with pytest.raises(ParseError, match="unknown variable 'W'"):
        keep({"X": 1})


def test_filters_compare_and_hash_by_source() -> None:
    assert Filter("X < 1") == Filter("X < 1")
    assert hash(Filter("X < 1")) == hash(Filter("X < 1"))
    assert Filter("X < 1") != Filter("X <= 1")
    assert repr(Filter("X < 1")) == "Filter('X < 1')"


def test_the_ast_is_frozen() -> None:
    ast = Filter("X < 1").ast
    with pytest.raises(AttributeError):
        ast.span = (0, 0)  # type: ignore[misc]


def test_the_grammar_is_the_one_in_grammar_dir() -> None:
    from rangeexpr._grammar import grammar_path

    assert grammar_path("filter.lark").read_text(encoding="utf-8").startswith("// filter.lark")


# Python itself is the oracle: random expressions over two int variables must give what
# Python gives, and fail (with EvaluationError) exactly where Python raises.

_LEAVES = st.sampled_from(["X", "Y", "0", "1", "2", "3", "-1", "2.5"])
_ARITH = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "//", "%"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        inner.map(lambda e: f"-{e}"),
    ),
    max_leaves=6,
)
_COMPARE = st.tuples(
    _ARITH,
    st.lists(
        st.tuples(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), _ARITH),
        min_size=1,
        max_size=3,
    ),
).map(lambda t: t[0] + "".join(f" {op} {e}" for op, e in t[1]))
_BOOL = st.recursive(
    st.one_of(_COMPARE, _ARITH.map(lambda e: f"{e} in (1, 2, X)")),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        inner.map(lambda e: f"not {e}"),
    ),
    max_leaves=4,
)


@settings(max_examples=400, deadline=None)
@given(expr=_BOOL, x=st.integers(-3, 3), y=st.integers(-3, 3))
def test_filters_agree_with_python(expr: str, x: int, y: int) -> None:
    """Law: Filter(e)(point) == bool(eval(e, point)), and errors where Python raises."""
    point = {"X": x, "Y": y}
    try:
        expected: bool | None = bool(eval(expr, {}, dict(point)))
    except ZeroDivisionError:
        expected = None
    keep = Filter(expr, names=("X", "Y"))
    if expected is None:
        with pytest.raises(EvaluationError, match="division by zero"):
            keep(point)
    else:
        assert keep(point) is expected
