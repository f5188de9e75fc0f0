"""``--resume`` by values against reading the same job log with a plain ``json.loads`` loop.

A job log of 10^6 succeeded records (as the runner writes them) from a sweep of 10^6
points; resumed by the grown sweep of 2*10^6 points. Ours: read the log into the set of
done points (``rangeexpr._cli._resume``), then decide for each of the 2*10^6 points
whether it runs. Baseline: ``for line in f: json.loads(line)`` over the same file.
Target: at most 2x. Memory: the done set's peak allocation, measured apart with
tracemalloc (which slows what it measures), per succeeded record.
"""

from __future__ import annotations

import json
import tempfile
import tracemalloc
from pathlib import Path

from _common import interleaved, report

from rangeexpr._cli._resume import _read
from rangeexpr._spec import RunSpec
from runner import read_joblog

RECORDS = 10**6
COMMAND = "python train.py --lr $LR --seed $SEED"


def _write_log(path: Path, spec: RunSpec) -> None:
    head = {"format": "rangeexpr-joblog/1", "source": spec.identity(), "size": RECORDS}
    dumps = json.dumps
    with path.open("w") as f:
        f.write(dumps(head) + "\n")
        for p in spec.sweep():
            record = {
                "index": p.index,
                "values": dict(p),
                "command": f"python train.py --lr {p.text('LR')} --seed {p['SEED']}",
                "status": "succeeded",
                "exit_code": 0,
                "signal": None,
                "start": 1767225600.123456,
                "duration": 12.345678,
                "attempt": 1,
                "backend_id": None,
            }
            f.write(dumps(record) + "\n")


def main() -> None:
    before = RunSpec(exprs=("LR=linspace:0.0001,0.1,1000", "SEED=range:1000"), command=COMMAND)
    grown = RunSpec(exprs=("LR=linspace:0.0001,0.1,1000", "SEED=range:2000"), command=COMMAND)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.jsonl"
        _write_log(log, before)
        sweep = grown.sweep()

        def done() -> object:
            return _read(log, grown, sweep, lambda **kw: read_joblog(log, **kw).end)

        def ours() -> None:
            skip = done()
            left = sum(1 for p in sweep if p not in skip)  # type: ignore[operator]
            assert left == 2 * RECORDS - RECORDS, left

        def base() -> None:
            loads = json.loads
            with log.open("rb") as f:
                for line in f:
                    loads(line)

        t_ours, t_base = interleaved(ours, base, repeat=3)
        tracemalloc.start()
        kept = done()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del kept
    report(
        "resume 10^6 records on 2*10^6 points vs json.loads loop",
        t_ours / t_base,
        2.0,
        f"ours {t_ours:.2f}s, json.loads {t_base:.2f}s, done set {peak / RECORDS:.0f} B/record",
        at_most=True,
    )


if __name__ == "__main__":
    main()
