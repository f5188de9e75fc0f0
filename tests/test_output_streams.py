"""Our own stdout: a stalled reader never stalls the run, a broken one never stops it.

Copying job output waits for a slow reader without blocking the event loop (timeouts,
signals and other jobs go on), keeps each job's block whole and in order, and a stdout
that is closed or whose reader is gone drops the output while the jobs run and are logged.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from runner._output import OutputCopier

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
BIG = 300_000  # bytes: more than a pipe or a terminal holds


@pytest.mark.parametrize("kind", ["pipe", "terminal"])
def test_copying_to_a_stalled_reader_leaves_the_loop_running(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While nobody reads, the loop runs on; once read, the blocks arrive whole, in order."""
    big, small = tmp_path / "big", tmp_path / "small"
    big.write_bytes(b"a" * BIG)
    small.write_bytes(b"b" * 10)
    if kind == "pipe":
        read_end, write_end = os.pipe()
    else:
        read_end, write_end = os.openpty()
        tty.setraw(write_end)
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(open(write_end, "wb")))  # noqa: SIM115
    released = threading.Event()
    received = bytearray()

    def reader() -> None:
        released.wait(timeout=5)  # the code of old blocked the loop until this gave up
        while len(received) < BIG + 10:
            received.extend(os.read(read_end, 1 << 16))

    copier = OutputCopier()
    waiting = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:

            async def copy_both() -> None:
                await copier.move(big, "stdout")
                await copier.move(small, "stdout")
                waiting.append(False)

            nursery.start_soon(copy_both)
            await trio.sleep(0.2)
            waiting.append(not waiting)  # True: the copy still waits for the reader
            released.set()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        trio.run(main)
    finally:
        released.set()
        thread.join(timeout=10)
        os.close(read_end)
    assert waiting == [True, False]
    assert received == b"a" * BIG + b"b" * 10
    assert big.stat().st_size == small.stat().st_size == 0  # emptied for reuse


def start(*args: str, cwd: Path, stdout: Any = subprocess.PIPE) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "rangeexpr", "run", "--no-progress", *args],
        cwd=cwd,
        env=ENV,
        stdout=stdout,
        stderr=subprocess.PIPE,
    )


def records(log: Path) -> dict[int, dict[str, Any]]:
    lines = log.read_text().splitlines()[1:] if log.exists() else []
    return {r["index"]: r for r in map(json.loads, lines)}


def poll(condition: Callable[[], bool], within: float = 20) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# Job 0 prints more than the pipe holds; job 1 runs long. Nobody reads our stdout.
PRINTER_AND_SLEEPER = f"sh -c 'if [ $X = 0 ]; then head -c {BIG} /dev/zero; else sleep 30; fi'"


def test_a_timeout_fires_while_stdout_is_stalled(tmp_path: Path) -> None:
    log = tmp_path / "log"
    proc = start(
        "-r", "X=range:2", "-j", "2", "--timeout", "1", "--joblog", str(log),
        "--exec", PRINTER_AND_SLEEPER, cwd=tmp_path,
    )  # fmt: skip
    try:
        recorded = poll(lambda: 1 in records(log))  # stdout still unread meanwhile
    finally:
        out, err = proc.communicate(timeout=60)
    assert recorded, err
    assert records(log)[1]["status"] == "timed_out"
    assert records(log)[1]["duration"] < 10  # not held until the reader came back
    assert len(out) == BIG
    assert proc.returncode == 1


def test_an_interrupt_takes_effect_while_stdout_is_stalled(tmp_path: Path) -> None:
    log = tmp_path / "log"
    proc = start(
        "-r", "X=range:2", "-j", "2", "--joblog", str(log), "--exec", PRINTER_AND_SLEEPER,
        cwd=tmp_path,
    )  # fmt: skip
    try:
        assert poll(lambda: 0 in records(log))  # job 0 ended: its copy now waits on us
        proc.send_signal(signal.SIGINT)
        killed = poll(lambda: 1 in records(log))  # stdout still unread meanwhile
    finally:
        out, err = proc.communicate(timeout=60)
    assert killed, err
    assert records(log)[1]["status"] == "killed"
    assert proc.returncode == 130
    assert len(out) == BIG


def test_a_closed_stdout_drops_the_output_and_the_jobs_run(tmp_path: Path) -> None:
    """``>&-``: Python sees no sys.stdout at all; the jobs still run and are logged."""
    log = tmp_path / "log"
    argv = [sys.executable, "-m", "rangeexpr", "run", "--no-progress", "-r", "X=range:3"]
    result = subprocess.run(
        ["sh", "-c", 'exec "$@" >&-', "sh", *argv, "--joblog", str(log), "--exec", "echo $X"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "3 succeeded" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(records(log)) == [0, 1, 2]
