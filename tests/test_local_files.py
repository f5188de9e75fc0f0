"""The local backend's output files: never through a link, never into a file someone holds.

A path that is not a regular file is our storage failing (StorageError), not the job's: the
job does not run. Real processes, real files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from runner import Attempt, Job, LocalBackend, Outcome, StorageError

REPO = Path(__file__).resolve().parents[1]


def attempt(tmp_path: Path, command: str) -> Attempt:
    job = Job(3, ("sh", "-c", command), command, {}, {})
    return Attempt(job, 1, None, tmp_path / "3.out", tmp_path / "3.err", trio.Event())


def run_one(a: Attempt) -> Outcome:
    async def main() -> Outcome:
        async with LocalBackend() as backend:
            return await backend.run(a)

    return trio.run(main)


def refused(a: Attempt) -> str:
    """The StorageError message for ``a``, after checking the job did not run."""
    with pytest.raises(StorageError) as info:
        run_one(a)
    assert not (a.stdout.parent / "ran").exists()
    return str(info.value)


def test_a_symlink_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    a = attempt(tmp_path, "touch ran; echo overwritten")
    a.stdout.symlink_to(victim)
    message = refused(a)
    assert (
        message == f"cannot write {a.stdout}: it is a symbolic link (output files never follow one)"
    )
    assert victim.read_text() == "precious\n"
    assert a.stdout.is_symlink()


def test_a_dangling_symlink_creates_nothing(tmp_path: Path) -> None:
    a = attempt(tmp_path, "touch ran")
    a.stderr.symlink_to(tmp_path / "created")
    assert "symbolic link" in refused(a)
    assert not (tmp_path / "created").exists()


def test_a_directory_is_refused(tmp_path: Path) -> None:
    a = attempt(tmp_path, "touch ran")
    a.stdout.mkdir()
    assert refused(a) == f"cannot write {a.stdout}: Is a directory"


def test_a_fifo_is_refused_with_or_without_a_reader(tmp_path: Path) -> None:
    """Opening a FIFO for writing would wait for a reader: it is refused at once instead."""
    a = attempt(tmp_path, "touch ran")
    os.mkfifo(a.stdout)
    assert refused(a) == f"cannot write {a.stdout}: it is not a regular file"
    reader = os.open(a.stdout, os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert refused(a) == f"cannot write {a.stdout}: it is not a regular file"
    finally:
        os.close(reader)


def test_a_hard_link_is_replaced_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    a = attempt(tmp_path, "echo mine")
    os.link(victim, a.stdout)
    assert run_one(a) == Outcome("succeeded", 0, output=(5, 0))
    assert a.stdout.read_text() == "mine\n"
    assert victim.read_text() == "precious\n"


def test_a_file_another_process_still_holds_is_replaced(tmp_path: Path) -> None:
    """A leftover of an earlier attempt writing late never lands in this attempt's output.

    Once nobody holds the file it is emptied and reused: a new file costs far more.
    """
    a = attempt(tmp_path, "echo mine")
    with a.stdout.open("wb") as held:
        holder = subprocess.Popen(
            ["sh", "-c", "read go; echo LATE"], stdin=subprocess.PIPE, stdout=held
        )
    try:
        assert run_one(a) == Outcome("succeeded", 0, output=(5, 0))
    finally:
        holder.communicate(b"go\n", timeout=10)
    assert a.stdout.read_text() == "mine\n"
    inode = a.stdout.stat().st_ino
    a.stdout.write_text("an earlier, longer output\n")
    assert run_one(a) == Outcome("succeeded", 0, output=(5, 0))  # not the 26 bytes before
    assert a.stdout.read_text() == "mine\n"
    assert a.stdout.stat().st_ino == inode


def test_run_stops_cleanly_when_a_results_file_is_a_symlink(tmp_path: Path) -> None:
    """End to end: the victim survives, exit 1, the message names the file, records kept."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "X=1.out").symlink_to(victim)
    # --overwrite: past the check that refuses a directory we did not write, to the files
    argv = ["run", "--no-progress", "-j1", "-r", "X=range:3", "--results", "res", "--overwrite"]
    result = subprocess.run(
        [sys.executable, "-m", "rangeexpr", *argv, "--joblog", "log", "--exec", "echo $X"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "cannot write res/X=1.out: it is a symbolic link" in result.stderr
    assert "Traceback" not in result.stderr
    assert victim.read_text() == "precious\n"
    assert (tmp_path / "res" / "X=0.out").read_text() == "0\n"
    assert len((tmp_path / "log").read_text().splitlines()) == 2  # header + job 0


def test_checking_for_other_holders_survives_readers_opening_the_file(tmp_path: Path) -> None:
    """The check takes a lease for an instant; a reader opening the file then breaks it,
    which signals us: that signal must never be the default SIGIO, which ends a process."""
    target = tmp_path / "out"
    target.touch()
    code = (
        "import os, sys\n"
        "from runner._local import _open_elsewhere\n"
        "fd = os.open(sys.argv[1], os.O_WRONLY)\n"
        "held = sum(_open_elsewhere(fd) for _ in range(30000))\n"
        "print(0 < held < 30000)\n"
    )
    opener = subprocess.Popen(["sh", "-c", f"while :; do : < {target}; done"])
    try:
        result = subprocess.run(
            [sys.executable, "-c", code, str(target)],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        opener.kill()
        opener.wait()
    assert (result.returncode, result.stdout) == (0, "True\n"), result.stderr
