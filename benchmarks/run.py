"""Run every benchmark (or those named): ``python benchmarks/run.py [NAME ...]``.

Each ``bench_*.py`` beside this file has a ``main()`` that prints ratio lines; a ratio is
our speed over the baseline's, measured in the same run, so higher is better.

The checkout's modules are byte-compiled first, as ``pip install`` does for an installed
package (and had done for the baselines' trio, lark and numpy): start-up times then do not
depend on whether this machine writes ``__pycache__`` on import (PYTHONDONTWRITEBYTECODE).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> int:
    import compileall

    for package in ("rangeexpr", "runner"):
        compileall.compile_dir(HERE.parent / package, quiet=1)
    wanted = sys.argv[1:]
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if wanted:
        names = [n for n in names if any(w in n for w in wanted)]
    for name in names:
        print(f"== {name}", flush=True)
        importlib.import_module(name).main()
    from _common import RESULTS

    missed = [r for r in RESULTS if not r[3]]
    print(f"\n{len(RESULTS) - len(missed)} of {len(RESULTS)} targets met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
