"""The sweep's points as runner Jobs: the one place a point becomes a job.

``make_jobs`` renders each point's command and ``-e`` values (derived values in their
order), sets ``RANGEEXPR_INDEX``/``RANGEEXPR_COUNT``, adds its resource request, its
``--workdir`` and its result-file name, and passes over the points a resumed job log
records as done. It is a generator: the runner pulls one job at a time.

Runtime variables: ``RANGEEXPR_INDEX`` and ``RANGEEXPR_COUNT`` are known when a job is
made; ``RANGEEXPR_SLOT`` and ``RANGEEXPR_GPUS`` (``LATE_NAMES``) only when it starts, so a
job whose templates name them is made with them as placeholders and carries a ``finish``
that renders it again, working directory included, once the backend knows them. Only
the local backend's pool has slots and GPUs; the remote backends refuse such jobs.

A job with nothing of the above asked for costs what it always did: its templates
rendered from the point, one ``Job``, no ``replace``.

Result-file names (``--results DIR``): ``DIR/<name>.out``, where ``name`` is the point's
values, ``NAME=VALUE`` joined by ``,`` in the point's order, each VALUE the text a
template writes for ``$NAME``, percent-encoded so that ``,`` ``=`` ``/`` ``%`` and ``~``
never stand in it raw (``result_name``). Values do not move when a sweep grows or is
reordered, so a resumed, grown sweep writes each point's output where it always went.
Points with the same values share a name; the runner gives a second one running at the
same time ``<name>~<index>`` (``runner/_output.ByName``).
"""

from __future__ import annotations

import functools
import hashlib
import shlex
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

from ._errors import RangeExprError
from ._parse import RUNTIME_NAMES
from ._template import Command, Derived, Template, WithRuntime
from ._text import int_text

if TYPE_CHECKING:
    from runner import Job

    from ._points import BaseSweep, Point
    from ._requests import Requests

__all__ = [
    "LATE_NAMES",
    "RUNTIME_NAMES",
    "Placeholder",
    "ResultNames",
    "make_jobs",
    "result_name",
    "runtime_names",
]

LATE_NAMES = frozenset({"RANGEEXPR_SLOT", "RANGEEXPR_GPUS"})  # known when the job starts
_SAFE = "+-._@"  # kept as they are in a result-file name, with letters and digits
_NAME_BYTES = 200  # a longer result-file name is cut and ends with a hash of the whole
_HASH_DIGITS = 16
_CACHED = 4096  # value texts whose encoding is kept, per ResultNames


class Placeholder:
    """A runtime variable not known yet: renders as its placeholder, whatever the spec."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __format__(self, spec: str) -> str:
        return f"${{{self.name}:{spec}}}" if spec else f"${self.name}"

    def __str__(self) -> str:
        return f"${self.name}"


class _Skipped(Protocol):
    skipped: int


class _Done(Protocol):
    """The points a resumed run skips (``_cli/_resume.Done``)."""

    def __contains__(self, point: Point, /) -> bool: ...


def runtime_names(
    command: Command, env: Mapping[str, Template], workdir: Template | None = None
) -> frozenset[str]:
    """The ``RANGEEXPR_*`` variables the command, ``-e`` and ``--workdir`` templates name."""
    names = command.names.union(*(t.names for t in env.values()))
    if workdir is not None:
        names |= workdir.names
    return names & set(RUNTIME_NAMES)


def make_jobs(
    sweep: BaseSweep,
    command: Command,
    env: Mapping[str, Template],
    *,
    skip: _Done | None = None,
    counts: _Skipped | None = None,
    requests: Requests | None = None,
    workdir: Template | None = None,
    named: bool = False,
) -> Iterator[Job]:
    """The sweep's jobs, made one at a time as the runner pulls them.

    ``skip``: points not to run (counted in ``counts.skipped``). ``requests``: what each
    job asks for. ``workdir``: each job runs in that directory, made before it starts (for
    a job rendered at start, by its ``finish``); ``cd`` into it is part of the job's
    command, so every backend runs it the same way. ``named``: give each job its
    result-file name (``result_name``), for ``--results``.
    """
    from runner import Job, Request

    count = sweep.full_size
    count_text = int_text(count)
    templates = tuple(env.items())
    runtime = runtime_names(command, env, workdir)
    late = runtime & LATE_NAMES
    placeholders = {name: Placeholder(name) for name in late}
    derived = Derived.needed(env, command, workdir)
    fixed = Request()  # every job's, unless requests vary by point (``request_of``)
    request_of: Callable[[Point], Request] | None = None
    if requests is not None:
        if requests.fixed is not None:
            fixed = requests.fixed
        else:
            request_of = requests.of
    name_of = ResultNames() if named else None
    again = _Late(command, templates, derived, workdir) if late else None
    late_directory = again is not None and again.make
    values: Point | WithRuntime
    for point in sweep:
        if skip is not None and point in skip:
            if counts is not None:
                counts.skipped += 1
            continue
        index = point.index
        values = point
        early: dict[str, object] | None = None
        if runtime:
            early = {"RANGEEXPR_INDEX": index, "RANGEEXPR_COUNT": count}
            values = WithRuntime(point, {**early, **placeholders})
        if derived is None:
            extra = {name: template.render(values) for name, template in templates}
        else:
            extra, values = derived.render(values)
        extra["RANGEEXPR_INDEX"] = int_text(index)
        extra["RANGEEXPR_COUNT"] = count_text
        argv, line = command.argv(values), command.line(values)
        if workdir is not None:
            directory = workdir.render(values)
            if not late_directory:
                _make_directory(directory, RangeExprError)
            argv, line = in_directory(directory, argv, line)
        job = Job(
            index,
            argv,
            line,
            extra,
            point,
            fixed if request_of is None else request_of(point),
            None,
            "" if name_of is None else name_of(point),
        )
        if again is not None:
            assert early is not None
            job = replace(job, finish=again.finisher(job, point, early))
        yield job


class _Late:
    """Renders a sweep's jobs again when they start, with their slot and GPUs."""

    __slots__ = ("command", "derived", "make", "templates", "workdir")

    def __init__(
        self,
        command: Command,
        templates: tuple[tuple[str, Template], ...],
        derived: Derived | None,
        workdir: Template | None,
    ):
        self.command = command
        self.templates = templates
        self.derived = derived
        self.workdir = workdir
        # whether the directory is known only at start, so made only then
        self.make = workdir is not None and not workdir.names.isdisjoint(LATE_NAMES)

    def finisher(
        self, job: Job, point: Point, early: Mapping[str, object]
    ) -> Callable[[Mapping[str, str]], Job]:
        """``job.finish``."""
        return functools.partial(self._finish, job, point, early)

    def _finish(
        self, job: Job, point: Point, early: Mapping[str, object], variables: Mapping[str, str]
    ) -> Job:
        from runner import StorageError

        slot = variables.get("RANGEEXPR_SLOT", "")
        runtime = {
            **early,
            "RANGEEXPR_SLOT": int(slot) if slot.isdigit() else slot,
            "RANGEEXPR_GPUS": variables.get("RANGEEXPR_GPUS", ""),
        }
        values = WithRuntime(point, runtime)
        if self.derived is None:
            rendered = {name: template.render(values) for name, template in self.templates}
        else:
            rendered, values = self.derived.render(values)
        env = dict(job.env)
        env.update(rendered)
        argv, line = self.command.argv(values), self.command.line(values)
        if self.workdir is not None:
            directory = self.workdir.render(values)
            if self.make:  # the run stops, the job runs again on --resume
                _make_directory(directory, StorageError)
            argv, line = in_directory(directory, argv, line)
        return replace(job, argv=argv, command=line, env=env, finish=None)


def _make_directory(directory: str, error: Callable[[str], Exception]) -> None:
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"cannot make --workdir {directory}: {exc.strerror or exc}") from None


def in_directory(directory: str, argv: tuple[str, ...], line: str) -> tuple[tuple[str, ...], str]:
    """``argv`` and its command line, run in ``directory``."""
    return (
        ("/bin/sh", "-c", 'cd -- "$0" && exec "$@"', directory, *argv),
        f"cd -- {shlex.quote(directory)} && {line}",
    )


class ResultNames:
    """``result_name`` for the points of one sweep, keeping the encoding of common values
    (a case value's text comes back at every point)."""

    __slots__ = ("_encoded",)

    def __init__(self) -> None:
        self._encoded: dict[str, str] = {}

    def __call__(self, point: Point) -> str:
        encoded = self._encoded
        parts = []
        for name in point:
            text = point.text(name)
            value = encoded.get(text)
            if value is None:
                value = _encode(text)
                if len(encoded) < _CACHED:
                    encoded[text] = value
            parts.append(f"{name}={value}")
        return _bounded(",".join(parts))


def result_name(point: Point) -> str:
    """The stem of ``point``'s result files: ``LR=0.01,SEED=3``, ``MODEL=big%20one``.

    ``NAME=VALUE`` pairs joined by ``,``; VALUE is the text ``$NAME`` renders, with every
    character other than letters, digits and ``+-._@`` percent-encoded (UTF-8), so the
    name is ASCII and splits back into pairs. Past 200 bytes it is cut (never inside a
    ``%XX``) and ends with ``~`` and 16 hex digits of the SHA-256 of the whole name, so
    that distinct points keep distinct names within a file-name limit of 255 bytes.
    """
    return ResultNames()(point)


def _encode(text: str) -> str:
    # quote() leaves "~" alone (RFC 3986 unreserved): we keep it for our own suffixes
    return quote(text, safe=_SAFE).replace("~", "%7E")


def _bounded(stem: str) -> str:
    """``stem`` if it is short enough, else its cut prefix, ``~`` and its hash."""
    if len(stem) <= _NAME_BYTES:  # ASCII: characters are bytes
        return stem
    digest = hashlib.sha256(stem.encode()).hexdigest()[:_HASH_DIGITS]
    cut = stem[: _NAME_BYTES - _HASH_DIGITS - 1]
    escape = cut.find("%", len(cut) - 2)  # an escape cut short: drop it whole
    if escape >= 0:
        cut = cut[:escape]
    return f"{cut}~{digest}"
