"""``rangeexpr report --by LR,ALPHA --over SEED`` vs the pandas pipeline a user would write.

A synthetic job log of 10^6 records: 900,000 points (LR x ALPHA x MODEL x SEED) with two
metrics, and 100,000 earlier failed attempts that a retry superseded. Both sides go from
the file to a CSV of per-(LR, ALPHA) mean, std, count, min and max of each metric, keeping
the latest attempt of each point. The pandas side is what issue 14 names:
``read_json(lines=True)``, ``json_normalize``, ``drop_duplicates``, ``groupby().agg``.

Each side runs in a fresh interpreter and reports its peak RSS as ``VmHWM``, its own address
space's (``ru_maxrss`` would be this process's when it was larger: Linux carries it over
a spawn and exec);
the two alternate, and the medians of the times are compared. Skipped, with a note, when
pandas is not installed.
"""

from __future__ import annotations

import importlib.util
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import report

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
POINTS, RETRIED = 900_000, 100_000
ROUNDS = 3
EXPRS = [
    "LR=logspace:-5,0,20",
    "ALPHA=geomspace:1e-6,1e-2,10",
    "MODEL=case:mlp,cnn,rnn,gru,lstm",
    f"SEED=range:{POINTS // 1000}",
]

# Each prints "seconds peak-rss-KiB" for its own work, in a fresh interpreter.
_OURS = """
import argparse, sys, time
t0 = time.perf_counter()
from rangeexpr._cli._options import add_report_arguments
from rangeexpr._cli._report import command as report_command
parser = argparse.ArgumentParser()
add_report_arguments(parser)
args = parser.parse_args([sys.argv[1], "--by", "LR,ALPHA", "--over", "SEED", "-o", sys.argv[2]])
report_command(args)
print(time.perf_counter() - t0, int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]))
"""

_PANDAS = """
import sys, time
t0 = time.perf_counter()
import pandas as pd
df = pd.read_json(sys.argv[1], lines=True).iloc[1:].reset_index(drop=True)  # 0: the header
flat = pd.concat(
    [
        df[["index", "status", "exit_code", "duration", "attempt", "start"]],
        pd.json_normalize(df["values"].tolist()),
        pd.json_normalize(df["metrics"].tolist()),
    ],
    axis=1,
)
flat = flat.sort_values(["index", "start", "attempt"]).drop_duplicates("index", keep="last")
stats = ["mean", "std", "count", "min", "max"]
agg = flat.groupby(["LR", "ALPHA"])[["acc", "loss"]].agg(stats)
agg.columns = [f"{m}_{s}" for m, s in agg.columns]
agg.reset_index().to_csv(sys.argv[2], index=False)
print(time.perf_counter() - t0, int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]))
"""


def write_log(path: Path) -> None:
    """The synthetic log: header, then records in a -j8-like finishing order."""
    lr = np.logspace(-5, 0, 20).tolist()
    alpha = np.geomspace(1e-6, 1e-2, 10).tolist()
    models = ["mlp", "cnn", "rnn", "gru", "lstm"]
    seeds = POINTS // 1000
    rng = random.Random(0)
    retried = set(rng.sample(range(POINTS), RETRIED))
    header = (
        '{"format": "rangeexpr-joblog/1", "source": {"exprs": %s, "exec": "train --lr $LR '
        '--alpha $ALPHA --model $MODEL --seed $SEED", "env": {}, "shell": false}, "size": %d}\n'
    )
    line = (
        '{"index": %d, "values": {"LR": %r, "ALPHA": %r, "MODEL": "%s", "SEED": %d}, '
        '"command": "train --lr %r --alpha %r --model %s --seed %d", "status": "%s", '
        '"exit_code": %d, "signal": null, "start": %.6f, "duration": %.6f, "attempt": %d, '
        '"backend_id": null, "metrics": {"acc": %s, "loss": %s}}\n'
    )
    start = 1.7e9
    with path.open("w") as f:
        f.write(header % (str(EXPRS).replace("'", '"'), POINTS))
        for i in range(POINTS):
            a, rest = divmod(i, 10 * 5 * seeds)
            b, rest = divmod(rest, 5 * seeds)
            m, s = divmod(rest, seeds)
            values = (lr[a], alpha[b], models[m], s, lr[a], alpha[b], models[m], s)
            if i in retried:
                start += 0.01
                f.write(line % (i, *values, "failed", 1, start, 1.5, 1, "null", "null"))
            start += 0.01
            acc = rng.random()
            duration = rng.random() * 10
            f.write(line % (i, *values, "succeeded", 0, start, duration, 2, repr(acc), 1 - acc))


def _run(script: str, log: Path, out: Path) -> tuple[float, int]:
    done = subprocess.run(
        [sys.executable, "-c", script, str(log), str(out)],
        check=True, capture_output=True, text=True, env=ENV,
    )  # fmt: skip
    seconds, rss = done.stdout.split()[-2:]
    return float(seconds), int(rss) * 1024


def main() -> None:
    if importlib.util.find_spec("pandas") is None:
        print("   skipped: pandas is not installed (pip install pandas)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.jsonl"
        write_log(log)
        ours, base = [], []
        for _ in range(ROUNDS):
            base.append(_run(_PANDAS, log, Path(tmp) / "pandas.csv"))
            ours.append(_run(_OURS, log, Path(tmp) / "ours.csv"))
        size = log.stat().st_size
    ours_t = statistics.median(t for t, _ in ours)
    base_t = statistics.median(t for t, _ in base)
    ours_rss = min(r for _, r in ours)
    base_rss = min(r for _, r in base)
    report(
        "report --by --over, 10^6 records vs pandas read_json+json_normalize+groupby (speed)",
        base_t / ours_t,
        1,
        f"ours {ours_t:.1f} s, pandas {base_t:.1f} s for a {size / 2**20:.0f} MiB log",
    )
    report(
        "report --by --over, 10^6 records vs the pandas pipeline (peak RSS)",
        ours_rss / base_rss,
        1,
        f"ours {ours_rss / 2**20:.0f} MiB, pandas {base_rss / 2**20:.0f} MiB",
        at_most=True,
    )


if __name__ == "__main__":
    main()
