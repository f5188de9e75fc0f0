"""The README's sweep file is the one the tests check and expand (tests/data/sweep_union.toml)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_sweep_file_is_the_tested_one(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Sweep files", 1)[1]
    block = re.search(r"```toml\n(.*?)```", section, re.DOTALL)
    assert block is not None, "no ```toml block under '## Sweep files'"
    tested = (ROOT / "tests" / "data" / "sweep_union.toml").read_text(encoding="utf-8")
    assert block.group(1) == tested
    (tmp_path / "sweep.toml").write_text(block.group(1), encoding="utf-8")
    for command in ("check", "expand"):
        done = subprocess.run(
            [sys.executable, "-m", "rangeexpr", command, "sweep.toml"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 10  # (1 x 3 + 1 x 2) x 2 seeds
