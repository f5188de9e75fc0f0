"""Templates and commands: data-driven render and error vectors, word splitting, quoting."""

from __future__ import annotations

import json
import pickle
import shlex
import string
from pathlib import Path

import pytest

from rangeexpr import Command, RangeExprError, Sweep, Template, TemplateError
from rangeexpr._ast import Value

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
    values: dict[str, Value] = {"A": "x", "B": 3, "C": 0.5}
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


def test_shell_command_passes_values_as_parameters() -> None:
    sweep = Sweep(["V=case:'a b; touch PWNED'", "N=range:2"])
    command = Command("echo $V ${N:02d} | wc -c; echo $V", shell=True)
    argv = command.argv(sweep[1])
    # the script is the same for every point; no value is ever parsed by the shell
    assert argv[:4] == ("/bin/sh", "-c", 'echo "${1}" "${2}" | wc -c; echo "${1}"', "sh")
    assert argv[4:] == ("a b; touch PWNED", "01")
    assert command.line(sweep[1]) == shlex.join(argv)
    assert Command("echo hi", shell=True).argv({}) == ("/bin/sh", "-c", "echo hi", "sh")


# (template, the script it becomes): each reference is written for the quoting around it
SHELL_SCRIPTS = [
    ("f $X", 'f "${1}"'),  # a bare word: quoted, so never split or globbed
    ('f "$X"', 'f "${1}"'),  # inside "...": the quotes are already there
    ("f '$X'", "f ''\"${1}\"''"),  # inside '...': close, reference, reopen
    ("f --lr=$X", 'f --lr="${1}"'),
    ('f "pre${X}post"', 'f "pre${1}post"'),
    ('f "$$(g "$X")"', 'f "$(g "${1}")"'),  # quotes start afresh inside $( )
    ("f $$(g '$X')", "f $(g ''\"${1}\"'')"),
    ('f "`g \\"$X\\"`"', 'f "`g \\"${1}\\"`"'),  # backquotes: \" is a quote one level in
    ("f `g \\`h $X\\``", 'f `g \\`h "${1}"\\``'),  # escaped once per level
    ("f $$$X", 'f \\$"${1}"'),  # a literal $ must not join the reference
    ('f "$$$$$X"', 'f "$$${1}"'),  # the shell's $$ stays the shell's
    ("f $$(( $X + 1 ))", "f $(( ${1} + 1 ))"),
    ('f $${A:-$X} "$${A:-$X}"', 'f ${A:-"${1}"} "${A:-${1}}"'),
    ("cat <<EOF\n$X '$X'\nEOF\nf '$X'", "cat <<EOF\n${1} '${1}'\nEOF\nf ''\"${1}\"''"),
    ("f $X # it's $X\nf '$X'", 'f "${1}" # it\'s "${1}"\nf \'\'"${1}"\'\''),  # a comment
    ("f $X $X ${X:03d} $Y", 'f "${1}" "${1}" "${2}" "${3}"'),  # one parameter per name and spec
]


@pytest.mark.parametrize(("template", "script"), SHELL_SCRIPTS)
def test_shell_references_follow_the_quoting(template: str, script: str) -> None:
    assert Command(template, shell=True).argv({"X": 7, "Y": "y"})[2] == script


# (template, message, marker): what cannot be passed exactly is refused before anything runs
SHELL_ERRORS = [
    (
        "f \\$X",
        "a backslash before a placeholder would escape part of the value; "
        "remove it: values arrive exactly as they are",
        "      ^",
    ),
    (
        "cat <<'EOF'\n$X\nEOF",
        "a placeholder in a quoted here-document (<<'EOF') is not substituted by the shell; "
        "leave the delimiter unquoted",
        "    ~^",
    ),
    ("cat <<$X", "a placeholder cannot be a here-document's delimiter", "          ~^"),
    (
        "f " + "$$(" * 60 + "$X",
        "the command nests quotes and substitutions too deeply",
        None,
    ),
]


@pytest.mark.parametrize(("template", "message", "marker"), SHELL_ERRORS)
def test_shell_commands_that_cannot_pass_a_value_exactly(
    template: str, message: str, marker: str | None
) -> None:
    with pytest.raises(TemplateError) as info:
        Command(template, shell=True)
    assert info.value.message == message
    if marker is not None:
        assert str(info.value).endswith("\n" + marker)


def test_values_in_shell_arithmetic_must_be_integers() -> None:
    command = Command("echo $$(( $X * 2 ))", shell=True)
    command.check(Sweep(["X=range:-3,4"]))
    with pytest.raises(TemplateError) as info:
        command.check(Sweep(["X=case:1,'a[$(touch pwned)]'"]))
    assert info.value.message == (
        "$X stands inside $(( )), where the shell evaluates it, and value 1 of X is "
        "'a[$(touch pwned)]', not an integer; compute it outside $(( )) or use an int range"
    )
    with pytest.raises(TemplateError, match=r"the value at point 1 is '0\.5', not an integer"):
        command.argv(Sweep(["X=linspace:0,1,3"])[1])


def test_command_errors_point_into_the_template() -> None:
    with pytest.raises(TemplateError) as info:
        Command("echo 'unclosed $X")
    assert "cannot split the command into words" in str(info.value)
    with pytest.raises(TemplateError):
        Command("   ")
    with pytest.raises(RangeExprError) as bad:
        Command("run $X $").check(Sweep(["X=range:2"]))
    assert str(bad.value).endswith("    run $X $\n           ^")


def test_a_spec_that_overflows_is_an_error_at_check_time() -> None:
    with pytest.raises(TemplateError) as info:
        Template("run ${X:c}").check(Sweep(["X=range:-1,3"]))
    assert str(info.value) == (
        "cannot format -1 of ${X} with 'c': %c arg not in range(0x110000)\n"
        "    run ${X:c}\n"
        "        ~~~~~^"
    )
    with pytest.raises(TemplateError) as big:
        Template("run ${X:f}").check(Sweep([f"X=case:{'9' * 400}"]))
    assert big.value.message == (
        "cannot format an int of 400 digits of ${X} with 'f': int too large to convert to float"
    )


def test_a_spec_that_fails_while_rendering_names_the_point() -> None:
    sweep = Sweep(["Y=case:a,b", "X=range:-1,3"])
    template = Template("run $Y ${X:c}")
    assert template.render(sweep[3]) == "run a \x02"
    with pytest.raises(TemplateError) as info:
        template.render(sweep[4])
    assert str(info.value) == (
        "cannot format -1 of ${X} with 'c' at point 4: %c arg not in range(0x110000)\n"
        "    run $Y ${X:c}\n"
        "           ~~~~~^"
    )
    with pytest.raises(TemplateError, match="cannot format -1 of"):
        template.render({"Y": "a", "X": -1})
    with pytest.raises(TemplateError, match="at point 4"):
        Command("run ${X:c}", shell=True).line(sweep[4])


def test_rendering_an_unknown_name_is_a_template_error() -> None:
    plain: dict[str, Value] = {"X": 0, "Y": "a"}
    for values in (Sweep(["X=range:2", "Y=case:a"])[0], plain):
        with pytest.raises(TemplateError) as info:
            Template("run $X $NOPE").render(values)
        assert str(info.value) == (
            "$NOPE is not defined by any range (defined: X, Y); write $$ for a literal dollar "
            "sign\n    run $X $NOPE\n           ~~~~^"
        )
        with pytest.raises(TemplateError, match=r"^\$NOPE is not defined"):
            Command("run $NOPE", shell=True).argv(values)


@pytest.mark.parametrize("source", [123, None, b"run $X", ["run", "$X"]])
def test_a_template_is_a_string(source: object) -> None:
    with pytest.raises(TypeError, match="takes the template as a str, not "):
        Template(source)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes the template as a str, not "):
        Command(source)  # type: ignore[arg-type]


def test_templates_and_commands_pickle_after_use() -> None:
    sweep = Sweep(["X=linspace:0,1,3", "Y=range:3"])
    used: list[Template | Command] = [
        Template("run ${X:.2f} $Y"),
        Command("run ${X:.2f} '$Y'"),
        Command("run ${X:.2f} '$Y'", shell=True),
    ]
    for thing in used:
        before = [thing.render(p) if isinstance(thing, Template) else thing.argv(p) for p in sweep]
        copy: Template | Command = pickle.loads(pickle.dumps(thing))
        assert type(copy) is type(thing) and repr(copy) == repr(thing)
        after = [copy.render(p) if isinstance(copy, Template) else copy.argv(p) for p in sweep]
        assert after == before


# issue 13: the variables rangeexpr gives each job, usable in templates


def test_runtime_names_are_left_for_the_run_and_other_names_still_checked() -> None:
    sweep = Sweep(["X=range:3"])
    Command("train --gpu $RANGEEXPR_GPUS --seed ${RANGEEXPR_INDEX:03d} $X").check(
        sweep, runtime=("RANGEEXPR_GPUS", "RANGEEXPR_INDEX")
    )
    with pytest.raises(TemplateError, match=r"\$RANGEEXPR_SLOT is not defined by any range"):
        Template("$RANGEEXPR_SLOT").check(sweep)  # only the names given as runtime pass
    with pytest.raises(TemplateError, match=r"\$Y is not defined by any range"):
        Template("$RANGEEXPR_SLOT $Y").check(sweep, runtime=("RANGEEXPR_SLOT",))


def test_rendering_with_runtime_values_beside_the_points() -> None:
    from rangeexpr._template import WithRuntime

    point = Sweep(["X=case:1.50,b"])[0]
    values = WithRuntime(point, {"RANGEEXPR_SLOT": 2, "RANGEEXPR_GPUS": "0,3"})
    assert Template("$X:${RANGEEXPR_SLOT:02d}:$RANGEEXPR_GPUS").render(values) == "1.50:02:0,3"
    cmd = Command("echo $X $RANGEEXPR_GPUS", shell=True)
    assert cmd.argv(values)[-2:] == ("1.50", "0,3")
