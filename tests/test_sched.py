"""The dispatcher's slice hint: it takes on Linux >= 6.12, jobs never inherit it, the local
backend applies it itself, and ``RANGEEXPR_NO_SCHED_HINT=1`` turns it off."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter: the hint lasts for the thread's life, so not in pytest's.
PROBE = """
import json, os, subprocess, sys, threading
from runner._sched import favour_dispatch

def slice_of(task):
    for line in open(task):
        if line.startswith("se.slice"):
            return int(line.split(":")[1])

if len(sys.argv) > 1:
    os.nice(int(sys.argv[1]))
took = favour_dispatch()
child = subprocess.run(
    ["sh", "-c", "cat /proc/self/sched | grep ^se.slice; cut -d' ' -f19 /proc/self/stat"],
    capture_output=True, text=True, check=True,
).stdout.split("\\n")
print(json.dumps({
    "took": took,
    "slice": slice_of(f"/proc/self/task/{threading.get_native_id()}/sched"),
    "child_slice": int(child[0].split(":")[1]),
    "child_nice": int(child[1]),
}))
"""


# Entering a LocalBackend under trio: the slice of the thread running trio, inside.
BACKEND_PROBE = """
import json, threading, trio
from runner import LocalBackend

async def main():
    async with LocalBackend():
        for line in open(f"/proc/self/task/{threading.get_native_id()}/sched"):
            if line.startswith("se.slice"):
                return int(line.split(":")[1])

print(json.dumps({"slice": trio.run(main)}))
"""


def probe(*args: str, code: str = PROBE, off: bool = False) -> dict[str, int | bool | None]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("RANGEEXPR_NO_SCHED_HINT", None)
    if off:
        env["RANGEEXPR_NO_SCHED_HINT"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, env=env
    ).stdout
    result: dict[str, int | bool | None] = json.loads(out)
    return result


def custom_slices() -> bool:
    """EEVDF custom slices (sched_attr.sched_runtime for normal tasks) arrived in 6.12."""
    major, minor = (int(p) for p in platform.release().split(".")[:2])
    return (major, minor) >= (6, 12)


needs_slices = pytest.mark.skipif(
    platform.system() != "Linux" or not custom_slices(), reason="needs Linux >= 6.12"
)


@needs_slices
def test_the_dispatcher_gets_a_short_slice_and_its_jobs_the_default() -> None:
    result = probe()
    assert result["took"] is True
    assert result["slice"] == 300_000
    assert result["child_slice"] != 300_000  # reset on fork: jobs are scheduled as before
    assert result["child_nice"] == 0


@needs_slices
def test_the_environment_variable_turns_it_off() -> None:
    result = probe(off=True)
    assert result["took"] is False
    assert result["slice"] != 300_000


@needs_slices
def test_entering_the_local_backend_applies_it_unless_turned_off() -> None:
    assert probe(code=BACKEND_PROBE)["slice"] == 300_000
    assert probe(code=BACKEND_PROBE, off=True)["slice"] != 300_000


@needs_slices
def test_a_positive_nice_is_kept_for_us_and_the_jobs() -> None:
    result = probe("5")
    assert result["took"] is True
    assert result["child_nice"] == 5


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can lower nice")
def test_a_negative_nice_is_left_alone() -> None:
    """Reset-on-fork would drop a negative nice for the jobs, so the hint is not applied."""
    result = probe("-3")
    assert result["took"] is False
    assert result["child_nice"] == -3
