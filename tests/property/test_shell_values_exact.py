"""``--shell`` passes every value exactly, in every quoting context, through a real /bin/sh.

The law: for any text without NUL, a ``--shell`` command whose template writes ``$X`` in
a given context (bare word, ``"..."``, ``'...'``, next to other text, inside ``$( )``,
backquotes or a here-document) prints exactly that text, runs nothing else (no file
appears), and its ``line()`` run by ``/bin/sh -c`` does the same as its ``argv``.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rangeexpr import Command

# pieces that broke shell quoting before, mixed with arbitrary text
HOSTILE = [
    "'",
    '"',
    "\\",
    "$(touch pwned)",
    "`touch pwned`",
    "${1}",
    "$X",
    "'\\''",
    "\n",
    ";",
    "&",
    "|",
    "*",
    "-",
    " ",
    "\t",
    "é",
    "雪",
    "EOF",
    "#",
    "}",
    ")",
]
TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
VALUES = st.lists(st.one_of(st.sampled_from(HOSTILE), TEXT), max_size=8).map("".join)

# (template, what it prints for value v): command substitution drops trailing newlines,
# so those contexts print a "." after the value
CONTEXTS = {
    "bare": ("printf '<%s>\\n' $X", "<{}>\n"),
    "double": ("printf '<%s>\\n' \"$X\"", "<{}>\n"),
    "single": ("printf '<%s>\\n' '$X'", "<{}>\n"),
    "adjacent": ("printf '<%s>\\n' --lr=$X", "<--lr={}>\n"),
    "inside_double": ("printf '<%s>\\n' \"pre${X}post\"", "<pre{}post>\n"),
    "single_with_text": ("printf '<%s>\\n' 'it''s: $X!'", "<its: {}!>\n"),
    "subst_double": ("printf '<%s>\\n' \"$$(printf '%s.' \"$X\")\"", "<{}.>\n"),
    "subst_single": ("printf '<%s>\\n' \"$$(printf '%s.' '$X')\"", "<{}.>\n"),
    "backquote": ("printf '<%s>\\n' \"`printf '%s.' \\\"$X\\\"`\"", "<{}.>\n"),
    "backquote_bare": ("printf '<%s>\\n' \"`printf '%s.' $X`\"", "<{}.>\n"),
    "heredoc": ("cat <<EOF\n<$X>\nEOF", "<{}>\n"),
    "default_value": ("printf '<%s>\\n' \"$${UNSET-$X}\"", "<{}>\n"),
}


def run(argv: list[str] | tuple[str, ...], cwd: str) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, check=False, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    return done.stdout.decode()


@pytest.mark.parametrize("context", list(CONTEXTS))
def test_every_value_arrives_exactly(context: str) -> None:
    template, expected = CONTEXTS[context]
    command = Command(template, shell=True)
    with tempfile.TemporaryDirectory() as cwd:

        @settings(max_examples=100)
        @given(value=VALUES)
        def law(value: str) -> None:
            assert run(command.argv({"X": value}), cwd) == expected.format(value)
            assert list(Path(cwd).iterdir()) == []

        law()


@settings(max_examples=60)
@given(x=VALUES, y=VALUES)
def test_the_line_runs_what_argv_runs(x: str, y: str) -> None:
    template = " ; ".join(t for t, _ in CONTEXTS.values()).replace("$X", "$X$Y")
    command = Command(template.replace("\nEOF ;", "\nEOF\n"), shell=True)
    with tempfile.TemporaryDirectory() as cwd:
        values = {"X": x, "Y": y}
        assert run(["/bin/sh", "-c", command.line(values)], cwd) == run(command.argv(values), cwd)
        assert list(Path(cwd).iterdir()) == []
