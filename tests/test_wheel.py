"""What a user gets from ``pip install``: the built wheel, with its declared dependencies
only, in a new venv without system site-packages, on an empty temp directory.

This is the test that catches an undeclared dependency (a module found only because the
machine has it) and a start-up that leans on a cache some earlier process left in /tmp.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A new venv holding the wheel and its dependencies; the env to run it with."""
    where = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(where)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (wheel,) = where.glob("rangeexpr-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in (
        "rangeexpr/_tables_rangeexpr.py",
        "rangeexpr/_tables_filter.py",
        "rangeexpr/grammar/rangeexpr.lark",
        "rangeexpr/grammar/filter.lark",
        "rangeexpr/py.typed",
        "runner/py.typed",
    ):
        assert shipped in names, shipped
    env_dir = where / "venv"
    venv.create(env_dir, system_site_packages=False, with_pip=True)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--disable-pip-version-check", str(wheel)], check=True)
    tmpdir = where / "tmp"
    tmpdir.mkdir()
    env = {
        "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": os.environ.get("HOME", str(where)),
        "TMPDIR": str(tmpdir),
        "LANG": "C.UTF-8",
    }
    return env_dir, env


def _run(env: dict[str, str], cwd: Path, *argv: str) -> str:
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, (argv, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


@pytest.mark.slow
def test_the_installed_wheel_works_with_its_declared_dependencies_only(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    env_dir, env = installed
    probe = (
        "import rangeexpr, runner, rangeexpr._grammar as g, sys;"
        "print(rangeexpr.__file__); print(runner.__file__);"
        "print(g.grammar_path('rangeexpr.lark'));"
        "print(list(rangeexpr.axis('X=linspace:1,2,3')));"
        "print([p['X'] for p in rangeexpr.Sweep(['X=range:4']).where('X % 2 == 1')]);"
        "print(any('site-packages' in p and not p.startswith(sys.prefix) for p in sys.path))"
    )
    out = _run(env, tmp_path, "python", "-c", probe).splitlines()
    assert all(line.startswith(str(env_dir)) for line in out[:3]), out
    assert out[3:] == ["[1.0, 1.5, 2.0]", "[1, 3]", "False"]

    check = _run(env, tmp_path, "rangeexpr", "check", "X=case:a,b", "--exec", "echo $X")
    assert check.splitlines()[-1] == "2 points"
    expand = _run(env, tmp_path, "rangeexpr", "expand", "X=linspace:0,1,3", "--where", "X>0")
    assert expand.splitlines() == ['{"index": 1, "X": 0.5}', '{"index": 2, "X": 1.0}']
    ran = _run(
        env,
        tmp_path,
        "rangeexpr",
        "run",
        "--exec",
        "echo x=$X",
        "-r",
        "X=case:a,b",
        "-j",
        "2",
        "--no-progress",
    )
    assert sorted(ran.splitlines()) == ["x=a", "x=b"]
    assert list(Path(env["TMPDIR"]).iterdir()) == [], "rangeexpr wrote into TMPDIR"


@pytest.mark.slow
def test_the_readme_quick_start_command_runs(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """The first command in README.md, after its install step, prints its six lines."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    line = next(ln for ln in readme.splitlines() if ln.startswith("python3 -m pip install ."))
    command = line.split("&&", 1)[1].strip()
    _, env = installed
    done = subprocess.run(
        ["sh", "-c", command], env=env, cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 6, done.stdout
