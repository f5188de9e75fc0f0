"""``rangeexpr run``: turn the checked sweep into jobs and hand them to the runner.

The signal policy lives here: a first SIGINT/SIGTERM stops launching and terminates the
running jobs (they get records); a second kills them at once through ``Runner.kill()``
(they still get records); a third cancels the run outright (the jobs still running get no
record). trio and the runner are imported inside the functions, so ``check`` never pays
for them.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import RangeExprError
from .._points import BaseSweep, Point  # issue 15: Point
from .._requests import Requests, adapt_jobs, runtime_names  # issue 13: resources
from .._spec import RunSpec
from .._template import Command, Derived, Template, WithRuntime  # issue 15: Derived
from .._text import int_text
from ._options import spec_from_args
from ._resume import (  # issue 15: no clobbering, resume by values
    Done,
    check_clobber,
    check_writable,
    claim_results,
    header,
    read_resume,
    resume,
    take_joblog,
)

if TYPE_CHECKING:
    import trio

    from runner import Backend, Job, JobLog, Metrics, Runner

__all__ = ["command"]

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


def command(args: argparse.Namespace) -> int:
    """Run (or with --dry-run print) every job; the process's exit code."""
    spec = spec_from_args(args)
    if spec.command is None:  # issue 15: or the sweep file's exec
        raise RangeExprError("run needs --exec TEMPLATE: the command to run for each point")
    full = spec.sweep()
    sweep = spec.selected(full)
    cmd, env, warnings = spec.templates(full)
    assert cmd is not None
    if spec.workdir is not None:  # issue 15: checked before anything runs
        Template(spec.workdir).check(full, runtime=tuple(env))  # and derived values
        runtime = runtime_names(cmd, env)
        if runtime:  # those jobs are rendered when they start, without the directory
            raise RangeExprError(
                f"--workdir cannot be combined yet with ${sorted(runtime)[0]} in --exec or -e"
            )
    for w in warnings:
        print(f"rangeexpr: warning: {w}", file=sys.stderr)
    return run(spec, sweep, cmd, env)


def run(spec: RunSpec, sweep: BaseSweep, command: Command, env: dict[str, Template]) -> int:
    """Check the run options and the job log, then run the jobs (or print them)."""
    spec.check_run()
    if sweep.max_size == 0:
        raise RangeExprError(
            f"nothing to run: {spec.selection()} selects none of the sweep's "
            f"{sweep.full_size} points"
        )
    resuming = spec.resume and spec.joblog is not None and Path(spec.joblog).exists()
    if spec.dry_run:
        from ._dry_run import dry_run

        return dry_run(spec, sweep, command, env, read_resume(spec, sweep) if resuming else None)
    from .._backends import make_backend

    requests = Requests(spec.resources, sweep, custom=True)  # issue 13: checked here
    backend = make_backend(spec, sweep, requests)
    check_clobber(spec)  # issue 15
    check_writable(spec)
    joblog = take_joblog(spec)
    try:
        resumed = resume(joblog, spec, sweep) if joblog is not None and resuming else None
        claim_results(spec, resumed.ids if resumed is not None else frozenset())  # issue 15
        return _run_in_trio(
            _Plan(spec, sweep, command, env, backend, joblog, resumed, requests=requests)
        )
    finally:
        if joblog is not None:
            joblog.close()


@dataclass(frozen=True)
class _Plan:
    """Everything one run needs, decided before the event loop starts."""

    spec: RunSpec
    sweep: BaseSweep
    command: Command
    env: dict[str, Template]
    backend: Backend  # not yet entered
    joblog: JobLog | None  # held for this run, not yet started unless resumed
    resumed: Done | None  # what the job log said, when resuming (issue 15: by values)
    requests: Requests | None = None  # issue 13: what each job asks for


def _run_in_trio(plan: _Plan) -> int:
    """``_main`` under trio; the one place a backend's failure becomes a RangeExprError."""
    import trio

    from runner import BackendError

    name = plan.spec.backend
    try:
        return trio.run(_main, plan)
    except KeyboardInterrupt:  # Ctrl-C before or after the signal handler was in place
        return EXIT_INTERRUPTED
    except BackendError as exc:  # entering the backend: nothing was submitted
        raise RangeExprError(f"the {name} backend cannot run jobs: {exc}") from None
    except BaseExceptionGroup as group:
        if group.split(KeyboardInterrupt)[1] is None:  # Ctrl-C outside the signal handler
            return EXIT_INTERRUPTED
        matched, rest = group.split(BackendError)
        if matched is None or rest is not None:
            raise
        raise RangeExprError(f"the {name} backend failed: {_first(matched)}") from None


def _first(group: BaseException) -> BaseException:
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


@dataclass
class _Counts:
    """Points passed over because the job log says they succeeded (the summary shows it)."""

    skipped: int = 0


def _jobs(
    sweep: BaseSweep,
    command: Command,
    env: Mapping[str, Template],
    skip: Done | None,
    counts: _Counts,
    *,
    workdir: Template | None = None,
) -> Iterator[Job]:
    """The sweep's jobs, rendered one at a time as the runner pulls them.

    With ``workdir`` (issue 15) each job runs in its own directory, made before it starts:
    ``cd`` into it is part of the job's command, so every backend runs it the same way.
    """
    from runner import Job

    count = int_text(sweep.full_size)
    templates = tuple(env.items())
    # issue 15: derived values, rendered only when a template names an -e value
    derived = Derived.needed(env, command, workdir)
    values: Point | WithRuntime
    for point in sweep:
        if skip is not None and point in skip:
            counts.skipped += 1
            continue
        if derived is None:
            extra = {name: template.render(point) for name, template in templates}
            values = point
        else:
            extra, values = derived.render(point)
        extra["RANGEEXPR_INDEX"] = int_text(point.index)
        extra["RANGEEXPR_COUNT"] = count
        argv, line = command.argv(values), command.line(values)
        if workdir is not None:
            directory = workdir.render(values)
            try:
                Path(directory).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RangeExprError(f"cannot make --workdir {directory}: {exc.strerror}") from None
            argv = ("/bin/sh", "-c", 'cd -- "$0" && exec "$@"', directory, *argv)
            line = f"cd -- {shlex.quote(directory)} && {line}"
        yield Job(point.index, argv, line, extra, point)


async def _main(plan: _Plan) -> int:
    """Enter the backend, start the job log, run, and always leave the backend."""
    from runner import StorageError

    spec, sweep, joblog = plan.spec, plan.sweep, plan.joblog
    skip = plan.resumed
    counts = _Counts()
    async with plan.backend:
        if joblog is not None and (skip is None or skip.last_source != spec.identity()):
            try:  # issue 15: a resumed run that changed the sweep appends its own header
                start = joblog.start if skip is None else joblog.add_header
                start(header(spec, sweep))
            except StorageError as exc:
                sys.stderr.write(f"rangeexpr: error: {exc}\n")
                return EXIT_FAILED
        workdir = None if spec.workdir is None else Template(spec.workdir)  # issue 15
        jobs = _jobs(sweep, plan.command, plan.env, skip, counts, workdir=workdir)
        # issue 13: the jobs' requests; templates naming $RANGEEXPR_SLOT and the like
        jobs = adapt_jobs(
            jobs, sweep, plan.command, plan.env, requests=plan.requests, skip=skip, counts=counts
        )
        return await _run(plan, jobs, counts)


async def _run(plan: _Plan, jobs: Iterator[Job], counts: _Counts) -> int:
    """Run the jobs with signal handling and the progress bar; print the summary."""
    import trio

    from runner import Halt, Runner, parse_halt

    from ._summary import job_tag, print_summary

    spec, joblog = plan.spec, plan.joblog
    halt = Halt() if spec.halt is None else parse_halt(spec.halt)
    metrics = _metrics(spec)  # issue 14: results
    runner = Runner(
        plan.backend,
        _limit(plan),  # slots: the runner admits spec.jobs * backend.jobs_per_slot jobs
        retries=spec.retries,
        timeout=spec.timeout,
        halt=halt,
        joblog=joblog,
        results_dir=None if spec.results is None else Path(spec.results),
        # issue 14: results
        metrics=metrics,
        tag=job_tag if spec.tag else None,
        keep_order=spec.keep_order,
    )
    interrupted: list[int] = []
    force = trio.CancelScope()  # the last resort: cancel the run, jobs killed without records
    summary = None
    error: RangeExprError | None = None  # from rendering the jobs, e.g. a failing --where
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_signals, signals, runner, interrupted, force)
            if sys.stderr.isatty() and spec.progress:
                from ._progress import show_run

                nursery.start_soon(show_run, runner, plan.sweep.max_size, lambda: counts.skipped)
            with force:
                try:
                    summary = await runner.run(jobs)
                except RangeExprError as exc:  # the started jobs have finished, recorded
                    error, summary = exc, runner.summary()
            nursery.cancel_scope.cancel()
    if summary is None:
        sys.stderr.write("rangeexpr: interrupted again: running jobs killed, without records\n")
        return EXIT_INTERRUPTED
    ran_out = summary.stopped is None and error is None and not interrupted
    idle = ran_out and runner.statistics().started == 0
    if idle and counts.skipped == 0:  # no silent empty sweeps
        raise RangeExprError(f"nothing to run: {spec.selection()} keeps no point")
    print_summary(
        summary,
        counts.skipped,
        halt,
        interrupted,
        # issue 14: results
        metrics=() if metrics is None else metrics.names,
        sweep=plan.sweep,
        started=runner.statistics().started,
        resumed=plan.resumed is not None,
    )
    if idle:
        sys.stderr.write(f"rangeexpr: nothing left to run: {spec.joblog} records every point\n")
    if error is not None:
        raise error
    if summary.stopped == "storage" and joblog is not None:
        sys.stderr.write(
            "rangeexpr: the records written are kept: "
            "once the cause is fixed, run again with --resume to finish the sweep\n"
        )
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if summary.ok else EXIT_FAILED


# issue 14: results
METRICS_FILE = "RANGEEXPR_METRICS_FILE"


def _metrics(spec: RunSpec) -> Metrics | None:
    """What the runner reads after each attempt; None without --metric.

    The metrics file is offered where the job can see our files: a local job, or a Slurm
    job with --results DIR (on the file system the nodes share). Ray jobs write theirs on
    their own machine: they report by printing.
    """
    if not spec.metrics:
        return None
    from .._spec import parse_metrics

    shared = spec.backend == "local" or (spec.backend == "slurm" and spec.results is not None)
    return parse_metrics(spec.metrics, METRICS_FILE if shared else None)


def _limit(plan: _Plan) -> int | trio.CapacityLimiter:
    """The runner's limit: ``-j`` slots; issue 13: with requests that vary by point, a
    look-ahead of twice as many jobs, so a small job can start while a big one waits for
    its resources (the local pool's slots still hold the running jobs to ``-j``)."""
    import trio

    requests = plan.requests
    if requests is None or requests.fixed is not None or plan.spec.backend != "local":
        return plan.spec.jobs
    return trio.CapacityLimiter(2 * plan.spec.jobs)


async def _watch_signals(
    signals: AsyncIterator[int],
    runner: Runner,
    interrupted: list[int],
    force: trio.CancelScope,
) -> None:
    """SIGINT/SIGTERM: stop; a second: kill at once; a third: cancel without records."""
    async for signum in signals:
        interrupted.append(signum)
        if len(interrupted) == 1:
            runner.stop("interrupted", now=True)
        elif len(interrupted) == 2:
            runner.kill()  # the jobs still end as "killed" and get their records
        else:
            force.cancel()
