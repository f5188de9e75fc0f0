"""The ``run`` subcommand: turn a checked sweep into jobs and hand them to the runner.

``_cli.py`` parses the shared arguments and builds the sweep and templates; this module adds
the run-only options and does the running. trio, httpx and rich are imported inside the
functions that need them, so ``rangeexpr check`` never pays for them at start-up.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import RangeExprError
from ._text import ascii_int, int_text

if TYPE_CHECKING:
    import trio

    from runner import Backend, Halt, Job, JobLog, Resumed, Runner, Summary

    from . import Command, Sweep, Template

__all__ = ["add_run_arguments", "run_command"]

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options only ``rangeexpr run`` has."""
    parser.add_argument(
        "-j",
        "--max-parallel",
        type=_positive_int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="run at most N jobs at once (default: the number of CPUs)",
    )
    parser.add_argument(
        "--shell",
        action="store_true",
        help="run the command through /bin/sh -c, every substituted value shell-quoted",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the commands (and -e values), run nothing"
    )
    parser.add_argument(
        "--joblog", type=Path, metavar="FILE", help="write a JSON Lines record per finished job"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="skip the points --joblog FILE records as succeeded, and append to it",
    )
    parser.add_argument(
        "--retries",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="run a failed or timed-out job up to N more times",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="terminate a job running longer (SIGTERM, then SIGKILL after 2 s)",
    )
    parser.add_argument(
        "--halt",
        type=_halt,
        metavar="now|soon[,fail=N|N%]",
        help="stop early on failures, as GNU Parallel: 'soon' lets running jobs finish, "
        "'now' kills them (default: never)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        metavar="DIR",
        help="keep each job's output in DIR/<index>.out and DIR/<index>.err",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar, even on a terminal"
    )
    parser.add_argument(
        "--keep-leftovers",
        action="store_true",
        help="let processes a job leaves running in the background outlive it (default: when "
        "the job's main process exits, they get SIGTERM, then SIGKILL 2 s later)",
    )
    parser.add_argument(
        "--backend", choices=("local", "ray"), default="local", help="where jobs run"
    )
    parser.add_argument(
        "--address", metavar="URL", help="the Ray dashboard, e.g. http://HOST:8265 (ray only)"
    )
    parser.add_argument(
        "--entrypoint-num-cpus",
        type=_positive_float,
        default=1.0,
        metavar="CPUS",
        help="CPUs Ray reserves for each job (ray only; default 1)",
    )
    parser.add_argument(
        "--per-job",
        type=_positive_int,
        default=1,
        metavar="K",
        help="pack K consecutive points into one Ray job (ray only; default 1)",
    )


def run_command(
    args: argparse.Namespace,
    sweep: Sweep,
    command: Command,
    env: dict[str, Template],
    source: dict[str, Any],
) -> int:
    """Run (or with --dry-run print) every job of ``sweep``; the process's exit code."""
    if args.resume and args.joblog is None:
        raise RangeExprError("--resume needs --joblog FILE: the log says which points succeeded")
    if args.backend != "ray" and (args.address or args.per_job != 1):
        raise RangeExprError("--address and --per-job apply only to --backend ray")
    if args.backend != "local" and args.keep_leftovers:
        raise RangeExprError("--keep-leftovers applies only to --backend local")
    if sweep.size == 0:
        raise RangeExprError(
            f"nothing to run: {_selection(args)} selects none of the sweep's "
            f"{sweep.full_size} points"
        )
    resuming = args.resume and args.joblog.exists()
    if args.dry_run:
        skip = _read_resume(args.joblog, source, sweep).succeeded if resuming else frozenset()
        return _dry_run(args, sweep, command, env, skip)
    _check_writable(args)
    joblog = _take_joblog(args.joblog)
    try:
        resumed = _resume(joblog, source, sweep) if joblog is not None and resuming else None
        return _run_in_trio(_Plan(args, sweep, command, env, source, joblog, resumed))
    finally:
        if joblog is not None:
            joblog.close()


def _run_in_trio(plan: _Plan) -> int:
    import trio

    if plan.args.backend == "local":
        from runner._sched import favour_dispatch

        favour_dispatch()  # short jobs: the dispatcher's wake-up latency sets the pace
    try:
        return trio.run(_main, plan)
    except KeyboardInterrupt:  # Ctrl-C before or after the signal handler was in place
        return EXIT_INTERRUPTED
    except BaseExceptionGroup as group:
        from runner import BackendError

        if group.split(KeyboardInterrupt)[1] is None:  # Ctrl-C outside the signal handler
            return EXIT_INTERRUPTED
        matched, rest = group.split(BackendError)
        if matched is None or rest is not None:
            raise
        backend = plan.args.backend
        raise RangeExprError(f"the {backend} backend failed: {_first(matched)}") from None


def _selection(args: argparse.Namespace) -> str:
    """The options that cut the sweep down, as the user gave them (for "nothing to run")."""
    parts = [
        f"--{name} {shlex.quote(str(value))}"
        for name in ("slice", "shard", "where", "sample")
        if (value := getattr(args, name, None)) is not None
    ]
    return " ".join(parts) or "the sweep"


def _check_writable(args: argparse.Namespace) -> None:
    """Fail before anything runs if the job log or the results directory cannot be written.

    The results directory is probed with a file made and removed in it: an existing
    directory that is read-only (or on a read-only file system) passes ``mkdir``.
    """
    import tempfile

    try:
        if args.results is not None:
            args.results.mkdir(parents=True, exist_ok=True)
            try:
                tempfile.TemporaryFile(dir=args.results).close()
            except OSError as exc:
                exc.filename = str(args.results)
                raise
        if args.joblog is not None:
            with args.joblog.open("a"):
                pass
    except OSError as exc:
        raise RangeExprError(f"cannot write {exc.filename}: {exc.strerror}") from None


def _take_joblog(path: Path | None) -> JobLog | None:
    """Hold the job log for this run: refused if another run is writing it."""
    if path is None:
        return None
    from runner import JobLog, JobLogError

    try:
        return JobLog(path)
    except JobLogError as exc:
        raise RangeExprError(f"cannot use the job log: {exc}") from None


def _first(group: BaseException) -> BaseException:
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


@dataclass
class _Counts:
    """Points passed over because the job log says they succeeded (the summary shows it)."""

    skipped: int = 0


def _jobs(
    sweep: Sweep,
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


@dataclass(frozen=True)
class _Plan:
    """Everything one run needs, decided before the event loop starts."""

    args: argparse.Namespace
    sweep: Sweep
    command: Command
    env: dict[str, Template]
    source: dict[str, Any]
    joblog: JobLog | None  # held for this run, not yet started unless resumed
    resumed: Resumed | None  # what the job log said, when resuming


async def _main(plan: _Plan) -> int:
    """Enter the backend, start the job log, run, and always leave the backend."""
    import trio

    from runner import BackendError, StorageError

    args, sweep, counts, joblog = plan.args, plan.sweep, _Counts(), plan.joblog
    skip = plan.resumed.succeeded if plan.resumed is not None else frozenset()
    backend = _backend(args, plan.source, sweep)
    try:
        await backend.__aenter__()
    except BackendError as exc:
        raise RangeExprError(f"the {args.backend} backend cannot run jobs: {exc}") from None
    try:
        if joblog is not None and plan.resumed is None:
            try:
                joblog.start(_header(sweep, plan.source))
            except StorageError as exc:
                sys.stderr.write(f"rangeexpr: error: {exc}\n")
                return EXIT_FAILED
        jobs = _jobs(sweep, plan.command, plan.env, skip, counts)
        return await _run(args, backend, joblog, jobs, (sweep.size, counts))
    finally:
        with trio.CancelScope(shield=True):
            await backend.__aexit__(None, None, None)


async def _run(
    args: argparse.Namespace,
    backend: Backend,
    joblog: JobLog | None,
    jobs: Iterator[Job],
    progress: tuple[int, _Counts],
) -> int:
    """Run the jobs with signal handling and the progress bar; print the summary."""
    import trio

    from runner import Runner

    runner = Runner(
        backend,
        args.max_parallel * args.per_job,  # -j counts Ray jobs; --per-job K packs K points in one
        retries=args.retries,
        timeout=args.timeout,
        halt=args.halt or _never(),
        joblog=joblog,
        results_dir=args.results,
    )
    interrupted: list[int] = []
    force = trio.CancelScope()  # the last resort: cancel the run, jobs killed without records
    summary = None
    error: RangeExprError | None = None  # from rendering the jobs, e.g. a failing --where
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_signals, signals, runner, backend, interrupted, force)
            if sys.stderr.isatty() and not args.no_progress:
                nursery.start_soon(_show_progress, runner, *progress)
            with force:
                try:
                    summary = await runner.run(jobs)
                except RangeExprError as exc:  # the started jobs have finished, recorded
                    error, summary = exc, runner.summary()
            nursery.cancel_scope.cancel()
    if summary is None:
        sys.stderr.write("rangeexpr: interrupted again: running jobs killed, without records\n")
        return EXIT_INTERRUPTED
    skipped = progress[1].skipped
    ran_out = summary.stopped is None and error is None and not interrupted
    idle = ran_out and runner.statistics().started == 0
    if idle and skipped == 0:  # no silent empty sweeps
        raise RangeExprError(f"nothing to run: {_selection(args)} keeps no point")
    _print_summary(summary, skipped, args.halt, interrupted)
    if idle:
        sys.stderr.write(f"rangeexpr: nothing left to run: {args.joblog} records every point\n")
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


def _backend(args: argparse.Namespace, source: dict[str, Any], sweep: Sweep) -> Backend:
    """The backend ``--backend`` names, not yet entered (``sweep``: for ``--per-job``)."""
    if args.backend == "ray":
        if not args.address:
            raise RangeExprError("--backend ray needs --address http://HOST:8265")
        from runner._ray import backend_from_args

        return backend_from_args(args, source, sweep)
    from runner import LocalBackend

    return LocalBackend(keep_leftovers=args.keep_leftovers)


def _never() -> Halt:
    from runner import Halt

    return Halt()


def _header(sweep: Sweep, source: dict[str, Any]) -> dict[str, Any]:
    """What the job log's first line says about the run (``source`` identifies the sweep)."""
    return {
        "source": source,
        "size": sweep.size,
        "version": _version(),
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rangeexpr")
    except PackageNotFoundError:
        return "unknown"


def _read_resume(path: Path, source: dict[str, Any], sweep: Sweep) -> Resumed:
    """What a job log says (for --dry-run, which takes no lock)."""
    from runner import read_joblog

    return _resume_checked(
        path, lambda check: read_joblog(path, sweep.full_size, check_header=check), source
    )


def _resume(joblog: JobLog, source: dict[str, Any], sweep: Sweep) -> Resumed:
    """Read the job log this run holds, and set it to append after its last whole line."""
    return _resume_checked(
        joblog.path, lambda check: joblog.resume(sweep.full_size, check_header=check), source
    )


def _resume_checked(
    path: Path, read: Callable[[Callable[[dict[str, Any]], None]], Resumed], source: dict[str, Any]
) -> Resumed:
    """``read(check)`` with errors as RangeExprError; ``check`` refuses another sweep's log."""
    from runner import JobLogError, StorageError

    def check(header: dict[str, Any]) -> None:
        logged = header.get("source")
        wanted = json.loads(json.dumps(source))  # tuples -> lists, as the log holds them
        if logged == wanted:
            return
        differs = ""
        if isinstance(logged, dict):
            keys = sorted(
                k for k in wanted.keys() | logged.keys() if logged.get(k) != wanted.get(k)
            )
            differs = f" (different {', '.join(keys)})" if keys else ""
        raise RangeExprError(
            f"cannot resume: {path} is the job log of a different sweep{differs}; "
            "resume with the same expressions and templates, or use another --joblog file"
        )

    try:
        return read(check)
    except (JobLogError, StorageError) as exc:
        raise RangeExprError(f"cannot resume: {exc}") from None
    except OSError as exc:
        raise RangeExprError(f"cannot resume: cannot read {path}: {exc.strerror}") from None


def _dry_run(
    args: argparse.Namespace,
    sweep: Sweep,
    command: Command,
    env: Mapping[str, Template],
    skip: frozenset[int],
) -> int:
    """Print each job as one /bin/sh line, ``NAME=value`` assignments first, lazily."""
    templates = tuple(env.items())
    write = sys.stdout.write
    seen = 0
    try:
        for point in sweep:
            seen += 1
            if point.index in skip:
                continue
            assignments = "".join(
                f"{name}={shlex.quote(template.render(point))} " for name, template in templates
            )
            write(f"{assignments}{command.line(point)}\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the reader has seen enough
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    if seen == 0:
        raise RangeExprError(f"nothing to run: {_selection(args)} keeps no point")
    return EXIT_OK


async def _watch_signals(
    signals: AsyncIterator[int],
    runner: Runner,
    backend: Backend,
    interrupted: list[int],
    force: trio.CancelScope,
) -> None:
    """SIGINT/SIGTERM: stop launching and terminate the running jobs (they get records).

    A second signal skips the grace period: the local backend SIGKILLs the process groups
    and the jobs still get their records. Past that (or with Ray, where a stop takes what
    Ray takes) the run is cancelled outright, and the jobs still running get no record.
    """
    from runner import LocalBackend

    async for signum in signals:
        interrupted.append(signum)
        if len(interrupted) == 1:
            runner.stop("interrupted", now=True)
        elif len(interrupted) == 2 and isinstance(backend, LocalBackend):
            backend.kill_now()  # the jobs still end as "killed" and get their records
        else:
            force.cancel()


async def _show_progress(runner: Runner, total: int, counts: _Counts) -> None:
    """A live bar on stderr: done/failed/running, rate and ETA, until cancelled."""
    import trio
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed, {task.fields[running]} running"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    console = Console(file=sys.stderr)
    progress = Progress(
        *columns,
        console=console,
        auto_refresh=False,
        redirect_stdout=sys.stdout is not None and sys.stdout.isatty(),
    )
    begin = trio.current_time()
    task = progress.add_task("run", total=total, failed=0, running=0, rate="")

    def update() -> None:
        stats = runner.statistics()
        done = stats.finished + counts.skipped
        elapsed = trio.current_time() - begin
        rate = f"{stats.finished / elapsed:.1f} jobs/s" if elapsed > 0 else ""
        progress.update(
            task, completed=done, failed=stats.failed + stats.lost, running=stats.running, rate=rate
        )
        progress.refresh()

    with progress:
        try:
            while True:
                update()
                await trio.sleep(0.2)
        finally:
            update()


def _print_summary(
    summary: Summary, skipped: int, halt: Halt | None, interrupted: list[int]
) -> None:
    """The end-of-run report on stderr: counts, elapsed time, the slowest jobs, why it stopped."""
    parts = [f"{summary.succeeded} succeeded", f"{summary.failed} failed"]
    if summary.killed:
        parts.append(f"{summary.killed} killed")
    if summary.lost:
        parts.append(f"{summary.lost} lost")
    parts.append(f"{skipped} skipped")
    lines = [f"rangeexpr: {', '.join(parts)} in {summary.elapsed:.2f}s"]
    if interrupted:
        lines.append(f"rangeexpr: interrupted by {signal.Signals(interrupted[0]).name}")
    elif summary.stopped == "halt":
        lines.append(f"rangeexpr: stopped early by --halt {halt}")
    if summary.message is not None:  # a lost job, or one of our files that failed
        lines.append(f"rangeexpr: stopped: {summary.message}")
    if summary.slowest:
        lines.append("rangeexpr: slowest jobs:")
        for job in summary.slowest:
            text = job.command if len(job.command) <= 70 else job.command[:67] + "..."
            lines.append(f"    #{job.index:<6} {job.duration:8.2f}s  {text}")
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = ascii_int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")
    return value


def _halt(text: str) -> Halt:
    from runner import parse_halt

    try:
        return parse_halt(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
