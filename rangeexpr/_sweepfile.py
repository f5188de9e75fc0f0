"""Sweep files: a sweep written in TOML, versioned next to the code it runs.

Everything the command line can say, under the RunSpec's field names (``-`` or ``_``)::

    exec = "python train.py --lr $LR --seed $SEED --out runs/$RUN"
    jobs = 4
    joblog = "sweep.jsonl"

    [ranges]                  # NAME = "KIND:ARGS", in order (the first varies slowest)
    SEED = "range:3"

    [env]                     # -e NAME=TEMPLATE
    RUN = "lr${LR}_s$SEED"

    [[grid]]                  # a union: each grid's own ranges, after the shared ones
    MODEL = "case:small"
    LR = "linspace:0.01,0.1,3"

``exec`` is ``command``, ``ranges`` are ``exprs`` (a list of ``NAME=KIND:ARGS`` is taken
too), ``grid`` are ``grids``; every other key goes to ``RunSpec.from_mapping`` as it is,
so a field added to RunSpec can be written in a file at once. Flags on the command line
override the file: ``-r`` and ``-e`` by name, every other option whole. Errors point into
the file: its line and column, and the line with a marker.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from ._errors import RangeExprError
from ._spec import RunSpec

__all__ = ["spec_from_file"]

_ALIASES = {"exec": "command", "ranges": "exprs", "grid": "grids"}
_AT = re.compile(r"\(at line (\d+), column (\d+)\)$")
_GRID = re.compile(r"^grid (\d+)\b")
_FIELD = re.compile(r"^run spec: (?:unknown key '([^']+)'|(\w+) must)")


def spec_from_file(path: str, cli: RunSpec, given: Collection[str] = ()) -> RunSpec:
    """The spec the file at ``path`` holds, with the fields ``given`` on the command line
    (RunSpec field names) taken from ``cli``."""
    import tomllib  # here, not at start-up: every command checks its arguments for a file

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise RangeExprError(f"cannot read the sweep file {path}: {reason}") from None
    located = _Located(path, text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise located.at_error(str(exc)) from None
    mapping = located.fields(data)
    for name in given:
        value = getattr(cli, name)
        if name == "exprs":
            value = _by_name(mapping.get("exprs", ()), value, lambda e: e.partition("=")[0].strip())
        elif name == "env":
            value = _by_name(mapping.get("env", ()), value, lambda pair: pair[0])
        mapping[name] = value
    try:
        spec = RunSpec.from_mapping(mapping)
        full = spec.sweep()  # checked now, so an error points into the file
        spec.selected(full)
        spec.templates(full)
    except RangeExprError as exc:
        raise located.relocate(exc) from None
    return spec


def _by_name(old: Any, new: tuple[Any, ...], name: Any) -> tuple[Any, ...]:
    """``old`` with the items of ``new`` of the same name replaced, the others appended."""
    items = {name(item): item for item in old}
    items.update((name(item), item) for item in new)
    return tuple(items.values())


class _Located:
    """A sweep file's text, to point an error at the key or value it is about."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        self.keys: dict[str, str] = {}  # RunSpec field -> the key written in the file

    def fields(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The file's table as RunSpec fields: aliases resolved, ranges as expressions."""
        known = {f.name for f in fields(RunSpec)}
        mapping: dict[str, Any] = {}
        for key, given in data.items():
            name = key.replace("-", "_")
            name = _ALIASES.get(name, name)
            value = given
            if name == "exprs":
                value = self._ranges(given, key)
            elif name == "grids":
                if not isinstance(given, list):
                    raise self.at_key(key, f"{key} is a list of tables: write [[{key}]]")
                value = [self._ranges(grid, key) for grid in given]
            elif name not in known:
                name = key  # from_mapping names it with the known ones
            self.keys[name] = key
            mapping[name] = value
        return mapping

    def _ranges(self, value: Any, key: str) -> list[str]:
        if isinstance(value, Mapping):
            bad = [n for n, v in value.items() if not isinstance(v, str)]
            if bad:
                raise self.at_key(bad[0], f'{bad[0]} must be a range "KIND:ARGS" (a string)')
            return [f"{n}={v}" for n, v in value.items()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise self.at_key(key, f'{key} is a table of NAME = "KIND:ARGS"')

    # -- errors -------------------------------------------------------------------------

    def at_error(self, message: str) -> RangeExprError:
        """A TOML syntax error, whose message ends ``(at line L, column C)``."""
        found = _AT.search(message)
        if found is None:
            return RangeExprError(f"{self.path}: {message}")
        line, col = int(found[1]), int(found[2])
        return self._at(self._offset(line) + col - 1, 1, message[: found.start()].strip())

    def at_key(self, key: str, message: str) -> RangeExprError:
        """An error about ``key``: marked where the file sets it (or defines its table)."""
        pattern = rf"^[ \t]*(?:\[+[ \t]*)?[\"']?{re.escape(key)}[\"']?[ \t]*(?:=|\])"
        found = re.search(pattern, self.text, re.MULTILINE)
        if found is None:
            return RangeExprError(f"{self.path}: {message}")
        start = found.start() + len(found[0]) - len(found[0].lstrip(" \t["))
        return self._at(start, len(key), message)

    def relocate(self, exc: RangeExprError) -> RangeExprError:
        """An error from the spec, its sweep or its templates, marked in the file."""
        field = _FIELD.match(exc.message)
        if field is not None:
            key = field[1] or field[2]
            return self.at_key(self.keys.get(key, key), exc.message)
        source, span = exc.source, exc.span or (0, len(exc.source))
        grid = _GRID.match(exc.message)  # "grid N: ..." of a union
        if not source and grid is not None:
            headers = list(re.finditer(r"^[ \t]*\[\[[ \t]*grid[ \t]*\]\]", self.text, re.M))
            if int(grid[1]) <= len(headers):
                found = headers[int(grid[1]) - 1]
                start = found.end() - len(found[0].lstrip(" \t"))
                return self._at(start, len(found[0].strip()), exc.message)
        name, eq, rest = source.partition("=")
        if eq and name.strip().isidentifier():  # a range, written NAME = "KIND:ARGS"
            pattern = rf"^[ \t]*{re.escape(name.strip())}[ \t]*=[ \t]*[\"']"
            for found in re.finditer(pattern, self.text, re.MULTILINE):  # in any grid
                if self.text.startswith(rest, found.end()):
                    start = found.end() + max(0, span[0] - len(name) - 1)
                    return self._at(start, max(1, span[1] - span[0]), exc.message)
        for quote in ('"', "'"):  # a string written as it is: an expression, a template
            at = self.text.find(f"{quote}{source}{quote}") if source else -1
            if at >= 0:
                return self._at(at + 1 + span[0], max(1, span[1] - span[0]), exc.message)
        return exc  # not from the file: from the command line

    def _offset(self, line: int) -> int:
        offset = 0
        for _ in range(line - 1):
            offset = self.text.index("\n", offset) + 1
        return offset

    def _at(self, start: int, width: int, message: str) -> RangeExprError:
        line = self.text.count("\n", 0, start) + 1
        col = start - (self.text.rfind("\n", 0, start) + 1) + 1
        return RangeExprError(
            f"{self.path}:{line}:{col}: {message}", self.text, (start, start + width)
        )
