"""Resource requests sent to a real Ray head (``tests/ray_head.py``; slow, marked ray).

Ray's job records do not show the entrypoint's resources, so the test shows their effect:
on a 4-CPU head, two jobs of ``cpu=3`` each, submitted at once (``-j 2``), never run at
the same time; their own clock readings at start and end say so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ray_head import CHECKOUT, ray_head

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_requests_reach_the_head_as_entrypoint_resources(tmp_path: Path) -> None:
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": f"{CHECKOUT}{os.pathsep}{path}" if path else str(CHECKOUT)}
    job = f"date +%s.%N > {tmp_path}/$X.start; sleep 3; date +%s.%N > {tmp_path}/$X.end"
    with ray_head(num_cpus=4) as head:
        result = subprocess.run(
            [
                *(sys.executable, "-m", "rangeexpr", "run", "--no-progress", "-j", "2"),
                *("--backend", "ray", "--address", head.address, "--shell"),
                *("-r", "cpu=3", "-r", "mem=64m", "-r", "X=range:2", "--exec", job),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    (s0, e0), (s1, e1) = [
        [float((tmp_path / f"{n}.{end}").read_text()) for end in ("start", "end")] for n in (0, 1)
    ]
    assert e0 <= s1 or e1 <= s0  # 3 + 3 CPUs do not fit in 4: one waited for the other
