"""The trio job runner: run any iterable of jobs through a backend under a capacity limit.

Layout: ``_backend`` holds the one interface between runner and backends (Job, Attempt,
Outcome, Backend); ``_run`` the scheduling (Runner, run_jobs, the summary records);
``_policy`` the ``--halt`` failure policy; ``_joblog`` the JSON Lines job log (one writer
at a time, by a lock file beside it) and its reading for resume; ``_output`` the job's
output files and their copying to our stdout/stderr;
``_local`` the local process backend. The Ray backend lives in ``_ray`` and is imported
only when asked for, so local runs never load it.

Example::

    import trio
    from runner import Job, LocalBackend, run_jobs

    async def main() -> None:
        jobs = (Job(i, ("echo", str(i)), f"echo {i}", {}, {"i": i}) for i in range(10))
        async with LocalBackend() as backend:
            summary = await run_jobs(jobs, backend, 4)
        print(summary.succeeded)

    trio.run(main)
"""

from typing import TYPE_CHECKING

from ._backend import Attempt, Backend, BackendError, Job, Outcome, Status, StorageError
from ._joblog import JobLog, JobLogBusy, JobLogError, Resumed, read_joblog
from ._local import LocalBackend
from ._policy import Halt, parse_halt
from ._run import Runner, RunStatistics, SlowJob, Summary, run_jobs

if TYPE_CHECKING:
    from ._ray import RayBackend


def __getattr__(name: str) -> object:
    """``RayBackend`` is imported on first use, so local runs never load httpx."""
    if name == "RayBackend":
        from ._ray import RayBackend

        return RayBackend
    raise AttributeError(f"module 'runner' has no attribute {name!r}")


__all__ = [
    "Attempt",
    "Backend",
    "BackendError",
    "Halt",
    "Job",
    "JobLog",
    "JobLogBusy",
    "JobLogError",
    "LocalBackend",
    "Outcome",
    "RayBackend",
    "Resumed",
    "RunStatistics",
    "Runner",
    "SlowJob",
    "Status",
    "StorageError",
    "Summary",
    "parse_halt",
    "read_joblog",
    "run_jobs",
]
