"""Metrics a job reports: the last value of each one its output prints, or a JSON file.

Two ways for a job to report a number, both read by the runner after an attempt ends,
whatever backend ran it (every backend leaves the job's output in the attempt's stdout
file):

- its output: ``Metric.parse("acc")`` finds lines like ``acc: 0.95`` or ``acc=0.95`` (also
  ``'acc': 0.95`` in a printed dict), ``Metric.parse("acc=REGEX")`` another format, the
  value being the regex's one group. The last value printed wins.
- a file: with ``file_variable`` set, each attempt gets that environment variable naming a
  fresh path; a job may write a JSON object of numbers there. Its values win over printed
  ones; its other keys are kept too. The file is removed once read. It only works where
  the job sees our file system (a local job; a remote one only on a shared file system).

A metric that is missing or not a finite number is ``None``, never an error: a job that
printed ``acc: n/a`` still succeeded. The output is read backwards in blocks of whole
lines, and only until every metric is found, so a job that printed a gigabyte and its
metrics at the end costs a few blocks; big files are read in a worker thread.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

__all__ = ["Metric", "MetricError", "Metrics", "Number"]

Number = int | float
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*")
_INT = re.compile(rb"[+-]?[0-9]{1,18}")
_WORD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-/")
_BLOCK = 1 << 20
_THREAD_ABOVE = 1 << 20  # bytes of output: smaller files are scanned inline
_JSON_MAX = 1 << 24  # a bigger metrics file is ignored (its metrics are missing)


class MetricError(ValueError):
    """A ``--metric`` that cannot be used; ``span``: where in its text."""

    def __init__(self, message: str, span: tuple[int, int]):
        super().__init__(message)
        self.span = span


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric: its name, and the pattern whose group 1 is its value in the output.

    ``word``: for a plain NAME, the name the pattern starts with. It is looked for with
    ``bytes.rfind`` from the end (far faster than a regex search), as a whole word.
    """

    name: str
    pattern: re.Pattern[bytes]
    word: bytes | None = None

    @classmethod
    def parse(cls, text: str) -> Metric:
        """``NAME`` or ``NAME=REGEX``; MetricError saying what is wrong, and where."""
        name, sep, regex = text.partition("=")
        if not _NAME.fullmatch(name):
            raise MetricError(
                f"a metric is NAME or NAME=REGEX, NAME a letter or _ then letters, digits, "
                f"_ . - /: got {text!r}",
                (0, max(1, len(name))),
            )
        if not sep:
            word = name.encode()
            # NAME (also quoted, as a printed dict has it), then : or =, then the value
            after = rb"[\"']?[ \t]*[:=][ \t]*([^\s,;}\]]+)"
            return cls(name, re.compile(re.escape(word) + after), word)
        at = len(name) + 1
        try:
            pattern = re.compile(regex.encode(), re.MULTILINE)
        except re.error as exc:
            where = at + (exc.pos or 0)
            raise MetricError(
                f"--metric {name}: bad regex: {exc.msg}", (where, where + 1)
            ) from None
        if pattern.groups != 1:
            raise MetricError(
                f"--metric {name}: the regex must have exactly one group, the value "
                f"(it has {pattern.groups}); use (?:...) for the others",
                (at, len(text)),
            )
        return cls(name, pattern)


class Metrics:
    """What the runner reads after each attempt: ``await metrics.read(stdout, file)``."""

    def __init__(self, metrics: Sequence[Metric], *, file_variable: str | None = None):
        names = [m.name for m in metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"a metric is named twice: {', '.join(names)}")
        self.metrics = tuple(metrics)
        self.names = tuple(names)
        self.file_variable = file_variable

    async def read(
        self, stdout: Path, file: Path | None, size: int | None = None
    ) -> dict[str, Number | None]:
        """Every metric's value (``None`` if missing), then the file's other keys.

        ``size``: stdout's, when the backend said (``Outcome.output``): no lookup then.
        """
        if size is None:
            try:
                size = os.stat(stdout).st_size
            except OSError:
                size = 0
        if size > _THREAD_ABOVE:
            raw = await trio.to_thread.run_sync(scan, stdout, self.metrics)
        elif size:
            raw = scan(stdout, self.metrics)
        else:
            raw = {}
        values = {name: number(raw.get(name)) for name in self.names}
        if file is not None:
            values.update(read_file(file))
        return values


def scan(path: Path, metrics: Sequence[Metric]) -> dict[str, bytes | None]:
    """The last text each metric's pattern matched in ``path``, read from the end.

    Blocks are cut after a line break, so a pattern sees whole lines (a line longer than
    a block is seen in pieces); a metric found in a later block is not looked for in
    earlier ones, and reading stops once all are found.
    """
    found: dict[str, bytes | None] = {}
    left = list(metrics)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return found
    try:
        end = os.fstat(fd).st_size
        while end > 0 and left:
            start = max(0, end - _BLOCK)
            data = os.pread(fd, end - start, start)
            if not data:  # cut short meanwhile
                break
            lines = 0 if start == 0 else data.find(b"\n") + 1  # where whole lines begin
            if lines == len(data):  # the block is inside one long line: take it as it is
                lines = 0
            end = start + lines
            for metric in list(left):
                match = _last(metric, data, lines)
                if match is not None:
                    found[metric.name] = match.group(1)
                    left.remove(metric)
    finally:
        os.close(fd)
    return found


def _last(metric: Metric, data: bytes, lo: int) -> re.Match[bytes] | None:
    """The last match of ``metric`` in ``data[lo:]``; a plain name only as a whole word."""
    word = metric.word
    if word is None:
        match = None
        for match in metric.pattern.finditer(data, lo):  # noqa: B007 (the last one)
            pass
        return match
    end = len(data)
    while (at := data.rfind(word, lo, end)) >= 0:
        if at == 0 or data[at - 1] not in _WORD:
            match = metric.pattern.match(data, at)
            if match is not None:
                return match
        end = at + len(word) - 1  # an earlier one may overlap this one
    return None


def number(raw: bytes | None) -> Number | None:
    """A printed value as a number: an int if it is written as one, else a finite float."""
    if raw is None:
        return None
    raw = raw.strip()
    try:
        value: Number = int(raw) if _INT.fullmatch(raw) else float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_file(path: Path) -> dict[str, Number | None]:
    """The metrics of a JSON object in ``path`` (removed once read); {} if none or not one."""
    try:
        with path.open("rb") as f:
            text = f.read(_JSON_MAX + 1)
    except FileNotFoundError:  # the job wrote none: most jobs, so no more system calls
        return {}
    except OSError:
        text = b""
    with contextlib.suppress(OSError):
        os.unlink(path)
    if len(text) > _JSON_MAX:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(key): _json_number(value) for key, value in data.items()}


def _json_number(value: object) -> Number | None:
    if type(value) is int or (type(value) is float and math.isfinite(value)):
        return value
    return None
