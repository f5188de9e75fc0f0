"""Templates: ``$NAME``, ``${NAME}``, ``${NAME:SPEC}`` and ``$$``, parsed once.

A template is compiled into a ``%``-format string with one ``%s`` per field, so rendering
is one C-level string operation and no regex runs per render. Errors point at the
column in the template, with the hint to write ``$$`` for a literal dollar.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._ast import Span, Value
from ._errors import TemplateError
from ._sweep import Point
from ._text import format_value

if TYPE_CHECKING:
    from ._sweep import Sweep, _Layout

# (text table or None, stride, size, position in the row, formatter of the value)
_Step = tuple[list[str] | None, int, int, int, Callable[[Value], str]]

__all__ = ["Command", "Field", "Template"]

_FIELD = re.compile(
    r"""\$(?:
        (?P<escaped>\$)
      | (?P<named>[_a-zA-Z][_a-zA-Z0-9]*)
      | \{(?P<braced>[_a-zA-Z][_a-zA-Z0-9]*)(?::(?P<spec>[^{}]*))?\}
      | (?P<invalid>)
    )""",
    re.VERBOSE,
)
_DOLLAR_HINT = "write $$ for a literal dollar sign"


@dataclass(frozen=True, slots=True)
class Field:
    """One placeholder: the name, the optional format spec, and where it stands."""

    name: str
    spec: str | None
    span: Span


class Template:
    """A string with ``$NAME`` placeholders, rendered from a Point or any Mapping."""

    __slots__ = ("_format", "_plans", "fields", "names", "source")

    def __init__(self, source: str, /):
        self.source = source
        fields: list[Field] = []
        out: list[str] = []
        pos = 0
        for m in _FIELD.finditer(source):
            out.append(source[pos : m.start()].replace("%", "%%"))
            pos = m.end()
            if m.group("escaped") is not None:
                out.append("$")
            elif m.group("invalid") is not None:
                raise _malformed(source, m.start())
            else:
                name = m.group("named") or m.group("braced")
                fields.append(Field(name, m.group("spec"), (m.start(), m.end())))
                out.append("%s")
        out.append(source[pos:].replace("%", "%%"))
        self._format = "".join(out)
        self._plans: dict[int, tuple[object, list[_Step]]] = {}
        self.fields = tuple(fields)
        self.names = frozenset(f.name for f in fields)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    def render(self, values: Mapping[str, Value], /) -> str:
        """The text with every field replaced by its value's text (or formatted by SPEC)."""
        return self._format % self._texts(values)

    def _texts(self, values: Mapping[str, Value]) -> tuple[str, ...]:
        if type(values) is Point:
            row, index = values._row, values._index
            return tuple(
                [
                    texts[(index // st) % sz] if texts is not None else text(row[k])
                    for texts, st, sz, k, text in self._plan(values._layout)
                ]
            )
        text = getattr(values, "text", None)
        out = []
        for f in self.fields:
            if f.spec is not None:
                out.append(_formatted(values[f.name], f, self.source))
            elif text is not None:
                out.append(text(f.name))
            else:
                out.append(format_value(values[f.name]))
        return tuple(out)

    def _plan(self, layout: _Layout) -> list[_Step]:
        """How to get each field's text from a point's row and index, built once per sweep.

        A short axis's text is a table lookup by digit; a long one is formatted from the
        value; a field with a format spec always formats the typed value.
        """
        entry = self._plans.get(id(layout))
        if entry is not None and entry[0] is layout:
            return entry[1]
        plan: list[_Step] = []
        for f in self.fields:
            k = layout.positions[f.name]
            st, sz = layout.strides[k], layout.sizes[k]
            if f.spec is not None:
                plan.append((None, st, sz, k, _spec_formatter(f, self.source)))
            else:
                plan.append((layout.text_table(k), st, sz, k, format_value))
        if len(self._plans) > 8:
            self._plans.clear()
        self._plans[id(layout)] = (layout, plan)
        return plan

    def check(self, sweep: Sweep, /) -> None:
        """Raise TemplateError for a name no range defines or a spec its values reject."""
        _check_fields(self.source, self.fields, sweep)


def _formatted(value: Value, f: Field, source: str) -> str:
    try:
        return format(value, f.spec or "")
    except (ValueError, TypeError) as exc:
        raise TemplateError(
            f"cannot format {value!r} of ${{{f.name}}} with {f.spec!r}: {exc}",
            source,
            f.span,
        ) from None


def _spec_formatter(f: Field, source: str) -> Callable[[Value], str]:
    return lambda value: _formatted(value, f, source)


def _check_fields(source: str, fields: Iterable[Field], sweep: Sweep) -> None:
    names: Collection[str] = sweep.names
    for f in fields:
        if f.name not in names:
            defined = ", ".join(names) or "none"
            raise TemplateError(
                f"${f.name} is not defined by any range (defined: {defined}); {_DOLLAR_HINT}",
                source,
                f.span,
            )
        if f.spec is not None:
            for value in sweep.axis(f.name).sample_values():
                _formatted(value, f, source)


def _malformed(source: str, at: int) -> TemplateError:
    nxt = source[at + 1 : at + 2]
    if nxt == "{":
        close = source.find("}", at)
        end = close + 1 if close >= 0 else len(source)
        what = "unclosed ${" if close < 0 else f"malformed placeholder {source[at:end]!r}"
        return TemplateError(f"{what}; {_DOLLAR_HINT}", source, (at, end))
    if not nxt or nxt.isspace():
        where = "at the end" if not nxt else "before a space"
        return TemplateError(f"a lone $ {where}; {_DOLLAR_HINT}", source, (at, at + 1))
    return TemplateError(
        f"malformed placeholder '${nxt}': a name starts with a letter or '_'; {_DOLLAR_HINT}",
        source,
        (at, at + 2),
    )


class Command:
    """A command template, split into words by POSIX shell rules before substitution.

    Each placeholder substitutes inside its word and the result is never re-split, so a
    value like ``a b; rm -rf ~`` stays one harmless argument. With ``shell=True`` the
    command runs as ``/bin/sh -c LINE`` with every substituted value shell-quoted.
    """

    __slots__ = ("_line", "_words", "fields", "names", "shell", "source")

    def __init__(self, source: str, /, *, shell: bool = False):
        whole = Template(source)  # validates every placeholder with spans into `source`
        self.source = source
        self.shell = shell
        self.fields = whole.fields
        self.names = whole.names
        self._line = whole
        self._words: tuple[Template, ...] = ()
        if not shell:
            try:
                words = shlex.split(source, comments=False, posix=True)
            except ValueError as exc:
                raise TemplateError(
                    f"cannot split the command into words: {str(exc).lower()}",
                    source,
                    (0, len(source)),
                ) from None
            if not words:
                raise TemplateError("the command is empty", source, (0, max(1, len(source))))
            self._words = tuple(Template(w) for w in words)

    def __repr__(self) -> str:
        return f"Command({self.source!r}, shell={self.shell})"

    def argv(self, values: Mapping[str, Value], /) -> tuple[str, ...]:
        """The argument vector to exec for one point."""
        if self.shell:
            return ("/bin/sh", "-c", self.line(values))
        return tuple(w.render(values) for w in self._words)

    def line(self, values: Mapping[str, Value], /) -> str:
        """One ``/bin/sh`` command line for the point (shown in logs, run by Ray)."""
        if self.shell:
            texts = self._line._texts(values)
            return self._line._format % tuple(shlex.quote(t) for t in texts)
        return shlex.join(self.argv(values))

    def check(self, sweep: Sweep, /) -> None:
        """Raise TemplateError for a name no range defines or a spec its values reject."""
        _check_fields(self.source, self.fields, sweep)
