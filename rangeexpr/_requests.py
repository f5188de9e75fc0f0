"""Resource requests on our side: ``-r NAME=VALUE`` and request templates.

``-r`` takes both range expressions and Backend.AI's resource requests, told apart by
their form (``split_exprs``). A request's value may be a template (``-r 'gpu=$NGPU'``):
``Requests`` renders it per point, and checks it, with the other templates, over every
case value and the ends of other ranges before anything runs. The pool itself, the slots
and the GPUs are the runner's (``runner/_resources.py``); the jobs are made with their
requests in ``_jobs.py``.

Also here: the warnings for what Backend.AI's client did differently (``parity_warnings``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from ._axes import CaseAxis
from ._errors import RangeExprError
from ._parse import KINDS, RUNTIME_NAMES
from ._template import Template

if TYPE_CHECKING:
    from runner import Pool, Request

    from ._ast import Value
    from ._points import BaseSweep

__all__ = ["RUNTIME_NAMES", "Requests", "parity_warnings", "request_names", "split_exprs"]

_KNOWN = "cpu, mem, gpu, cuda.device"  # runner._resources.KNOWN_RESOURCES, without loading it
_RANGE_VALUE = re.compile(rf"\s*(?:[A-Za-z_]\w*\s*:|(?:{'|'.join(KINDS)})\b)")
_SAMPLES = 10_000  # request templates are checked on at most this many value combinations
# Shell syntax that a command without --shell passes on as literal arguments.
_OPERATORS = frozenset({">", ">>", "<", "<<", "|", "||", "&&", ";", "&", ">&", "<&", "&>"})


def split_exprs(items: Sequence[str]) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """``-r`` values as range expressions and resource requests ``(name, value)``.

    ``NAME=KIND:ARGS`` (or a value starting with a kind) is a range, left to the parser;
    ``NAME=VALUE`` with NAME a resource (cpu, mem, gpu, cuda.device) a request; anything
    else, like ``X=3``, an error that shows both forms.
    """
    exprs: list[str] = []
    requests: list[tuple[str, str]] = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or _RANGE_VALUE.match(value) or not name.strip().isidentifier():
            exprs.append(item)
            continue
        if name.strip().lower() in ("cpu", "mem", "gpu"):  # the common case: no import
            requests.append((name.strip(), value))
            continue
        from runner import resource_name

        if resource_name(name) is None:
            raise RangeExprError(
                f"-r {item}: expected a range NAME=KIND:ARGS (e.g. {name.strip()}=case:{value}"
                f" or {name.strip()}=range:{value}) or a resource request NAME=VALUE with NAME"
                f" one of {_KNOWN} (e.g. cpu=1, mem=256m, gpu=1); other resources go to"
                " --resources NAME=VALUE",
                item,
                (0, len(item)),
            )
        requests.append((name.strip(), value))
    return tuple(exprs), tuple(requests)


def request_names(pairs: Sequence[tuple[str, str]]) -> frozenset[str]:
    """The range names the request templates use (``-r 'gpu=$NGPU'``: NGPU)."""
    names: set[str] = set()
    for _, value in pairs:
        if "$" in value:
            names |= Template(value).names
    return frozenset(names)


class Requests:
    """What each job asks for: one Request, or one per point where a value is a template.

    ``custom``: whether names other than cpu, mem, gpu are allowed (Ray's custom
    resources). Bad values and templates are RangeExprErrors, raised here for the fixed
    request and, for templates, for the sample points ``check`` renders.
    """

    def __init__(self, pairs: Sequence[tuple[str, str]], sweep: BaseSweep, *, custom: bool):
        self.pairs = tuple(pairs)
        self.custom = custom
        self.templates = tuple((name, _template(name, value)) for name, value in pairs)
        self.names = frozenset().union(*(t.names for _, t in self.templates))
        for name, template in self.templates:
            bad = template.names & set(RUNTIME_NAMES)
            if bad:
                raise RangeExprError(
                    f"--resources {name}: ${min(bad)} is not known before the job starts; "
                    "a request can use range variables only",
                    template.source,
                )
            template.check(sweep)
        self.fixed: Request | None = None if self.names else self._parse(self.pairs)
        self._sweep = sweep

    @property
    def asks_for_gpus(self) -> bool:
        """Whether some job may ask for a GPU (a template might)."""
        return any(
            name.strip().lower() in ("gpu", "cuda.device")
            and (template.names or template.source.strip() not in ("0", ""))
            for name, template in self.templates
        )

    @property
    def asks_for_memory(self) -> bool:
        return any(name.strip().lower() == "mem" for name, _ in self.pairs)

    def of(self, values: Mapping[str, Value]) -> Request:
        """The request of the point with these values."""
        if self.fixed is not None:
            return self.fixed
        return self._parse([(name, t.render(values)) for name, t in self.templates])

    def samples(self) -> Iterator[Request]:
        """The distinct requests of the sample points: every combination of each used
        axis's case values, or its first and last value (as templates are checked)."""
        if self.fixed is not None:
            yield self.fixed
            return
        axes = [self._sweep.axis(name) for name in sorted(self.names)]
        indices = [
            range(ax.size) if isinstance(ax, CaseAxis) else sorted({0, ax.size - 1}) for ax in axes
        ]
        seen: set[Request] = set()
        for combo in itertools.islice(itertools.product(*indices), _SAMPLES):
            values = _Sample({ax.name: (ax[i], ax.text(i)) for ax, i in zip(axes, combo)})
            request = self.of(values)
            if request not in seen:
                seen.add(request)
                yield request

    def check(self, pool: Pool) -> None:
        """RangeExprError if a sample request can never fit in ``pool`` (before any runs)."""
        from runner import ResourceError

        for request in self.samples():
            try:
                pool.check(request)
            except ResourceError as exc:
                raise RangeExprError(f"cannot run: {exc}") from None

    def _parse(self, pairs: Sequence[tuple[str, str]]) -> Request:
        from runner import Request, ResourceError

        try:
            return Request.parse(pairs, custom=self.custom)
        except ResourceError as exc:
            raise RangeExprError(str(exc)) from None


def _template(name: str, value: str) -> Template:
    try:
        return Template(value)
    except RangeExprError as exc:
        raise RangeExprError(f"-r {name}={value}: {exc.message}", value, exc.span) from None


class _Sample(dict[str, "Value"]):
    """Values with their texts as written, for rendering a template off a point."""

    def __init__(self, pairs: Mapping[str, tuple[Value, str]]):
        super().__init__({name: value for name, (value, _) in pairs.items()})
        self._texts = {name: text for name, (_, text) in pairs.items()}

    def text(self, name: str) -> str:
        return self._texts[name]


def parity_warnings(sweep: BaseSweep, command: str | None, shell: bool) -> list[str]:
    """What Backend.AI's client did that we do not, where a ported command would differ."""
    warnings = []
    for axis in sweep.axes:
        if not isinstance(axis, CaseAxis):
            continue
        seen: set[tuple[type, Value]] = set()
        duplicates: list[str] = []
        for i in range(axis.size):
            key = (type(axis[i]), axis[i])
            if key in seen and axis.text(i) not in duplicates:
                duplicates.append(axis.text(i))
            seen.add(key)
        if duplicates:
            shown = ", ".join(map(repr, duplicates[:5]))
            warnings.append(
                f"{axis.name} lists {shown} more than once: each copy runs as its own job "
                "(Backend.AI ran it once)"
            )
    if command is not None and not shell:
        operators = _operators(command)
        if operators:
            shown = " ".join(operators)
            warnings.append(
                f"--exec holds shell syntax ({shown}) but runs without a shell: each is passed "
                "to the program as a literal argument; add --shell to run it through /bin/sh "
                "(Backend.AI ran --exec in a shell)"
            )
    return warnings


def _operators(command: str) -> list[str]:
    """The shell operators standing unquoted in ``command``, in order of appearance."""
    import shlex

    lexer = shlex.shlex(command, posix=False, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # an unclosed quote: the command itself reports it
        return []
    found: list[str] = []
    for token in tokens:
        if token in _OPERATORS and token not in found:
            found.append(token)
    return found
