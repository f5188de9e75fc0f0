"""The parsers come from tables shipped in the package, never from a cache in /tmp.

The tables are built from ``grammar/*.lark`` in strict mode by ``grammar/build_tables.py``;
these tests fail when they are stale, and prove a fresh process neither writes nor loads a
lark cache in its temp directory (a planted pickle there would run another user's code).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from lark import Lark
from lark.exceptions import GrammarError, LexError

from rangeexpr._grammar import GRAMMARS, build_tables, grammar_path, serialize, tables_path

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", GRAMMARS)
def test_shipped_tables_match_the_grammars(name: str) -> None:
    assert tables_path(name).read_text(encoding="utf-8") == build_tables(name), (
        f"{tables_path(name).name} is stale: run python3 grammar/build_tables.py"
    )


@pytest.mark.parametrize(
    "grammar",
    [
        'start: a | b\na: "x"\nb: "x"\n',  # reduce/reduce conflict
        "start: A | B\nA: /x+/\nB: /xy?/\n",  # two terminals match the same text
    ],
)
def test_tables_are_built_in_strict_mode(grammar: str) -> None:
    with pytest.raises((GrammarError, LexError)):
        serialize(grammar)


class _Planted:
    """Unpickling this creates the marker file: proof that a cache was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mknod, (str(self.marker),))


def _plant_lark_caches(tmp: Path, marker: Path) -> list[Path]:
    """Write, under every name lark's ``cache=True`` would use for our grammars, a pickle
    that creates ``marker`` when loaded (with the right digest line, so lark would load it)."""
    writer = tmp / "writer"
    writer.mkdir()
    variants = [
        {"strict": strict, "cache_grammar": cache_grammar}
        for strict in (True, False)
        for cache_grammar in (False, True)
    ]
    code = (
        "import sys; from lark import Lark\n"
        "for text in sys.argv[2:]:\n"
        "    for v in eval(sys.argv[1]):\n"
        "        Lark(open(text).read(), parser='lalr', propagate_positions=True,"
        " maybe_placeholders=False, cache=True, **v)\n"
    )
    grammars = [str(grammar_path(g)) for g in GRAMMARS]
    env = {**os.environ, "TMPDIR": str(writer)}
    subprocess.run([sys.executable, "-c", code, repr(variants), *grammars], env=env, check=True)
    planted = []
    for real in writer.glob(".lark_cache*"):
        digest = real.read_bytes().split(b"\n", 1)[0]
        fake = tmp / "shared" / real.name
        fake.parent.mkdir(exist_ok=True)
        fake.write_bytes(digest + b"\n" + pickle.dumps(_Planted(marker)))
        planted.append(fake)
    return planted


def _run(argv: list[str], tmpdir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    return subprocess.run(
        [sys.executable, "-m", "rangeexpr", *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


def test_a_planted_parser_cache_is_never_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    planted = _plant_lark_caches(tmp_path, marker)
    assert len(planted) >= 2 * len(GRAMMARS), planted  # lark's names, for both grammars
    shared = tmp_path / "shared"
    before = sorted(p.name for p in shared.iterdir())
    for argv in (
        ["check", "X=case:a,b", "Y=range:3"],
        ["expand", "X=linspace:0,1,3", "--where", "X > 0"],
        ["check", "X=range:1,10,0"],  # an error message goes through the parser too
    ):
        done = _run(argv, shared)
        assert "Traceback" not in done.stderr, done.stderr
    assert not marker.exists(), "a pickle planted in TMPDIR was loaded"
    assert sorted(p.name for p in shared.iterdir()) == before, "rangeexpr wrote into TMPDIR"


def test_the_loaded_parser_is_the_grammar_s_parser() -> None:
    """Same trees from the shipped tables as from compiling the grammar now."""
    from rangeexpr._grammar import lark_parser

    samples = {
        "rangeexpr.lark": ["X=case:a,'b c',\\,", "LR = linspace : 0.1, 1, 5", "N=range:-3"],
        "filter.lark": ["X > 1 and not (Y in (1, 2))", "A ** 2 // 3 != 'q'"],
    }
    for name, texts in samples.items():
        fresh = Lark(
            grammar_path(name).read_text(encoding="utf-8"),
            parser="lalr",
            propagate_positions=True,
            maybe_placeholders=False,
        )
        for text in texts:
            assert lark_parser(name).parse(text) == fresh.parse(text), text
