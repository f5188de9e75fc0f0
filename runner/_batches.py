"""Several jobs in one remote job, for a backend given a ``Batching`` (``_backend.py``).

The runner still runs one attempt per job, concurrently; the jobs of one group meet here.
The first of a group to arrive runs the group's remote job (through the backend's ``run``)
and the others wait for it; then each takes its own result. A group is forgotten once
every job has taken its result (jobs a resume skips never do: those few groups stay until
the backend closes). Only first attempts are batched: a retry runs alone, as one job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from ._backend import Attempt, Batching, Outcome

__all__ = ["Batches", "RunBatch", "settle"]

Result = tuple[Outcome, bytes, bytes]  # outcome, stdout, stderr
# Run the remote job of [first, stop) to its end; its tag, outcome, output and a note for
# stderr (e.g. why its output could not be fetched).
RunBatch = Callable[[int, int, trio.Event], Awaitable[tuple[str, Outcome, bytes, bytes]]]


class _Group:
    """One remote job and the per-job results it left, until each job takes its own."""

    def __init__(self, first: int, stop: int):
        self.first, self.stop = first, stop
        self.started = False
        self.done = trio.Event()
        self.results: dict[int, Result] = {}
        self.unclaimed = stop - first


class Batches:
    """The groups in flight of one backend: ``await batches.run(attempt)`` for each job.

    ``kind`` names a remote job in messages ("the {kind} {tag} left no record ...").
    """

    def __init__(self, batching: Batching, run: RunBatch, kind: str = "batch"):
        self.batching = batching
        self.kind = kind
        self._run = run
        self._groups: dict[int, _Group] = {}

    async def run(self, attempt: Attempt) -> Result:
        """The job's outcome and output, from its group's remote job (run here if first)."""
        index = attempt.job.index
        first, stop = self.batching.group(index)
        group = self._groups.get(first)
        if group is None:
            group = self._groups[first] = _Group(first, stop)
        if not group.started:
            group.started = True
            try:
                await self._run_group(group, attempt.abort)
            finally:
                group.done.set()
        else:
            await group.done.wait()
        group.unclaimed -= 1
        if group.unclaimed <= 0:
            self._groups.pop(first, None)
        cancelled = Outcome("killed", None, message="cancelled"), b"", b""
        return group.results.pop(index, cancelled)

    async def _run_group(self, group: _Group, abort: trio.Event) -> None:
        tag, outcome, output, note = await self._run(group.first, group.stop, abort)
        split = self.batching.split(output, group.first, group.stop, tag)
        for index in range(group.first, group.stop):
            point, out, err = split.get(index, (Outcome("lost", None), b"", b""))
            if point.status == "lost":
                err = note + err
            group.results[index] = settle(point, outcome, f"{self.kind} {tag}", tag), out, err


def settle(point: Outcome, batch: Outcome, name: str, tag: str) -> Outcome:
    """A job's outcome as ``Batching.split`` gave it, under the remote job's ``tag``.

    A job the output has no result for ("lost") takes how the remote job ended: "failed"
    if it ran to its end (the job's fate is unknown, and a lost job would stop the run),
    else the remote job's own status ("killed", "timed_out", "lost").
    """
    if point.status != "lost":
        return Outcome(point.status, point.exit_code, point.signal, tag, point.message)
    if batch.status in {"succeeded", "failed"}:
        return Outcome("failed", None, None, tag, f"the {name} left no record for this point")
    why = batch.message or f"the {name} was {batch.status}"
    return Outcome(batch.status, None, None, tag, why)
