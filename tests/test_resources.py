"""Resources per job (runner/_resources.py): parsing, the pool's laws, GPUs, env, pinning.

The allocation laws are checked on trio's mock clock from what the jobs themselves record
(start, end, slot, devices), not from the pool's bookkeeping: no two jobs running at the
same time share a slot, a GPU or a pinned core, never more than ``slots`` run, the sums
stay within the pool, and no request waits forever.
"""

from __future__ import annotations

import math
import os
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from runner._resources import (
    THREAD_VARIABLES,
    MemoryLimit,
    MemoryLimiter,
    Pool,
    Request,
    ResourceError,
    _available_memory,
    _current_cpu,
    _ranges,
    detect_gpus,
    memory_limiter,
    parse_resource,
    pin_tree,
    spawn_pinned,
)

MiB, GiB = 2**20, 2**30


def run_virtual(main: Callable[[], Awaitable[object]]) -> None:
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


# ---------------------------------------------------------------------------- parsing

VALID = [
    ("cpu", "1", 1),
    ("cpu", "2", 2),
    ("cpu", "0.5", 0.5),  # fractional cores, as Backend.AI and Ray allow
    ("cpu", " 4 ", 4),
    ("mem", "256m", 256 * MiB),  # the Backend.AI README's example
    ("mem", "4g", 4 * GiB),
    ("mem", "4G", 4 * GiB),  # units are case-insensitive
    ("mem", "1.5g", 1536 * MiB),
    ("mem", "512k", 512 * 1024),
    ("mem", "256", 256 * MiB),  # a bare number is MiB: Backend.AI's client adds "m"
    ("mem", "1024b", 1024),  # bytes need the "b"
    ("mem", "1024 bytes", 1024),
    ("mem", "2GiB", 2 * GiB),
    ("mem", "2gb", 2 * GiB),  # Backend.AI reads "gb" as GiB too: units are binary
    ("mem", "1_024m", GiB),  # "_" between digits, as Backend.AI's BinarySize
    ("mem", "1t", 2**40),
    ("mem", "0", 0),
    ("gpu", "1", 1),
    ("gpu", "0", 0),
    ("cuda.device", "2", 2),  # Backend.AI's name for whole GPUs
    ("tpu", "4", 4),  # a custom resource: any number >= 0
    ("tpu", "0.25", 0.25),
]

SIZE_HELP = (
    "expected a size such as 256m, 4g, 1.5g, 512k or 1024b (binary units: k = KiB, "
    "m = MiB, g = GiB, t = TiB, p = PiB, b = bytes; a bare number is MiB, as in Backend.AI)"
)
INVALID = [
    ("cpu", "two", "cpu='two': expected a number of cores, such as 1, 2 or 0.5"),
    ("cpu", "-1", "cpu='-1': expected a number of cores, such as 1, 2 or 0.5"),  # negative
    ("cpu", "nan", "cpu='nan': expected a number of cores, such as 1, 2 or 0.5"),
    ("cpu", "inf", "cpu='inf': expected a number of cores, such as 1, 2 or 0.5"),
    ("mem", "256x", f"mem='256x': {SIZE_HELP}"),  # not a unit
    ("mem", "4mm", f"mem='4mm': {SIZE_HELP}"),
    ("mem", "g", f"mem='g': {SIZE_HELP}"),  # no number
    ("mem", "-1g", f"mem='-1g': {SIZE_HELP}"),
    ("mem", "1.5b", "mem='1.5b': a number of bytes must be whole"),
    ("gpu", "1.5", "gpu='1.5': expected a whole number of GPUs, such as 1 or 2"),  # use 2
    ("gpu", "-1", "gpu='-1': expected a whole number of GPUs, such as 1 or 2"),
    ("cuda.device", "x", "cuda.device='x': expected a whole number of GPUs, such as 1 or 2"),
    ("tpu", "-1", "tpu='-1': expected a number >= 0"),
]


@pytest.mark.parametrize(("name", "value", "expected"), VALID)
def test_parse_valid(name: str, value: str, expected: float) -> None:
    amount = parse_resource(name, value)
    assert amount == expected
    assert type(amount) is type(expected)


@pytest.mark.parametrize(("name", "value", "message"), INVALID)
def test_parse_invalid(name: str, value: str, message: str) -> None:
    with pytest.raises(ResourceError) as info:
        parse_resource(name, value)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test_request_parse_backend_ai_names() -> None:
    request = Request.parse([("cpu", "1"), ("mem", "256m"), ("cuda.device", "1")])
    assert request == Request(cpu=1, mem=256 * MiB, gpu=1)
    assert str(request) == "cpu=1 mem=256m gpu=1"
    assert request.as_dict() == {"cpu": 1, "mem": 256 * MiB, "gpu": 1}
    assert str(Request(mem=1536 * MiB, custom={"tpu": 0.5})) == "mem=1536m tpu=0.5"
    assert str(Request()) == "nothing"


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("cpus", "2")], "unknown resource 'cpus' (known: cpu, mem, gpu, cuda.device)"),
        ([("cpu", "1"), ("cpu", "2")], "resource 'cpu' is given twice"),
        (
            [("gpu", "1"), ("cuda.device", "1")],  # two names of one resource
            "resource 'gpu' is given twice (as 'gpu' and 'cuda.device')",
        ),
    ],
)
def test_request_parse_invalid(pairs: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(ResourceError) as info:
        Request.parse(pairs)
    assert str(info.value) == message


def test_request_custom_only_when_allowed() -> None:
    assert Request.parse([("tpu", "2")], custom=True).custom == {"tpu": 2}
    with pytest.raises(ResourceError, match="unknown resource 'tpu'"):
        Request.parse([("tpu", "2")])


def test_request_is_frozen_and_hashable() -> None:
    a = Request(cpu=1, custom={"b": 1, "a": 2})
    assert a == Request(cpu=1, custom={"a": 2, "b": 1})
    assert hash(a) == hash(Request(cpu=1, custom={"a": 2, "b": 1}))
    with pytest.raises(TypeError):
        a.custom["a"] = 3  # type: ignore[index]


# ---------------------------------------------------------------------------- check

POOL = Pool(4, cpus=[0, 1, 2, 3, 8], mem=GiB, gpus=("0",))


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            Request(cpu=6),
            "a job asks for cpu=6, but there are 5 CPUs (cores 0-3,8, the process's CPU affinity)",
        ),
        (
            Request(mem=2 * GiB),
            "a job asks for mem=2g, but there is 1 GiB of memory (available at start)",
        ),
        (Request(gpu=2), "a job asks for gpu=2, but there is 1 GPU (0)"),
        (
            Request(custom={"tpu": 1}),
            "a job asks for tpu=1, but there is no resource 'tpu' here (there are cpu, mem, gpu)",
        ),
    ],
)
def test_check_rejects_what_never_fits(request_: Request, message: str) -> None:
    with pytest.raises(ResourceError) as info:
        POOL.check(request_)
    assert str(info.value) == message


def test_check_without_gpus_says_how_to_give_them() -> None:
    with pytest.raises(ResourceError) as info:
        Pool(1, cpus=[0], mem=GiB).check(Request(gpu=1))
    assert str(info.value) == (
        "a job asks for gpu=1, but there are no GPUs (none found; give their ids with --gpus)"
    )


def test_check_accepts_what_fits_the_empty_pool() -> None:
    POOL.check(Request(cpu=5, mem=GiB, gpu=1))


def test_allocate_checks_first() -> None:
    async def main() -> None:
        with pytest.raises(ResourceError, match="gpu=2"):
            async with POOL.allocate(Request(gpu=2)):
                pass

    run_virtual(main)


def test_local_pool_reads_this_machine(tmp_path: Path) -> None:
    pool = Pool.local(2)
    assert pool.cpus == tuple(sorted(os.sched_getaffinity(0)))
    assert pool.mem > 0
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  32000 kB\nMemFree:  100 kB\nMemAvailable:   23923620 kB\n")
    assert _available_memory(meminfo) == 23923620 * 1024


# ---------------------------------------------------------------------------- allocation


@dataclass
class Ran:
    """What one job saw of itself."""

    index: int
    request: Request
    arrived: float
    seq: int  # arrival order
    start: float = math.nan
    end: float = math.nan
    slot: int = -1
    gpus: tuple[str, ...] = ()
    cpus: tuple[int, ...] = ()


def simulate(pool: Pool, jobs: list[tuple[Request, float, float]], deadline: float) -> list[Ran]:
    """Run (request, arrival, duration) jobs through ``pool`` in virtual time."""
    ran: list[Ran] = []

    async def job(index: int, request: Request, arrival: float, duration: float) -> None:
        await trio.sleep(arrival)
        record = Ran(index, request, trio.current_time(), len(ran))
        ran.append(record)  # no checkpoint until allocate has queued the request
        async with pool.allocate(request) as grant:
            record.start = trio.current_time()
            record.slot, record.gpus, record.cpus = grant.slot, grant.gpus, grant.cpus
            await trio.sleep(duration)
            record.end = trio.current_time()

    async def main() -> None:
        with trio.fail_after(deadline):
            async with trio.open_nursery() as nursery:
                for index, (request, arrival, duration) in enumerate(jobs):
                    nursery.start_soon(job, index, request, arrival, duration)

    run_virtual(main)
    return sorted(ran, key=lambda r: r.index)


def check_never_shared(pool: Pool, ran: list[Ran]) -> None:
    """At each start, the jobs running then fit the pool and share no slot or device."""
    for t in sorted({r.start for r in ran}):
        now = [r for r in ran if r.start <= t < r.end]
        assert len(now) <= pool.slots
        slots = [r.slot for r in now]
        assert len(set(slots)) == len(slots) and all(0 <= s < pool.slots for s in slots)
        gpus = [g for r in now for g in r.gpus]
        assert len(set(gpus)) == len(gpus) and set(gpus) <= set(pool.gpus)
        cpus = [c for r in now for c in r.cpus]
        assert len(set(cpus)) == len(cpus) and set(cpus) <= set(pool.cpus)
        assert sum(r.request.cpu for r in now) <= len(pool.cpus) + 1e-9
        assert sum(r.request.mem for r in now) <= pool.mem
        for r in now:
            assert len(r.gpus) == r.request.gpu
            whole = r.request.cpu == int(r.request.cpu)
            assert len(r.cpus) == (int(r.request.cpu) if whole else 0)


requests = st.builds(
    Request,
    cpu=st.sampled_from([0, 0.5, 1, 2]),
    mem=st.sampled_from([0, 1, 2]),
    gpu=st.integers(0, 2),
)


@given(
    slots=st.integers(1, 4),
    ncpus=st.integers(2, 4),
    ngpus=st.integers(2, 4),
    backfill=st.integers(0, 3),
    jobs=st.lists(
        st.tuples(requests, st.integers(0, 4), st.integers(1, 5)), min_size=1, max_size=25
    ),
)
def test_allocation_laws(
    slots: int, ncpus: int, ngpus: int, backfill: int, jobs: list[tuple[Request, int, int]]
) -> None:
    """Law: every request starts (no starvation), and the invariants hold at every start.

    Liveness bound: while a request waits, a job runs (the first waiting one fits the
    empty pool), so all end by the last arrival plus the sum of all durations. Fairness
    bound: a request is overtaken by later ones at most ``backfill`` times per request
    that was waiting ahead of it when it came, plus ``backfill`` once it is first.
    """
    pool = Pool(slots, cpus=range(ncpus), mem=2, gpus=[f"g{i}" for i in range(ngpus)],
                backfill=backfill)  # fmt: skip
    deadline = max(a for _, a, _ in jobs) + sum(d for _, _, d in jobs) + 0.5
    ran = simulate(pool, [(r, float(a), float(d)) for r, a, d in jobs], deadline)
    assert all(r.end - r.start == d for r, (_, _, d) in zip(ran, jobs))  # every job ran
    check_never_shared(pool, ran)
    for r in ran:
        overtakers = [o for o in ran if o.seq > r.seq and o.start < r.start]
        ahead = [o for o in ran if o.seq < r.seq and o.start >= r.arrived]
        assert len(overtakers) <= backfill * (len(ahead) + 1)
    assert pool.statistics().running == pool.statistics().waiting == 0


def test_no_starvation_under_a_stream_of_small_requests() -> None:
    """A gpu=2 request behind a stream of gpu=1 that never frees two GPUs at once.

    Four GPUs, gpu=1 jobs of 4 s arriving every second: one GPU frees at a time and is
    taken again at once. Greedy backfilling would start the gpu=2 job only after the
    stream; here at most ``backfill`` later jobs pass it, then it gets the next two GPUs.
    """
    pool = Pool(8, cpus=[0], mem=1, gpus="0123", backfill=2)
    stream = [(Request(gpu=1), float(i), 4.0) for i in range(40)]
    big = (Request(gpu=2), 4.5, 1.0)
    ran = simulate(pool, [*stream, big], 100)
    check_never_shared(pool, ran)
    waiter = ran[-1]
    overtakers = [o for o in ran if o.seq > waiter.seq and o.start < waiter.start]
    assert 0 < len(overtakers) <= 2
    assert waiter.start < 10


def test_strict_fifo_with_no_backfill() -> None:
    pool = Pool(4, cpus=[0], mem=1, gpus="01", backfill=0)
    ran = simulate(
        pool, [(Request(gpu=1), 0, 2), (Request(gpu=2), 0.5, 1), (Request(gpu=1), 1, 1)], 10
    )
    assert [r.start for r in ran] == [0, 2, 3]  # the last waits behind gpu=2 though one fits


def test_backfill_lets_a_small_request_pass() -> None:
    pool = Pool(4, cpus=[0], mem=1, gpus="01", backfill=1)
    ran = simulate(
        pool, [(Request(gpu=1), 0, 2), (Request(gpu=2), 0.5, 1), (Request(gpu=1), 1, 1)], 10
    )
    assert [r.start for r in ran] == [0, 2, 1]


def test_slots_are_the_lowest_free_and_reused() -> None:
    pool = Pool(3, cpus=[0], mem=1)
    jobs = [(0, 8), (0.1, 1), (0.2, 2), (0.3, 5), (0.4, 5), (10, 1), (10.5, 1)]
    ran = simulate(pool, [(Request(), a, d) for a, d in jobs], 30)
    # Jobs 0-2 take slots 0-2; job 1 frees slot 1 at 1.1 (job 3 takes it), job 2 slot 2
    # at 2.2 (job 4). Then slot 1 frees at 6.1, slot 2 at 7.2, slot 0 at 8: job 5 takes
    # the lowest, 0, and job 6, while 5 runs, the next, 1.
    assert [(r.slot, r.start) for r in ran] == [
        (0, 0), (1, 0.1), (2, 0.2), (1, 1.1), (2, 2.2), (0, 10), (1, 10.5),
    ]  # fmt: skip


def test_jobs_limit_alone() -> None:
    pool = Pool(2, cpus=[0], mem=1)
    ran = simulate(pool, [(Request(), 0, 1)] * 5, 10)
    assert sorted(r.start for r in ran) == [0, 0, 1, 1, 2]


def test_cancelled_waiter_leaves_the_queue() -> None:
    """A head that gives up lets the requests behind it start (strict FIFO here)."""
    pool = Pool(4, cpus=[0], mem=1, gpus="01", backfill=0)
    started: list[str] = []

    async def hold(name: str, request: Request, duration: float) -> None:
        async with pool.allocate(request):
            started.append(name)
            await trio.sleep(duration)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hold, "a", Request(gpu=1), 10)
            await trio.sleep(1)
            with trio.move_on_after(1):
                await hold("big", Request(gpu=2), 1)  # waits for both GPUs, gives up
            nursery.start_soon(hold, "c", Request(gpu=1), 1)
            await trio.sleep(0.5)
            assert started == ["a", "c"]
            assert pool.statistics().waiting == 0

    run_virtual(main)


def test_statistics_and_release() -> None:
    pool = Pool(2, cpus=[0, 1], mem=10, gpus="01")

    async def main() -> None:
        async with pool.allocate(Request(cpu=1, mem=4, gpu=1)) as grant:
            assert (grant.slot, grant.cpus, grant.gpus, grant.mem) == (0, (0,), ("0",), 4)
            s = pool.statistics()
            assert (s.running, s.free_slots, s.free_cpu, s.free_mem, s.free_gpus) == (
                1, 1, 1.0, 6, ("1",),
            )  # fmt: skip
        s = pool.statistics()
        assert (s.running, s.free_cpu, s.free_mem, s.free_gpus) == (0, 2.0, 10, ("0", "1"))

    run_virtual(main)


def test_an_early_release_starts_the_next_and_happens_once() -> None:
    """``release`` inside the block (the job ended) hands the GPU on at once; the block's
    end then frees nothing a second time, though the slot went to the next job."""
    pool = Pool(1, cpus=[0], mem=1, gpus="0")
    events: list[tuple[str, float]] = []

    async def job(name: str, after: float) -> None:
        async with pool.allocate(Request(gpu=1)) as grant:
            events.append((f"{name} starts on {grant.gpus[0]}", trio.current_time()))
            await trio.sleep(1)
            started = pool.release(grant)  # whether a waiting job got the GPU
            events.append((f"{name} hands on: {started}", trio.current_time()))
            assert not pool.release(grant)  # once only
            await trio.sleep(after)  # writing its records
        events.append((f"{name} done", trio.current_time()))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(job, "a", 5)
            await trio.sleep(0.5)
            nursery.start_soon(job, "b", 0)
        s = pool.statistics()
        assert (s.running, s.free_slots, s.free_gpus) == (0, 1, ("0",))

    run_virtual(main)
    assert events == [
        ("a starts on 0", 0),
        ("a hands on: True", 1),
        ("b starts on 0", 1),
        ("b hands on: False", 2),
        ("b done", 2),
        ("a done", 6),
    ]


def test_packing_gpu1_over_four_gpus_is_ideal() -> None:
    """The benchmark's first case in virtual time: 40 x 0.2 s over 4 GPUs takes 2 s."""
    pool = Pool(4, cpus=[0], mem=1, gpus="0123")
    ran = simulate(pool, [(Request(gpu=1), 0, 0.2)] * 40, 10)
    assert max(r.end for r in ran) == pytest.approx(2.0)
    check_never_shared(pool, ran)


def test_packing_mixed_within_the_optimum() -> None:
    """Mixed gpu=1/gpu=2 of one duration: optimum = ceil(GPU units / 4) rounds.

    With one duration an optimal schedule runs in rounds (shift every job left to a
    multiple of the duration), and sizes 1 and 2 always pack 4 GPUs full (2+2, 2+1+1,
    1+1+1+1) but in the last round.
    """
    sizes = [1, 2, 2, 1, 2, 2, 1, 1, 2, 1, 2, 1, 1, 2, 2, 2, 1, 1, 2, 1]
    pool = Pool(8, cpus=[0], mem=1, gpus="0123")
    ran = simulate(pool, [(Request(gpu=g), 0, 0.2) for g in sizes], 10)
    optimum = 0.2 * math.ceil(sum(sizes) / 4)
    assert max(r.end for r in ran) <= 1.3 * optimum
    check_never_shared(pool, ran)


# ---------------------------------------------------------------------------- environment


def test_environment_for_a_grant() -> None:
    pool = Pool(4, cpus=[0, 1, 2, 3], mem=GiB, gpus=("0", "1", "2"))

    async def main() -> None:
        async with pool.allocate(Request(gpu=1)), pool.allocate(Request(cpu=2, gpu=2)) as grant:
            env = pool.environment(grant, {"OMP_NUM_THREADS": "8", "X": "1"})
            assert env == {
                "RANGEEXPR_SLOT": "1",
                "RANGEEXPR_GPUS": "1,2",
                "CUDA_VISIBLE_DEVICES": "1,2",
                **{k: "2" for k in THREAD_VARIABLES if k != "OMP_NUM_THREADS"},
            }
            assert grant.cpus == (0, 1)
        async with pool.allocate(Request(cpu=0.5)) as grant:
            env = pool.environment(grant, {})
            # No GPU asked: none visible, so it cannot use another job's GPU.
            assert env["CUDA_VISIBLE_DEVICES"] == "" == env["RANGEEXPR_GPUS"]
            assert env["OMP_NUM_THREADS"] == "1"  # a fraction of a core: one thread
            assert grant.cpus == ()  # fractional requests are not pinned

    run_virtual(main)


def test_environment_without_gpus_or_cpus_leaves_them_alone() -> None:
    pool = Pool(1, cpus=[0], mem=GiB)

    async def main() -> None:
        async with pool.allocate(Request(mem=MiB)) as grant:
            assert pool.environment(grant, {}) == {"RANGEEXPR_SLOT": "0", "RANGEEXPR_GPUS": ""}

    run_virtual(main)


# ---------------------------------------------------------------------------- GPUs


def fake_nvidia_smi(directory: Path, output: str, code: int = 0) -> dict[str, str]:
    """A real ``nvidia-smi`` executable printing ``output``; an env whose PATH finds it."""
    script = directory / "nvidia-smi"
    lines = "".join(f"printf '%s\\n' '{line}'\n" for line in output.splitlines())
    script.write_text(f'#!/bin/sh\n[ "$1" = -L ] || exit 2\n{lines}exit {code}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {"PATH": str(directory)}


SMI_OUTPUT = """\
GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5f3c1d2e-0000-1111-2222-333344445555)
GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-6a7b8c9d-0000-1111-2222-333344445555)
  MIG 1g.5gb      Device  0: (UUID: MIG-1a2b3c4d-0000-1111-2222-333344445555)
GPU 2: Tesla T4 (UUID: GPU-0e0f1a1b-0000-1111-2222-333344445555)
"""


def test_detect_gpus_auto_lists_nvidia_smi(tmp_path: Path) -> None:
    env = fake_nvidia_smi(tmp_path, SMI_OUTPUT)
    assert detect_gpus("auto", env) == ("0", "1", "2")  # the MIG line is not a GPU


def test_detect_gpus_auto_prefers_cuda_visible_devices(tmp_path: Path) -> None:
    env = fake_nvidia_smi(tmp_path, SMI_OUTPUT)
    assert detect_gpus("auto", {**env, "CUDA_VISIBLE_DEVICES": "2,0"}) == ("2", "0")
    assert detect_gpus("auto", {**env, "CUDA_VISIBLE_DEVICES": ""}) == ()
    # CUDA stops at the first invalid id: "-1" hides everything after it.
    assert detect_gpus("auto", {**env, "CUDA_VISIBLE_DEVICES": "1,-1,2"}) == ("1",)
    assert detect_gpus("auto", {**env, "CUDA_VISIBLE_DEVICES": "NoDevFiles"}) == ()
    uuid = "GPU-5f3c1d2e-0000-1111-2222-333344445555"
    assert detect_gpus("auto", {**env, "CUDA_VISIBLE_DEVICES": uuid}) == (uuid,)


def test_detect_gpus_auto_when_nvidia_smi_fails_or_is_missing(tmp_path: Path) -> None:
    env = fake_nvidia_smi(tmp_path, "NVIDIA-SMI has failed because it couldn't communicate", 9)
    assert detect_gpus("auto", env) == ()
    assert detect_gpus("auto", {"PATH": str(tmp_path / "nowhere")}) == ()


def test_detect_gpus_list_and_none(tmp_path: Path) -> None:
    env = fake_nvidia_smi(tmp_path, SMI_OUTPUT)
    assert detect_gpus("none", env) == ()
    assert detect_gpus("0,1,2,3", env) == ("0", "1", "2", "3")
    assert detect_gpus(" 3, 1 ", env) == ("3", "1")


GPU_HELP = "has an empty or blank id; expected ids such as 0,1,2,3 (or auto, or none)"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("0,,1", f"GPU list '0,,1' {GPU_HELP}"),
        ("", f"GPU list '' {GPU_HELP}"),
        ("0,0", "GPU list '0,0' names a GPU twice"),
    ],
)
def test_detect_gpus_invalid(spec: str, message: str) -> None:
    with pytest.raises(ResourceError) as info:
        detect_gpus(spec, {})
    assert str(info.value) == message


# ---------------------------------------------------------------------------- pinning


TWO_CPUS = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux and two CPUs to pin to one",
)


def _job(tmp_path: Path, cores: tuple[int, ...], started: bool = False) -> list[str]:
    """A job through ``spawn_pinned`` on ``cores``, as the local backend runs one; the CPU
    masks its shell and a command the shell started see, once pinned. ``started``: the
    spawn returns only once the shell has started that command (as when this thread gets
    its CPU back late), and the command waits until the job is pinned."""
    go, ready, out = tmp_path / "go", tmp_path / "ready", tmp_path / "allowed"
    mask = "grep Cpus_allowed_list /proc/self/status"
    script = (
        f"sh -c 'while [ ! -e {go} ]; do sleep 0.01; done; {mask}' > {out} & touch {ready}; "
        f"wait; {mask} >> {out}"
    )

    def spawn() -> int:
        pid = os.posix_spawn("/bin/sh", ["sh", "-c", script], dict(os.environ))
        while started and not ready.exists():
            time.sleep(0.01)
        return pid

    before = os.sched_getaffinity(0)
    pid, late = spawn_pinned(spawn, cores)
    assert os.sched_getaffinity(0) == before  # ours is as it was
    if late:
        while not ready.exists():  # its exec is over
            time.sleep(0.01)
        pin_tree(pid, cores)
    go.touch()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return out.read_text().split()[1::2]


@TWO_CPUS
@pytest.mark.parametrize("here", [True, False], ids=["on-its-core", "elsewhere"])
def test_spawn_pinned_holds_the_job_and_what_it_starts(tmp_path: Path, here: bool) -> None:
    """From a thread on the job's core (it narrows its own mask: nothing is left to pin)
    and from one elsewhere (pinned after the spawn, what it started with ``pin_tree``)."""
    before = os.sched_getaffinity(0)
    core, other = max(before), min(before)
    os.sched_setaffinity(0, {core if here else other})  # where the spawn comes from
    try:
        assert (_current_cpu() == core) is here
        masks = _job(tmp_path, (core,), started=not here)
    finally:
        os.sched_setaffinity(0, before)
    assert masks == [str(core), str(core)]


@TWO_CPUS
def test_pin_tree_pins_what_the_job_started_before_its_pin(tmp_path: Path) -> None:
    """Without ``pin_tree``, a command the job started before it was pinned keeps the mask
    the job had: the test above would fail without it."""
    before = os.sched_getaffinity(0)
    core = max(before)
    go, ready, out = tmp_path / "go", tmp_path / "ready", tmp_path / "allowed"
    script = (
        f"sh -c 'while [ ! -e {go} ]; do sleep 0.01; done; "
        f"grep Cpus_allowed_list /proc/self/status' > {out} & touch {ready}; wait"
    )
    pid = os.posix_spawn("/bin/sh", ["sh", "-c", script], {**os.environ})
    while not ready.exists():
        time.sleep(0.01)
    os.sched_setaffinity(pid, (core,))  # the job alone, late
    go.touch()
    os.waitpid(pid, 0)
    assert out.read_text().split() == ["Cpus_allowed_list:", _ranges(sorted(before))]


def test_spawn_pinned_without_cores_leaves_the_mask(tmp_path: Path) -> None:
    ours = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    masks = _job(tmp_path, ())
    if ours is not None:
        assert masks == [_ranges(sorted(ours))] * 2


# ---------------------------------------------------------------------------- memory
# The detection and the files written, on fake trees (the kernel is not emulated); what
# the kernel does with them is in test_memory_limit.py.

HOST_MOUNTS = "22 1 0:21 / / rw,relatime - ext4 /dev/sda1 rw\n"


def fake_cgroup(tmp_path: Path, controllers: str, subtree: str = "memory") -> dict[str, Path]:
    """A cgroup v2 layout in files: mountinfo, /proc/self/cgroup, and our group's files."""
    mount = tmp_path / "cgroup"
    group = mount / "user.slice" / "job"
    group.mkdir(parents=True)
    (group / "cgroup.controllers").write_text(f"{controllers}\n")
    (group / "cgroup.subtree_control").write_text(f"{subtree}\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"{HOST_MOUNTS}31 23 0:28 / {mount} rw,nosuid - cgroup2 cgroup2 rw\n")
    cgroup = tmp_path / "cgroup-self"
    cgroup.write_text("0::/user.slice/job\n")
    return {"mountinfo": mountinfo, "cgroup": cgroup}


def fake_cgroup_v1(
    tmp_path: Path, group: str = "/process_api/ab12", root: str = "/", where: str = "memory"
) -> dict[str, Path]:
    """A hybrid layout, as on hosts still on cgroup v1: every controller on its own v1
    hierarchy, v2 mounted with none; our group exists in the memory hierarchy."""
    memory, unified = tmp_path / where, tmp_path / "unified"
    (memory / group[len(root) :].lstrip("/")).mkdir(parents=True)
    unified.mkdir()
    (unified / "cgroup.controllers").write_text("\n")
    (unified / "cgroup.subtree_control").write_text("\n")
    escaped = str(memory).replace(" ", "\\040")  # as the kernel writes a space
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        HOST_MOUNTS
        + f"32 31 0:29 / {tmp_path / 'cpu'} rw,relatime - cgroup cgroup rw,cpu\n"
        + f"35 31 0:32 {root} {escaped} rw,relatime - cgroup cgroup rw,memory\n"
        + f"41 31 0:38 / {unified} rw,relatime - cgroup2 cgroup2 rw\n"
    )
    cgroup = tmp_path / "cgroup-self"
    cgroup.write_text(f"9:name=systemd:/\n4:memory:{group}\n1:cpu:/\n0::/\n")
    return {"mountinfo": mountinfo, "cgroup": cgroup}


def test_memory_limiter_on_a_delegated_group(tmp_path: Path) -> None:
    limiter = memory_limiter(**fake_cgroup(tmp_path, "cpu memory pids"))
    assert isinstance(limiter, MemoryLimiter)
    assert (limiter.parent, limiter.version) == (tmp_path / "cgroup" / "user.slice" / "job", 2)
    limit = limiter.limit(4242, 256 * MiB)
    assert limit.path.parent == limiter.parent
    assert (limit.path / "memory.max").read_text() == f"{256 * MiB}\n"
    assert (limit.path / "cgroup.procs").read_text() == "4242\n"
    assert not limit.oom_killed()
    (limit.path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert limit.oom_killed()
    assert limit.peak() is None
    (limit.path / "memory.peak").write_text("1234\n")
    assert limit.peak() == 1234
    assert limiter.limit(4243, MiB).path != limit.path  # one group per job


def test_memory_limiter_on_cgroup_v1(tmp_path: Path) -> None:
    """Memory on a v1 hierarchy, v2 without it: a v1 limiter in our own v1 group."""
    limiter = memory_limiter(**fake_cgroup_v1(tmp_path))
    assert isinstance(limiter, MemoryLimiter)
    assert (limiter.parent, limiter.version) == (tmp_path / "memory" / "process_api" / "ab12", 1)
    limit = limiter.limit(4242, 64 * MiB)
    assert (limit.path.parent, limit.max, limit.version) == (limiter.parent, 64 * MiB, 1)
    assert (limit.path / "memory.limit_in_bytes").read_text() == f"{64 * MiB}\n"
    assert (limit.path / "cgroup.procs").read_text() == "4242\n"
    assert not (limit.path / "memory.max").exists()
    assert not limit.oom_killed()
    (limit.path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    (limit.path / "memory.failcnt").write_text("12\n")  # hit and reclaimed: not killed
    assert not limit.oom_killed()
    (limit.path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert limit.oom_killed()
    assert limit.peak() is None
    (limit.path / "memory.max_usage_in_bytes").write_text(f"{64 * MiB}\n")
    assert limit.peak() == 64 * MiB


def test_cgroup_v1_kernels_without_the_oom_kill_counter(tmp_path: Path) -> None:
    """Before Linux 4.13 memory.oom_control has no oom_kill: hitting the limit stands in."""
    limit = MemoryLimit(tmp_path, 64 * MiB, 1)
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\n")
    (tmp_path / "memory.failcnt").write_text("0\n")
    assert not limit.oom_killed()
    (tmp_path / "memory.failcnt").write_text("3\n")
    assert limit.oom_killed()


def test_cgroup_v2_is_preferred_to_v1(tmp_path: Path) -> None:
    paths = fake_cgroup(tmp_path, "cpu memory")
    v1 = fake_cgroup_v1(tmp_path / "v1")
    paths["mountinfo"].write_text(paths["mountinfo"].read_text() + v1["mountinfo"].read_text())
    paths["cgroup"].write_text(v1["cgroup"].read_text().replace("0::/\n", "0::/user.slice/job\n"))
    limiter = memory_limiter(**paths)
    assert limiter is not None and limiter.version == 2
    assert limiter.parent == tmp_path / "cgroup" / "user.slice" / "job"
    (limiter.parent / "cgroup.controllers").write_text("cpu\n")  # v2 without memory: v1
    limiter = memory_limiter(**paths)
    assert limiter is not None and limiter.version == 1


def test_cgroup_v1_mounted_from_a_subtree(tmp_path: Path) -> None:
    """A container without a cgroup namespace sees its own subtree mounted, at its root."""
    limiter = memory_limiter(**fake_cgroup_v1(tmp_path, "/docker/ab12", root="/docker/ab12"))
    assert limiter is not None and limiter.parent == tmp_path / "memory"
    paths = fake_cgroup_v1(tmp_path / "n", "/docker/ab12/job", root="/docker/ab12")
    limiter = memory_limiter(**paths)
    assert limiter is not None and limiter.parent == tmp_path / "n" / "memory" / "job"
    paths["cgroup"].write_text("4:memory:/docker/ab123\n0::/\n")  # not under the mount's root
    assert memory_limiter(**paths) is None


def test_cgroup_v1_mount_point_with_a_space(tmp_path: Path) -> None:
    limiter = memory_limiter(**fake_cgroup_v1(tmp_path, where="cgroup memory"))
    assert limiter is not None
    assert limiter.parent == tmp_path / "cgroup memory" / "process_api" / "ab12"


@pytest.mark.parametrize(
    ("controllers", "subtree"),
    [
        ("hugetlb", ""),  # a hybrid layout, as on cgroup v1 hosts: memory is v1's
        ("cpu pids", "cpu"),  # memory not delegated to us
        ("cpu memory", "cpu"),  # offered, but not enabled for children (and not enabled here)
    ],
)
def test_memory_limiter_impossible(tmp_path: Path, controllers: str, subtree: str) -> None:
    assert memory_limiter(**fake_cgroup(tmp_path, controllers, subtree)) is None


def test_memory_limiter_with_neither(tmp_path: Path) -> None:
    """No cgroup mounted, or v1 memory that is not ours to use: memory is only accounted."""
    paths = fake_cgroup(tmp_path, "memory")
    paths["mountinfo"].write_text(HOST_MOUNTS)
    assert memory_limiter(**paths) is None
    paths = fake_cgroup(tmp_path / "v2", "memory")
    paths["cgroup"].write_text("4:memory:/process\n")  # a v1 group, but no v1 mount
    assert memory_limiter(**paths) is None
    paths = fake_cgroup_v1(tmp_path / "v1")
    paths["cgroup"].write_text("4:memory:/process_api/gone\n0::/\n")  # no such group
    assert memory_limiter(**paths) is None
    paths["cgroup"].write_text("1:cpu:/\n0::/\n")  # no memory line
    assert memory_limiter(**paths) is None
    assert memory_limiter(mountinfo=tmp_path / "none", cgroup=tmp_path / "none") is None
