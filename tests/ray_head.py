"""A private, real Ray head node for the end-to-end tests and the Ray benchmark.

CI runs on a clean clone, so this module installs what it needs itself: a virtualenv under
``~/.cache/rangeexpr/ray-2.60.0`` holding ``ray[default]==2.60.0`` and rangeexpr's
dependencies. It is created once and reused while it still imports them. Jobs on the node
find a ``rangeexpr`` on PATH that runs this checkout's code with the venv's Python (for
``--per-job``, which runs ``rangeexpr run --slice`` on the node).

The head runs ``ray start --head --block`` on 127.0.0.1 with every port picked free and
distinct, and a private ``--temp-dir`` in the temp directory the tests are given, so it
never collides with another Ray on the machine. It is torn down by its own processes: the
``ray start`` process tree plus every process whose command line names our private temp
dir. Never ``ray stop``, which kills every Ray process on the machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil

RAY_VERSION = "2.60.0"
CHECKOUT = Path(__file__).resolve().parent.parent
INSTALL_TIMEOUT = 900.0
START_TIMEOUT = 180.0
MAX_TEMP_DIR = 48


def venv_dir() -> Path:
    """Where the Ray virtualenv lives; ``RANGEEXPR_RAY_VENV`` overrides it."""
    override = os.environ.get("RANGEEXPR_RAY_VENV")
    if override:
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "rangeexpr" / f"ray-{RAY_VERSION}"


def _venv_check(venv: Path, code: str) -> bool:
    """True when the venv's python runs ``code`` without error."""
    python = venv / "bin" / "python"
    if not python.exists():
        return False
    done = subprocess.run(
        [str(python), "-c", code], capture_output=True, cwd="/", timeout=300, check=False
    )
    return done.returncode == 0


HAS_RAY = f"import ray; assert ray.__version__ == {RAY_VERSION!r}"
# rangeexpr's dependencies, for `rangeexpr run --slice` on the node (--per-job). The
# rangeexpr code itself comes from this checkout through a wrapper (RayHead._wrapper), so
# several checkouts can share the venv without reinstalling.
HAS_DEPS = "import lark, numpy, trio, httpx, rich"


def ensure_ray() -> Path:
    """Create (once) or reuse the Ray virtualenv; return its ``bin`` directory."""
    venv = venv_dir()
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".ray-{RAY_VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test processes must not install at once
        python = venv / "bin" / "python"
        if not python.exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        if not (venv / "bin" / "ray").exists() or not _venv_check(venv, HAS_RAY):
            subprocess.run(
                [*pip, f"ray[default]=={RAY_VERSION}"], check=True, timeout=INSTALL_TIMEOUT
            )
        if not _venv_check(venv, HAS_DEPS):
            subprocess.run([*pip, str(CHECKOUT)], check=True, timeout=INSTALL_TIMEOUT)
        if not (_venv_check(venv, HAS_RAY) and _venv_check(venv, HAS_DEPS)):
            raise RuntimeError(f"the Ray virtualenv at {venv} does not work after installing")
        return venv / "bin"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The worker port range is taken below the kernel's ephemeral range (32768-60999 by
# default), where a port-0 bind never lands, so it cannot overlap the single ports.
_WORKER_RANGE_LOW, _WORKER_RANGE_HIGH = 20000, 32000


def pick_ports(count: int, width: int) -> tuple[list[int], int]:
    """``count`` single ports and the first of ``width`` consecutive ones, all distinct.

    Every socket stays bound until all are chosen, so the kernel cannot hand out one port
    twice (binding port 0 and closing it, one after another, can). Another process may
    still take one before Ray binds it: ``RayHead.start`` retries on that.
    """
    with contextlib.ExitStack() as stack:

        def bind(port: int) -> int:
            s = stack.enter_context(socket.socket())
            s.bind(("127.0.0.1", port))
            return int(s.getsockname()[1])

        singles = [bind(0) for _ in range(count)]
        for first in random.sample(range(_WORKER_RANGE_LOW, _WORKER_RANGE_HIGH - width), 200):
            try:
                with contextlib.ExitStack() as trial:
                    for port in range(first, first + width):
                        trial.enter_context(socket.socket()).bind(("127.0.0.1", port))
            except OSError:
                continue
            return singles, first
    raise RuntimeError("no free range of ports for Ray workers")


class _EarlyExit(RuntimeError):
    """``ray start`` ended before the head answered (e.g. a port was taken meanwhile)."""


class RayHead:
    """One private Ray head node: ``start()``, ``kill()`` (simulated crash), ``stop()``."""

    def __init__(self, bin_dir: Path, num_cpus: int = 2) -> None:
        self.bin_dir = bin_dir
        self.num_cpus = num_cpus
        # Ray's Unix socket paths (under --temp-dir) must stay under 107 bytes.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rxr"))
        if len(str(self.temp_dir)) > MAX_TEMP_DIR:
            shutil.rmtree(self.temp_dir)
            raise RuntimeError(
                f"TMPDIR is too long for Ray's socket paths ({self.temp_dir}): "
                f"use one of at most {MAX_TEMP_DIR - 12} characters"
            )
        self.address = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.temp_dir / "head.log"

    def start(self, attempts: int = 3) -> str:
        """Start the head on fresh free ports; return the dashboard URL once jobs answer.

        A port taken by another process between picking and binding makes ``ray start``
        exit early; then it is tried again on new ports.
        """
        for attempt in range(attempts):
            try:
                return self._start_once()
            except _EarlyExit:
                self.kill()
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def _start_once(self) -> str:
        flags = (
            "--port",
            "--dashboard-port",
            "--node-manager-port",
            "--object-manager-port",
            "--dashboard-agent-listen-port",
            "--dashboard-agent-grpc-port",
            "--runtime-env-agent-port",
            "--metrics-export-port",
            "--ray-client-server-port",
        )
        singles, workers = pick_ports(len(flags), 64)
        ports = dict(zip(flags, singles))
        ports |= {"--min-worker-port": workers, "--max-worker-port": workers + 63}
        argv = [
            str(self.bin_dir / "ray"),
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=true",
            "--disable-usage-stats",
            f"--num-cpus={self.num_cpus}",
            f"--temp-dir={self.temp_dir}",
            *(f"{flag}={port}" for flag, port in ports.items()),
        ]
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PATH": self._path()}
        env.pop("VIRTUAL_ENV", None)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self.address = f"http://127.0.0.1:{ports['--dashboard-port']}"
        self._wait_ready()
        return self.address

    def _path(self) -> str:
        """PATH for the head and its jobs: our ``rangeexpr`` wrapper, then the venv."""
        wrappers = self.temp_dir / "bin"
        wrappers.mkdir(exist_ok=True)
        wrapper = wrappers / "rangeexpr"
        wrapper.write_text(
            "#!/bin/sh\n"
            "# rangeexpr from the checkout under test, on the venv's Python\n"
            f"PYTHONPATH={shlex.quote(str(CHECKOUT))}${{PYTHONPATH:+:$PYTHONPATH}} "
            f'exec {shlex.quote(str(self.bin_dir / "python"))} -m rangeexpr "$@"\n'
        )
        wrapper.chmod(0o755)
        return os.pathsep.join([str(wrappers), str(self.bin_dir), os.environ.get("PATH", "")])

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise _EarlyExit(f"ray start exited early; see {self.log}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.address}/api/jobs/", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.kill()
        raise RuntimeError(f"the Ray head did not answer within {START_TIMEOUT}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        """The end of the head's log, for error messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _processes(self) -> list[psutil.Process]:
        """Our head's processes: the ray start tree, and anything naming our temp dir."""
        found: dict[int, psutil.Process] = {}
        if self.proc is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(self.proc.pid)
                found[root.pid] = root
                found.update((p.pid, p) for p in root.children(recursive=True))
        marker = str(self.temp_dir)
        for p in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if any(marker in part for part in p.info["cmdline"] or ()):
                    found[p.pid] = p
        found.pop(os.getpid(), None)
        return list(found.values())

    def kill(self) -> None:
        """Crash the head: SIGKILL every one of its processes at once (no clean shutdown)."""
        procs = self._processes()
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.send_signal(signal.SIGKILL)
        psutil.wait_procs(procs, timeout=30)
        if self.proc is not None:
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        """Shut the head down: SIGTERM its processes, SIGKILL what is left after 15 s."""
        procs = self._processes()
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(procs, timeout=15)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.send_signal(signal.SIGKILL)
        psutil.wait_procs(alive, timeout=15)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=15)
        self.proc = None

    def close(self) -> None:
        """Stop the head and remove its temp dir."""
        self.stop()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@contextlib.contextmanager
def ray_head(num_cpus: int = 2) -> Iterator[RayHead]:
    """A started private head node, always torn down on exit."""
    head = RayHead(ensure_ray(), num_cpus=num_cpus)
    try:
        head.start()
        yield head
    finally:
        head.close()


if __name__ == "__main__":
    # Manual use: ``python tests/ray_head.py`` installs, starts, prints the address, waits.
    with ray_head() as h:
        print(h.address, h.temp_dir, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
