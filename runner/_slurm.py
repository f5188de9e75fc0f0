"""The Slurm backend: attempts run as the tasks of Slurm job arrays.

Slurm is reached through its standard client commands (``sbatch --parsable``, ``squeue``,
``scontrol``, ``scancel``), run as subprocesses with the environment given (by default
ours), so the cluster is found as every client finds it: ``SLURM_CONF`` or the system's
configuration. Every login node has them, with the site's authentication set up; a
``slurmrestd`` needs a token and a URL that most users do not have.

Arrays: the runner calls ``run()`` once per attempt, concurrently. Attempts that arrive
within ``gather`` seconds of each other become the tasks of ONE ``sbatch
--array=0-(n-1)%N``, split at the cluster's ``MaxArraySize`` (read once with ``scontrol
show config``; it caps the largest index, so every array counts from 0).

Look-ahead: ``jobs_per_slot`` is ``lookahead`` (times ``--per-job``), so the runner admits
several times the throttle and the tasks beyond it wait queued in Slurm, which starts the
next the moment one ends (as a hand-written ``--array=...%N`` does), instead of our
submitting a new array after each end and waiting for the controller's next scheduling
pass. Slurm's ``%N`` holds per array, ``throttle`` for the whole run, so the arrays share
it: a new array gets what the others leave (tasks that do not fit wait here, unsubmitted),
and when an array has fewer tasks left than its share, the rest goes to the oldest array
with tasks waiting for it (``scontrol update ArrayTaskThrottle``).

Packed tasks: with a ``Batching`` (``--per-job K``), a first attempt's group of K runs as
one task whose command is ``batching.command`` (``_batches.py``); its records come back per
point, each with the task's id.

Orphans: given a ``job_name``, arrays are named after it, and entering the backend cancels
the arrays an earlier run under that name left queued (killed before it could cancel
them), so their results, which no one would record, are not computed for nothing.

Files: the backend makes its own directory in ``run_dir``, which must be on a file system
the compute nodes share with this machine (home or project space, never a node-local
/tmp). Each array gets a directory there holding ``tasks``, one line per task (the job's
environment and argv, single-quoted for /bin/sh), and, written on the node, ``N.out``,
``N.err`` (Slurm's ``--output``/``--error``) and ``N.rc`` (the command's exit status). The
batch script (``_SCRIPT``, plain POSIX sh) picks its line by ``$SLURM_ARRAY_TASK_ID``,
exports the environment and ``exec``s the argv: exactly those words, never split again,
no shell builtin in the way. When a task ends its output files are moved (or copied,
across file systems) to the attempt's paths; an array's directory goes once all its tasks
are delivered, ours when the backend closes.

State: ONE ``squeue --states=all`` call for all of this run's unfinished arrays per poll,
every ``poll_initial`` seconds while things change, backing off to ``poll_max`` when
nothing does. ``--states=all`` also lists the tasks that ended, while Slurm keeps them
(``MinJobAge``, 300 s by default), with their end state and exit status: no accounting
database is needed. A task that has left the queue altogether is judged by its ``.rc``
file. Between two polls the ``.rc`` files are looked at (every ``poll_files`` seconds
while tasks end often, less while they run long): a command that exited 0 ends its attempt
there, without waiting for Slurm's bookkeeping, which costs short jobs much of their rate.

Outcomes: exit status 0 is "succeeded", any other "failed" with the status as the shell
gives it (129 to 192 is reported as killed by signal status - 128); Slurm's CANCELLED by
someone else is "killed", TIMEOUT (its ``--time``) or our ``timeout`` is "timed_out",
NODE_FAIL or a task gone with no status is "lost". Our ``timeout`` counts from when a poll
first sees the task running (time in the queue is not the job's) and is enforced with
``scancel``. Abort (Ctrl-C, ``--halt now``) cancels every unfinished task of the run,
pending or running, and those attempts end "killed" once Slurm has ended them; ``kill()``
does it with SIGKILL. Closing the backend cancels whatever of ours is still queued.

Starting: an attempt counts as waiting (``Attempt.queued``) until a poll sees its task
running. When the run gives up the jobs not started (``Attempt.give_up``: a stop, soon
or now), those never submitted end at once, and the submitted ones not seen running get
``scancel --state=PENDING``, which leaves a task that has started alone (a stop soon lets
it finish). A task that ends CANCELLED or leaves the queue, never seen running and with
no output file (Slurm makes ``N.out`` when it starts the task on the node), never ran:
its attempt raises NotStarted (no record), also on abort.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import math
import os
import re
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import trio

from ._backend import (
    Attempt,
    BackendError,
    Batching,
    Job,
    NotStarted,
    Outcome,
    Status,
    StorageError,
)
from ._batches import Batches

__all__ = [
    "SlurmBackend",
    "parse_config",
    "parse_squeue",
    "shell_status",
    "task_entry",
    "task_outcome",
]

Stopping = Literal["abort", "timeout"] | None

# One row per task; the last field (the reason) is free text, so it comes last.
_SQUEUE_FORMAT = "ArrayJobID:|,ArrayTaskID:|,State:|,exit_code:|,Reason:"
# Slurm's end states (squeue(1), JOB STATE CODES). COMPLETING is not one: the task is
# still being cleaned up and its output may not be complete.
_ENDED = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "SPECIAL_EXIT",
        "TIMEOUT",
    }
)
_STARTED = frozenset({"RUNNING", "COMPLETING", "SUSPENDED", "SIGNALING", "STAGE_OUT"})
# Options the backend sets itself: one given again in ``sbatch_options`` would break it.
_OWN_OPTIONS = ("--array", "--output", "--error", "--job-name", "--parsable", "--wrap")
_OWN_SHORT = ("-a", "-o", "-e", "-J")
_SCANCEL_CHUNK = 200  # ids per scancel call

# The batch script of every array; {dir} is its directory, quoted. It must stay plain
# POSIX sh: it runs on the compute nodes, whatever they have.
_SCRIPT = """#!/bin/sh
# Written by runner/_slurm.py: run line $SLURM_ARRAY_TASK_ID + 1 of the task table as its
# argv says, and leave the exit status in <task>.rc for the process that submitted it.
d={dir}
t=${{SLURM_ARRAY_TASK_ID:?is not set: not an array task}}
nl='
'
entry=$(LC_ALL=C sed -n "$((t + 1))p" "$d/tasks") || exit 70
[ -n "$entry" ] || {{ echo "runner: no task $t in $d/tasks" >&2; exit 70; }}
eval "$entry"
(exec "$@") </dev/null
s=$?
echo "$s" >"$d/$t.rc"
exit "$s"
"""


class _ClientError(Exception):
    """A Slurm client command failed; ``str()`` is what it said."""


def _quote(text: str) -> str:
    """``text`` single-quoted for /bin/sh, on one line: a newline becomes ``$nl``."""
    return "'" + text.replace("'", "'\\''").replace("\n", "'\"$nl\"'") + "'"


def task_entry(job: Job) -> str:
    """The job's line of the task table: ``export 'K=V' ...; set -- 'argv0' ...``.

    A variable name that /bin/sh cannot export makes the task fail with sh's message.
    """
    argv = "set -- " + " ".join(_quote(word) for word in job.argv)
    if not job.env:
        return argv
    names = " ".join(_quote(f"{k}={v}") for k, v in job.env.items())
    return f"export {names}; {argv}"


def parse_config(text: str) -> dict[str, str]:
    """``scontrol show config`` as ``{name: value}`` (its ``Name = value`` lines)."""
    config = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() and " " not in name.strip():
            config[name.strip()] = value.strip()
    return config


@dataclass(frozen=True, slots=True)
class Row:
    """One line of our ``squeue`` format; ``task`` is None for an array's unsplit rest."""

    array: str
    task: int | None
    state: str
    exit_raw: int | None  # the wait status Slurm recorded for the batch script
    reason: str


def parse_squeue(text: str) -> list[Row]:
    """The rows of ``squeue --Format=<_SQUEUE_FORMAT>``; lines of another shape are skipped."""
    rows = []
    for line in text.splitlines():
        fields = line.split("|", 4)
        if len(fields) != 5:
            continue
        array, task, state, raw, reason = (f.strip() for f in fields)
        rows.append(
            Row(
                array,
                int(task) if task.isdigit() else None,
                state.split()[0] if state else "",
                int(raw) if raw.isdigit() else None,
                reason,
            )
        )
    return rows


def shell_status(status: int) -> tuple[int | None, int | None]:
    """``(exit_code, signal)`` from an exit status as a shell reports it.

    129 to 192 is a command killed by signal 1 to 64; a command that exits with such a
    code itself is reported as signalled too (the shell cannot tell them apart).
    """
    if 128 < status <= 192:
        return None, status - 128
    return status, None


def _wait_status(raw: int) -> tuple[int | None, int | None]:
    """``(exit_code, signal)`` from Slurm's recorded wait status of the batch script."""
    if raw & 0x7F:
        return None, raw & 0x7F
    return shell_status(raw >> 8)


def task_outcome(
    state: str | None,
    exit_raw: int | None,
    status: int | None,
    *,
    stopping: Stopping,
    backend_id: str,
    reason: str = "",
) -> Outcome:
    """How a task ended: Slurm's end ``state`` (None: gone from the queue), its recorded
    ``exit_raw``, the command's exit ``status`` from the .rc file, and why we stopped it.

    A command that exited 0 succeeded even if a stop came too late to matter.
    """
    if status == 0 or (status is None and state == "COMPLETED"):
        return Outcome("succeeded", 0, None, backend_id)
    if stopping == "timeout":
        return Outcome("timed_out", None, None, backend_id)
    if stopping == "abort":
        return Outcome("killed", None, None, backend_id)
    code, sig = (None, None)
    if status is not None:
        code, sig = shell_status(status)
    elif exit_raw is not None and state is not None:
        code, sig = _wait_status(exit_raw)
    why = f"Slurm {state}" + (f" ({reason})" if reason and reason != "None" else "")
    unwritten = f"{why} with no exit status file (is the run directory shared with the nodes?)"
    status_of: dict[str, tuple[Status, str | None]] = {
        "COMPLETED": ("failed", None),
        "FAILED": ("failed", None if status is not None else unwritten),
        "OUT_OF_MEMORY": ("failed", f"{why}: out of memory"),
        "CANCELLED": ("killed", f"{why}: cancelled outside this run (scancel?)"),
        "PREEMPTED": ("killed", f"{why}: preempted"),
        "TIMEOUT": ("timed_out", f"{why}: reached its Slurm time limit"),
        "DEADLINE": ("timed_out", f"{why}: reached its deadline"),
        "NODE_FAIL": ("lost", f"{why}: its node failed"),
        "BOOT_FAIL": ("lost", f"{why}: its node failed to boot"),
    }
    if state is None:
        if status is not None:
            return Outcome("failed", code, sig, backend_id)
        return Outcome(
            "lost",
            None,
            None,
            backend_id,
            "the task left the Slurm queue with no exit status "
            "(cancelled while pending, or forgotten by the controller)",
        )
    outcome, message = status_of.get(state, ("lost", f"{why}: unexpected end state"))
    if outcome != "failed":
        code = None  # ended by Slurm: a status says how it was stopped, not what it returned
    return Outcome(outcome, code, sig, backend_id, message)


@dataclass(eq=False, slots=True)
class _Task:
    """One attempt on its way through the backend."""

    attempt: Attempt
    done: trio.Event = field(default_factory=trio.Event)
    array: str | None = None  # the array job id once submitted
    number: int = 0  # the task id within the array
    directory: Path | None = None  # the array's directory
    started: float | None = None  # when a poll first saw it running (trio time)
    stopping: Stopping = None
    stop_began: float = math.inf
    cancel_sent: bool = False
    seen_running: bool = False
    on_start: Callable[[], None] | None = None  # called once a poll sees it running
    giving_up: bool = False  # cancel it while it is pending (a stop soon)
    pending_cancel_sent: bool = False
    outcome: Outcome | None = None
    error: BaseException | None = None  # raised by run() instead of returning

    @property
    def backend_id(self) -> str:
        return f"{self.array}_{self.number}"


class SlurmBackend:
    """Runs attempts as tasks of Slurm job arrays (see the module docstring).

    ``throttle``: at most that many tasks run at once (the arrays' ``%N`` together): give
    it the runner's limit (``-j``); ``lookahead``: how many attempts per slot the runner
    admits, queued ahead in Slurm. ``batching``: K points to a task (``--per-job``).
    ``job_name``: the arrays' name, unique to the job log (see the module). ``partition``,
    ``time_limit`` (Slurm's ``--time`` format, e.g. ``"1:00:00"``), ``cpus``
    (``--cpus-per-task``), ``mem`` (``--mem``, e.g. ``"4G"``), ``gpus`` (``--gres=gpu:N``)
    and ``sbatch_options`` (passed through, before ours) shape every task's request.
    ``run_dir``: where the backend makes its own directory for the tasks' files; it must be
    shared with the compute nodes (default: the current directory). ``env``: the
    environment of the client commands, and so of the tasks (default: ours). Times are in
    seconds: attempts are gathered for ``gather`` before they are submitted; squeue polls
    go from ``poll_initial`` to ``poll_max`` apart, with looks at the exit status files
    every ``poll_files`` or more between them; Slurm commands that fail for
    ``lost_after`` make the attempts concerned "lost", as do tasks still there
    ``stop_wait`` after their ``scancel``; each command gets ``command_timeout``.
    """

    name = "slurm"

    def __init__(
        self,
        *,
        throttle: int | None = None,
        lookahead: int = 8,
        batching: Batching | None = None,
        job_name: str | None = None,
        partition: str | None = None,
        time_limit: str | None = None,
        cpus: int | None = None,
        mem: str | None = None,
        gpus: int | None = None,
        sbatch_options: Sequence[str] = (),
        run_dir: Path | str | None = None,
        env: Mapping[str, str] | None = None,
        gather: float = 0.005,
        poll_initial: float = 0.2,
        poll_max: float = 3.0,
        poll_files: float = 0.02,
        lost_after: float = 60.0,
        stop_wait: float = 120.0,
        command_timeout: float = 60.0,
    ):
        for what, value in (("throttle", throttle), ("cpus", cpus), ("lookahead", lookahead)):
            if value is not None and value < 1:
                raise ValueError(f"{what} must be at least 1, not {value}")
        if gpus is not None and gpus < 0:
            raise ValueError(f"gpus must be at least 0, not {gpus}")
        self.throttle = throttle
        self.lookahead = lookahead
        self.batching = batching
        self.job_name = job_name
        # The runner admits this many jobs per slot of its limit (-j): the tasks beyond the
        # throttle wait, queued in Slurm, so Slurm starts one the moment another ends.
        self.jobs_per_slot = lookahead * (batching.per_job if batching is not None else 1)
        self._batches = (
            Batches(_Framed(batching, {}), self._run_batch, "Slurm task")
            if batching is not None
            else None
        )
        self.partition = partition
        self.time_limit = time_limit
        self.cpus = cpus
        self.mem = mem
        self.gpus = gpus
        self.sbatch_options = tuple(sbatch_options)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.gather = gather
        self.poll_initial = poll_initial
        self.poll_max = poll_max
        self.poll_files = poll_files
        self.lost_after = lost_after
        self.stop_wait = stop_wait
        self.command_timeout = command_timeout
        self.max_array_size = 0  # read from the cluster by __aenter__
        self._env_arg = env
        self._env: dict[str, str] = {}
        self._dir: Path | None = None  # our own directory inside run_dir
        self._arrays = 0  # arrays submitted so far
        self._waiting: list[_Task] = []  # not yet submitted
        self._live: set[_Task] = set()  # every unfinished task
        self._submitted: dict[str, dict[int, _Task]] = {}  # unfinished, by array and number
        self._arrived = trio.Event()  # wakes the submitter: new attempts, or tasks ended
        self._throttles: dict[str, int] = {}  # each unfinished array's throttle as set
        self._batch_files = 0  # packed tasks run so far (names their output files)
        self._kick = trio.Event()  # wakes the poller early
        self._killing = False
        self._watched: set[trio.Event] = set()  # abort events with a watcher
        self._scopes: list[trio.CancelScope] = []
        self._crashed: Exception | None = None  # a background loop's bug, raised by run()
        self._submitting: Path | None = None  # the array whose sbatch is under way
        self._undelivered: dict[Path, int] = {}  # an array's directory: tasks not yet delivered

    def __repr__(self) -> str:
        return (
            f"<SlurmBackend {self._dir} arrays={self._arrays} "
            f"waiting={len(self._waiting)} live={len(self._live)}>"
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> SlurmBackend:
        """Check the cluster and the request before anything is submitted."""
        self._check_options()
        self._env = dict(os.environ if self._env_arg is None else self._env_arg)
        try:
            config = parse_config(await self._slurm("scontrol", "show", "config"))
        except _ClientError as exc:
            raise BackendError(f"cannot reach the Slurm controller: {exc}") from None
        self.max_array_size = int(config.get("MaxArraySize", "1001"))
        if self.max_array_size < 1:
            raise BackendError("job arrays are disabled on this Slurm cluster (MaxArraySize=0)")
        parent = self.run_dir if self.run_dir is not None else Path.cwd()
        if self.job_name is not None:
            await self._cancel_stale(parent)
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self._dir = Path(tempfile.mkdtemp(prefix="slurm-", dir=parent)).absolute()
        except OSError as exc:
            raise BackendError(
                f"cannot make the Slurm run directory in {parent}: {exc.strerror or exc}"
            ) from None
        try:
            await self._slurm(
                "sbatch",
                "--test-only",
                *self._options(self._dir, 1, self.throttle),
                stdin=self._script(self._dir),
            )
        except _ClientError as exc:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            raise BackendError(f"Slurm refuses the job request: {exc}") from None
        self._scopes = [trio.CancelScope(), trio.CancelScope()]
        trio.lowlevel.spawn_system_task(self._guarded, self._scopes[0], self._submit_loop)
        trio.lowlevel.spawn_system_task(self._guarded, self._scopes[1], self._poll_loop)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Cancel whatever of ours is still queued, stop polling, remove the run directory."""
        with trio.CancelScope(shield=True), trio.move_on_after(self.command_timeout):
            await self._scancel(self._unfinished(), force=False)
            if self._submitting is not None:  # its sbatch may have gone through
                with contextlib.suppress(_ClientError):
                    await self._slurm("scancel", f"--name={self._job_name(self._submitting)}")
        for scope in self._scopes:
            scope.cancel()
        for task in list(self._live):
            self._finish(task, Outcome("killed", None, message="the Slurm backend closed"))
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    async def _cancel_stale(self, parent: Path) -> None:
        """Cancel the arrays an earlier run under our ``job_name`` left queued (it died
        before it could), and remove its directory: their results would reach no one."""
        prefix = f"{self.job_name}-"
        try:
            out = await self._slurm("squeue", "--noheader", "--me", "--format=%F|%j")
        except _ClientError as exc:
            raise BackendError(f"cannot reach the Slurm controller: {exc}") from None
        stale: dict[str, str] = {}
        for line in out.splitlines():
            array, _, name = line.strip().partition("|")
            if name.startswith(prefix):
                stale[array] = name[len(prefix) :].rpartition("-")[0]
        ids = sorted(stale)
        for start in range(0, len(ids), _SCANCEL_CHUNK):
            with contextlib.suppress(_ClientError):  # ended meanwhile
                await self._slurm("scancel", *ids[start : start + _SCANCEL_CHUNK])
        for directory in set(stale.values()):
            if directory.startswith("slurm-") and "/" not in directory:
                await trio.to_thread.run_sync(
                    functools.partial(shutil.rmtree, parent / directory, ignore_errors=True)
                )

    def _check_options(self) -> None:
        for option in self.sbatch_options:
            name = option.split("=", 1)[0]
            if name in _OWN_OPTIONS or (not name.startswith("--") and name[:2] in _OWN_SHORT):
                raise BackendError(
                    f"the sbatch option {option!r} is set by the Slurm backend itself; "
                    f"leave out {', '.join(_OWN_OPTIONS + _OWN_SHORT)}"
                )

    def _options(self, directory: Path, size: int, throttle: int | None) -> list[str]:
        """sbatch's options for an array of ``size`` tasks kept in ``directory``."""
        options = list(self.sbatch_options)
        if self.partition is not None:
            options.append(f"--partition={self.partition}")
        if self.time_limit is not None:
            options.append(f"--time={self.time_limit}")
        if self.cpus is not None:
            options.append(f"--cpus-per-task={self.cpus}")
        if self.mem is not None:
            options.append(f"--mem={self.mem}")
        if self.gpus:
            options.append(f"--gres=gpu:{self.gpus}")
        limit = f"%{throttle}" if throttle is not None else ""
        pattern = str(directory).replace("%", "%%")  # sbatch expands % in file names
        options += [
            "--parsable",
            f"--job-name={self._job_name(directory)}",
            f"--array=0-{size - 1}{limit}",
            f"--output={pattern}/%a.out",
            f"--error={pattern}/%a.err",
        ]
        return options

    def _job_name(self, directory: Path) -> str:
        """A name unique to one array, to find it again after a failed ``sbatch``."""
        return f"{self.job_name or 'runner'}-{self._dir.name if self._dir else ''}-{directory.name}"

    @staticmethod
    def _script(directory: Path) -> bytes:
        return _SCRIPT.format(dir=_quote(str(directory))).encode()

    # -- the protocol ----------------------------------------------------------------------

    async def run(self, attempt: Attempt) -> Outcome:
        """Run one attempt as an array task (or its share of a packed one, a first attempt
        with a batching); StorageError if its files cannot be written."""
        if self._dir is None:
            raise RuntimeError("use the SlurmBackend as `async with backend:` first")
        if self._batches is None or attempt.attempt != 1:
            return await self._run_task(attempt)
        outcome, out, err = await self._batches.run(attempt)
        for data, target in ((out, attempt.stdout), (err, attempt.stderr)):
            try:
                await trio.Path(target).write_bytes(data)
            except OSError as exc:
                raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from None
        return outcome

    async def _run_batch(
        self, first: int, stop: int, attempt: Attempt, started: Callable[[], None]
    ) -> tuple[str, Outcome, bytes, bytes]:
        """The one task running points ``[first, stop)`` (for ``Batches``), to its end: its
        id ``ARRAY_TASK``, outcome, stdout (the framed results) and stderr. The task's
        attempt shares ``attempt``'s run; ``started()`` once it runs."""
        assert self.batching is not None and self._dir is not None
        self._batch_files += 1
        token = f"{self._dir.name}.{self._batch_files}"  # frames the output: no white space
        command = self.batching.command(first, stop, token)
        job = Job(first, ("/bin/sh", "-c", command), command, {}, {})
        out, err = (self._dir / f"{token}.{suffix}" for suffix in ("out", "err"))
        outcome = await self._run_task(Attempt(job, 1, None, out, err, attempt.abort), started)
        try:
            output, note = await trio.to_thread.run_sync(_take, out, err)
        except OSError as exc:
            raise StorageError(f"cannot read {exc.filename}: {exc.strerror or exc}") from None
        tag = outcome.backend_id or token
        assert isinstance(self._batches, Batches) and isinstance(self._batches.batching, _Framed)
        self._batches.batching.tokens[tag] = token
        return tag, outcome, output, note

    async def _run_task(
        self, attempt: Attempt, started: Callable[[], None] | None = None
    ) -> Outcome:
        """Run one attempt as one array task, shown as waiting until it runs (``started``
        instead, if given, is called then); NotStarted if it is given up before."""
        assert self._dir is not None
        self._check_crashed()
        give_up = attempt.give_up
        if give_up.is_set():
            raise NotStarted
        self._watch(attempt.abort, give_up)
        if started is None:
            attempt.queued()
            started = attempt.started
        task = _Task(attempt, on_start=started)
        self._live.add(task)
        self._waiting.append(task)
        self._arrived.set()
        try:
            await task.done.wait()
        except BaseException:
            if not task.done.is_set():  # cancelled: leave nothing of it on the cluster
                self._stop(task, "abort")
                with trio.CancelScope(shield=True), trio.move_on_after(self.command_timeout):
                    await self._scancel([task], force=False)
            raise
        self._check_crashed()
        if task.error is not None:
            if isinstance(task.error, NotStarted):
                await self._release(task.directory)
            raise task.error
        await self._deliver(task)
        assert task.outcome is not None
        return task.outcome

    def _check_crashed(self) -> None:
        if self._crashed is not None:
            raise BackendError(f"the Slurm backend failed: {self._crashed!r}") from self._crashed

    def kill(self) -> None:
        """SIGKILL every task of ours at once (a second Ctrl-C); they end as "killed",
        those that never ran as NotStarted."""
        self._killing = True
        for task in list(self._live):
            self._stop(task, "abort")
        self._kick.set()

    # -- submitting ------------------------------------------------------------------------

    async def _guarded(self, scope: trio.CancelScope, loop: Callable[[], Awaitable[None]]) -> None:
        """Run a background loop; a bug in it breaks the backend (BackendError from
        ``run``), not trio itself."""
        with scope:
            try:
                await loop()
            except Exception as exc:
                self._crashed = exc
                for task in list(self._live):
                    self._finish(task, Outcome("lost", None, message=repr(exc)))

    async def _submit_loop(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived = trio.Event()
            await trio.sleep(self.gather)
            await self._share_throttle()
            while self._waiting:
                budget = self._budget()
                if budget == 0:
                    break
                batch = self._waiting[: self.max_array_size]
                del self._waiting[: len(batch)]
                await self._submit(batch, None if budget is None else min(budget, len(batch)))

    def _budget(self) -> int | None:
        """How many more tasks may run beside those of the arrays already submitted.

        Slurm's throttle holds per array, ``-j`` for the whole run, so the arrays' throttles
        add up to at most ``throttle``; an array counts for no more tasks than it has left
        (None: no throttle).
        """
        if self.throttle is None:
            return None
        taken = sum(
            min(self._throttles.get(array, 0), len(tasks))
            for array, tasks in self._submitted.items()
        )
        return max(0, self.throttle - taken)

    async def _share_throttle(self) -> None:
        """Give the throttle that arrays ending free to the oldest with tasks still waiting
        for it (``scontrol update ArrayTaskThrottle``), so Slurm starts them itself."""
        for array, tasks in list(self._submitted.items()):
            budget = self._budget()
            if not budget:
                return
            throttle = self._throttles.get(array, 0)
            if len(tasks) <= throttle:
                continue
            raised = min(len(tasks), throttle + budget)
            try:
                await self._slurm(
                    "scontrol", "update", f"JobId={array}", f"ArrayTaskThrottle={raised}"
                )
            except _ClientError:
                continue  # ended meanwhile, or refused: its tasks run as they are
            self._throttles[array] = raised

    async def _submit(self, tasks: list[_Task], throttle: int | None) -> None:
        """Write the task table and submit it as one array, at most ``throttle`` of its
        tasks running at once; retried up to ``lost_after``."""
        assert self._dir is not None
        tasks = [t for t in tasks if not t.done.is_set()]
        if not tasks:
            return
        self._arrays += 1
        directory = self._dir / str(self._arrays)
        table = "".join(task_entry(t.attempt.job) + "\n" for t in tasks)
        try:
            directory.mkdir()
            (directory / "tasks").write_bytes(table.encode("utf-8", "surrogateescape"))
        except OSError as exc:
            error = StorageError(f"cannot write {directory / 'tasks'}: {exc.strerror or exc}")
            for task in tasks:
                task.error = error
                self._finish(task, Outcome("lost", None, message=str(error)))
            return
        self._submitting = directory
        try:
            options = self._options(directory, len(tasks), throttle)
            array = await self._sbatch(options, directory)
        except _ClientError as exc:
            for task in tasks:
                self._finish(task, Outcome("lost", None, message=str(exc)))
            return
        finally:
            self._submitting = None
        tasks_of = self._submitted[array] = {}
        if throttle is not None:
            self._throttles[array] = throttle
        now = trio.current_time()
        for number, task in enumerate(tasks):
            task.array, task.number, task.directory = array, number, directory
            tasks_of[number] = task
            if task.done.is_set():  # ended while it was being submitted: cancel it
                task.stopping = "abort"
            if task.stopping is not None:
                task.stop_began = now
        self._undelivered[directory] = len(tasks)
        self._kick.set()

    async def _sbatch(self, options: list[str], directory: Path) -> str:
        """Submit the array, retried with backoff for up to ``lost_after``; its job id.

        Before a retry, the array is looked for under its name: the failed try may have
        reached the controller (an answer lost, a timeout), and must not run twice.
        """
        name = self._job_name(directory)
        first_failure: float | None = None
        delay = 0.2
        while True:
            try:
                if first_failure is not None:
                    found = await self._slurm(
                        "squeue",
                        "--noheader",
                        "--array",
                        "--states=all",
                        f"--name={name}",
                        "--format=%F",
                    )
                    if found.split():
                        return found.split()[0]
                out = await self._slurm("sbatch", *options, stdin=self._script(directory))
                return out.strip().split(";")[0]  # "ID" or "ID;CLUSTER"
            except _ClientError as exc:
                now = trio.current_time()
                first_failure = now if first_failure is None else first_failure
                if now - first_failure >= self.lost_after:
                    raise _ClientError(f"sbatch failed for {self.lost_after:g}s: {exc}") from None
                await trio.sleep(delay)
                delay = min(delay * 2, 5.0)

    # -- polling ---------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        """squeue with backoff; between two calls, the .rc files at a finer grain."""
        delay = self.poll_initial
        failing_since: float | None = None
        last_change = trio.current_time()
        while True:
            kick = self._kick
            if not self._submitted:
                await kick.wait()
                if self._kick is kick:
                    self._kick = trio.Event()
                delay = self.poll_initial
                continue
            await self._send_cancels()
            now = trio.current_time()
            arrays = list(self._submitted)
            try:
                rows = await self._squeue(arrays)
            except _ClientError as exc:
                failing_since = now if failing_since is None else failing_since
                if now - failing_since >= self.lost_after:
                    for task in self._unfinished():
                        self._finish(task, self._lost(task, f"lost contact with Slurm: {exc}"))
                changed = False
            else:
                failing_since = None
                changed = self._update(arrays, rows, now)
            now = trio.current_time()
            if changed:
                last_change = now
            deadline = self._check_deadlines(now)
            delay = self.poll_initial if changed else min(delay * 1.5, self.poll_max)
            next_poll = min(now + delay, deadline)
            while now < next_poll and not kick.is_set():
                # Files cost the controller nothing: look at them often while tasks end
                # often, rarely while they run long (a tenth of the time since a change).
                step = min(max(self.poll_files, (now - last_change) / 10), self.poll_max)
                with trio.move_on_at(min(now + step, next_poll)):
                    await kick.wait()
                if self._succeeded_by_file():
                    last_change = trio.current_time()
                now = trio.current_time()
            if self._kick is kick and kick.is_set():
                self._kick = trio.Event()
                delay = self.poll_initial

    def _succeeded_by_file(self) -> bool:
        """Finish the tasks whose command exited 0 by their .rc file, before Slurm's
        bookkeeping ends; whether there were any. Other statuses wait for Slurm's end
        state, which tells a failure from a cancel, a time limit or running out of memory."""
        done = [
            task for task in self._unfinished() if task.stopping is None and _read_status(task) == 0
        ]
        for task in done:
            self._finish(task, Outcome("succeeded", 0, None, task.backend_id))
        return bool(done)

    def _unfinished(self) -> list[_Task]:
        return [t for tasks in self._submitted.values() for t in tasks.values()]

    async def _squeue(self, arrays: list[str]) -> list[Row]:
        argv = ["squeue", "--noheader", "--array", "--states=all", f"--Format={_SQUEUE_FORMAT}"]
        try:
            out = await self._slurm(*argv, f"--jobs={','.join(arrays)}")
        except _ClientError as exc:
            if "Invalid job id" in str(exc):  # none of them is known any more
                return []
            raise
        return parse_squeue(out)

    def _update(self, arrays: list[str], rows: list[Row], now: float) -> bool:
        """Take the rows of one poll of ``arrays``; finish the tasks that ended there.

        Only the arrays asked about: one submitted during the call is not in the answer.
        Whether anything changed.
        """
        changed = False
        seen: dict[tuple[str, int], Row] = {}
        rest: dict[str, Row] = {}  # an array's unsplit pending tasks, ended together
        for line in rows:
            if line.task is None:
                rest[line.array] = line
            else:
                seen[line.array, line.task] = line
        for array in arrays:
            for number, task in list(self._submitted.get(array, {}).items()):
                row = seen.get((array, number)) or rest.get(array)
                if row is not None and row.state not in _ENDED:
                    if row.state in _STARTED and not task.seen_running:
                        task.seen_running = changed = True
                        task.started = now
                        if task.on_start is not None:
                            task.on_start()
                    continue
                changed = True
                if (task.giving_up or task.stopping == "abort") and _never_ran(task, row):
                    self._give_up(task)
                    continue
                outcome = task_outcome(
                    row.state if row else None,
                    row.exit_raw if row else None,
                    _read_status(task),
                    stopping=task.stopping,
                    backend_id=task.backend_id,
                    reason=row.reason if row else "",
                )
                self._finish(task, outcome)
        return changed

    def _check_deadlines(self, now: float) -> float:
        """Stop the tasks past their timeout, give up on stops that never end; next deadline."""
        upcoming = math.inf
        for task in self._unfinished():
            if task.stopping is not None:
                if now - task.stop_began >= self.stop_wait:
                    message = f"Slurm did not end it within {self.stop_wait:g}s of scancel"
                    self._finish(task, self._lost(task, message))
                else:
                    upcoming = min(upcoming, task.stop_began + self.stop_wait)
                continue
            timeout = task.attempt.timeout
            if task.started is None or timeout is None:
                continue
            if now >= task.started + timeout:
                self._stop(task, "timeout")
                self._kick.set()
            else:
                upcoming = min(upcoming, task.started + timeout)
        return upcoming

    # -- stopping --------------------------------------------------------------------------

    def _watch(self, abort: trio.Event, give_up: trio.Event) -> None:
        """Start the watcher of ``abort``'s run, once per run."""
        if abort not in self._watched:
            self._watched.add(abort)
            trio.lowlevel.spawn_system_task(self._on_stop, abort, give_up)

    async def _on_stop(self, abort: trio.Event, give_up: trio.Event) -> None:
        """Give up the run's tasks not started when it stops; stop the rest on abort."""
        try:
            await give_up.wait()
            for task in list(self._live):
                if task.attempt.abort is abort and not task.seen_running:
                    if task in self._waiting:  # never submitted: it ends now
                        self._waiting.remove(task)
                        self._give_up(task)
                    else:
                        task.giving_up = True  # scancel'd while pending, next poll
            self._kick.set()
            await abort.wait()
            for task in list(self._live):
                if task.attempt.abort is abort:
                    self._stop(task, "abort")
            self._kick.set()
        finally:
            self._watched.discard(abort)

    def _stop(self, task: _Task, why: Literal["abort", "timeout"]) -> None:
        """Mark ``task`` to be stopped: one never submitted ends now, others get scancel."""
        if task.stopping is None:
            task.stopping = why
            task.stop_began = trio.current_time()
        if task in self._waiting:
            self._waiting.remove(task)
            self._give_up(task)

    def _give_up(self, task: _Task) -> None:
        """End ``task`` as never started: its attempt raises NotStarted."""
        task.error = NotStarted()
        self._finish(task, Outcome("killed", None, message="never started"))

    async def _send_cancels(self) -> None:
        """scancel the tasks marked for stopping (with SIGKILL first after ``kill()``), and
        those given up while pending."""
        force, self._killing = self._killing, False
        stopping = [t for t in self._unfinished() if t.stopping and (force or not t.cancel_sent)]
        if stopping:
            await self._scancel(stopping, force=force)
        pending = [
            t
            for t in self._unfinished()
            if t.giving_up and not (t.stopping or t.pending_cancel_sent or t.seen_running)
        ]
        if pending:
            await self._scancel(pending, force=False, pending_only=True)

    async def _scancel(
        self, tasks: Iterable[_Task], *, force: bool, pending_only: bool = False
    ) -> None:
        """Cancel ``tasks`` (whole arrays where every unfinished task of one is asked for);
        ``pending_only``: those of them still pending (Slurm leaves a started one alone)."""
        tasks = [t for t in tasks if t.array is not None]
        if not tasks:
            return
        by_array: dict[str, list[_Task]] = {}
        for task in tasks:
            by_array.setdefault(task.array or "", []).append(task)
        ids = []
        for array, mine in by_array.items():
            if len(mine) == len(self._submitted.get(array, ())):
                ids.append(array)
            else:
                ids += [t.backend_id for t in mine]
        if force:
            running = [t.backend_id for t in tasks if t.seen_running]
            for start in range(0, len(running), _SCANCEL_CHUNK):
                with contextlib.suppress(_ClientError):
                    chunk = running[start : start + _SCANCEL_CHUNK]
                    await self._slurm("scancel", "--signal=KILL", "--full", *chunk)
        sent = True
        states = ("--state=PENDING",) if pending_only else ()
        for start in range(0, len(ids), _SCANCEL_CHUNK):
            try:
                await self._slurm("scancel", *states, *ids[start : start + _SCANCEL_CHUNK])
            except _ClientError as exc:
                # Already ended or gone is fine; anything else is tried again next poll.
                if not re.search(r"already completing|completed|Invalid job id", str(exc)):
                    sent = False
        for task in tasks:
            if pending_only:
                task.pending_cancel_sent = sent
            else:
                task.cancel_sent = sent

    # -- results ---------------------------------------------------------------------------

    def _finish(self, task: _Task, outcome: Outcome) -> None:
        if task.array is not None:
            tasks = self._submitted.get(task.array)
            if tasks is not None:
                tasks.pop(task.number, None)
                if not tasks:
                    del self._submitted[task.array]
                    self._throttles.pop(task.array, None)
                if self.throttle is not None:
                    self._arrived.set()  # its share of the throttle may go to others
        if task.done.is_set():
            return
        task.outcome = outcome
        self._live.discard(task)
        task.done.set()

    @staticmethod
    def _lost(task: _Task, message: str) -> Outcome:
        if task.stopping == "abort":
            return Outcome("killed", None, None, task.backend_id, message)
        return Outcome("lost", None, None, task.backend_id, message)

    async def _deliver(self, task: _Task) -> None:
        """Move the task's output files to the attempt's paths (empty if it never ran)."""
        attempt = task.attempt
        directory = task.directory
        for suffix, target in (("out", attempt.stdout), ("err", attempt.stderr)):
            source = directory / f"{task.number}.{suffix}" if directory is not None else None
            await trio.to_thread.run_sync(_move, source, target)
        await self._release(directory)

    async def _release(self, directory: Path | None) -> None:
        """One task of the array in ``directory`` is done with it (delivered, or never
        started): the directory goes once every task of it is."""
        if directory is not None:
            left = self._undelivered[directory] = self._undelivered[directory] - 1
            if not left:
                del self._undelivered[directory]
                await trio.to_thread.run_sync(
                    functools.partial(shutil.rmtree, directory, ignore_errors=True)
                )

    # -- Slurm's commands ------------------------------------------------------------------

    async def _slurm(self, *argv: str, stdin: bytes = b"") -> str:
        """Run one client command; its stdout, or _ClientError with what it said."""
        try:
            with trio.fail_after(self.command_timeout):
                done = await trio.run_process(
                    argv,
                    stdin=stdin,
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                    env=self._env,
                )
        except trio.TooSlowError:
            raise _ClientError(
                f"{argv[0]} gave no answer within {self.command_timeout:g}s"
            ) from None
        except OSError as exc:
            raise _ClientError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
        if done.returncode != 0:
            said = (
                done.stderr.decode(errors="replace").strip()
                or done.stdout.decode(errors="replace").strip()
            )
            raise _ClientError(said or f"{argv[0]} exited with status {done.returncode}")
        return done.stdout.decode(errors="replace")


@dataclass(frozen=True, slots=True)
class _Framed:
    """``batching`` for ``Batches``: a packed task's output is framed with a token chosen
    before it is submitted, while its records carry the task's ``ARRAY_TASK`` id, known
    only after; ``tokens`` maps the one to the other."""

    batching: Batching
    tokens: dict[str, str]

    @property
    def per_job(self) -> int:
        return self.batching.per_job

    def group(self, index: int) -> tuple[int, int]:
        return self.batching.group(index)

    def command(self, first: int, stop: int, tag: str) -> str:
        return self.batching.command(first, stop, tag)

    def split(
        self, output: bytes, first: int, stop: int, tag: str
    ) -> dict[int, tuple[Outcome, bytes, bytes]]:
        return self.batching.split(output, first, stop, self.tokens.pop(tag, tag))


def _take(*paths: Path) -> list[bytes]:
    """The files' contents (empty if absent), the files removed."""
    found = []
    for path in paths:
        try:
            found.append(path.read_bytes())
        except FileNotFoundError:
            found.append(b"")
        path.unlink(missing_ok=True)
    return found


def _never_ran(task: _Task, row: Row | None) -> bool:
    """Whether a task that ended (``row``, None: gone from the queue) never started: never
    seen running, cancelled or gone, with no exit status and no output file (Slurm makes
    ``N.out`` on the node as it starts the task)."""
    if task.seen_running or (row is not None and row.state != "CANCELLED"):
        return False
    if task.directory is None:
        return True
    return _read_status(task) is None and not (task.directory / f"{task.number}.out").exists()


def _read_status(task: _Task) -> int | None:
    """The command's exit status from the task's .rc file; None if there is none."""
    if task.directory is None:
        return None
    try:
        text = (task.directory / f"{task.number}.rc").read_text()
    except OSError:
        return None
    text = text.strip()
    return int(text) if text.isdigit() else None


def _move(source: Path | None, target: Path) -> None:
    """Put ``source`` (absent: an empty file) at ``target``, replacing it, never following a
    symlink there: renamed on one file system, else copied beside it and renamed."""
    try:
        if source is None or not source.exists():
            fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            os.close(fd)
            os.replace(name, target)
            return
        try:
            os.replace(source, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            try:
                with open(fd, "wb") as out, open(source, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
                os.replace(name, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(name)
                raise
    except OSError as exc:
        raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from None
