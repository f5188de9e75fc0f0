"""The trio job runner: run any iterable of jobs through a backend under a capacity limit.

A general runner: it imports nothing from rangeexpr (its caller), and knows jobs only as
argv, a command line, an environment and values to log.

Layout: ``_backend`` holds the interfaces between runner and backends (Job, Attempt,
Outcome, the Backend protocol, and Batching for backends that pack several jobs into one
remote job); ``_run`` the scheduling (Runner, run_jobs, the summary records); ``_policy``
the ``--halt`` failure policy; ``_joblog`` the JSON Lines job log (one writer at a time, by
a lock file beside it) and its reading for resume; ``_output`` the job's output files and
their copying to our stdout/stderr. Backends: ``_local`` local processes (with
``_sched``, its scheduler hint); ``_ray`` Ray jobs over the Jobs REST API (``_ray_api``),
imported only when asked for, so local runs never load it; ``_slurm`` Slurm job arrays
through Slurm's client commands, likewise lazy; ``_batches`` the groups of a Batching in
flight, shared by the remote backends. ``_resources`` holds resource requests and the
local pool of CPUs, memory, GPUs and job slots.

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

from ._backend import (
    Attempt,
    Backend,
    BackendError,
    Batching,
    Job,
    NotStarted,
    Outcome,
    Status,
    StorageError,
)
from ._joblog import JobLog, JobLogBusy, JobLogError, Resumed, read_joblog
from ._local import LocalBackend
from ._metrics import Metric, MetricError, Metrics
from ._policy import Halt, parse_halt
from ._resources import (
    Grant,
    Pool,
    Request,
    ResourceError,
    detect_gpus,
    memory_limiter,
    resource_name,
)
from ._run import FailedJob, Runner, RunStatistics, SlowJob, Summary, run_jobs

if TYPE_CHECKING:
    from ._ray import RayBackend
    from ._slurm import SlurmBackend


def __getattr__(name: str) -> object:
    """The remote backends are imported on first use, so local runs never load them."""
    if name == "RayBackend":
        from ._ray import RayBackend

        return RayBackend
    if name == "SlurmBackend":
        from ._slurm import SlurmBackend

        return SlurmBackend
    raise AttributeError(f"module 'runner' has no attribute {name!r}")


__all__ = [
    "Attempt",
    "Backend",
    "BackendError",
    "Batching",
    "FailedJob",
    "Grant",
    "Halt",
    "Job",
    "JobLog",
    "JobLogBusy",
    "JobLogError",
    "LocalBackend",
    "Metric",
    "MetricError",
    "Metrics",
    "NotStarted",
    "Outcome",
    "Pool",
    "RayBackend",
    "Request",
    "ResourceError",
    "Resumed",
    "RunStatistics",
    "Runner",
    "SlowJob",
    "SlurmBackend",
    "Status",
    "StorageError",
    "Summary",
    "detect_gpus",
    "memory_limiter",
    "parse_halt",
    "read_joblog",
    "resource_name",
    "run_jobs",
]
