"""The grammar ships inside the wheel and is found from an installed package."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_installed_wheel_parses(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("rangeexpr-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "rangeexpr/grammar/rangeexpr.lark" in names
    assert "rangeexpr/grammar/filter.lark" in names
    assert "rangeexpr/py.typed" in names and "runner/py.typed" in names

    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)  # deps from the system
    python = env_dir / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True)
    probe = (
        "import rangeexpr, rangeexpr._grammar as g;"
        "print(rangeexpr.__file__);"
        "print(g.grammar_path('rangeexpr.lark'));"
        "print(list(rangeexpr.axis('X=linspace:1,2,3')));"
        "print([p['X'] for p in rangeexpr.Sweep(['X=range:4']).where('X % 2 == 1')])"
    )
    out = subprocess.run(
        [python, "-c", probe], cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert out[0].startswith(str(env_dir)), out
    assert out[1].startswith(str(env_dir)), out
    assert out[2] == "[1.0, 1.5, 2.0]"
    assert out[3] == "[1, 3]"
