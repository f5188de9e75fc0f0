"""The Slurm backend (``runner/_slurm.py``) driven by the runner against a real cluster.

The cluster is ``tests/slurm_cluster.py``'s private one, started once for the module with
``MaxArraySize=10`` and this machine's CPUs, so a sweep of 25 needs three arrays and only
a couple of tasks run at once. Jobs run on this machine, so they leave traces in files the
tests read. The unit tests at the end (parsing, outcomes, the batch script run by a real
/bin/sh) need no cluster and carry no marks.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import trio
from slurm_cluster import SlurmCluster, slurm_cluster

from rangeexpr import RangeExprError
from rangeexpr._backends import make_backend
from rangeexpr._cli._options import parser, spec_from_args
from runner import BackendError, Job, JobLog, Runner
from runner._slurm import (
    _SCRIPT,
    Row,
    SlurmBackend,
    _move,
    _quote,
    parse_config,
    parse_squeue,
    shell_status,
    task_entry,
    task_outcome,
)

MAX_ARRAY_SIZE = 10


@pytest.fixture(scope="module")
def cluster() -> Iterator[SlurmCluster]:
    with slurm_cluster(max_array_size=MAX_ARRAY_SIZE) as c:
        yield c


def job(index: int, *argv: str, env: Mapping[str, str] | None = None) -> Job:
    return Job(index, argv, " ".join(argv), dict(env or {}), {"i": index})


def backend(cluster: SlurmCluster, tmp_path: Path, **options: Any) -> SlurmBackend:
    return SlurmBackend(run_dir=tmp_path / "run", env=cluster.env, **options)


def run(
    cluster: SlurmCluster,
    tmp_path: Path,
    jobs: list[Job],
    limit: int,
    *,
    during: Callable[[Runner, SlurmBackend], Any] | None = None,
    retries: int = 0,
    timeout: float | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Run ``jobs`` through the runner and a SlurmBackend; the job log's records.

    ``during(runner, backend)``, if given, runs beside the runner (to stop or kill it).
    """
    log = tmp_path / "log.jsonl"

    async def main() -> None:
        with JobLog.create(log, {}) as joblog:
            async with backend(cluster, tmp_path, **options) as b:
                runner = Runner(
                    b,
                    limit,
                    retries=retries,
                    timeout=timeout,
                    joblog=joblog,
                    results_dir=tmp_path / "out",
                )
                async with trio.open_nursery() as nursery:
                    if during is not None:
                        nursery.start_soon(trio.to_thread.run_sync, during, runner, b)
                    await runner.run(jobs)

    trio.run(main)
    return [json.loads(line) for line in log.read_text().splitlines()[1:]]


def output(tmp_path: Path, index: int, stream: str = "out") -> str:
    return (tmp_path / "out" / f"{index}.{stream}").read_text()


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def queued(cluster: SlurmCluster) -> str:
    """Every job still pending or running on the cluster, as squeue lists them."""
    done = cluster.run("squeue", "--noheader", "--array", "--format=%i %T")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# -- against the cluster -------------------------------------------------------------------


@pytest.mark.slurm
@pytest.mark.slow
def test_a_sweep_runs_as_array_tasks_with_exact_argv_env_and_exit_codes(
    cluster: SlurmCluster, tmp_path: Path
) -> None:
    show = 'echo "$SLURM_ARRAY_JOB_ID $SLURM_ARRAY_TASK_ID $X"; echo "err $X" >&2; exit $1'
    jobs = [job(i, "/bin/sh", "-c", show, "sh", str(i % 3), env={"X": f"x{i}"}) for i in range(5)]
    # Words a shell would split, expand or glob, and an environment value to match.
    tricky = ("it's", "a b", "new\nline", "$HOME", "*", "\\n", "")
    jobs.append(job(5, "printf", "[%s]", *tricky, env={"Y": "it's\n$HOME"}))
    jobs.append(job(6, "/bin/sh", "-c", 'printf "%s" "$Y"', env={"Y": "it's\n$HOME *"}))
    records = run(cluster, tmp_path, jobs, 7, throttle=3)

    by_index = {r["index"]: r for r in records}
    assert sorted(by_index) == list(range(7))
    for i in range(5):
        record = by_index[i]
        array, task = record["backend_id"].split("_")
        assert output(tmp_path, i) == f"{array} {task} x{i}\n"
        assert output(tmp_path, i, "err") == f"err x{i}\n"
        assert (record["status"], record["exit_code"]) == (
            ("succeeded", 0) if i % 3 == 0 else ("failed", i % 3)
        )
    assert output(tmp_path, 5) == "".join(f"[{word}]" for word in tricky)
    assert output(tmp_path, 6) == "it's\n$HOME *"
    assert len({r["backend_id"] for r in records}) == 7


@pytest.mark.slurm
@pytest.mark.slow
def test_a_failing_job_is_retried_then_recorded_as_failed(
    cluster: SlurmCluster, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    script = f'echo "$SLURM_ARRAY_JOB_ID" >>{trace}; exit 3'
    records = run(cluster, tmp_path, [job(0, "/bin/sh", "-c", script)], 1, retries=2)

    assert [(r["attempt"], r["status"], r["exit_code"]) for r in records] == [
        (1, "failed", 3),
        (2, "failed", 3),
        (3, "failed", 3),
    ]
    arrays = trace.read_text().split()
    assert len(set(arrays)) == 3  # each attempt its own task, really run
    assert [r["backend_id"] for r in records] == [f"{a}_0" for a in arrays]


@pytest.mark.slurm
@pytest.mark.slow
def test_a_task_cancelled_from_outside_is_recorded_as_killed(
    cluster: SlurmCluster, tmp_path: Path
) -> None:
    mark = tmp_path / "id"
    script = f'echo "${{SLURM_ARRAY_JOB_ID}}_$SLURM_ARRAY_TASK_ID" >{mark}; exec sleep 300'

    def cancel(runner: Runner, backend: SlurmBackend) -> None:
        wait_for(lambda: mark.exists() and mark.read_text().strip() != "", "the task to run")
        done = cluster.run("scancel", mark.read_text().strip())
        assert done.returncode == 0, done.stderr

    jobs = [job(0, "/bin/sh", "-c", script), job(1, "true")]
    records = run(cluster, tmp_path, jobs, 2, during=cancel)

    by_index = {r["index"]: r for r in records}
    assert by_index[0]["status"] == "killed"
    assert "cancelled outside this run" in by_index[0]["message"]
    assert by_index[0]["backend_id"] == mark.read_text().strip()
    assert by_index[1]["status"] == "succeeded"


@pytest.mark.slurm
@pytest.mark.slow
def test_a_sweep_larger_than_max_array_size_is_split_into_arrays(
    cluster: SlurmCluster, tmp_path: Path
) -> None:
    jobs = [job(i, "/bin/sh", "-c", 'echo "$I"', env={"I": str(i)}) for i in range(25)]
    records = run(cluster, tmp_path, jobs, 25, throttle=4)

    assert sorted(r["index"] for r in records) == list(range(25))
    assert {r["status"] for r in records} == {"succeeded"}
    ids = [tuple(map(int, r["backend_id"].split("_"))) for r in records]
    arrays = {array for array, _ in ids}
    assert len(arrays) == 3  # 10 + 10 + 5, each numbered from 0
    assert sorted(task for _, task in ids) == sorted([*range(10), *range(10), *range(5)])
    for i in range(25):
        assert output(tmp_path, i) == f"{i}\n"


@pytest.mark.slurm
@pytest.mark.slow
def test_tasks_wait_queued_in_slurm_ahead_yet_at_most_throttle_run_at_once(
    cluster: SlurmCluster, tmp_path: Path
) -> None:
    """The runner admits ``lookahead`` times the throttle, so Slurm holds tasks ready to
    start the moment one ends; the arrays share the throttle, so no more run at once."""
    running, counts = tmp_path / "running", tmp_path / "counts"
    running.mkdir()
    script = f"touch {running}/$1; ls {running} | wc -l >>{counts}; sleep 0.5; rm {running}/$1"
    jobs = [job(i, "/bin/sh", "-c", script, "sh", str(i)) for i in range(25)]
    most_queued = []

    def watch(runner: Runner, backend: SlurmBackend) -> None:
        wait_for(counts.exists, "a task to run")
        most_queued.append(max(len(queued(cluster).splitlines()) for _ in range(5)))

    records = run(cluster, tmp_path, jobs, 2, throttle=2, during=watch)

    assert sorted(r["index"] for r in records) == list(range(25))
    assert {r["status"] for r in records} == {"succeeded"}
    assert len({r["backend_id"].split("_")[0] for r in records}) >= 3  # 10 + 10 + 5 at least
    assert max(int(n) for n in counts.read_text().split()) <= 2
    assert most_queued[0] > 2


@pytest.mark.slurm
@pytest.mark.slow
def test_abort_cancels_every_running_and_pending_task(
    cluster: SlurmCluster, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    started.mkdir()
    script = f'touch {started}/"$SLURM_ARRAY_TASK_ID"; exec sleep 300'

    def stop(runner: Runner, backend: SlurmBackend) -> None:
        wait_for(lambda: len(os.listdir(started)) >= 2, "two tasks to run")
        trio.from_thread.run_sync(runner.stop)

    jobs = [job(i, "/bin/sh", "-c", script) for i in range(6)]
    records = run(cluster, tmp_path, jobs, 6, throttle=2, during=stop)

    assert len(os.listdir(started)) == 2  # the pending ones never ran: they have no record
    assert [r["status"] for r in records] == ["killed", "killed"]
    assert queued(cluster) == ""


@pytest.mark.slurm
@pytest.mark.slow
def test_a_job_past_its_timeout_is_cancelled_and_timed_out(
    cluster: SlurmCluster, tmp_path: Path
) -> None:
    records = run(cluster, tmp_path, [job(0, "sleep", "300"), job(1, "true")], 2, timeout=1)

    by_index = {r["index"]: r for r in records}
    assert by_index[0]["status"] == "timed_out"
    assert by_index[1]["status"] == "succeeded"
    assert queued(cluster) == ""


@pytest.mark.slurm
@pytest.mark.slow
def test_kill_ends_even_a_task_that_ignores_sigterm(cluster: SlurmCluster, tmp_path: Path) -> None:
    mark = tmp_path / "running"
    # With SIGTERM ignored only SIGKILL ends it; stop_wait is far beyond the test's patience.
    script = f"trap '' TERM; touch {mark}; sleep 300 & wait"

    def kill(runner: Runner, backend: SlurmBackend) -> None:
        wait_for(mark.exists, "the task to run")
        trio.from_thread.run_sync(backend.kill)

    records = run(cluster, tmp_path, [job(0, "/bin/sh", "-c", script)], 1, during=kill)

    assert [r["status"] for r in records] == ["killed"]
    assert queued(cluster) == ""


@pytest.mark.slurm
@pytest.mark.slow
def test_cancelling_the_run_leaves_nothing_queued(cluster: SlurmCluster, tmp_path: Path) -> None:
    started = tmp_path / "started"
    jobs = [job(i, "/bin/sh", "-c", f"touch {started}; exec sleep 300") for i in range(3)]

    async def main() -> None:
        async with backend(cluster, tmp_path, throttle=1) as b:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(Runner(b, 3).run, jobs)
                while not started.exists():
                    await trio.sleep(0.2)
                nursery.cancel_scope.cancel()
            # The attempts scancel their own tasks as they are cancelled, before closing.
            await trio.to_thread.run_sync(wait_for, lambda: queued(cluster) == "", "scancel")

    trio.run(main)


@pytest.mark.slurm
@pytest.mark.slow
def test_an_unknown_partition_is_refused_before_anything_runs(
    cluster: SlurmCluster, tmp_path: Path
) -> None:
    async def main() -> None:
        async with backend(cluster, tmp_path, partition="nosuch"):
            raise AssertionError("not reached")

    with pytest.raises(BackendError, match=r"Slurm refuses the job request: .*invalid partition"):
        trio.run(main)
    assert not list((tmp_path / "run").iterdir())


@pytest.mark.slurm
@pytest.mark.slow
def test_an_infeasible_request_is_refused_quoting_slurm(
    cluster: SlurmCluster, tmp_path: Path
) -> None:
    async def main() -> None:
        async with backend(cluster, tmp_path, cpus=4096):
            raise AssertionError("not reached")

    with pytest.raises(BackendError, match="Requested node configuration is not available"):
        trio.run(main)


@pytest.mark.slurm
@pytest.mark.slow
def test_an_unreachable_controller_is_refused_quoting_slurm(
    cluster: SlurmCluster, tmp_path: Path
) -> None:
    conf = tmp_path / "slurm.conf"
    text = cluster.conf.read_text()
    port = next(line for line in text.splitlines() if line.startswith("SlurmctldPort="))
    conf.write_text(text.replace(port, "SlurmctldPort=1"))  # nothing listens there

    async def main() -> None:
        async with SlurmBackend(run_dir=tmp_path, env={**cluster.env, "SLURM_CONF": str(conf)}):
            raise AssertionError("not reached")

    with pytest.raises(BackendError, match="Unable to contact slurm controller"):
        trio.run(main)


# -- without a cluster ---------------------------------------------------------------------


def test_an_option_the_backend_sets_itself_is_refused() -> None:
    async def main() -> None:
        async with SlurmBackend(sbatch_options=["--qos=low", "--output=x"]):
            raise AssertionError("not reached")

    with pytest.raises(BackendError, match="'--output=x' is set by the Slurm backend itself"):
        trio.run(main)


def test_squeue_rows_are_parsed_including_an_arrays_unsplit_rest() -> None:
    text = (
        "330|N/A|CANCELLED|0|JobArrayTaskLimit\n"
        "330|1|CANCELLED|15|None\n"
        "331|0|FAILED|768|NonZeroExitCode\n"
        "331|2|PENDING|0|Resources\n"
        "squeue: a line of another shape\n"
    )
    assert parse_squeue(text) == [
        Row("330", None, "CANCELLED", 0, "JobArrayTaskLimit"),
        Row("330", 1, "CANCELLED", 15, "None"),
        Row("331", 0, "FAILED", 768, "NonZeroExitCode"),
        Row("331", 2, "PENDING", 0, "Resources"),
    ]


def test_scontrol_show_config_is_parsed() -> None:
    text = (
        "Configuration data as of 2026-12-01T22:24:05\n"
        "AccountingStorageBackupHost = (null)\n"
        "MaxArraySize            = 1001\n"
        "SLURM_VERSION           = 22.05.8\n"
        "SchedulerParameters     = batch_sched_delay=0\n"
    )
    config = parse_config(text)
    assert config["MaxArraySize"] == "1001"
    assert config["SchedulerParameters"] == "batch_sched_delay=0"
    assert "Configuration data as of 2026-12-01T22:24:05" not in config


@pytest.mark.parametrize(
    ("state", "raw", "status", "stopping", "expected"),
    [
        ("COMPLETED", 0, None, None, ("succeeded", 0, None)),
        ("FAILED", 3 << 8, 3, None, ("failed", 3, None)),
        ("FAILED", 137 << 8, 137, None, ("failed", None, 9)),  # sh: 128 + SIGKILL
        ("FAILED", 9, None, None, ("failed", None, 9)),  # the batch script itself killed
        ("CANCELLED", 15, None, None, ("killed", None, 15)),
        ("CANCELLED", 15, None, "abort", ("killed", None, None)),
        ("CANCELLED", 15, 0, "abort", ("succeeded", 0, None)),  # the stop came too late
        ("CANCELLED", 15, None, "timeout", ("timed_out", None, None)),
        ("TIMEOUT", 0, None, None, ("timed_out", None, None)),
        ("OUT_OF_MEMORY", 0, None, None, ("failed", 0, None)),
        ("NODE_FAIL", 0, None, None, ("lost", None, None)),
        (None, None, 4, None, ("failed", 4, None)),  # left the queue; the .rc file tells
        (None, None, None, None, ("lost", None, None)),
        (None, None, None, "abort", ("killed", None, None)),
    ],
)
def test_task_outcomes(
    state: str | None,
    raw: int | None,
    status: int | None,
    stopping: Any,
    expected: tuple[str, int | None, int | None],
) -> None:
    outcome = task_outcome(state, raw, status, stopping=stopping, backend_id="7_1")
    assert (outcome.status, outcome.exit_code, outcome.signal) == expected
    assert outcome.backend_id == "7_1"


def test_shell_status_above_128_is_a_signal_up_to_sigrtmax() -> None:
    assert [shell_status(s) for s in (0, 1, 128, 130, 192, 193, 255)] == [
        (0, None),
        (1, None),
        (128, None),
        (None, 2),
        (None, 64),
        (193, None),
        (255, None),
    ]


def test_the_batch_script_runs_its_task_exactly_and_leaves_the_status(tmp_path: Path) -> None:
    """The real batch script under a real /bin/sh, as slurmstepd would start it."""
    words = ("it's", "a b", "new\nline", "$HOME", "*", "`id`", "\\", "")
    jobs = [
        job(0, "false"),
        job(1, "printf", "[%s]", *words, env={"V": "x'\n$HOME"}),
        job(2, "/bin/sh", "-c", 'printf "%s" "$V"; exit 5', env={"V": "x'\n$HOME"}),
        job(3, "echo", "-e", "a\\tb"),  # /bin/echo, not the shell's builtin
    ]
    (tmp_path / "tasks").write_text("".join(task_entry(j) + "\n" for j in jobs))
    script = _SCRIPT.format(dir=_quote(str(tmp_path)))

    def task(number: int) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ["PATH"], "SLURM_ARRAY_TASK_ID": str(number)}
        return subprocess.run(
            ["/bin/sh", "-c", script], capture_output=True, text=True, env=env, check=False
        )

    assert task(0).returncode == 1
    assert task(1).stdout == "".join(f"[{w}]" for w in words)
    done = task(2)
    assert (done.stdout, done.returncode) == ("x'\n$HOME", 5)
    assert task(3).stdout == "a\tb\n"
    assert [(tmp_path / f"{n}.rc").read_text() for n in range(4)] == ["1\n", "0\n", "5\n", "0\n"]
    missing = task(7)
    assert missing.returncode == 70
    assert "no task 7" in missing.stderr


def test_output_is_moved_without_following_a_symlink_and_emptied_when_absent(
    tmp_path: Path,
) -> None:
    source, target, victim = tmp_path / "0.out", tmp_path / "job.out", tmp_path / "victim"
    source.write_text("output\n")
    victim.write_text("untouched")
    target.symlink_to(victim)
    _move(source, target)
    assert not target.is_symlink()
    assert (target.read_text(), victim.read_text()) == ("output\n", "untouched")
    assert not source.exists()
    _move(tmp_path / "never-written.out", target)  # a task that never ran: no stale output
    assert target.read_text() == ""


def test_output_is_copied_across_file_systems(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on a file system of its own")
    with tempfile.TemporaryDirectory(dir=shm) as other:
        source = Path(other) / "0.err"
        source.write_bytes(b"\xff" * 3_000_000)
        _move(source, tmp_path / "job.err")
    assert (tmp_path / "job.err").read_bytes() == b"\xff" * 3_000_000
    assert [p.name for p in tmp_path.iterdir()] == ["job.err"]  # no temporary file left


def test_the_command_line_builds_the_slurm_backend_it_asks_for() -> None:
    args = parser().parse_args(
        ["run", "X=range:40", "--exec", "echo $X", "--backend", "slurm", "-j", "3",
         "--per-job", "5", "--partition", "gpu", "--time", "1:00:00",
         "--sbatch-option=--qos=low", "--sbatch-option=--account=a", "-r", "cpu=1.5",
         "-r", "mem=1g", "-r", "gpu=2", "--results", "out", "--joblog", "log.jsonl"]
    )  # fmt: skip
    spec = spec_from_args(args)
    spec.check_run()
    made = make_backend(spec, spec.selected())
    assert isinstance(made, SlurmBackend)
    assert (made.throttle, made.partition, made.time_limit) == (3, "gpu", "1:00:00")
    assert made.sbatch_options == ("--qos=low", "--account=a")
    assert (made.cpus, made.mem, made.gpus) == (2, "1024M", 2)
    assert made.batching is not None and made.batching.group(7) == (5, 10)
    assert made.jobs_per_slot == 5 * made.lookahead
    assert made.run_dir == Path("out")
    assert made.job_name is not None and made.job_name.startswith("rangeexpr-")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--partition", "p"], "--partition: only with --backend slurm"),
        (["--time", "1:00", "--sbatch-option=--qos=x"], "--time, --sbatch-option: only with"),
        (["--per-job", "2"], "--per-job also to slurm"),
    ],
)
def test_slurm_options_are_refused_with_another_backend(options: list[str], message: str) -> None:
    spec = spec_from_args(parser().parse_args(["run", "X=range:4", "--exec", "true", *options]))
    with pytest.raises(RangeExprError, match=message):
        spec.check_run()


def test_a_request_that_varies_by_point_is_refused_for_slurm() -> None:
    argv = ["run", "N=case:1,2", "--exec", "echo $N", "--backend", "slurm", "-r", "cpu=$N"]
    spec = spec_from_args(parser().parse_args(argv))
    with pytest.raises(RangeExprError, match="the same request for every point"):
        make_backend(spec, spec.selected())
