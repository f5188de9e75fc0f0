"""Templates and commands: data-driven render and error vectors, word splitting, quoting."""

from __future__ import annotations

import json
import shlex
import string
from pathlib import Path

import pytest

from rangeexpr import Command, RangeExprError, Sweep, Template, TemplateError

DATA = Path(__file__).parent / "data" / "templates"
VALID = sorted((DATA / "valid").glob("*.json"))
INVALID = sorted((DATA / "invalid").glob("*.txt"))
SWEEP = Sweep(
    ["LR=linspace:0.001,0.1,3", "I=range:3", 'M=case:small,"big one",1.50', "F=case:1e-07,0.1"]
)


def test_vectors_were_found() -> None:
    assert len(VALID) >= 8 and len(INVALID) >= 8


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_valid(path: Path) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    sweep = Sweep(case["sweep"])
    template = Template(case["template"])
    template.check(sweep)
    assert template.render(sweep[case["index"]]) == case["expected"]


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid(path: Path) -> None:
    comment, text, expected = path.read_text(encoding="utf-8").split("\n", 2)
    assert comment.startswith("# ")
    with pytest.raises(TemplateError) as info:
        Template(text).check(SWEEP)
    assert str(info.value) == expected.rstrip("\n")


def test_render_agrees_with_string_template_on_plain_mappings() -> None:
    values = {"A": "x", "B": 3, "C": 0.5}
    text = "a=$A b=${B} c=$C $$"
    assert Template(text).render(values) == string.Template(text).substitute(values)


def test_names() -> None:
    assert Template("$A ${B} ${C:.2f} $$D").names == frozenset({"A", "B", "C"})


def test_command_words_are_split_before_substitution() -> None:
    sweep = Sweep(["V=case:'a b; touch PWNED'", "N=range:2"])
    command = Command("printf '%s|' $V \"n=$N\" x$N")
    assert command.argv(sweep[1]) == ("printf", "%s|", "a b; touch PWNED", "n=1", "x1")
    line = command.line(sweep[1])
    assert shlex.split(line) == list(command.argv(sweep[1]))


def test_shell_command_quotes_every_value() -> None:
    sweep = Sweep(["V=case:'a b; touch PWNED'"])
    command = Command("echo $V | wc -c", shell=True)
    argv = command.argv(sweep[0])
    assert argv[:2] == ("/bin/sh", "-c")
    assert argv[2] == "echo 'a b; touch PWNED' | wc -c"


def test_command_errors_point_into_the_template() -> None:
    with pytest.raises(TemplateError) as info:
        Command("echo 'unclosed $X")
    assert "cannot split the command into words" in str(info.value)
    with pytest.raises(TemplateError):
        Command("   ")
    with pytest.raises(RangeExprError) as bad:
        Command("run $X $").check(Sweep(["X=range:2"]))
    assert str(bad.value).endswith("    run $X $\n           ^")
