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
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import RangeExprError
from .._points import BaseSweep
from .._spec import RunSpec
from .._template import Command, Template
from .._text import int_text
from ._options import spec_from_args
from ._resume import check_writable, header, read_resume, resume, take_joblog

if TYPE_CHECKING:
    import trio

    from runner import Backend, Job, JobLog, Resumed, Runner

__all__ = ["command"]

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


def command(args: argparse.Namespace) -> int:
    """Run (or with --dry-run print) every job; the process's exit code."""
    if args.exec is None:
        raise RangeExprError("run needs --exec TEMPLATE: the command to run for each point")
    spec = spec_from_args(args)
    full = spec.sweep()
    sweep = spec.selected(full)
    cmd, env, warnings = spec.templates(full)
    assert cmd is not None
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

        skip = read_resume(spec, sweep).succeeded if resuming else frozenset()
        return dry_run(spec, sweep, command, env, skip)
    from .._backends import make_backend

    backend = make_backend(spec, sweep)
    check_writable(spec)
    joblog = take_joblog(spec)
    try:
        resumed = resume(joblog, spec, sweep) if joblog is not None and resuming else None
        return _run_in_trio(_Plan(spec, sweep, command, env, backend, joblog, resumed))
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
    resumed: Resumed | None  # what the job log said, when resuming


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
    skip: frozenset[int],
    counts: _Counts,
) -> Iterator[Job]:
    """The sweep's jobs, rendered one at a time as the runner pulls them."""
    from runner import Job

    count = int_text(sweep.full_size)
    templates = tuple(env.items())
    for point in sweep:
        if point.index in skip:
            counts.skipped += 1
            continue
        extra = {name: template.render(point) for name, template in templates}
        extra["RANGEEXPR_INDEX"] = int_text(point.index)
        extra["RANGEEXPR_COUNT"] = count
        yield Job(point.index, command.argv(point), command.line(point), extra, point)


async def _main(plan: _Plan) -> int:
    """Enter the backend, start the job log, run, and always leave the backend."""
    from runner import StorageError

    spec, sweep, joblog = plan.spec, plan.sweep, plan.joblog
    skip = plan.resumed.succeeded if plan.resumed is not None else frozenset()
    counts = _Counts()
    async with plan.backend:
        if joblog is not None and plan.resumed is None:
            try:
                joblog.start(header(spec, sweep))
            except StorageError as exc:
                sys.stderr.write(f"rangeexpr: error: {exc}\n")
                return EXIT_FAILED
        jobs = _jobs(sweep, plan.command, plan.env, skip, counts)
        return await _run(plan, jobs, counts)


async def _run(plan: _Plan, jobs: Iterator[Job], counts: _Counts) -> int:
    """Run the jobs with signal handling and the progress bar; print the summary."""
    import trio

    from runner import Halt, Runner, parse_halt

    from ._summary import print_summary

    spec, joblog = plan.spec, plan.joblog
    halt = Halt() if spec.halt is None else parse_halt(spec.halt)
    runner = Runner(
        plan.backend,
        spec.jobs,  # slots: the runner admits spec.jobs * backend.jobs_per_slot jobs
        retries=spec.retries,
        timeout=spec.timeout,
        halt=halt,
        joblog=joblog,
        results_dir=None if spec.results is None else Path(spec.results),
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
    print_summary(summary, counts.skipped, halt, interrupted)
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
