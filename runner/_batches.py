"""Several jobs in one remote job, for a backend given a ``Batching`` (``_backend.py``).

The runner still runs one attempt per job, concurrently; the jobs of one group meet here.
The first of a group to arrive runs the group's remote job (through the backend's ``run``)
and the others wait for it; then each takes its own result. The jobs show as waiting
(``Attempt.queued``) until the remote job starts, and if it never does (the run gave it
up), each of them raises NotStarted. A group is forgotten once every job has taken its
result (jobs a resume skips never do: those few groups stay until the backend closes).
Only first attempts are batched: a retry runs alone, as one job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from ._backend import Attempt, Batching, NotStarted, Outcome

__all__ = ["Batches", "RunBatch", "settle"]

Result = tuple[Outcome, bytes, bytes]  # outcome, stdout, stderr
# Run the remote job of [first, stop) to its end, for the group's first attempt (its abort
# and give_up), calling the callback once the remote job starts; its tag, outcome, output
# and a note for stderr (e.g. why its output could not be fetched). NotStarted if the run
# gave it up before it started.
RunBatch = Callable[
    [int, int, Attempt, Callable[[], None]], Awaitable[tuple[str, Outcome, bytes, bytes]]
]


class _Group:
    """One remote job and the per-job results it left, until each job takes its own."""

    def __init__(self, first: int, stop: int):
        self.first, self.stop = first, stop
        self.started = False  # its remote job is on its way (run by the first to arrive)
        self.running = False  # its remote job has started
        self.given_up = False  # ... or never will: every job of it raises NotStarted
        self.waiting: list[Attempt] = []  # the jobs shown as waiting until it starts
        self.done = trio.Event()
        self.results: dict[int, Result] = {}
        self.unclaimed = stop - first

    def begin(self) -> None:
        """The remote job runs: so do the jobs waiting for it."""
        self.running = True
        for attempt in self.waiting:
            attempt.started()
        self.waiting.clear()


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
        if not group.running:
            attempt.queued()
            group.waiting.append(attempt)
        if not group.started:
            group.started = True
            try:
                await self._run_group(group, attempt)
            except NotStarted:
                group.given_up = True
            finally:
                group.done.set()
        else:
            await group.done.wait()
        group.unclaimed -= 1
        if group.unclaimed <= 0:
            self._groups.pop(first, None)
        if group.given_up:
            raise NotStarted
        cancelled = Outcome("killed", None, message="cancelled"), b"", b""
        return group.results.pop(index, cancelled)

    async def _run_group(self, group: _Group, attempt: Attempt) -> None:
        tag, outcome, output, note = await self._run(group.first, group.stop, attempt, group.begin)
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
