"""The backend a run specification asks for: ``make_backend(spec, sweep)``.

The one place that turns the user's backend options into a ``runner`` backend, so the CLI
(and later a sweep file) never names a backend class, and the runner never sees our
options. ``--per-job K`` becomes a ``NodeBatching`` (``_batch.py``) given to the backend.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Protocol

from ._batch import NodeBatching
from ._errors import RangeExprError
from ._spec import BACKENDS, RunSpec
from ._template import Template

if TYPE_CHECKING:
    from runner import Backend, LocalBackend, RayBackend, Request, SlurmBackend

    from ._requests import Requests
    from ._sweep import Point

__all__ = ["make_backend"]


class Selected(Protocol):
    """The points a run runs (a sweep or a view of one): only the first and last are read."""

    @property
    def size(self) -> int: ...

    def __getitem__(self, index: int, /) -> Point: ...


def make_backend(spec: RunSpec, sweep: Selected, requests: Requests | None = None) -> Backend:
    """The backend ``spec.backend`` names, not yet entered (``sweep``: for ``--per-job``).

    ``requests``: the jobs' resource requests (``spec.resources`` when not given), checked
    here against what the backend has, so a job that could never run stops the run
    before anything runs.
    """
    if requests is None:
        from ._requests import Requests

        requests = Requests(spec.resources, spec.sweep(), custom=True)
    if spec.backend == "ray":
        return _ray(spec, sweep, requests)
    if spec.backend == "slurm":
        return _slurm(spec, sweep, requests)
    if spec.backend == "local":
        return _local(spec, requests)
    raise RangeExprError(f"--backend must be one of {', '.join(BACKENDS)}, not {spec.backend!r}")


def _local(spec: RunSpec, requests: Requests) -> LocalBackend:
    """Local processes sharing a pool: ``-j`` slots, this process's CPUs, the memory
    available now, and the ``--gpus`` (by default found only if a job asks for one)."""
    import os

    from runner import LocalBackend, Pool, ResourceError, detect_gpus, memory_limiter

    given = spec.gpus if spec.gpus is not None else "auto" if requests.asks_for_gpus else "none"
    try:
        pool = Pool.local(spec.jobs, detect_gpus(given, os.environ))
    except ResourceError as exc:
        raise RangeExprError(f"--gpus: {exc}") from None
    requests.check(pool)
    memory = memory_limiter() if requests.asks_for_memory else None
    return LocalBackend(keep_leftovers=spec.keep_leftovers, pool=pool, memory=memory)


def _ray_request(spec: RunSpec, requests: Requests) -> Request:
    """What every Ray job asks for unless its own request says otherwise: the fixed
    request, with ``--entrypoint-num-cpus`` as its cpu (the same thing as ``-r cpu=``)."""
    from runner import Request

    fixed = requests.fixed or Request()
    if spec.gpus is not None:
        raise RangeExprError("--gpus applies only to --backend local (Ray assigns GPUs itself)")
    if fixed.cpu and spec.entrypoint_num_cpus not in (1.0, fixed.cpu):
        raise RangeExprError(
            f"--entrypoint-num-cpus {spec.entrypoint_num_cpus:g} and -r cpu={fixed.cpu:g} "
            "say the same thing differently: give one"
        )
    _local_only(spec)
    return dataclasses.replace(fixed, cpu=fixed.cpu or spec.entrypoint_num_cpus)


def _local_only(spec: RunSpec) -> None:
    """Refuse templates naming a job's slot or GPUs: only the local pool has them (a
    remote job would run with the placeholder's text)."""
    from ._jobs import LATE_NAMES

    workdir = () if spec.workdir is None else (spec.workdir,)
    for text in (spec.command or "", *(template for _, template in spec.env), *workdir):
        used = Template(text).names & LATE_NAMES
        if used:
            raise RangeExprError(
                f"${min(used)} is known only to --backend local (job slots and GPU lists "
                "are the local pool's)",
                text,
            )


def _ray(spec: RunSpec, sweep: Selected, requests: Requests) -> RayBackend:
    """Ray jobs, K points to a job with ``--per-job K`` (run by ``rangeexpr run --slice``
    on the node, which needs rangeexpr on its PATH)."""
    if not spec.address:
        raise RangeExprError("--backend ray needs --address http://HOST:8265")
    request = _ray_request(spec, requests)
    batching = None
    if spec.per_job > 1 and requests.fixed is None:
        raise RangeExprError(
            "a request that varies by point (a template) needs one point per Ray job (--per-job 1)"
        )
    if spec.per_job > 1:
        views = {"where": spec.where, "shuffle": spec.shuffle, "sample": spec.sample}
        reordered = [f"--{name}" for name, value in views.items() if value is not None]
        if reordered:
            # The node's --slice counts positions in the filtered or shuffled order, while a
            # group is a run of point indices: they agree only for the plain (or linked) sweep.
            raise RangeExprError(
                f"--per-job cannot be combined with {', '.join(reordered)} yet: "
                "run one point per Ray job (--per-job 1)"
            )
        if sweep.size > 0:
            batching = NodeBatching(
                spec,
                spec.per_job,
                sweep[0].index,
                sweep[-1].index + 1,
                jobs=max(1, math.ceil(request.cpu)),
                timeout=spec.timeout,
            )
    from runner import RayBackend

    return RayBackend(
        spec.address,
        sweep_id=spec.sweep_id(),
        entrypoint_num_cpus=request.cpu,
        batching=batching,
        request=request,
    )


# slurm


def _slurm(spec: RunSpec, sweep: Selected, requests: Requests) -> SlurmBackend:
    """Slurm job arrays, ``-j`` their throttle, K points to a task with ``--per-job K``.

    ``-r cpu=/mem=/gpu=`` become ``--cpus-per-task`` (whole CPUs), ``--mem`` and
    ``--gres=gpu:N``: the same for every task of an array, so not a per-point template.

    The backend's files go in ``--results`` (else the current directory): that must be on
    a file system the compute nodes share, as the job's own output must be. With a job
    log, the arrays are named after it and the sweep, so a later run of the same log
    (``--resume``) cancels what a killed run left queued: no one would record its results.
    """
    batching = None
    if spec.per_job > 1:
        views = {"where": spec.where, "shuffle": spec.shuffle, "sample": spec.sample}
        reordered = [f"--{name}" for name, value in views.items() if value is not None]
        if reordered:  # as for Ray: a node's --slice counts positions, a group indices
            raise RangeExprError(
                f"--per-job cannot be combined with {', '.join(reordered)} yet: "
                "run one point per Slurm task (--per-job 1)"
            )
        if sweep.size > 0:
            first, stop = sweep[0].index, sweep[-1].index + 1
            batching = NodeBatching(spec, spec.per_job, first, stop, timeout=spec.timeout)
    if spec.gpus is not None:
        raise RangeExprError("--gpus applies only to --backend local (Slurm assigns GPUs itself)")
    if requests.fixed is None:
        raise RangeExprError(
            "--backend slurm needs the same request for every point: the tasks of an array "
            "share one (a request template varies by point)"
        )
    _local_only(spec)
    request = requests.fixed
    if request.custom:
        names = ", ".join(request.custom)
        raise RangeExprError(
            f"--backend slurm takes cpu, mem and gpu requests, not {names}: "
            "pass other Slurm requests with --sbatch-option"
        )
    job_name = None
    if spec.joblog is not None:
        import hashlib
        from pathlib import Path

        key = f"{spec.sweep_id()}:{Path(spec.joblog).resolve()}"
        job_name = f"rangeexpr-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    from runner import SlurmBackend

    return SlurmBackend(
        throttle=spec.jobs,
        partition=spec.partition,
        time_limit=spec.time_limit,
        sbatch_options=spec.sbatch_options,
        cpus=math.ceil(request.cpu) if request.cpu else None,
        mem=f"{math.ceil(request.mem / 2**20)}M" if request.mem else None,
        gpus=request.gpu or None,
        run_dir=spec.results,
        batching=batching,
        job_name=job_name,
    )
