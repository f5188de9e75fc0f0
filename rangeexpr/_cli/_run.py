"""``rangeexpr run``: turn the checked sweep into jobs and hand them to the runner.

The signal policy lives here: a first SIGINT/SIGTERM stops launching and terminates the
running jobs (they get records); a second kills them at once through ``Runner.kill()``
(they still get records); a third cancels the run outright (the jobs still running get no
record). trio and the runner are imported inside the functions, so ``check`` never pays
for them.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import RangeExprError
from .._points import BaseSweep
from .._requests import Requests
from .._spec import RunSpec
from .._template import Command, Template
from ._options import spec_from_args
from ._resume import (  # no clobbering, resume by values
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
    if spec.command is None:  # from --exec or the sweep file
        raise RangeExprError("run needs --exec TEMPLATE: the command to run for each point")
    full = spec.sweep()
    sweep = spec.selected(full)
    cmd, env, warnings = spec.templates(full)  # --workdir too
    assert cmd is not None
    for w in warnings:
        print(f"rangeexpr: warning: {w}", file=sys.stderr)
    return run(spec, sweep, cmd, env, by_index=args.results_by_index)


def run(
    spec: RunSpec,
    sweep: BaseSweep,
    command: Command,
    env: dict[str, Template],
    *,
    by_index: bool = False,
) -> int:
    """Check the run options and the job log, then run the jobs (or print them).

    ``by_index``: name the result files by index, not by values (for a node's run of a
    batch, whose outputs are mapped back by index).
    """
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

    requests = Requests(spec.resources, sweep, custom=True)  # checked here
    backend = make_backend(spec, sweep, requests)
    check_clobber(spec)
    check_writable(spec)
    joblog = take_joblog(spec)
    try:
        resumed = resume(joblog, spec, sweep) if joblog is not None and resuming else None
        claim_results(spec, resumed.ids if resumed is not None else frozenset())
        return _run_in_trio(
            _Plan(
                spec,
                sweep,
                command,
                env,
                backend,
                joblog,
                resumed,
                requests=requests,
                named=spec.results is not None and not by_index,
            )
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
    resumed: Done | None  # what the job log said, when resuming (by values)
    requests: Requests | None = None  # what each job asks for
    named: bool = False  # result files named by values (``_jobs.result_name``)


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


async def _main(plan: _Plan) -> int:
    """Enter the backend, start the job log, run, and always leave the backend."""
    from runner import StorageError

    spec, sweep, joblog = plan.spec, plan.sweep, plan.joblog
    skip = plan.resumed
    counts = _Counts()
    async with plan.backend:
        if joblog is not None and (skip is None or skip.last_source != spec.identity()):
            try:  # a resumed run that changed the sweep appends its own header
                start = joblog.start if skip is None else joblog.add_header
                start(header(spec, sweep))
            except StorageError as exc:
                sys.stderr.write(f"rangeexpr: error: {exc}\n")
                return EXIT_FAILED
        from .._jobs import make_jobs

        jobs = make_jobs(
            sweep,
            plan.command,
            plan.env,
            skip=skip,
            counts=counts,
            requests=plan.requests,
            workdir=None if spec.workdir is None else Template(spec.workdir),
            named=plan.named,
        )
        return await _run(plan, jobs, counts)


async def _run(plan: _Plan, jobs: Iterator[Job], counts: _Counts) -> int:
    """Run the jobs with signal handling and the progress bar; print the summary."""
    import trio

    from runner import Halt, Runner, parse_halt

    from ._summary import job_tag, print_summary

    spec, joblog = plan.spec, plan.joblog
    halt = Halt() if spec.halt is None else parse_halt(spec.halt)
    metrics = _metrics(spec)
    runner = Runner(
        plan.backend,
        _limit(plan),  # slots: the runner admits spec.jobs * backend.jobs_per_slot jobs
        retries=spec.retries,
        timeout=spec.timeout,
        halt=halt,
        joblog=joblog,
        results_dir=None if spec.results is None else Path(spec.results),
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
    """The runner's limit: ``-j`` slots; with requests that vary by point, a
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
