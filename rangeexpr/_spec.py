"""The run specification: everything that defines a run, typed, frozen, built once.

The command line builds a ``RunSpec`` from argv (``_cli``); a sweep file will build one
from a mapping (``RunSpec.from_mapping``). Everything downstream (the sweep, the job-log
header and resume, the backends, the node-side run of a packed job) reads the spec, never
argparse. It holds plain data only, so it round-trips through JSON exactly.

``identity()`` is the job log's ``source``: what makes two runs the same sweep (the
expressions, views and templates; not the slice, shard or how the jobs run), so a run can
resume a log written by another shard or with another ``-j``. Its keys and value shapes
are those of every job log written so far; changing them makes old logs unresumable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from ._errors import RangeExprError
from ._points import parse_shard
from ._text import ascii_int, did_you_mean, shorten

if TYPE_CHECKING:
    from runner import Metrics

    from ._points import BaseSweep
    from ._sweep import Sweep
    from ._template import Command, Template
    from ._union import Union

__all__ = [
    "BACKENDS",
    "RunSpec",
    "parse_env",
    "parse_link",
    "parse_metrics",
    "parse_shard",
    "parse_slice",
]

BACKENDS = ("local", "ray", "slurm")
RESERVED = "RANGEEXPR_"  # the prefix of the variables rangeexpr sets for each job


@dataclass(frozen=True, slots=True)
class RunSpec:
    """A run: the sweep and its selection, the templates, and how to run the jobs.

    Build it with ``from_mapping`` (or the command line); the constructor checks every
    field's type and range and raises RangeExprError naming the field.
    """

    exprs: tuple[str, ...]  # -r/--exec-range/--env-range/positional, in order
    link: tuple[tuple[str, ...], ...] = ()
    where: str | None = None
    shuffle: str | None = None  # the seed text, as given
    sample: int | None = None
    seed: str | None = None  # --seed for --sample
    slice: tuple[int | None, int | None] | None = None
    shard: tuple[int, int] | None = None  # (K, N)
    command: str | None = None  # --exec template
    env: tuple[tuple[str, str], ...] = ()  # -e NAME=TEMPLATE, in order
    shell: bool = False
    # how to run
    jobs: int = 1  # -j
    retries: int = 0
    timeout: float | None = None
    halt: str | None = None  # as given; parsed by runner.parse_halt
    joblog: str | None = None
    resume: bool = False
    results: str | None = None
    dry_run: bool = False
    progress: bool = True
    keep_leftovers: bool = False
    backend: str = "local"  # one of BACKENDS
    address: str | None = None
    per_job: int = 1
    entrypoint_num_cpus: float = 1.0
    # slurm
    partition: str | None = None  # sbatch --partition
    time_limit: str | None = None  # sbatch --time, in Slurm's format (e.g. "1:00:00")
    sbatch_options: tuple[str, ...] = ()  # passed to sbatch as they are
    # growing sweeps
    grids: tuple[tuple[str, ...], ...] = ()  # a union: each grid's own exprs (exprs: shared)
    overwrite: bool = False  # replace an existing --joblog / reuse another sweep's --results
    workdir: str | None = None  # a template: each job's own working directory
    # results (how output is read and shown: not part of identity())
    metrics: tuple[str, ...] = ()  # --metric NAME or NAME=REGEX, in order
    tag: bool = False  # --tag: each output line prefixed with the job's index and values
    keep_order: bool = False  # -k: outputs in the sweep's order
    # resources (how jobs run: not part of identity(), as -j is not)
    resources: tuple[tuple[str, str], ...] = ()  # -r cpu=1 / --resources NAME=VALUE, in order
    gpus: str | None = None  # --gpus LIST|auto|none; None: auto if a request asks for a GPU

    def __post_init__(self) -> None:
        for name, (valid, expected) in _CHECKS.items():
            value = getattr(self, name)
            if not valid(value):
                raise RangeExprError(f"run spec: {name} must be {expected}, not {shorten(value)}")
        parse_env([f"{name}={template}" for name, template in self.env])

    # -- building and serializing ------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RunSpec:
        """A spec from plain data (JSON or TOML): lists for tuples, ``env`` a table or pairs.

        An unknown key is refused with the list of the known ones, so a misspelt option
        is an error instead of a silent default.
        """
        known = [f.name for f in fields(cls)]
        unknown = [key for key in data if key not in known]
        if unknown:
            key = str(unknown[0])
            raise RangeExprError(
                f"run spec: unknown key {key!r}{did_you_mean(key, known)} "
                f"(known: {', '.join(known)})"
            )
        values = {key: _plain(key, value) for key, value in data.items()}
        if "exprs" not in values:
            raise RangeExprError("run spec: exprs is required (the range expressions)")
        return cls(**values)

    def to_json(self) -> str:
        """The spec as a JSON object; ``from_json`` gives back an equal spec."""
        import json  # json, hashlib and shlex load when used: ``check`` starts without them

        return json.dumps({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        import json

        try:
            data = json.loads(text)
        except ValueError as exc:
            raise RangeExprError(f"run spec: not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise RangeExprError("run spec: expected a JSON object")
        return cls.from_mapping(data)

    # -- what identifies the sweep -------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        """The job log header's ``source``: the expressions, views and templates."""
        source: dict[str, Any] = {
            "exprs": list(self.exprs),
            "exec": self.command,
            "env": dict(self.env),
            "shell": self.shell,
        }
        if self.link:
            source["link"] = [list(group) for group in self.link]
        for name in ("where", "shuffle", "sample", "seed"):
            value = getattr(self, name)
            if value is not None:
                source[name] = value
        # a union's grids and the working directory, only when given (so the
        # source of every other sweep stays what earlier job logs hold)
        if self.grids:
            source["grids"] = [list(grid) for grid in self.grids]
        if self.workdir is not None:
            source["workdir"] = self.workdir
        return source

    def sweep_id(self) -> str:
        """A short stable id of ``identity()`` (16 hex digits), e.g. in Ray submission ids."""
        import hashlib
        import json

        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def node_argv(
        self, start: int, stop: int, *, jobs: int, joblog: str, results: str, timeout: float | None
    ) -> list[str]:
        """``rangeexpr run`` of the points ``[start, stop)`` of this sweep, on another machine.

        Only the plain or linked sweep: a slice counts positions in the viewed order, so
        ``--where``/``--shuffle``/``--sample`` would select other points.
        """
        argv = ["rangeexpr", "run", "--no-progress", "-j", str(jobs), "--slice", f"{start}:{stop}"]
        argv += ["--joblog", joblog, "--results", results]
        if self.shell:
            argv.append("--shell")
        if timeout is not None:
            argv += ["--timeout", repr(timeout)]
        if self.command is not None:
            argv.append(f"--exec={self.command}")
        argv += [f"--env={name}={template}" for name, template in self.env]
        argv += [f"--exec-range={expr}" for expr in self.exprs]
        argv += [f"--link={','.join(group)}" for group in self.link]
        for grid in self.grids:  # each grid's ranges after its --grid
            argv += ["--grid", *(f"--exec-range={expr}" for expr in grid)]
        return argv

    # -- the sweep and its templates -------------------------------------------------------

    def sweep(self) -> Sweep | Union:
        """The whole sweep: the expressions, linked; no filter, order or selection."""
        # a union of grids, each after the shared expressions
        if self.grids:
            from ._union import Union

            return Union(self.exprs, self.grids, link=self.link)
        if not self.exprs:
            raise RangeExprError("no range expressions: give EXPR or -r NAME=KIND:ARGS")
        from ._sweep import Sweep

        return Sweep(self.exprs, link=self.link)

    def selected(self, full: Sweep | Union | None = None) -> BaseSweep:
        """The points this spec runs: filtered, shuffled or sampled, then sliced and sharded.

        ``full``: ``self.sweep()``, when the caller has it already. The slice and shard cut
        the viewed order, so every machine of a shard plan cuts the same filtered (or
        shuffled) sequence.
        """
        sweep: BaseSweep = self.sweep() if full is None else full
        if self.where is not None:
            sweep = sweep.where(self.where)
        if self.seed is not None and self.sample is None:
            raise RangeExprError("--seed goes with --sample K (for a shuffle, use --shuffle SEED)")
        if self.sample is not None:
            if self.seed is not None and self.shuffle is not None and self.seed != self.shuffle:
                raise RangeExprError(
                    f"--seed {self.seed} and --shuffle {self.shuffle} disagree: a sample is the "
                    "first K of the shuffled order, so give one seed"
                )
            seed = self.seed if self.seed is not None else self.shuffle
            if seed is None:
                seed = "0"
            sweep = sweep.sample(self.sample, seed)  # seeds compare as text: "42" is 42
        elif self.shuffle is not None:
            sweep = sweep.shuffled(self.shuffle)
        if self.slice is not None:
            sweep = sweep[slice(*self.slice)]
        if self.shard is not None:
            sweep = sweep.shard(*self.shard)
        return sweep

    def templates(
        self, sweep: Sweep | Union
    ) -> tuple[Command | None, dict[str, Template], list[str]]:
        """The command and ``-e`` templates checked against ``sweep()`` (``--workdir``
        too); and the warnings."""
        from ._requests import RUNTIME_NAMES, parity_warnings, request_names
        from ._template import Command, Template, check_env

        command = None if self.command is None else Command(self.command, shell=self.shell)
        env = {name: Template(text) for name, text in self.env}
        used: set[str] = set(request_names(self.resources))  # -r 'gpu=$NGPU'
        # derived values: -e values may be used by the command and later -e values
        check_env(tuple(env.items()), sweep, runtime=RUNTIME_NAMES)
        if command is not None:
            command.check(sweep, runtime=(*RUNTIME_NAMES, *env))  # $RANGEEXPR_SLOT...
            used |= command.names
        workdir = None if self.workdir is None else Template(self.workdir)
        if workdir is not None:  # a template as the command is
            workdir.check(sweep, runtime=(*RUNTIME_NAMES, *env))
            used |= workdir.names
        # a union's grids hold other values: each is checked (sweep's axes: grid 1's)
        for grid in getattr(sweep, "grids", ())[1:]:
            check_env(tuple(env.items()), grid, runtime=RUNTIME_NAMES)
            for template in (command, workdir):
                if template is not None:
                    template.check(grid, runtime=(*RUNTIME_NAMES, *env))
        for template in env.values():
            used |= template.names
        warnings = parity_warnings(sweep, self.command, self.shell)
        if command is not None or env or workdir is not None:
            warnings += [
                f"range variable {name} is used by no template: "
                "it multiplies the jobs without changing them"
                for name in sweep.names
                if name not in used
            ]
        return command, env, warnings

    def selection(self) -> str:
        """The options that cut the sweep down, as command-line text (for "nothing to run")."""
        import shlex

        texts = {
            "slice": None if self.slice is None else ":".join(_opt_int_text(n) for n in self.slice),
            "shard": None if self.shard is None else "/".join(map(str, self.shard)),
            "where": self.where,
            "sample": None if self.sample is None else str(self.sample),
        }
        parts = [
            f"--{name} {shlex.quote(text)}" for name, text in texts.items() if text is not None
        ]
        return " ".join(parts) or "the sweep"

    def check_run(self) -> None:
        """Refuse run options that contradict each other (before anything is written)."""
        if self.resume and self.joblog is None:
            raise RangeExprError(
                "--resume needs --joblog FILE: the log says which points succeeded"
            )
        per_job_here = self.backend == "slurm" or self.per_job == 1
        if self.backend != "ray" and (self.address or not per_job_here):
            raise RangeExprError(
                "--address and --per-job apply only to --backend ray (--per-job also to slurm)"
            )
        # slurm
        slurm_only = {
            "--partition": self.partition is not None,
            "--time": self.time_limit is not None,
            "--sbatch-option": bool(self.sbatch_options),
        }
        given = [name for name, used in slurm_only.items() if used]
        if self.backend != "slurm" and given:
            raise RangeExprError(f"{', '.join(given)}: only with --backend slurm")
        if self.backend != "local" and self.keep_leftovers:
            raise RangeExprError("--keep-leftovers applies only to --backend local")
        if self.halt is not None:
            from runner import parse_halt

            try:
                parse_halt(self.halt)
            except ValueError as exc:
                raise RangeExprError(str(exc)) from None
        # results
        if self.results is not None and (self.tag or self.keep_order):
            raise RangeExprError(
                "--tag and -k/--keep-order shape the output printed; with --results DIR it "
                "is kept in files instead, not printed"
            )
        if self.metrics:
            parse_metrics(self.metrics)


# ---------------------------------------------------------------------------
# The text forms of options (command line, and later a sweep file)
# ---------------------------------------------------------------------------


def parse_slice(text: str) -> tuple[int | None, int | None]:
    """``START:STOP`` as Python slices it, either may be empty."""
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start, stop = (ascii_int(p) if p.strip() else None for p in parts)
    except ValueError:
        raise RangeExprError(
            f"--slice takes START:STOP with integers (either may be empty), got {text!r}",
            text,
            (0, len(text)),
        ) from None
    return start, stop


def parse_link(text: str) -> tuple[str, ...]:
    """``X,Y[,...]``: two or more axis names (ValueError otherwise)."""
    names = tuple(n.strip() for n in text.split(","))
    if len(names) < 2 or not all(names):
        raise ValueError(f"expected NAME,NAME[,...], got {text!r}")
    return names


def parse_env(items: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """The ``-e NAME=TEMPLATE`` values; a name given twice or under ``RANGEEXPR_`` is an error.

    Neither may be settled silently: the last of two values would win unseen, and
    ``RANGEEXPR_INDEX``/``RANGEEXPR_COUNT`` are set by rangeexpr for each job.
    """
    given: dict[str, str] = {}
    pairs = []
    for item in items:
        name, sep, template = item.partition("=")
        key = name.strip()
        if not sep or not key.isidentifier():
            raise RangeExprError(
                f"-e takes NAME=TEMPLATE, got {item!r}", item, (0, max(1, len(name)))
            )
        at = name.index(key)
        span = (at, at + len(key))
        if key.startswith(RESERVED):
            raise RangeExprError(
                f"-e {key}: names starting with {RESERVED} are reserved for the variables "
                f"rangeexpr sets for each job ({RESERVED}INDEX, {RESERVED}COUNT)",
                item,
                span,
            )
        if key in given:
            raise RangeExprError(
                f"-e {key} is given twice ({given[key]!r}, then {item!r}): give each variable once",
                item,
                span,
            )
        given[key] = item
        pairs.append((key, template))
    return tuple(pairs)


# results
def parse_metrics(texts: Sequence[str], file_variable: str | None = None) -> Metrics:
    """The ``--metric`` values as the runner reads them; RangeExprError naming the bad one."""
    from runner import Metric, MetricError, Metrics

    metrics = []
    seen: set[str] = set()
    for text in texts:
        try:
            metric = Metric.parse(text)
        except MetricError as exc:
            raise RangeExprError(str(exc), text, exc.span) from None
        if metric.name in seen:
            raise RangeExprError(
                f"--metric {metric.name} is given twice: give each metric once",
                text,
                (0, len(metric.name)),
            )
        seen.add(metric.name)
        metrics.append(metric)
    return Metrics(metrics, file_variable=file_variable)


# ---------------------------------------------------------------------------
# Field checks
# ---------------------------------------------------------------------------


def _opt_int_text(n: int | None) -> str:
    return "" if n is None else str(n)


def _is_int(value: object, least: int) -> bool:
    return type(value) is int and value >= least


def _is_positive(value: object) -> bool:
    return type(value) is float and 0 < value < math.inf


def _is_strs(value: object) -> bool:
    return isinstance(value, tuple) and all(type(v) is str for v in value)


def _is_shard(value: object) -> bool:
    if not (isinstance(value, tuple) and len(value) == 2 and all(type(v) is int for v in value)):
        return False
    k, n = value
    return bool(n >= 1 and 0 <= k < n)


def _optional(valid: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or valid(value)


def _is_str(value: object) -> bool:
    return type(value) is str


def _is_bool(value: object) -> bool:
    return type(value) is bool


_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "exprs": (_is_strs, "a list of range expressions (strings)"),
    "link": (
        lambda v: (
            isinstance(v, tuple)
            and all(_is_strs(g) and len(g) >= 2 and all(n.strip() for n in g) for g in v)
        ),
        "a list of groups of two or more axis names",
    ),
    "where": (_optional(_is_str), "a filter (a string) or null"),
    "shuffle": (_optional(_is_str), "a seed (a string) or null"),
    "sample": (_optional(lambda v: _is_int(v, 0)), "a whole number >= 0 or null"),
    "seed": (_optional(_is_str), "a seed (a string) or null"),
    "slice": (
        _optional(
            lambda v: (
                isinstance(v, tuple) and len(v) == 2 and all(n is None or type(n) is int for n in v)
            )
        ),
        "[START, STOP] (integers or null) or null",
    ),
    "shard": (_optional(_is_shard), "[K, N] with 0 <= K < N, or null"),
    "command": (_optional(_is_str), "a command template (a string) or null"),
    "env": (
        lambda v: isinstance(v, tuple) and all(_is_strs(p) and len(p) == 2 for p in v),
        "NAME=TEMPLATE pairs",
    ),
    "shell": (_is_bool, "true or false"),
    "jobs": (lambda v: _is_int(v, 1), "a whole number >= 1"),
    "retries": (lambda v: _is_int(v, 0), "a whole number >= 0"),
    "timeout": (_optional(_is_positive), "a positive number of seconds or null"),
    "halt": (_optional(_is_str), "a --halt policy (a string) or null"),
    "joblog": (_optional(_is_str), "a file name or null"),
    "resume": (_is_bool, "true or false"),
    "results": (_optional(_is_str), "a directory name or null"),
    "dry_run": (_is_bool, "true or false"),
    "progress": (_is_bool, "true or false"),
    "keep_leftovers": (_is_bool, "true or false"),
    "backend": (lambda v: v in BACKENDS, f"one of {', '.join(BACKENDS)}"),
    "address": (_optional(_is_str), "a URL or null"),
    "per_job": (lambda v: _is_int(v, 1), "a whole number >= 1"),
    "entrypoint_num_cpus": (_is_positive, "a positive number"),
    # resources
    "resources": (
        lambda v: isinstance(v, tuple) and all(_is_strs(p) and len(p) == 2 for p in v),
        "NAME=VALUE resource requests",
    ),
    "gpus": (_optional(_is_str), "a GPU list (0,1), auto, none, or null"),
    # slurm
    "partition": (_optional(_is_str), "a Slurm partition name or null"),
    "time_limit": (_optional(_is_str), "a Slurm time limit such as 1:00:00, or null"),
    "sbatch_options": (_is_strs, "a list of sbatch options (strings)"),
    # growing sweeps
    "grids": (
        lambda v: isinstance(v, tuple) and all(_is_strs(g) for g in v),
        "a list of grids, each a list of range expressions",
    ),
    "overwrite": (_is_bool, "true or false"),
    "workdir": (_optional(_is_str), "a directory template or null"),
    # results
    "metrics": (_is_strs, "a list of metrics, NAME or NAME=REGEX (strings)"),
    "tag": (_is_bool, "true or false"),
    "keep_order": (_is_bool, "true or false"),
}


def _plain(key: str, value: Any) -> Any:
    """``value`` from JSON/TOML as the field holds it: lists as tuples, ints as floats."""
    if key == "env" and isinstance(value, Mapping):
        value = list(value.items())
    if key in ("timeout", "entrypoint_num_cpus") and type(value) is int:
        return float(value)
    return _tuples(value)


def _tuples(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    return value
