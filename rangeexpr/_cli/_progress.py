"""The progress bars, drawn by rich on stderr (stdout carries the output itself).

Imported only when a bar is shown: rich costs start-up time that ``check`` must not pay.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

if TYPE_CHECKING:
    from runner import Runner

__all__ = ["counting_bar", "reading_bar", "show_run"]


@contextmanager
def counting_bar(total: int | None) -> Iterator[Callable[[int], None]]:
    """A bar for ``expand --count`` scanning a filtered sweep; yields ``update(seen)``."""
    columns = (BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with _transient("counting kept points", columns, total) as update:
        yield update


@contextmanager
def reading_bar(total: int) -> Iterator[Callable[[int], None]]:
    """A bar for ``report`` reading large job logs; yields ``update(bytes_read)``."""
    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with _transient("reading job logs", columns, total) as update:
        yield update


@contextmanager
def _transient(
    label: str, columns: tuple[ProgressColumn, ...], total: int | None
) -> Iterator[Callable[[int], None]]:
    """A bar that disappears when done."""
    with Progress(label, *columns, transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.update(task, completed=done)


async def show_run(runner: Runner, total: int, skipped: Callable[[], int]) -> None:
    """A live bar for ``run``: done/failed/running, rate and ETA, until cancelled.

    Jobs handed to the backend that wait there to start (for the local pool's resources,
    in a cluster's queue) show as "N waiting", only while there are any, so "running" is
    what really runs. ``skipped()``: the points passed over so far because the job log says
    they succeeded (they count as done).
    """
    import trio

    columns = (
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[state]}"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    progress = Progress(
        *columns,
        console=Console(file=sys.stderr),
        auto_refresh=False,
        redirect_stdout=sys.stdout is not None and sys.stdout.isatty(),
    )
    begin = trio.current_time()
    task = progress.add_task("run", total=total, state="0 failed, 0 running", rate="")

    def update() -> None:
        stats = runner.statistics()
        elapsed = trio.current_time() - begin
        rate = f"{stats.finished / elapsed:.1f} jobs/s" if elapsed > 0 else ""
        state = f"{stats.failed + stats.lost} failed, {stats.running} running"
        if stats.waiting:
            state += f", {stats.waiting} waiting"
        progress.update(task, completed=stats.finished + skipped(), state=state, rate=rate)
        progress.refresh()

    with progress:
        try:
            while True:
                update()
                await trio.sleep(0.2)
        finally:
            update()
