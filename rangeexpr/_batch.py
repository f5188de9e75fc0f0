"""``--per-job K``: K consecutive points of a sweep as one remote job (a ``runner.Batching``).

The remote job is a /bin/sh script (``packed_script``) that runs ``rangeexpr run --slice
FIRST:STOP`` of the same sweep on the node (``RunSpec.node_argv``; rangeexpr must be on
the node's PATH) with its job log and outputs in a temporary directory, then prints that
log and every output file framed by ``@@TAG@@`` lines (a tag has no white space).
``split`` takes the framing apart again: each point's outcome from the node's job-log
record, its stdout and stderr from its files, which the node names by index
(``--results-by-index``: two points with the same values still have a file each). The
backend (Ray or Slurm) runs the command and hands back the job's whole output; it knows
nothing of what is inside.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from runner import Outcome, Status

__all__ = ["NodeBatching", "packed_script", "parse_packed"]

# The node-side paths, inside the script's temporary directory "$d": left unquoted.
_LOG, _OUT = '"$d/log"', '"$d/out"'
_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "timed_out", "killed", "lost"})
_TAIL = 4000  # bytes of raw output kept as the diagnosis when the framing is missing


class NodeRun(Protocol):
    """What a batch needs of the run specification: the node-side argv of a slice."""

    def node_argv(
        self,
        start: int,
        stop: int,
        *,
        jobs: int,
        joblog: str,
        results: str,
        timeout: float | None,
    ) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class NodeBatching:
    """Points ``[start, stop)`` of ``spec``'s sweep, ``per_job`` to a remote job.

    Groups are aligned on ``start``, so every point knows its group whatever the order in
    which the runner's tasks arrive. ``jobs`` is ``-j`` on the node; ``timeout`` each
    point's own, enforced there.
    """

    spec: NodeRun
    per_job: int
    start: int
    stop: int
    jobs: int = 1
    timeout: float | None = None

    def group(self, index: int) -> tuple[int, int]:
        first = self.start + (index - self.start) // self.per_job * self.per_job
        return first, min(first + self.per_job, self.stop)

    def command(self, first: int, stop: int, tag: str) -> str:
        words = self.spec.node_argv(
            first, stop, jobs=self.jobs, joblog=_LOG, results=_OUT, timeout=self.timeout
        )
        words.append("--results-by-index")  # ``split`` finds each point's files by index
        run = " ".join(w if w in (_LOG, _OUT) else shlex.quote(w) for w in words)
        return packed_script(run, _mark(tag))

    def split(
        self, output: bytes, first: int, stop: int, tag: str
    ) -> dict[int, tuple[Outcome, bytes, bytes]]:
        """Each point's outcome, stdout and stderr; "lost" where the node left no record."""
        records, files = parse_packed(output, _mark(tag))
        diagnosis = files.get("run", b"") + (b"" if records else output[-_TAIL:])
        results: dict[int, tuple[Outcome, bytes, bytes]] = {}
        for index in range(first, stop):
            record = records.get(index)
            if record is None:
                results[index] = Outcome("lost", None, message="no record"), b"", diagnosis
            else:
                out = files.get(f"{index}.out", b"")
                results[index] = _record_outcome(record), out, files.get(f"{index}.err", b"")
        return results


def _mark(tag: str) -> str:
    return f"@@{tag}@@"


def _record_outcome(record: Mapping[str, Any]) -> Outcome:
    """A point's outcome from the node's job log record."""
    status = record.get("status")
    code, sig = record.get("exit_code"), record.get("signal")
    known: Status = status if status in _STATUSES else "failed"
    return Outcome(
        known, code if isinstance(code, int) else None, sig if isinstance(sig, int) else None
    )


def packed_script(run: str, mark: str) -> str:
    """The /bin/sh script of a packed job: run ``run`` (a ``rangeexpr run`` writing its job
    log to ``$d/log`` and outputs to ``$d/out``), then print the log and every output file
    framed as ``MARK NAME SIZE`` lines, so ``parse_packed`` can split them exactly."""
    mark = shlex.quote(mark)
    return (
        "d=$(mktemp -d) || exit 70; "
        f'{run} >"$d/run" 2>&1; s=$?; '
        f'printf "\\n%s log\\n" {mark}; cat "$d/log" 2>/dev/null; '
        'for f in "$d"/out/* "$d/run"; do [ -f "$f" ] && '
        f'printf "%s %s %s\\n" {mark} "${{f##*/}}" "$(wc -c <"$f")" && cat "$f"; done; '
        'rm -rf "$d"; exit $s'
    )


def parse_packed(logs: bytes, mark: str) -> tuple[dict[int, dict[str, Any]], dict[str, bytes]]:
    """Split a packed job's log into the node's job-log records (last per index) and files."""
    marker = mark.encode()
    begin = logs.find(b"\n" + marker + b" log\n")
    if begin < 0:
        return {}, {}
    body = logs[begin + len(marker) + 6 :]
    header = re.compile(re.escape(marker) + rb" (\S+) +(\d+)\n")  # where a file begins
    first = re.compile(rb"^" + header.pattern, re.MULTILINE).search(body)
    log_end = first.start() if first else len(body)
    records: dict[int, dict[str, Any]] = {}
    for line in body[:log_end].splitlines():  # the header line has no index: skipped
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("index"), int):
            records[record["index"]] = record
    files: dict[str, bytes] = {}
    pos = log_end
    while (m := header.match(body, pos)) is not None:
        size = int(m.group(2))
        files[m.group(1).decode()] = body[m.end() : m.end() + size]
        pos = m.end() + size
    return records, files
