"""The backend a run specification asks for: ``make_backend(spec, sweep)``.

The one place that turns the user's backend options into a ``runner`` backend, so the CLI
(and later a sweep file) never names a backend class, and the runner never sees our
options. ``--per-job K`` becomes a ``NodeBatching`` (``_batch.py``) given to the backend.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

from ._batch import NodeBatching
from ._errors import RangeExprError
from ._spec import BACKENDS, RunSpec

if TYPE_CHECKING:
    from runner import Backend, RayBackend

    from ._sweep import Point

__all__ = ["make_backend"]


class Selected(Protocol):
    """The points a run runs (a sweep or a view of one): only the first and last are read."""

    @property
    def size(self) -> int: ...

    def __getitem__(self, index: int, /) -> Point: ...


def make_backend(spec: RunSpec, sweep: Selected) -> Backend:
    """The backend ``spec.backend`` names, not yet entered (``sweep``: for ``--per-job``)."""
    if spec.backend == "ray":
        return _ray(spec, sweep)
    if spec.backend == "local":
        from runner import LocalBackend

        return LocalBackend(keep_leftovers=spec.keep_leftovers)
    raise RangeExprError(f"--backend must be one of {', '.join(BACKENDS)}, not {spec.backend!r}")


def _ray(spec: RunSpec, sweep: Selected) -> RayBackend:
    """Ray jobs, K points to a job with ``--per-job K`` (run by ``rangeexpr run --slice``
    on the node, which needs rangeexpr on its PATH)."""
    if not spec.address:
        raise RangeExprError("--backend ray needs --address http://HOST:8265")
    batching = None
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
                jobs=max(1, math.ceil(spec.entrypoint_num_cpus)),
                timeout=spec.timeout,
            )
    from runner import RayBackend

    return RayBackend(
        spec.address,
        sweep_id=spec.sweep_id(),
        entrypoint_num_cpus=spec.entrypoint_num_cpus,
        batching=batching,
    )
