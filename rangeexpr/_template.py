"""Templates: ``$NAME``, ``${NAME}``, ``${NAME:SPEC}`` and ``$$``, parsed once.

A template is compiled into a ``%``-format string with one ``%s`` per field, so rendering
is one C-level string operation and no regex runs per render. Errors point at the
column in the template, with the hint to write ``$$`` for a literal dollar.

A ``Command`` with ``shell=True`` never puts a value into shell code: the template becomes
one fixed script that reads each value from a positional parameter (``Command`` explains).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._ast import Span, Value
from ._axes import CaseAxis
from ._errors import TemplateError
from ._points import Point
from ._text import format_value

if TYPE_CHECKING:
    from ._axes import Axis
    from ._layout import Layout
    from ._points import BaseSweep

# (text table or None, stride, size, position in the row, formatter of the value)
_Step = tuple[list[str] | None, int, int, int, Callable[[Value], str]]

__all__ = ["Command", "Derived", "Field", "Template", "WithRuntime", "check_env"]

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
# what a failing format spec raises: format(-1, "c") and format(10**400, "f") overflow
_FORMAT_ERRORS = (ValueError, TypeError, OverflowError)


@dataclass(frozen=True, slots=True)
class Field:
    """One placeholder: the name, the optional format spec, and where it stands."""

    name: str
    spec: str | None
    span: Span


# A template's pieces in order: literal text with its offset (``$$`` is its own "$"
# piece), and the fields between them.
_Piece = tuple[str, int] | Field


def _scan(source: str) -> list[_Piece]:
    """Split a template into literal pieces and fields; raise on a malformed ``$``."""
    pieces: list[_Piece] = []
    pos = 0
    for m in _FIELD.finditer(source):
        pieces.append((source[pos : m.start()], pos))
        pos = m.end()
        if m.group("escaped") is not None:
            pieces.append(("$", m.start()))
        elif m.group("invalid") is not None:
            raise _malformed(source, m.start())
        else:
            name = m.group("named") or m.group("braced")
            pieces.append(Field(name, m.group("spec"), (m.start(), m.end())))
    pieces.append((source[pos:], pos))
    return pieces


class WithRuntime(Mapping[str, Value]):
    """A point's values and the variables known when its job runs, for ``render``.

    ``runtime`` maps a name such as ``RANGEEXPR_SLOT`` to its value; a range cannot have
    such a name (``_parse.RESERVED``), so nothing is shadowed. Rendering through it is
    slower than from the point itself: only templates that name a runtime variable use it.
    """

    __slots__ = ("index", "point", "runtime")

    def __init__(self, point: Point, runtime: Mapping[str, Any]):
        self.point = point
        self.runtime = runtime
        self.index = point.index

    def __getitem__(self, name: str) -> Value:
        if name in self.runtime:
            value: Value = self.runtime[name]
            return value
        return self.point[name]

    def __iter__(self) -> Iterator[str]:
        yield from self.point
        yield from self.runtime

    def __len__(self) -> int:
        return len(self.point) + len(self.runtime)

    def text(self, name: str) -> str:
        """The value's text: as written in the range, or the runtime value's."""
        if name in self.runtime:
            return format_value(self.runtime[name])
        return self.point.text(name)


class Derived:
    """The ``-e`` values rendered in order, each usable by the later ones and the command.

    A derived value's text is what its ``-e`` template rendered. Templates that name no
    ``-e`` value render from the point itself (the fast path); the others through a
    ``WithRuntime`` holding the values rendered so far.
    """

    __slots__ = ("_steps", "names")

    def __init__(self, env: Mapping[str, Template]):
        self.names = frozenset(env)
        self._steps = tuple((name, t, bool(t.names & self.names)) for name, t in env.items())

    @classmethod
    def needed(
        cls, env: Mapping[str, Template], *templates: Template | Command | None
    ) -> Derived | None:
        """A Derived if ``env`` or one of ``templates`` names an ``-e`` value, else None:
        then each template renders from the point alone, as fast as without ``-e``."""
        names = frozenset(env)
        every = (*env.values(), *templates)
        if any(t is not None and not t.names.isdisjoint(names) for t in every):
            return cls(env)
        return None

    def render(self, values: Point | WithRuntime) -> tuple[dict[str, str], WithRuntime]:
        """The ``-e`` texts, and the values to render the command with (the point's, the
        runtime ones of ``values``, and the ``-e`` texts)."""
        if isinstance(values, WithRuntime):
            runtime = dict(values.runtime)
            point = values.point
        else:
            runtime, point = {}, values
        out = WithRuntime(point, runtime)
        env = {}
        for name, template, derived in self._steps:
            text = template.render(out if derived else values)
            env[name] = runtime[name] = text
        return env, out


def check_env(
    env: Sequence[tuple[str, Template]], sweep: BaseSweep, *, runtime: Collection[str] = ()
) -> None:
    """Check the ``-e`` templates in order: each may name a range, a runtime variable or an
    ``-e`` value given before it; a name that is both a range and an ``-e`` value, or an
    ``-e`` value used before it is defined (a cycle, too), is a TemplateError."""
    order = {name: k for k, (name, _) in enumerate(env)}
    for name, template in env:
        if name in sweep.names:
            raise TemplateError(
                f"-e {name} names a range too: rename one of them",
                f"{name}={template.source}",
                (0, len(name)),
            )
    for k, (name, template) in enumerate(env):
        for f in template.fields:
            later = order.get(f.name)
            if later is not None and later >= k:
                what = "itself" if later == k else f"-e {f.name}, given after it"
                raise TemplateError(
                    f"-e {name} uses ${f.name}, which is {what}: an -e value may use only "
                    "the ranges and the -e values given before it",
                    template.source,
                    f.span,
                )
        template.check(sweep, runtime=(*runtime, *(n for n, _ in env[:k])))


def _require_str(source: object, what: str) -> str:
    if not isinstance(source, str):
        raise TypeError(f"{what} takes the template as a str, not {type(source).__name__}")
    return source


class Template:
    """A string with ``$NAME`` placeholders, rendered from a Point or any Mapping."""

    __slots__ = ("_format", "_plans", "fields", "names", "source")

    def __init__(self, source: str, /):
        self.source = _require_str(source, "Template")
        pieces = _scan(source)
        self._format = "".join(
            "%s" if isinstance(p, Field) else p[0].replace("%", "%%") for p in pieces
        )
        self._plans: dict[int, tuple[object, list[_Step]]] = {}
        self.fields = tuple(p for p in pieces if isinstance(p, Field))
        self.names = frozenset(f.name for f in self.fields)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # the cached plans hold per-sweep closures; the source is all a template is
        return (Template, (self.source,))

    def render(self, values: Mapping[str, Value], /) -> str:
        """The text with every field replaced by its value's text (or formatted by SPEC)."""
        return self._format % self._texts(values)

    def _texts(self, values: Mapping[str, Value]) -> tuple[str, ...]:
        if type(values) is Point:
            row, index = values._row, values._index
            try:
                return tuple(
                    [
                        texts[(index // st) % sz] if texts is not None else text(row[k])
                        for texts, st, sz, k, text in self._plan(values._layout)
                    ]
                )
            except _FORMAT_ERRORS:  # find the field, and say which point
                for f in self.fields:
                    if f.spec is not None:
                        _formatted(values[f.name], f, self.source, f" at point {index}")
                raise
        text = getattr(values, "text", None)
        out = []
        for f in self.fields:
            try:
                value = values[f.name]
            except KeyError:
                raise _undefined(f, self.source, list(values)) from None
            if f.spec is not None:
                out.append(_formatted(value, f, self.source))
            elif text is not None:
                out.append(text(f.name))
            else:
                out.append(format_value(value))
        return tuple(out)

    def _plan(self, layout: Layout) -> list[_Step]:
        """How to get each field's text from a point's row and index, built once per sweep.

        A short axis's text is a table lookup by digit; a long one is formatted from the
        value; a field with a format spec always formats the typed value.
        """
        entry = self._plans.get(id(layout))
        if entry is not None and entry[0] is layout:
            return entry[1]
        plan: list[_Step] = []
        for f in self.fields:
            k = layout.positions.get(f.name)
            if k is None:
                raise _undefined(f, self.source, layout.names)
            st, sz = layout.strides[k], layout.sizes[k]
            if f.spec is not None:
                plan.append((None, st, sz, k, _spec_formatter(f.spec)))
            else:
                plan.append((layout.text_table(k), st, sz, k, format_value))
        if len(self._plans) > 8:
            self._plans.clear()
        self._plans[id(layout)] = (layout, plan)
        return plan

    def check(self, sweep: BaseSweep, /, *, runtime: Collection[str] = ()) -> None:
        """Raise TemplateError for a name no range defines or a spec its values reject.

        ``runtime``: names given when the job runs (``RANGEEXPR_SLOT``...), not by ranges.
        """
        _check_fields(self.source, self.fields, sweep, runtime=runtime)


def _shown(value: Value) -> str:
    """A value for an error message: its repr, cut short (a 400-digit int is not read)."""
    if isinstance(value, int) and value.bit_length() > 200:
        digits = len(str(abs(value))) if value.bit_length() < 13000 else "over 3900"
        return f"an int of {digits} digits"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def _formatted(value: Value, f: Field, source: str, where: str = "") -> str:
    try:
        return format(value, f.spec or "")
    except _FORMAT_ERRORS as exc:
        raise TemplateError(
            f"cannot format {_shown(value)} of ${{{f.name}}} with {f.spec!r}{where}: {exc}",
            source,
            f.span,
        ) from None


def _spec_formatter(spec: str) -> Callable[[Value], str]:
    return lambda value: format(value, spec)


def _sample_indices(axis: Axis) -> Iterable[int]:
    """The elements a check looks at: every case value, else the first and the last."""
    return range(axis.size) if isinstance(axis, CaseAxis) else sorted({0, axis.size - 1})


def _check_fields(
    source: str,
    fields: Iterable[Field],
    sweep: BaseSweep,
    *,
    integers: Iterable[Field] = (),
    runtime: Collection[str] = (),
) -> None:
    """Every field names a range, its spec formats the samples, and ``integers`` are ints.

    A field naming one of ``runtime`` (given when the job runs) is left for then.
    """
    fields = [f for f in fields if f.name not in runtime]
    integers = [f for f in integers if f.name not in runtime]
    for f in fields:
        if f.name not in sweep.names:
            raise _undefined(f, source, sweep.names)
        if f.spec is not None:
            axis = sweep.axis(f.name)
            for i in _sample_indices(axis):
                _formatted(axis[i], f, source)
    for f in integers:
        axis = sweep.axis(f.name)
        for i in _sample_indices(axis):
            text = _formatted(axis[i], f, source) if f.spec is not None else axis.text(i)
            _check_integer(text, f, source, f"value {i} of {f.name}")


def _undefined(f: Field, source: str, names: Sequence[str]) -> TemplateError:
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "") or "none"
    return TemplateError(
        f"${f.name} is not defined by any range (defined: {shown}); {_DOLLAR_HINT}",
        source,
        f.span,
    )


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
    value like ``a b; rm -rf ~`` stays one harmless argument.

    With ``shell=True`` the command runs as ``/bin/sh -c SCRIPT sh V1 V2 ...``: SCRIPT is
    the template with each placeholder replaced by a reference to a positional parameter,
    the same for every point, and the values are the parameters. So the shell never parses
    a value: whatever it holds, it is data, unless the template itself evaluates it (``eval
    $X``, ``sh -c "$X"``). The one such context written with ``$``, ``$(( ))``, takes
    integers only. Quoting each value into the line instead (as before) went wrong
    wherever the template had quotes of its own.

    Each reference is written for the quoting it stands in (``_ShellLexer``): ``"${1}"``
    in a bare word, ``${1}`` inside ``"..."``, ``$(( ))`` or a here-document, ``'"${1}"'``
    inside ``'...'`` (placeholders are ours, not the shell's), escaped once more per
    enclosing backquote; so ``$X``, ``"$X"``, ``'$X'``, ``--lr=$X``, ``"$(echo "$X")"``
    all give exactly the value's text. A context the lexer misjudges costs exactness (a
    split word), not safety. What cannot be exact is refused: a backslash just before a
    placeholder, a placeholder in a quoted here-document. ``line`` is ``argv`` quoted for
    ``/bin/sh``, so the job log shows, and Ray runs, exactly what runs locally.
    """

    __slots__ = (
        "_integers",
        "_params",
        "_prefix",
        "_script",
        "_whole",
        "_words",
        "fields",
        "names",
        "shell",
        "source",
    )

    def __init__(self, source: str, /, *, shell: bool = False):
        whole = Template(_require_str(source, "Command"))  # checks every placeholder
        self.source = source
        self.shell = shell
        self.fields = whole.fields
        self.names = whole.names
        self._whole = whole
        self._words: tuple[Template, ...] = ()
        self._script = ""
        self._params: tuple[int, ...] = ()  # the field giving each positional parameter
        self._integers: tuple[int, ...] = ()  # fields inside $(( )): their text must be an int
        self._prefix = ""  # the line up to the values: "/bin/sh -c 'SCRIPT' sh"
        if shell:
            self._script, self._params, self._integers = _shell_script(source, _scan(source))
            self._prefix = shlex.join(("/bin/sh", "-c", self._script, "sh"))
            return
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

    def __reduce__(self) -> tuple[Any, ...]:
        return (_command, (self.source, self.shell))

    def argv(self, values: Mapping[str, Value], /) -> tuple[str, ...]:
        """The argument vector to exec for one point."""
        if not self.shell:
            return tuple(w.render(values) for w in self._words)
        return ("/bin/sh", "-c", self._script, "sh", *self._parameters(values))

    def line(self, values: Mapping[str, Value], /) -> str:
        """One ``/bin/sh`` command line that runs ``argv`` (shown in logs, run by Ray)."""
        if not self.shell:
            return shlex.join(self.argv(values))
        return " ".join([self._prefix, *map(shlex.quote, self._parameters(values))])

    def _parameters(self, values: Mapping[str, Value]) -> list[str]:
        texts = self._whole._texts(values)
        for k in self._integers:
            where = f"the value at point {values.index}" if type(values) is Point else "the value"
            _check_integer(texts[k], self.fields[k], self.source, where)
        return [texts[k] for k in self._params]

    def check(self, sweep: BaseSweep, /, *, runtime: Collection[str] = ()) -> None:
        """Raise TemplateError for a name no range defines or a spec its values reject.

        ``runtime``: names given when the job runs (``RANGEEXPR_SLOT``...), not by ranges.
        """
        integers = [self.fields[k] for k in self._integers]
        _check_fields(self.source, self.fields, sweep, integers=integers, runtime=runtime)


def _command(source: str, shell: bool) -> Command:
    """Unpickle a Command (``shell`` is keyword-only)."""
    return Command(source, shell=shell)


_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")  # decimal: shells read 010 as octal


def _check_integer(text: str, f: Field, source: str, what: str) -> None:
    if not _INTEGER.fullmatch(text):
        shown = text if len(text) <= 40 else f"{text[:30]}..."
        raise TemplateError(
            f"${f.name} stands inside $(( )), where the shell evaluates it, and {what} "
            f"is {shown!r}, not an integer; compute it outside $(( )) or use an int range",
            source,
            f.span,
        )


# ---------------------------------------------------------------------------
# --shell: the shell context of each placeholder
# ---------------------------------------------------------------------------

# A token of one level of the script: (character, its shell text, offset in the template),
# or the number of a field. Inside backquotes the character is the unescaped one (``\$``
# is "$"), and the shell text keeps the backslash.
_Tok = tuple[str, str, int] | int
_Out = list[tuple[str, bool]]  # (shell text, whether it is a reference we wrote)

# the reference to parameter N in each context: a bare word must not be split or globbed
_REFERENCE = {"word": '"${%d}"', "single": "'\"${%d}\"'"}
_REFERENCE.update(dict.fromkeys(("quoted", "heredoc", "arith"), "${%d}"))
_BREAKS = frozenset(" \t\n;&|()<>")  # end a word: a '#' after one starts a comment
_SPECIAL_PARAMETERS = frozenset("$?#!@*-0123456789")
_MAX_NESTING = 50  # quotes and substitutions within each other: far beyond real commands


def _shell_script(
    source: str, pieces: list[_Piece]
) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """The script, the field giving each positional parameter, and the fields in ``$(( ))``.

    Fields with the same name and spec share one parameter.
    """
    fields = [p for p in pieces if isinstance(p, Field)]
    first: dict[tuple[str, str | None], int] = {}
    params: list[int] = []
    numbers: list[int] = []  # per field, its parameter ($1 is 1)
    for k, f in enumerate(fields):
        if (f.name, f.spec) not in first:
            first[(f.name, f.spec)] = len(params) + 1
            params.append(k)
        numbers.append(first[(f.name, f.spec)])
    toks: list[_Tok] = []
    k = 0
    for p in pieces:
        if isinstance(p, Field):
            toks.append(k)
            k += 1
        else:
            toks.extend((c, c, p[1] + j) for j, c in enumerate(p[0]))
    lexer = _ShellLexer(toks, source, fields, numbers)
    script = "".join(text for text, _ in lexer.run())
    return script, tuple(params), tuple(sorted(lexer.integers))


class _ShellLexer:
    """Copies one level of a ``--shell`` script, writing a reference for each field.

    A small recursive lexer of POSIX sh quoting: bare words, ``'...'``, ``"..."``,
    ``$( )``, ``${ }``, ``$(( ))``, backquotes (their content, unescaped, is lexed as a
    level of its own), comments and here-documents. It does not parse commands, so a
    ``case`` pattern's ``)`` inside ``$( )`` closes it early; that costs exactness only.
    """

    def __init__(
        self,
        toks: list[_Tok],
        source: str,
        fields: list[Field],
        numbers: list[int],
        integers: set[int] | None = None,
        *,
        nesting: int = 0,
    ):
        self.toks, self.source, self.fields, self.numbers = toks, source, fields, numbers
        self.integers = set() if integers is None else integers  # fields inside $(( )), all levels
        self.nesting = nesting
        self.i = 0
        self.out: _Out = []
        self.heredocs: list[tuple[str, bool, bool]] = []  # delimiter, quoted, strip tabs

    def run(self) -> _Out:
        self._command(closing=False)
        return self.out

    # -- tokens -------------------------------------------------------------------

    def _peek(self, ahead: int = 0) -> str | int | None:
        j = self.i + ahead
        if j >= len(self.toks):
            return None
        t = self.toks[j]
        return t if isinstance(t, int) else t[0]

    def _copy(self, n: int = 1) -> None:
        for _ in range(n):
            t = self.toks[self.i] if self.i < len(self.toks) else None
            if t is None or isinstance(t, int):
                return
            self.out.append((t[1], False))
            self.i += 1

    def _error(self, message: str, start: int) -> TemplateError:
        t = self.toks[start] if start < len(self.toks) else None
        span = self.fields[t].span if isinstance(t, int) else (t[2], t[2] + 1) if t else None
        return TemplateError(message, self.source, span)

    def _reference(self, context: str) -> None:
        k = self.toks[self.i]
        assert isinstance(k, int)
        self.i += 1
        if context == "arith":
            self.integers.add(k)
        self.out.append((_REFERENCE[context] % self.numbers[k], True))

    def _nested(self, lex: Callable[[str], None], context: str) -> None:
        if self.nesting >= _MAX_NESTING:
            raise self._error("the command nests quotes and substitutions too deeply", self.i)
        self.nesting += 1
        lex(context)
        self.nesting -= 1

    # -- contexts -------------------------------------------------------------------

    def _step(self, c: str | int, context: str) -> None:
        """One token where ``$``, backquotes and backslashes work: all but ``'...'``."""
        if isinstance(c, int):
            self._reference(context)
        elif c == "\\":
            if isinstance(self._peek(1), int):
                raise self._error(
                    "a backslash before a placeholder would escape part of the value; "
                    "remove it: values arrive exactly as they are",
                    self.i,
                )
            self._copy(2)
        elif c == "$":
            self._dollar(context)
        elif c == "`":
            self._nested(self._backquote, context)
        else:
            self._copy()

    def _command(self, context: str = "word", *, closing: bool = True) -> None:
        """Bare words, up to the ``)`` that closes ``$(`` (or the end, at the top)."""
        depth = 0
        while (c := self._peek()) is not None:
            if c == "'":
                self._copy()
                self._single()
            elif c == '"':
                self._copy()
                self._double()
            elif c == "#" and self._word_start():
                while (c := self._peek()) is not None and c != "\n":
                    if isinstance(c, int):
                        self._reference("word")
                    else:
                        self._copy()
            elif c == "<" and self._peek(1) == "<":
                self._heredoc_operator()
            elif c == "\n":
                self._copy()
                self._heredoc_bodies()
            elif c in ("(", ")"):
                self._copy()
                depth += 1 if c == "(" else -1
                if closing and depth < 0:
                    return
            else:
                self._step(c, "word")

    def _word_start(self) -> bool:
        t = self.toks[self.i - 1] if self.i else None
        return t is None or (not isinstance(t, int) and t[0] in _BREAKS)

    def _single(self) -> None:
        while (c := self._peek()) is not None:
            if isinstance(c, int):
                self._reference("single")
                continue
            self._copy()
            if c == "'":
                return

    def _double(self, context: str = "quoted") -> None:
        """``"..."``: references need no quotes of their own."""
        while (c := self._peek()) is not None:
            if c == '"':
                self._copy()
                return
            self._step(c, "quoted")

    def _dollar(self, context: str) -> None:
        nxt = self._peek(1)
        if isinstance(nxt, int):  # a literal $ just before a value must not join it
            self.i += 1
            self.out.append(("\\$", True))
        elif nxt == "(" and self._peek(2) == "(":
            self._copy(3)
            self._nested(self._arithmetic, "arith")
        elif nxt == "(":
            self._copy(2)
            self._nested(self._command, "word")
        elif nxt == "{":
            self._copy(2)
            self._nested(self._brace, context)
        else:
            self._copy(2 if nxt in _SPECIAL_PARAMETERS else 1)

    def _brace(self, context: str) -> None:
        """``${NAME...}``: its word is quoted as the expansion is (bare or in "...")."""
        while (c := self._peek()) is not None:
            if c == "}":
                self._copy()
                return
            if c == '"':
                self._copy()
                self._nested(self._double, "quoted")
            elif c == "'" and context == "word":
                self._copy()
                self._single()
            else:
                self._step(c, context)

    def _arithmetic(self, context: str) -> None:
        """``$(( ))``: the shell evaluates what stands here, so values must be integers."""
        depth = 0
        while (c := self._peek()) is not None:
            if c == ")" and depth == 0 and self._peek(1) == ")":
                self._copy(2)
                return
            depth += 1 if c == "(" else -1 if c == ")" else 0
            self._step(c, "arith")

    def _backquote(self, context: str) -> None:
        """Lex the unescaped content as a level of its own; escape our references back."""
        self._copy()
        escapes = '$`\\"' if context == "quoted" else "$`\\"
        inner: list[_Tok] = []
        while (t := self.toks[self.i] if self.i < len(self.toks) else None) is not None:
            if not isinstance(t, int) and t[0] == "`":
                break
            nxt = self.toks[self.i + 1] if self.i + 1 < len(self.toks) else None
            # \$ \` \\ (and \" inside "...") stand for one character
            if (
                not isinstance(t, int)
                and t[0] == "\\"
                and isinstance(nxt, tuple)
                and nxt[0] in escapes
            ):
                inner.append((nxt[0], t[1] + nxt[1], t[2]))
                self.i += 2
                continue
            inner.append(t)
            self.i += 1
        level = _ShellLexer(
            inner, self.source, self.fields, self.numbers, self.integers, nesting=self.nesting
        )
        for text, ours in level.run():
            escaped = text.replace("\\", "\\\\").replace("`", "\\`")
            self.out.append((escaped, True) if ours else (text, False))
        self._copy()  # the closing backquote, if there is one

    # -- here-documents ---------------------------------------------------------------

    def _heredoc_operator(self) -> None:
        """``<<WORD`` or ``<<-WORD``: note the delimiter; the body starts after the line."""
        self._copy(2)
        if self._peek() == "<":  # bash's <<< here-string: a plain word follows
            self._copy()
            return
        strip = self._peek() == "-"
        if strip:
            self._copy()
        while self._peek() in (" ", "\t"):
            self._copy()
        delimiter: list[str] = []
        quoted = False
        while (c := self._peek()) is not None and not (isinstance(c, str) and c in _BREAKS):
            if isinstance(c, int):
                raise self._error("a placeholder cannot be a here-document's delimiter", self.i)
            self._copy()
            if c in "'\"":
                quoted = True
                while (d := self._peek()) is not None and d != c:
                    if isinstance(d, int):
                        raise self._error(
                            "a placeholder cannot be a here-document's delimiter", self.i
                        )
                    delimiter.append(d)
                    self._copy()
                self._copy()
            elif c == "\\":
                quoted = True
            else:
                delimiter.append(c)
        self.heredocs.append(("".join(delimiter), quoted, strip))

    def _heredoc_bodies(self) -> None:
        pending, self.heredocs = self.heredocs, []
        for delimiter, quoted, strip in pending:
            while self._peek() is not None and not self._ends(delimiter, strip):
                while (c := self._peek()) is not None:
                    if c == "\n":
                        self._copy()
                        break
                    if quoted and isinstance(c, int):
                        raise self._error(
                            "a placeholder in a quoted here-document (<<'EOF') is not "
                            "substituted by the shell; leave the delimiter unquoted",
                            self.i,
                        )
                    if quoted:
                        self._copy()
                    else:
                        self._step(c, "heredoc")

    def _ends(self, delimiter: str, strip: bool) -> bool:
        """If the next line is ``delimiter``, copy it with its newline."""
        j, text = self.i, []
        while j < len(self.toks):
            t = self.toks[j]
            if isinstance(t, int):
                return False
            if t[0] == "\n":
                break
            text.append(t[0])
            j += 1
        line = "".join(text)
        if (line.lstrip("\t") if strip else line) != delimiter:
            return False
        self._copy(j - self.i + 1)
        return True
