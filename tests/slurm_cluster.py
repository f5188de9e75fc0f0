"""A private, real single-node Slurm cluster for the Slurm backend's tests and benchmarks.

CI runs on a clean machine, so ``ensure_slurm`` installs Debian's ``munge``, ``slurmctld``,
``slurmd`` and ``slurm-client`` with apt-get when they are missing (we run as root there).
Installing them starts no daemon here: the image's ``policy-rc.d`` denies it and there is
no init system, and nothing below uses the system's ``/etc/munge`` or ``/etc/slurm``.

``SlurmCluster`` runs its own ``munged`` (private key and socket), ``slurmctld`` and
``slurmd``, all in the foreground as children of the test process, from a ``slurm.conf``
generated in a private temp directory: one node on 127.0.0.1 with this machine's CPUs, no
accounting database, ports picked free, jobs tracked by process tree (``proctrack/cgroup``
fails in this container: no usable freezer cgroup). Clients find it through ``SLURM_CONF``
(``SlurmCluster.env``). It is torn down by process id: our daemons' trees, plus what
``slurmd`` detaches (``slurmstepd`` and its jobs), found by working directory and by a
marker variable. Never ``pkill``, never ``scontrol shutdown``, never a daemon we did not
start.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import psutil

PACKAGES = ("munge", "slurmctld", "slurmd", "slurm-client")
INSTALL_TIMEOUT = 900.0
START_TIMEOUT = 60.0
# The marker in the environment of every process of one cluster; its value is the temp dir.
MARKER = "RANGEEXPR_SLURM_CLUSTER"
# Unix socket paths (munged's, and slurmd's per job step under the spool dir) must stay
# under 108 bytes: leave room for "spool/n1_<job>.<step>".
MAX_TEMP_DIR = 60
NODE = "n1"
PARTITION = "debug"


def _installed(package: str) -> bool:
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Status}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout == "installed"


def _apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    # Wait for another apt (a helper, unattended upgrades) instead of failing on its lock.
    argv = ["apt-get", "-q", "-y", "-o", "DPkg::Lock::Timeout=600", *args]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )


def ensure_slurm() -> None:
    """Install the Slurm and MUNGE packages once; ``apt-get update`` only if needed."""
    if all(_installed(p) for p in PACKAGES):
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"installing {' '.join(PACKAGES)} needs root; install them first")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rangeexpr"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".slurm-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test processes must not install at once
        missing = [p for p in PACKAGES if not _installed(p)]
        if not missing:
            return
        install = ("install", "--no-install-recommends", *missing)
        done = _apt_get(*install)
        if done.returncode != 0:  # a fresh machine has no package lists yet
            _apt_get("update")
            done = _apt_get(*install)
        if done.returncode != 0 or not all(_installed(p) for p in PACKAGES):
            raise RuntimeError(f"apt-get {' '.join(install)} failed:\n{_last(done.stdout)}")


def pick_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports, all held bound until every one is chosen."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            s = stack.enter_context(socket.socket())
            s.bind(("", 0))  # the daemons listen on every address, so check them all
            ports.append(int(s.getsockname()[1]))
        return ports


def _last(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


class _EarlyExit(RuntimeError):
    """A daemon ended while the cluster was starting (e.g. a port was taken meanwhile)."""


class SlurmCluster:
    """One private cluster: ``start()``, ``stop()``, ``close()``; clients use ``env``."""

    def __init__(
        self,
        max_array_size: int = 1001,
        cpus: int | None = None,
        min_job_age: int = 30,
        extra_conf: Mapping[str, str] | None = None,
    ) -> None:
        self.max_array_size = max_array_size
        self.cpus = cpus or os.cpu_count() or 1
        self.min_job_age = min_job_age
        self.extra_conf = dict(extra_conf or {})
        self.dir = Path(tempfile.mkdtemp(prefix="rxs"))
        if len(str(self.dir)) > MAX_TEMP_DIR:
            shutil.rmtree(self.dir)
            raise RuntimeError(
                f"TMPDIR is too long for Slurm's socket paths ({self.dir}): "
                f"use one of at most {MAX_TEMP_DIR - 12} characters"
            )
        self.conf = self.dir / "slurm.conf"
        self.munge_socket = self.dir / "munge.sock"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._seen: dict[int, psutil.Process] = {}
        # What clients (sbatch, squeue, ...) and, through sbatch, the jobs run with.
        self.env = {
            **{k: v for k, v in os.environ.items() if not _slurm_variable(k)},
            "SLURM_CONF": str(self.conf),
            MARKER: str(self.dir),
        }

    def start(self, attempts: int = 3) -> None:
        """Start munged, slurmctld and slurmd; return once ``sinfo`` shows the node idle.

        A port taken by another process between picking and binding ends a daemon early;
        then everything is started again on new ports.
        """
        for attempt in range(attempts):
            try:
                self._start_once()
                return
            except _EarlyExit:
                self.stop()
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def _start_once(self) -> None:
        key = self.dir / "munge.key"
        if not key.exists():
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with open(fd, "wb") as f:
                f.write(os.urandom(1024))
        # --force: munged wants every directory above its socket searchable by everyone,
        # and ours (from mkdtemp) are 0700; only root uses this socket.
        self._spawn(
            "munged",
            "munged",
            "--foreground",
            "--force",
            f"--socket={self.munge_socket}",
            f"--key-file={key}",
            f"--pid-file={self.dir / 'munged.pid'}",
            f"--seed-file={self.dir / 'munged.seed'}",
            f"--log-file={self.dir / 'munged.log'}",
        )
        self._wait(self._munge_works, "a MUNGE credential from our munged")
        ctld_port, slurmd_port = pick_ports(2)
        self.conf.write_text(self._slurm_conf(ctld_port, slurmd_port))
        self._spawn("slurmctld", "slurmctld", "-D", "-f", str(self.conf))
        self._spawn("slurmd", "slurmd", "-D", "-f", str(self.conf), "-N", NODE)
        self._wait(lambda: self.sinfo() == "idle", f"node {NODE} to be idle in sinfo")

    def _slurm_conf(self, ctld_port: int, slurmd_port: int) -> str:
        real_mb = psutil.virtual_memory().total // 2**20
        memory = real_mb - max(512, real_mb // 20)  # a bit below the machine's
        host = socket.gethostname().split(".")[0]
        state, spool = self.dir / "state", self.dir / "spool"
        state.mkdir(exist_ok=True)
        spool.mkdir(exist_ok=True)
        settings = {
            "ClusterName": "rangeexpr",
            "SlurmctldHost": f"{host}(127.0.0.1)",
            "SlurmctldPort": str(ctld_port),
            "SlurmdPort": str(slurmd_port),
            "SlurmUser": "root",
            "SlurmdUser": "root",
            "AuthType": "auth/munge",
            "CredType": "cred/munge",
            # auth/munge and cred/munge read the socket from here (slurm.conf(5), 22.05).
            "AuthInfo": f"socket={self.munge_socket}",
            "StateSaveLocation": str(state),
            "SlurmdSpoolDir": str(spool),
            "SlurmctldPidFile": str(self.dir / "slurmctld.pid"),
            "SlurmdPidFile": str(self.dir / "slurmd.pid"),
            "SlurmctldLogFile": str(self.dir / "slurmctld.log"),
            "SlurmdLogFile": str(self.dir / "slurmd.log"),
            "SlurmctldDebug": "info",
            "SlurmdDebug": "info",
            "AccountingStorageType": "accounting_storage/none",
            "JobAcctGatherType": "jobacct_gather/none",
            "JobCompType": "jobcomp/none",
            # No cgroup hierarchy of our own in a container: track jobs by process tree.
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_Core_Memory",
            # Without a default, a job takes the whole node's memory and runs alone.
            "DefMemPerCPU": str(memory // self.cpus),
            "MaxArraySize": str(self.max_array_size),
            "MinJobAge": str(self.min_job_age),
            # Schedule at once on submit and on every job's end, not up to 3 s later.
            "SchedulerParameters": "batch_sched_delay=0",
            "KillWait": "2",  # seconds from SIGTERM to SIGKILL on cancel or time limit
            "ReturnToService": "2",
            # The node is as large as we declare it (``cpus`` may exceed the real count).
            "SlurmdParameters": "config_overrides",
            "MpiDefault": "none",
            **self.extra_conf,
        }
        lines = [f"{key}={value}" for key, value in settings.items()]
        lines.append(f"NodeName={NODE} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={memory}")
        lines.append(
            f"PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP"
        )
        return "# generated by tests/slurm_cluster.py\n" + "\n".join(lines) + "\n"

    def _spawn(self, name: str, *argv: str) -> None:
        with open(self.dir / f"{name}.out", "ab") as out:
            self.procs[name] = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.dir,
                start_new_session=True,
            )

    def _wait(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise _EarlyExit(
                        f"{name} exited with {proc.returncode} while waiting for {what}:\n"
                        f"{self.tail()}"
                    )
            if ready():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"timed out after {START_TIMEOUT}s waiting for {what}:\n{self.tail()}")

    def _munge_works(self) -> bool:
        """Encode and decode a credential through our socket, as the daemons will."""
        sock = f"--socket={self.munge_socket}"
        encoded = self.run("munge", "--no-input", sock, timeout=15)
        decoded = subprocess.run(
            ["unmunge", sock], input=encoded.stdout, capture_output=True, text=True, check=False
        )
        return encoded.returncode == 0 and decoded.returncode == 0

    def run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client command against this cluster (output captured, no check)."""
        return subprocess.run(
            argv, capture_output=True, text=True, env=self.env, timeout=timeout, check=False
        )

    def sinfo(self) -> str:
        """Our node's state as ``sinfo`` prints it (``idle``, ``mix``, ``down*``...)."""
        done = self.run("sinfo", "--noheader", "--nodes", NODE, "--format=%t", timeout=15)
        return done.stdout.strip() if done.returncode == 0 else ""

    def tail(self, lines: int = 30) -> str:
        """The end of each daemon's logs, for error messages."""
        parts = []
        for name in ("munged", "slurmctld", "slurmd"):
            for suffix in ("out", "log"):
                path = self.dir / f"{name}.{suffix}"
                with contextlib.suppress(OSError):
                    text = _last(path.read_text(errors="replace"), lines)
                    parts.append(f"--- {path.name}\n{text}")
        return "\n".join(parts)

    def processes(self) -> list[psutil.Process]:
        """Every live process of this cluster, with the trees below each.

        Our daemons, plus what they detach: ``slurmstepd`` leaves ``slurmd``'s tree and
        overwrites its environment with its title, but keeps ``slurmd``'s working directory
        (our temp dir); jobs carry our marker in their environment (sbatch exports it).
        """
        roots = [proc.pid for proc in self.procs.values()]
        for p in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if self._ours(p):
                    roots.append(p.pid)
        found: dict[int, psutil.Process] = {}
        for pid in roots:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                found[pid] = root
                found.update((c.pid, c) for c in root.children(recursive=True))
        found.pop(os.getpid(), None)
        self._seen.update(found)
        return list(found.values())

    def _ours(self, p: psutil.Process) -> bool:
        cwd = Path(p.cwd())
        return (
            cwd == self.dir or self.dir in cwd.parents or p.environ().get(MARKER) == str(self.dir)
        )

    def seen(self) -> list[psutil.Process]:
        """Every process ``processes()`` has found so far, for tests of the teardown."""
        return list(self._seen.values())

    def stop(self) -> None:
        """Cancel every job, SIGTERM every process of ours, SIGKILL what is left after 10 s.

        Jobs are cancelled first and given a few seconds to end, because a ``slurmstepd``
        whose ``slurmd`` is gone ignores SIGTERM while it retries reporting its job's end.
        """
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._cancel_all()
        procs = self.processes()
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(procs, timeout=10)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.send_signal(signal.SIGKILL)
        psutil.wait_procs(alive, timeout=10)
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        self.procs = {}

    def _cancel_all(self, timeout: float = 10) -> None:
        def jobs() -> list[str]:
            done = self.run("squeue", "--noheader", "--format=%F", timeout=timeout)
            return sorted(set(done.stdout.split()))

        if pending := jobs():
            self.run("scancel", *pending, timeout=timeout)
        deadline = time.monotonic() + timeout
        while jobs() and time.monotonic() < deadline:
            time.sleep(0.2)

    def close(self) -> None:
        """Stop the cluster and remove its temp dir."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _slurm_variable(name: str) -> bool:
    """Variables that would point our clients at another cluster or change their output."""
    prefixes = ("SLURM_", "SBATCH_", "SQUEUE_", "SINFO_", "SCONTROL_", "SCANCEL_", "SALLOC_")
    return name.startswith(prefixes) or name == MARKER


@contextlib.contextmanager
def slurm_cluster(
    max_array_size: int = 1001,
    cpus: int | None = None,
    min_job_age: int = 30,
    extra_conf: Mapping[str, str] | None = None,
) -> Iterator[SlurmCluster]:
    """A started private cluster, always torn down on exit."""
    if os.geteuid() != 0:
        raise RuntimeError("the Slurm test cluster needs root: slurmd runs jobs as their user")
    ensure_slurm()
    cluster = SlurmCluster(max_array_size, cpus, min_job_age, extra_conf)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


_EXIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _exit_on_signal(signum: int, frame: object) -> None:
    for number in _EXIT_SIGNALS:  # a second signal must not cut the teardown short
        signal.signal(number, signal.SIG_IGN)
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    # Manual use: ``python tests/slurm_cluster.py`` installs, starts, prints SLURM_CONF, waits
    # for Ctrl-C, SIGTERM or SIGHUP, then tears the cluster down: a signal's default action
    # would end this process and leave the daemons running.
    for number in _EXIT_SIGNALS:
        signal.signal(number, _exit_on_signal)
    with contextlib.suppress(KeyboardInterrupt), slurm_cluster() as c:
        print(f"export SLURM_CONF={c.conf}", flush=True)
        signal.pause()
