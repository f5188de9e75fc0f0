"""The public ``Filter``: a filter parsed and compiled once, then tested on points."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeAlias, TypeVar

from .._errors import EvaluationError, ParseError
from .._text import did_you_mean, shorten
from .compiler import Failure, Fn, compile_node
from .nodes import Var, variables
from .parser import parse_filter

__all__ = ["Filter", "FilterValue"]

FilterValue: TypeAlias = int | float | str | bool
P = TypeVar("P", bound=Mapping[str, Any])


class Filter:
    """A parsed, compiled filter: ``Filter("X < Y", names=("X", "Y"))(point) -> bool``.

    With ``names`` given, every variable must be one of them (checked here, so errors show
    at ``check`` time, not halfway through a run).
    """

    __slots__ = ("_fn", "_on_rows", "ast", "names", "source")

    def __init__(self, source: str, /, *, names: Iterable[str] | None = None) -> None:
        self.source = source
        self.ast = parse_filter(source)
        used = list(variables(self.ast))
        if names is not None:
            ordered = list(names)
            known = frozenset(ordered)
            for var in used:
                if var.name not in known:
                    raise _unknown_name(source, var, ordered)
        self.names = frozenset(var.name for var in used)
        self._fn = compile_node(self.ast, operator.itemgetter)
        self._on_rows: dict[tuple[str, ...], Fn] = {}

    def on_rows(self, names: Sequence[str]) -> Fn:
        """The filter compiled for value rows in ``names`` order: faster than by name.

        The result is truthy to keep; it is what ``kept`` runs, compiled once per ``names``.
        """
        key = tuple(names)
        fn = self._on_rows.get(key)
        if fn is None:
            where = {name: k for k, name in enumerate(key)}
            for var in variables(self.ast):
                if var.name not in where:
                    raise _unknown_name(self.source, var, key)
            fn = self._on_rows[key] = compile_node(
                self.ast, lambda n: operator.itemgetter(where[n])
            )
        return fn

    def kept(
        self, points: Iterable[P], names: Sequence[str], row: Callable[[P], tuple[Any, ...]]
    ) -> Iterator[P]:
        """The points the filter keeps, lazily, tested on ``row(point)`` (values in ``names``
        order): the fast path for sweeps. A failing operation is an ``EvaluationError``
        naming the point."""
        keep = self.on_rows(names)
        point = None
        try:
            for point in points:
                if keep(row(point)):
                    yield point
        except Failure as failure:
            assert point is not None
            raise self._error(failure, point) from None

    def __call__(self, point: Mapping[str, FilterValue]) -> bool:
        """Whether ``point`` is kept; a failing operation is an ``EvaluationError``."""
        try:
            return bool(self._fn(point))
        except Failure as failure:
            raise self._error(failure, point) from None
        except KeyError as exc:
            name = exc.args[0] if exc.args else "?"
            var = next((v for v in variables(self.ast) if v.name == name), None)
            if var is None:
                raise
            raise _unknown_name(self.source, var, point.keys()) from None

    def _error(self, failure: Failure, point: Mapping[str, Any]) -> EvaluationError:
        return EvaluationError(
            f"filter failed at {_where(point)}: {failure.message}", self.source, failure.span
        )

    def __repr__(self) -> str:
        return f"Filter({self.source!r})"

    def __reduce__(self) -> tuple[type[Filter], tuple[str]]:
        """Pickled as its source (closures do not pickle); compiled again when unpickled."""
        return (Filter, (self.source,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Filter) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)


def _unknown_name(source: str, var: Var, known: Iterable[str]) -> ParseError:
    names = list(dict.fromkeys(known))
    defined = ", ".join(names) if names else "none"
    return ParseError(
        f"unknown variable {shorten(var.name)} in filter (the sweep defines: {defined})"
        f"{did_you_mean(var.name, names)}",
        source,
        var.span,
    )


def _where(point: Mapping[str, Any]) -> str:
    """``point 7 (X=0.5, MODEL='small')``: the point's index, if it has one, and values."""
    values = ", ".join(f"{name}={shorten(value)}" for name, value in point.items())
    index = getattr(point, "index", None)
    return f"point {index} ({values})" if index is not None else f"({values})"
