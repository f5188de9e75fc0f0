"""Derived values (issue 15): ``-e`` values used by ``--exec``, ``--workdir`` and later
``-e`` values, in their given order; and ``--dry-run`` with the runtime variables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rangeexpr import Sweep
from rangeexpr._cli import main
from rangeexpr._template import Command, Derived, Template

README = [
    "run",
    "--dry-run",
    "-j",
    "4",
    "--exec",
    "python train.py --lr $LR --seed $SEED --out runs/$RUN",
    "-e",
    "RUN=lr${LR}_s$SEED",
    "-r",
    "LR=logspace:-4,-1,4",
    "-r",
    "SEED=range:3",
]


def test_the_readme_example_renders_run_into_the_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(README) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 12
    assert lines[0] == (
        "RUN=lr0.0001_s0 python train.py --lr 0.0001 --seed 0 --out runs/lr0.0001_s0"
    )
    assert lines[-1] == "RUN=lr0.1_s2 python train.py --lr 0.1 --seed 2 --out runs/lr0.1_s2"


def test_later_values_use_earlier_ones_and_a_spec_formats_the_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["run", "--dry-run", "-r", "X=case:a,bb", "-e", "A=<$X>", "-e", "B=${A:>6}|$X"]
    assert main([*args, "--exec", "echo $B"]) == 0
    assert capsys.readouterr().out == (
        "A='<a>' B='   <a>|a' echo '   <a>|a'\nA='<bb>' B='  <bb>|bb' echo '  <bb>|bb'\n"
    )


@pytest.mark.parametrize(
    ("env", "message", "marker"),
    [
        (
            ["-e", "A=$B", "-e", "B=$X"],
            "-e A uses $B, which is -e B, given after it",
            "    $B\n    ~^",
        ),
        (["-e", "A=x$A"], "-e A uses $A, which is itself", "    x$A\n     ~^"),
        (["-e", "X=1"], "-e X names a range too", "    X=1\n    ^"),
        (["-e", "A=$Y"], "$Y is not defined by any range", "    $Y\n    ~^"),
    ],
)
def test_use_before_definition_a_cycle_or_a_clash_is_an_error_with_a_marker(
    capsys: pytest.CaptureFixture[str], env: list[str], message: str, marker: str
) -> None:
    assert main(["check", "-r", "X=range:2", *env, "--exec", "echo $X"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rangeexpr: error: {message}")
    assert err.rstrip("\n").endswith(marker)


def test_the_command_may_not_name_an_undefined_value(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-r", "X=range:2", "-e", "A=$X", "--exec", "echo $A $B"]) == 2
    assert "$B is not defined" in capsys.readouterr().err


def test_a_real_run_gets_derived_values_in_argv_environment_and_workdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["run", "--no-progress", "--shell", "-r", "SEED=range:2", "-e", "RUN=s$SEED"]
    args += ["-e", "DIR=runs/$RUN", "--workdir", "$DIR", "--exec", 'echo "$RUN" "$$RUN" > out']
    assert main(args) == 0
    for seed in (0, 1):
        assert (tmp_path / f"runs/s{seed}/out").read_text() == f"s{seed} s{seed}\n"


def test_derived_values_are_rendered_again_with_the_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["run", "--no-progress", "--shell", "-r", "SEED=range:2"]
    args += ["-e", "RUN=s${SEED}_slot$RANGEEXPR_SLOT", "--exec", 'echo "$RUN" "$$RUN" > out_$SEED']
    assert main(args) == 0
    for seed in (0, 1):
        text = (tmp_path / f"out_{seed}").read_text()
        assert re.fullmatch(rf"s{seed}_slot(\d) s{seed}_slot\1\n", text), text


def test_dry_run_shows_runtime_variables(capsys: pytest.CaptureFixture[str]) -> None:
    command = "echo $X $RANGEEXPR_INDEX/$RANGEEXPR_COUNT ${RANGEEXPR_SLOT:02d} $RANGEEXPR_GPUS"
    args = ["run", "--dry-run", "-r", "X=case:a,b", "-e", "D=$X-$RANGEEXPR_SLOT"]
    assert main([*args, "--exec", command]) == 0
    assert capsys.readouterr().out == (
        "D='a-$RANGEEXPR_SLOT' echo a 0/2 '${RANGEEXPR_SLOT:02d}' '$RANGEEXPR_GPUS'\n"
        "D='b-$RANGEEXPR_SLOT' echo b 1/2 '${RANGEEXPR_SLOT:02d}' '$RANGEEXPR_GPUS'\n"
    )


def test_derived_rendering_is_left_out_when_no_template_names_an_e_value() -> None:
    env = {"A": Template("$X"), "B": Template("b$X")}
    assert Derived.needed(env, Command("echo $X"), None) is None
    assert Derived.needed(env, Command("echo $X"), Template("d/$B")) is not None
    derived = Derived.needed({**env, "C": Template("$A$B")}, Command("echo $X"))
    assert derived is not None
    texts, values = derived.render(Sweep(["X=case:1.50"])[0])
    assert texts == {"A": "1.50", "B": "b1.50", "C": "1.50b1.50"}
    assert Command("echo $C").argv(values) == ("echo", "1.50b1.50")
