"""Language core: parse+evaluate cost vs lark's bare parse; cold start of `rangeexpr check`."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from _common import interleaved, report

EXPRS = [
    "LR=linspace:0.001,0.1,5",
    "SEED=range:0,10",
    "MODEL=case:small,medium,large",
    "X=arange:0,1,0.1",
]


def parse_vs_lark() -> None:
    import rangeexpr
    from rangeexpr._grammar import lark_parser

    lark = lark_parser("rangeexpr.lark")

    def ours() -> None:
        for text in EXPRS:
            rangeexpr.axis(text)

    def bare() -> None:
        for text in EXPRS:
            lark.parse(text)

    ours_t, base_t = interleaved(ours, bare, repeat=9, number=300)
    per = ours_t / len(EXPRS) * 1e6
    report(
        "parse+evaluate vs lark's bare LALR parse (time)",
        ours_t / base_t,
        1.5,
        f"{per:.1f} us per expression",
        at_most=True,
    )


def cold_start() -> None:
    """`rangeexpr check` started from an empty temp directory (a new machine's first run)
    and from one a previous run has used; both load the same shipped tables."""
    ours_cmd = [sys.executable, "-m", "rangeexpr", "check", "X=case:a,b"]
    base_cmd = [sys.executable, "-c", "import numpy, lark"]
    with tempfile.TemporaryDirectory() as warm:
        warm_env = {**os.environ, "TMPDIR": warm}
        subprocess.run(ours_cmd, check=True, capture_output=True, env=warm_env)

        def empty_tmpdir() -> None:
            with tempfile.TemporaryDirectory() as empty:
                env = {**os.environ, "TMPDIR": empty}
                subprocess.run(ours_cmd, check=True, capture_output=True, env=env)

        def used_tmpdir() -> None:
            subprocess.run(ours_cmd, check=True, capture_output=True, env=warm_env)

        def base() -> None:
            subprocess.run(base_cmd, check=True, capture_output=True)

        for label, ours in (("empty", empty_tmpdir), ("used", used_tmpdir)):
            ours_t, base_t = interleaved(ours, base, repeat=15)
            report(
                f"start-up, {label} TMPDIR: `rangeexpr check X=case:a,b` vs "
                "`python -c 'import numpy, lark'` (time)",
                ours_t / base_t,
                1.3,
                f"{ours_t * 1e3:.0f} ms vs {base_t * 1e3:.0f} ms",
                at_most=True,
            )


def main() -> None:
    parse_vs_lark()
    cold_start()


if __name__ == "__main__":
    main()
