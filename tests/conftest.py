"""Shared test set-up: the hypothesis profile.

Machines here are shared and noisy, so no deadlines and no "too slow" health check; in CI
(``CI`` set) examples are derandomized so a run is reproducible.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=bool(os.environ.get("CI")),
)
settings.load_profile("default")
