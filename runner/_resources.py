"""Resources per job on the local machine: requests, the pool, job slots and GPUs.

A ``Request`` is what one job asks for (cores, memory, GPUs, custom amounts); a ``Pool``
is what this machine has (the process's CPU affinity, the memory available at start, the
GPUs given by ``detect_gpus``) plus ``slots`` job slots. ``async with pool.allocate(req)``
waits until the request fits and yields a ``Grant``: a slot number ``0..slots-1`` unique
among running jobs and reused as they end (GNU Parallel's ``{%}``), specific CPUs to pin,
specific GPUs, the memory it may use. ``pool.check`` rejects a request that can never fit
before anything runs.

Order jobs start in: first come, first served, with bounded backfilling. Waiting requests
form one queue in arrival order; the first is started as soon as it fits. While it does
not fit, a later request that fits now may start ahead of it, but the first waiting
request is overtaken at most ``backfill`` times: after that nothing starts until it fits.
No request waits forever: the head only ever waits for running jobs to end (it fits the
empty pool, ``check``), is passed by at most ``backfill`` others, and every request
becomes the head once those before it have started.

Enforcement: CPUs are pinned where the OS allows (``spawn_pinned``); GPUs through
``CUDA_VISIBLE_DEVICES`` (``Pool.environment``); memory is accounted always and limited
by a child cgroup where one can be made, v2 preferred, else v1 (``memory_limiter``), else
only accounted. This module imports nothing from rangeexpr: it is the runner's own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import heapq
import math
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType

import trio

__all__ = [
    "KNOWN_RESOURCES",
    "THREAD_VARIABLES",
    "Grant",
    "MemoryLimit",
    "MemoryLimiter",
    "Pool",
    "PoolStatistics",
    "Request",
    "ResourceError",
    "detect_gpus",
    "format_size",
    "memory_limiter",
    "parse_resource",
    "pin_tree",
    "resource_name",
    "spawn_pinned",
]

# Backend.AI's slot names (its client's ``-r NAME=VALUE``) -> ours. ``cuda.device`` is
# Backend.AI's whole-GPU slot; its fractional ``cuda.shares`` has no local equivalent.
KNOWN_RESOURCES: Mapping[str, str] = MappingProxyType(
    {"cpu": "cpu", "mem": "mem", "gpu": "gpu", "cuda.device": "gpu"}
)
# Thread pools sized from the job's CPU count unless the user set them (OpenMP, OpenBLAS,
# MKL, numexpr, Apple Accelerate, BLIS).
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "BLIS_NUM_THREADS",
)
# Sizes as Backend.AI reads them: binary units, case-insensitive, optional "b"/"ib"/"bytes"
# ending, "_" between digits, decimals allowed with a unit ("1.5g"), and a bare number in
# MiB. Sources (lablup/backend.ai): BinarySize.suffix_map in src/ai/backend/common/types.py
# (k = 2**10, m = 2**20, g = 2**30, t = 2**40, p = 2**50); prepare_resource_arg in
# src/ai/backend/client/cli/session/execute.py: 'The default suffix is "m" (mega) if not
# specified.'
_SCALES = {"": 2**20, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgtp])(?:i?b(?:ytes?)?)?|(b(?:ytes?)?))?", re.I)
_SIZE_HELP = (
    "expected a size such as 256m, 4g, 1.5g, 512k or 1024b (binary units: k = KiB, "
    "m = MiB, g = GiB, t = TiB, p = PiB, b = bytes; a bare number is MiB, as in Backend.AI)"
)
_MILLI = 1000  # CPUs and custom amounts are counted in thousandths (Backend.AI's quantum)


class ResourceError(ValueError):
    """A request this pool can never grant, or a bad resource name, value or GPU list."""


def resource_name(name: str) -> str | None:
    """Our name for a known resource (``cuda.device`` -> ``gpu``); None for a custom one."""
    return KNOWN_RESOURCES.get(name.strip().lower())


def parse_resource(name: str, value: str) -> float | int:
    """The amount ``value`` of resource ``name``: cores, bytes, a GPU count, or a number.

    ``cpu`` takes cores (``2``, ``0.5``); ``mem`` a size (``256m``, ``4g``, ``1.5g``,
    ``512k``, ``1024b``; a bare number is MiB as in Backend.AI's client); ``gpu`` and
    ``cuda.device`` a whole number of GPUs; any other name a custom amount >= 0.
    """
    text = value.strip().replace("_", "")
    kind = resource_name(name)
    if kind == "mem":
        return _parse_size(name, value, text)
    if kind == "gpu":
        if not re.fullmatch(r"\d+", text, re.ASCII):
            raise ResourceError(
                f"{name}={value!r}: expected a whole number of GPUs, such as 1 or 2"
            )
        return int(text)
    amount = _number(text)
    if amount is None:
        what = "a number of cores, such as 1, 2 or 0.5" if kind == "cpu" else "a number >= 0"
        raise ResourceError(f"{name}={value!r}: expected {what}")
    return amount


def _number(text: str) -> float | None:
    """A finite number >= 0 (int when whole), or None."""
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    if not number.is_finite() or number < 0:
        return None
    return int(number) if number == number.to_integral_value() else float(number)


def _parse_size(name: str, value: str, text: str) -> int:
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ResourceError(f"{name}={value!r}: {_SIZE_HELP}")
    digits, unit, byte_unit = match.groups()
    scale = _SCALES[(unit or ("b" if byte_unit else "")).lower()]
    size = Decimal(digits) * scale
    if size != size.to_integral_value() and scale == 1:
        raise ResourceError(f"{name}={value!r}: a number of bytes must be whole")
    return int(size)  # a fraction of a byte left by "0.3k" is dropped, as Backend.AI does


def _short_size(size: int) -> str:
    """``size`` in the largest unit that divides it, as a request is written: ``1536m``."""
    for unit in "tgmk":
        if size and size % _SCALES[unit] == 0:
            return f"{size // _SCALES[unit]}{unit}"
    return f"{size}b"


def format_size(size: int) -> str:
    """``size`` bytes in the largest binary unit that keeps it >= 1: ``1.5 GiB``."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.4g} {unit}"
    return f"{size} bytes"


@dataclass(frozen=True)
class Request:
    """What one job asks for: ``cpu`` cores (0.5 allowed), ``mem`` bytes, ``gpu`` GPUs.

    ``custom`` maps other resource names to amounts (Ray's custom resources); a local
    pool has none, so ``Pool.check`` refuses them. Zero means "not asked for".
    """

    cpu: float = 0
    mem: int = 0
    gpu: int = 0
    custom: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, amount in (("cpu", self.cpu), ("mem", self.mem), ("gpu", self.gpu)):
            if not (math.isfinite(amount) and amount >= 0):
                raise ResourceError(f"{name} must be a finite number >= 0, not {amount!r}")
        for name, amount in self.custom.items():
            if resource_name(name) is not None or not (math.isfinite(amount) and amount >= 0):
                raise ResourceError(f"bad custom resource {name}={amount!r}")
        custom = {k: v for k, v in sorted(self.custom.items()) if v}
        object.__setattr__(self, "custom", MappingProxyType(custom))

    def __hash__(self) -> int:
        return hash((self.cpu, self.mem, self.gpu, tuple(self.custom.items())))

    def __str__(self) -> str:
        """``cpu=1 mem=256m gpu=1``: the form it is written in, sizes in whole units."""
        asked = self.as_dict()
        shown = {k: _short_size(int(v)) if k == "mem" else f"{v:g}" for k, v in asked.items()}
        return " ".join(f"{k}={v}" for k, v in shown.items()) or "nothing"

    @classmethod
    def parse(cls, pairs: Iterable[tuple[str, str]], *, custom: bool = False) -> Request:
        """A request from ``(name, value)`` pairs; custom names only when ``custom``."""
        amounts: dict[str, float] = {}
        given: dict[str, str] = {}  # our name -> the name it was given as
        for name, value in pairs:
            kind = resource_name(name)
            if kind is None and not custom:
                known = ", ".join(KNOWN_RESOURCES)
                raise ResourceError(f"unknown resource {name!r} (known: {known})")
            key = kind or name.strip()
            if key in given:
                same = "" if given[key] == name else f" (as {given[key]!r} and {name!r})"
                raise ResourceError(f"resource {key!r} is given twice{same}")
            given[key] = name
            amounts[key] = parse_resource(name, value)
        cpu, mem, gpu = (amounts.pop(k, 0) for k in ("cpu", "mem", "gpu"))
        return cls(cpu, int(mem), int(gpu), amounts)

    def as_dict(self) -> dict[str, float | int]:
        """The amounts asked for, zeros left out: what the job log records."""
        asked = {"cpu": self.cpu, "mem": self.mem, "gpu": self.gpu, **self.custom}
        return {k: v for k, v in asked.items() if v}


@dataclass(frozen=True, slots=True)
class Grant:
    """What one running job was given: a slot, the CPUs to pin, GPUs, memory."""

    slot: int  # 0..slots-1, unique among running jobs (GNU Parallel's {%}, from 0)
    cpus: tuple[int, ...]  # cores to pin: as many as a whole-number cpu request, else ()
    gpus: tuple[str, ...]  # device ids, as CUDA_VISIBLE_DEVICES takes them
    mem: int  # bytes: the job's limit where one is enforced
    request: Request

    def as_dict(self) -> dict[str, object]:
        """What the job log records of it."""
        return {"slot": self.slot, "cpus": list(self.cpus), "gpus": list(self.gpus)}


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    """A snapshot of a pool: what is running, waiting and free."""

    running: int
    waiting: int
    free_slots: int
    free_cpu: float
    free_mem: int
    free_gpus: tuple[str, ...]


@dataclass(eq=False, slots=True)
class _Waiter:
    request: Request
    event: trio.Event = dataclasses.field(default_factory=trio.Event)
    grant: Grant | None = None
    overtaken: int = 0


class Pool:
    """The resources jobs share, and the queue of jobs waiting for them.

    ``slots`` bounds the jobs running at once (``-j``). ``cpus``: core ids (pinnable);
    ``mem``: bytes; ``gpus``: device ids; ``custom``: other named amounts. ``backfill``:
    how many later requests may start ahead of the first waiting one (default ``slots``).
    ``Pool.local`` reads this machine's.
    """

    def __init__(
        self,
        slots: int,
        *,
        cpus: Iterable[int],
        mem: int,
        gpus: Sequence[str] = (),
        custom: Mapping[str, float] | None = None,
        backfill: int | None = None,
    ):
        if slots < 1:
            raise ValueError(f"slots must be >= 1, not {slots}")
        if len(set(gpus)) != len(gpus):
            raise ResourceError(f"GPU ids must be unique: {','.join(gpus)}")
        self.slots = slots
        self.cpus = tuple(sorted(set(cpus)))
        self.mem = mem
        self.gpus = tuple(gpus)
        self.custom: Mapping[str, float] = MappingProxyType(dict(custom or {}))
        self.backfill = slots if backfill is None else backfill
        self._free_slots = list(range(slots))  # a min-heap: the lowest free slot first
        self._free_cpu = len(self.cpus) * _MILLI
        self._pinned: set[int] = set()
        self._held: dict[int, Grant] = {}  # by slot: the grants not given back yet
        self._free_mem = mem
        self._free_gpus = list(self.gpus)
        self._free_custom = {k: round(v * _MILLI) for k, v in self.custom.items()}
        self._queue: list[_Waiter] = []

    @classmethod
    def local(cls, slots: int, gpus: Sequence[str] = (), *, backfill: int | None = None) -> Pool:
        """This machine: the process's CPU affinity and the memory available now."""
        return cls(slots, cpus=_affinity(), mem=_available_memory(), gpus=gpus, backfill=backfill)

    def __repr__(self) -> str:
        s = self.statistics()
        return (
            f"<Pool running={s.running} waiting={s.waiting} free_slots={s.free_slots} "
            f"free_cpu={s.free_cpu:g} free_mem={s.free_mem} free_gpus={','.join(s.free_gpus)}>"
        )

    def statistics(self) -> PoolStatistics:
        return PoolStatistics(
            self.slots - len(self._free_slots),
            len(self._queue),
            len(self._free_slots),
            self._free_cpu / _MILLI,
            self._free_mem,
            tuple(self._free_gpus),
        )

    def check(self, request: Request) -> None:
        """Raise ResourceError if ``request`` would not fit even in the empty pool."""
        if _milli(request.cpu) > len(self.cpus) * _MILLI:
            cores = _ranges(self.cpus) or "none"
            raise ResourceError(
                f"{_asking(request)}, but there {_count(len(self.cpus), 'CPU')} (cores {cores}, "
                "the process's CPU affinity)"
            )
        if request.mem > self.mem:
            raise ResourceError(
                f"{_asking(request)}, but there is {format_size(self.mem)} of memory "
                "(available at start)"
            )
        if request.gpu > len(self.gpus):
            ids = ",".join(self.gpus) or "none found; give their ids with --gpus"
            have = f"{_count(len(self.gpus), 'GPU')} ({ids})"
            raise ResourceError(f"{_asking(request)}, but there {have}")
        for name, amount in request.custom.items():
            if name not in self.custom:
                names = ", ".join(["cpu", "mem", "gpu", *self.custom])
                raise ResourceError(
                    f"{_asking(request)}, but there is no resource {name!r} here "
                    f"(there are {names})"
                )
            if amount > self.custom[name]:
                raise ResourceError(
                    f"{_asking(request)}, but there is {name}={self.custom[name]:g}"
                )

    @contextlib.asynccontextmanager
    async def allocate(self, request: Request) -> AsyncIterator[Grant]:
        """Wait until ``request`` fits (in queue order, see the module), hold it, release."""
        self.check(request)
        waiter = _Waiter(request)
        self._queue.append(waiter)
        self._dispatch()
        try:
            await waiter.event.wait()
        except BaseException:  # cancelled while waiting, or at the checkpoint once granted
            if waiter.grant is None:
                self._queue.remove(waiter)
            else:
                self._release(waiter.grant)
            self._dispatch()  # a new head, or freed resources, may let others start
            raise
        grant = waiter.grant
        assert grant is not None
        try:
            yield grant
        finally:
            self.release(grant)

    def release(self, grant: Grant) -> bool:
        """Give ``grant`` back, and start what may start now; whether a waiting request
        did. The block that allocated it does so as it ends; a caller whose job is over may
        do it sooner (once is enough: later calls, the block's own included, do nothing)."""
        if not self._release(grant):
            return False
        waiting = len(self._queue)
        self._dispatch()
        return len(self._queue) < waiting

    def _dispatch(self) -> None:
        """Start the waiting requests that may start now, in queue order (module docs)."""
        queue = self._queue
        i = 0
        # Nothing frees up during a pass: a request that did not fit still does not, and
        # neither do those that are the same object (most jobs share theirs).
        unfit = None
        while i < len(queue) and self._free_slots:
            waiter = queue[i]
            if waiter.request is not unfit and self._fits(waiter.request):
                head = queue[0]
                if i > 0:
                    head.overtaken += 1
                del queue[i]
                waiter.grant = self._take(waiter.request)
                waiter.event.set()
                if i > 0 and head.overtaken >= self.backfill:
                    return
            elif i == 0 and queue[0].overtaken >= self.backfill:
                return  # the head has been passed enough: all wait until it fits
            else:
                unfit = waiter.request
                i += 1

    def _fits(self, request: Request) -> bool:
        return (
            _milli(request.cpu) <= self._free_cpu
            and request.mem <= self._free_mem
            and request.gpu <= len(self._free_gpus)
            and all(_milli(v) <= self._free_custom[k] for k, v in request.custom.items())
        )

    def _take(self, request: Request) -> Grant:
        slot = heapq.heappop(self._free_slots)
        self._free_cpu -= _milli(request.cpu)
        cpus: tuple[int, ...] = ()
        if request.cpu and request.cpu == int(request.cpu):
            cpus = tuple(c for c in self.cpus if c not in self._pinned)[: int(request.cpu)]
            self._pinned.update(cpus)
        self._free_mem -= request.mem
        gpus = tuple(self._free_gpus[: request.gpu])
        del self._free_gpus[: request.gpu]
        for name, amount in request.custom.items():
            self._free_custom[name] -= _milli(amount)
        self._held[slot] = grant = Grant(slot, cpus, gpus, request.mem, request)
        return grant

    def _release(self, grant: Grant) -> bool:
        """Free what ``grant`` holds; False if it was given back already."""
        if self._held.get(grant.slot) is not grant:
            return False
        del self._held[grant.slot]
        request = grant.request
        heapq.heappush(self._free_slots, grant.slot)
        self._free_cpu += _milli(request.cpu)
        self._pinned.difference_update(grant.cpus)
        self._free_mem += request.mem
        self._free_gpus.extend(grant.gpus)
        self._free_gpus.sort(key=self.gpus.index)  # lowest ids first, as given
        for name, amount in request.custom.items():
            self._free_custom[name] += _milli(amount)
        return True

    def environment(self, grant: Grant, user_env: Mapping[str, str]) -> dict[str, str]:
        """The variables to add to a job's environment for ``grant``.

        ``user_env`` is what the user set for the job (``-e``): the thread-count variables
        are set only where the user did not set them. When the pool has GPUs, every job
        gets ``CUDA_VISIBLE_DEVICES`` (empty without a GPU request), so no job sees a GPU
        it was not given.
        """
        env = {"RANGEEXPR_SLOT": str(grant.slot), "RANGEEXPR_GPUS": ",".join(grant.gpus)}
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(grant.gpus)
        if grant.request.cpu:
            threads = str(max(1, int(grant.request.cpu)))
            env.update({k: threads for k in THREAD_VARIABLES if k not in user_env})
        return env


def _asking(request: Request) -> str:
    """How a refusal starts; made only on refusal, as ``check`` runs for every job."""
    return f"a job asks for {request}"


def _count(n: int, thing: str) -> str:
    """``is 1 GPU``, ``are 2 GPUs``, ``are no GPUs``."""
    return f"is 1 {thing}" if n == 1 else f"are {n or 'no'} {thing}s"


def _milli(amount: float) -> int:
    return round(amount * _MILLI)


def _ranges(ids: Sequence[int]) -> str:
    """``0-3,8`` for (0, 1, 2, 3, 8), as cpusets are written."""
    parts: list[str] = []
    for i in ids:
        if parts and int(parts[-1].rpartition("-")[2]) == i - 1:
            parts[-1] = f"{parts[-1].partition('-')[0]}-{i}"
        else:
            parts.append(str(i))
    return ",".join(parts)


def _affinity() -> tuple[int, ...]:
    """The cores this process may run on (all of them where the OS cannot say)."""
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


def _available_memory(meminfo: Path = Path("/proc/meminfo")) -> int:
    """MemAvailable in bytes (Linux); elsewhere the physical memory."""
    with contextlib.suppress(OSError):
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # the kernel writes kB, meaning KiB
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


# ---------------------------------------------------------------------------- GPUs

_CUDA_ID = re.compile(r"\d+|(?:GPU|MIG)-[\w./-]+")
_SMI_GPU = re.compile(r"GPU (\d+):")


def detect_gpus(spec: str, env: Mapping[str, str]) -> tuple[str, ...]:
    """The GPU ids of ``--gpus``: a comma-separated LIST, ``auto`` or ``none``.

    ``auto``: ``CUDA_VISIBLE_DEVICES`` from ``env`` when set; else the GPUs ``nvidia-smi
    -L`` (found on ``env``'s PATH) lists; else none.
    """
    spec = spec.strip()
    if spec == "none":
        return ()
    if spec == "auto":
        visible = env.get("CUDA_VISIBLE_DEVICES")
        if visible is not None:
            return _cuda_visible(visible)
        return _nvidia_smi(env)
    ids = tuple(part.strip() for part in spec.split(","))
    bad = next((i for i in ids if not i or any(c.isspace() for c in i)), None)
    if bad is not None:
        raise ResourceError(
            f"GPU list {spec!r} has an empty or blank id; expected ids such as 0,1,2,3 "
            "(or auto, or none)"
        )
    if len(set(ids)) != len(ids):
        raise ResourceError(f"GPU list {spec!r} names a GPU twice")
    return ids


def _cuda_visible(value: str) -> tuple[str, ...]:
    """The ids of a CUDA_VISIBLE_DEVICES value.

    As CUDA reads it: the devices before the first id that is not a GPU index or UUID
    ("If one of the indices is invalid, only the devices whose index precedes the invalid
    index are visible", CUDA C Programming Guide, CUDA Environment Variables). So ``""``,
    ``-1`` and Slurm's ``NoDevFiles`` mean none.
    """
    ids: list[str] = []
    for part in (p.strip() for p in value.split(",")):
        if not _CUDA_ID.fullmatch(part) or part in ids:
            break
        ids.append(part)
    return tuple(ids)


def _nvidia_smi(env: Mapping[str, str]) -> tuple[str, ...]:
    """The indices of the GPUs ``nvidia-smi -L`` lists; none if it is missing or fails."""
    program = shutil.which("nvidia-smi", path=env.get("PATH", os.defpath))
    if program is None:
        return ()
    try:
        listing = subprocess.run(
            [program, "-L"], capture_output=True, text=True, timeout=30, env=dict(env), check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ()
    if listing.returncode != 0:
        return ()
    # "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-...)"; MIG devices are indented lines.
    return tuple(m[1] for m in map(_SMI_GPU.match, listing.stdout.splitlines()) if m)


# ---------------------------------------------------------------------------- CPUs


def spawn_pinned(spawn: Callable[[], int], cpus: Sequence[int]) -> tuple[int, bool]:
    """Call ``spawn`` (it starts a process and returns its pid) so that the process runs
    on ``cpus`` only; its pid, and whether what it started before it was pinned must
    still be (``pin_tree``, once its exec is over).

    A child inherits the spawning thread's mask, so when this thread is on one of ``cpus``
    it narrows its own mask around the spawn: no move, ~3 us, and the job is pinned from
    its first instruction, all it starts with it. Otherwise narrowing would move this
    thread and wait until that core runs it (40-150 us per job here, a VM waking a halted
    vCPU), so the process is pinned right after the spawn (~10 us) instead. But it has
    run since its exec, and this thread may get its CPU back only after a shell in it has
    started its command (a few ms when the cores are busy): hence the ``True``. ``()``
    spawns as is; where the OS cannot pin (not Linux) or refuses (a core went offline)
    the job runs unpinned.
    """
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return spawn(), False
    if _current_cpu() in cpus:
        before = os.sched_getaffinity(0)
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, cpus)
        try:
            return spawn(), False
        finally:
            os.sched_setaffinity(0, before)
    pid = spawn()
    try:
        os.sched_setaffinity(pid, cpus)
    except OSError:
        return pid, False
    return pid, True


def pin_tree(pid: int, cpus: Sequence[int]) -> None:
    """Pin process ``pid``, its threads and its children, and theirs, to ``cpus``.

    Reads /proc, which waits while the process is in exec (its exec lock): call it once
    that is over, then ~15 us. Best effort: a process that ends meanwhile is passed over.
    """
    try:
        os.sched_setaffinity(pid, cpus)
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    for tid in threads:
        if tid != str(pid):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(tid), cpus)
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as file:
                children = file.read().split()
        except OSError:
            continue
        for child in children:
            pin_tree(int(child), cpus)


@functools.cache
def _sched_getcpu() -> Callable[[], int] | None:
    """glibc's ``sched_getcpu`` (a vDSO read, no system call); None without it."""
    import ctypes

    try:
        getcpu: Callable[[], int] = ctypes.CDLL(None).sched_getcpu
        return getcpu
    except (OSError, AttributeError):
        return None


def _current_cpu() -> int:
    """The CPU this thread runs on now (a hint: it may move at once); -1 if unknown."""
    getcpu = _sched_getcpu()
    return -1 if getcpu is None else int(getcpu())


# ---------------------------------------------------------------------------- memory

# A job's group, by cgroup version: the file its limit goes to, and settings written where
# the kernel has them. No swap, so a job over its limit is killed rather than slowed: v2's
# swap.max; v1's memory+swap limit at the same value, and swappiness 0 for kernels that do
# not account swap. v2's oom.group ends the whole job at once; v1 kills the largest process,
# with the OOM killer switched on even where the parent group disabled it.
_LIMIT = {2: "memory.max", 1: "memory.limit_in_bytes"}
_SETTINGS = {
    2: (("memory.swap.max", "0"), ("memory.oom.group", "1")),
    1: (
        ("memory.memsw.limit_in_bytes", "{max}"),
        ("memory.swappiness", "0"),
        ("memory.oom_control", "0"),
    ),
}
_PEAK = {2: "memory.peak", 1: "memory.max_usage_in_bytes"}
_ROUNDS = 10  # of moving a job's processes in, or its leftovers out, against forks


@dataclass(frozen=True, slots=True)
class MemoryLimit:
    """One job's memory cgroup (cgroup ``version`` 2 or 1), limited to ``max`` bytes."""

    path: Path
    max: int
    version: int = 2

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of the job for going over ``max``.

        v2 counts kills in ``memory.events``, v1 in ``memory.oom_control`` (Linux >= 4.13).
        Older v1 kernels have only ``memory.failcnt``: how often usage hit the limit, each
        time followed by reclaim, so a job that hit its limit is taken as killed for it.
        """
        if self.version == 2:
            events = _counters(self.path / "memory.events")
            return events.get("oom_kill", 0) + events.get("oom_group_kill", 0) > 0
        control = _counters(self.path / "memory.oom_control")
        if "oom_kill" in control:
            return control["oom_kill"] > 0
        return (_read_int(self.path / "memory.failcnt") or 0) > 0

    def peak(self) -> int | None:
        """The job's peak memory in bytes, if known (v2's ``memory.peak`` needs Linux 5.19)."""
        return _read_int(self.path / _PEAK[self.version])

    def close(self) -> None:
        """Remove the group, once the job's process group has ended.

        Processes the job left in it keep it from being removed: ones that left the job's
        process group (``setsid``, a daemon) or kept with ``keep_leftovers``. They are moved
        to the parent group, where they run on without the job's limit, and the group goes.
        """
        for _ in range(_ROUNDS):
            try:
                self.path.rmdir()
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY:  # gone already, or not ours to remove
                    return
            with contextlib.suppress(OSError):
                pids = (self.path / "cgroup.procs").read_text().split()
                _move([int(pid) for pid in pids], self.path.parent / "cgroup.procs")


class MemoryLimiter:
    """Makes child groups of ``parent`` with a memory limit, one per job.

    ``version`` is the cgroup version of ``parent``'s hierarchy: 2, or 1 where the memory
    controller is only on a v1 hierarchy.
    """

    def __init__(self, parent: Path, version: int = 2):
        self.parent = parent
        self.version = version
        self._count = 0

    def __repr__(self) -> str:
        return f"<MemoryLimiter v{self.version} {self.parent}>"

    def limit(self, pid: int, max_bytes: int) -> MemoryLimit:
        """Move process ``pid``, which leads its own process group, and that group into a
        new cgroup limited to ``max_bytes``; OSError if not.

        Call it right after the spawn. A move can take long enough for a shell to have
        started the real job outside (14 ms on the cgroup v1 VMs this is tested on: the
        kernel synchronises its CPUs), so what the process group holds is moved after it
        until nothing is left out: only what left the process group that soon escapes.
        """
        self._count += 1
        limit = MemoryLimit(
            self.parent / f"rangeexpr-{os.getpid()}-{self._count}", max_bytes, self.version
        )
        path = limit.path
        path.mkdir()
        try:
            (path / _LIMIT[self.version]).write_text(f"{max_bytes}\n")
            for name, value in _SETTINGS[self.version]:
                if (path / name).exists():
                    (path / name).write_text(f"{value.format(max=max_bytes)}\n")
            procs = path / "cgroup.procs"
            _move([pid], procs, strict=True)
            for _ in range(_ROUNDS):
                inside = set(procs.read_text().split())
                outside = [p for p in process_group(pid) or () if str(p) not in inside]
                if not outside:
                    break
                _move(outside, procs)
        except BaseException:
            limit.close()  # moving what got in back out: the job runs on, not limited
            raise
        return limit


def memory_limiter(
    *, mountinfo: Path = Path("/proc/self/mountinfo"), cgroup: Path = Path("/proc/self/cgroup")
) -> MemoryLimiter | None:
    """A limiter for child groups of this process's memory cgroup, or None if impossible.

    cgroup v2 first: possible when this process's group there offers the memory controller
    (``cgroup.controllers``), is writable, and passes it to children
    (``cgroup.subtree_control``, which we try to enable: the kernel refuses while the group
    holds processes, unless it is the root). Else cgroup v1, where most hybrid and older
    hosts keep memory: a ``cgroup`` mount with the ``memory`` option, and this process's
    group in it writable (v1 has no rule against children of a group with processes).
    Elsewhere (no delegation, read-only, not Linux) memory is only accounted.
    """
    mounts = _cgroup_mounts(mountinfo)
    groups = _cgroup_groups(cgroup)
    v2 = _cgroup_dir(mounts.get(""), groups.get(""))
    if v2 is not None and _offers_memory(v2):
        return MemoryLimiter(v2, 2)
    v1 = _cgroup_dir(mounts.get("memory"), groups.get("memory"))
    if v1 is not None and v1.is_dir() and os.access(v1, os.W_OK):
        return MemoryLimiter(v1, 1)
    return None


def _offers_memory(group: Path) -> bool:
    """Whether children of v2 ``group`` can get the memory controller from us."""
    try:
        if "memory" not in (group / "cgroup.controllers").read_text().split():
            return False
        if not os.access(group, os.W_OK):
            return False
        control = group / "cgroup.subtree_control"
        if "memory" not in control.read_text().split():
            control.write_text("+memory\n")
            return "memory" in control.read_text().split()
    except OSError as exc:
        if exc.errno not in (errno.EBUSY, errno.EACCES, errno.EPERM, errno.ENOENT, errno.EROFS):
            raise
        return False
    return True


def _cgroup_mounts(mountinfo: Path) -> dict[str, tuple[str, Path]]:
    """The cgroup hierarchies mounted: (root in the hierarchy, mount point) by controller.

    ``""`` is the v2 hierarchy (type ``cgroup2``); a v1 one (type ``cgroup``) is listed
    under each of its super options, which name its controllers (``memory``).
    """
    mounts: dict[str, tuple[str, Path]] = {}
    with contextlib.suppress(OSError):
        for line in mountinfo.read_text().splitlines():
            fields, _, fs = line.partition(" - ")
            parts, kinds = fields.split(), fs.split()  # kinds: type, source, super options
            if len(parts) < 5 or len(kinds) < 3 or kinds[0] not in ("cgroup", "cgroup2"):
                continue
            root, point = _unescape(parts[3]), Path(_unescape(parts[4]))
            for name in kinds[2].split(",") if kinds[0] == "cgroup" else [""]:
                mounts.setdefault(name, (root, point))
    return mounts


def _cgroup_groups(cgroup: Path) -> dict[str, str]:
    """This process's group in each hierarchy, from ``/proc/self/cgroup``: ``""`` for the
    v2 line (``0::/path``), each v1 controller for ``N:memory:/path``."""
    groups: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in cgroup.read_text().splitlines():
            controllers, found, path = line.partition(":")[2].partition(":")
            if found:
                for name in controllers.split(",") if controllers else [""]:
                    groups.setdefault(name, path)
    return groups


def _cgroup_dir(mount: tuple[str, Path] | None, group: str | None) -> Path | None:
    """Where ``group`` is in the file system, if it is under the root of ``mount``.

    A container often mounts only its own subtree: root ``/docker/ID``, with the process
    in ``/docker/ID`` (no cgroup namespace) or in ``/`` (one of its own).
    """
    if mount is None or group is None or not group.startswith("/"):
        return None
    root, point = mount
    if root == "/":
        return point / group.lstrip("/")
    if group != root and not group.startswith(root + "/"):
        return None
    return point / group[len(root) :].lstrip("/")


def _unescape(field: str) -> str:
    """A mountinfo path field: the kernel writes space, tab, newline, ``\\`` as octal."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def _move(pids: Iterable[int], procs: Path, *, strict: bool = False) -> None:
    """Move processes into the group of ``procs`` (its ``cgroup.procs``), one write each;
    one that ended meanwhile is skipped unless ``strict``."""
    fd = os.open(procs, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        for pid in pids:
            try:
                os.write(fd, f"{pid}\n".encode())
            except ProcessLookupError:
                if strict:
                    raise
    finally:
        os.close(fd)


def process_group(pgid: int) -> list[int] | None:
    """The live processes of process group ``pgid``, from /proc (zombies left out); None
    where /proc cannot be read."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    members = []
    for entry in entries:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    # "pid (comm) state ppid pgrp ...": comm may hold spaces and ")"
                    fields = f.read().rpartition(b")")[2].split(maxsplit=3)
            except OSError:  # it ended meanwhile
                continue
            if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                members.append(int(entry))
    return members


def _counters(path: Path) -> dict[str, int]:
    """A ``name value`` per line cgroup file (``memory.events``); empty if unreadable."""
    counters: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                counters[name] = int(value)
    return counters


def _read_int(path: Path) -> int | None:
    """A one-number cgroup file, or None where it is missing or unreadable."""
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None
