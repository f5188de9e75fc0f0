"""``--tag`` (each output line prefixed with the job's index and values) and ``-k`` (outputs
in sweep order), as GNU Parallel has them (issue 14)."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
from test_cli_run import ENV, run

from runner._output import _CHUNK, InOrder, _chunks, last_line


def test_tag_prefixes_every_line_of_stdout_and_stderr(tmp_path: Path) -> None:
    (tmp_path / "job.sh").write_text('echo "out $1"; printf "last $1"; echo "err $1" >&2\n')
    result = run(
        "-j", "1", "-r", "X=range:2", "-r", "W=case:a,b c", "--tag", "--exec", "sh job.sh $X $W",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "#0 X=0 W=a\tout 0\n#0 X=0 W=a\tlast 0\n"  # a last line gets its newline
        "#1 X=0 W=b c\tout 0\n#1 X=0 W=b c\tlast 0\n"
        "#2 X=1 W=a\tout 1\n#2 X=1 W=a\tlast 1\n"
        "#3 X=1 W=b c\tout 1\n#3 X=1 W=b c\tlast 1\n"
    )
    assert result.stderr.startswith(
        "#0 X=0 W=a\terr 0\n#1 X=0 W=b c\terr 0\n#2 X=1 W=a\terr 1\n#3 X=1 W=b c\terr 1\n"
    )


def test_keep_order_prints_in_sweep_order_whatever_ends_first(tmp_path: Path) -> None:
    # Later jobs end first: without -k they would print in reverse.
    (tmp_path / "job.sh").write_text('sleep "0.$((4 - $1))"; echo "a $1"; echo "b $1"\n')
    result = run("-j", "5", "-r", "X=range:5", "-k", "--exec", "sh job.sh $X", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "".join(f"a {x}\nb {x}\n" for x in range(5))


def test_keep_order_with_many_jobs_a_filter_and_a_shuffle(tmp_path: Path) -> None:
    """The order is the sweep's as the run visits it: here shuffled, some points dropped."""
    (tmp_path / "job.sh").write_text('sleep "0.0$(($1 % 4))"; echo "$1"\n')
    result = run(
        "-j", "8", "-r", "X=range:60", "--where", "X % 7 != 3", "--shuffle", "5", "-k",
        "--tag", "--exec", "sh job.sh $X",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    expand = subprocess.run(
        [sys.executable, "-m", "rangeexpr", "expand", "-r", "X=range:60", "--where",
         "X % 7 != 3", "--shuffle", "5", "--format", "csv"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, check=True,
    )  # fmt: skip
    order = [line.split(",")[1] for line in expand.stdout.splitlines()[1:]]
    assert len(order) == 51
    assert result.stdout == "".join(f"#{x} X={x}\t{x}\n" for x in order)


def test_keep_order_prints_a_job_s_last_attempt(tmp_path: Path) -> None:
    (tmp_path / "job.sh").write_text(
        'if [ "$1" = 1 ] && [ ! -e tried ]; then touch tried; echo "first try"; exit 1; fi\n'
        'echo "done $1"\n'
    )
    result = run(
        "-j", "2", "-r", "X=range:3", "-k", "--retries", "1", "--exec", "sh job.sh $X",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "done 0\ndone 1\ndone 2\n"


def test_tag_and_keep_order_do_not_go_with_results(tmp_path: Path) -> None:
    for option in ("--tag", "-k"):
        result = run("-r", "X=range:2", option, "--results", "r", "--exec", "true $X", cwd=tmp_path)
        assert result.returncode == 2
        assert "with --results DIR" in result.stderr


@pytest.mark.parametrize("size", [0, 1, _CHUNK - 1, _CHUNK, _CHUNK + 1, 3 * _CHUNK + 17])
@pytest.mark.parametrize("ends_with_newline", [True, False])
def test_tagging_across_chunks(tmp_path: Path, size: int, ends_with_newline: bool) -> None:
    rng = random.Random(size)
    data = bytearray(rng.choice(b"ab\n") for _ in range(size))
    if data:
        data[-1:] = b"\n" if ends_with_newline else b"x"
    path = tmp_path / "out"
    path.write_bytes(data)
    lines = bytes(data).splitlines(keepends=True)
    want = b"".join(b"P\t" + (line if line.endswith(b"\n") else line + b"\n") for line in lines)
    assert b"".join(_chunks(path, b"P\t")) == want


def test_in_order_delivers_each_in_its_turn() -> None:
    delivered: list[int] = []

    def deliver(n: int) -> Callable[[], Awaitable[None]]:
        async def it() -> None:
            await trio.sleep(0)  # another job may finish meanwhile
            delivered.append(n)

        return it

    async def main() -> None:
        order = InOrder()
        async with trio.open_nursery() as nursery:
            for n in [3, 1, 4, 0, 5, 2, 6]:
                item = None if n == 4 else deliver(n)  # 4 has nothing to print
                nursery.start_soon(order.done, n, item)
                await trio.sleep(0.001)
                if n == 3:
                    assert order.waiting == 1 and delivered == []
        assert order.waiting == 0

    trio.run(main)
    assert delivered == [0, 1, 2, 3, 5, 6]


def test_last_line_of_stderr(tmp_path: Path) -> None:
    path = tmp_path / "err"
    path.write_bytes(b"x" * 10_000 + b"\nTraceback...\nValueError: bad lr\n\n  \n")
    assert last_line(path) == "ValueError: bad lr"
    path.write_bytes(b"")
    assert last_line(path) == ""
    path.write_bytes(b"e" * 500)
    assert last_line(path) == "e" * 197 + "..."
    assert last_line(tmp_path / "none") == ""
