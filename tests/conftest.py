"""Shared test set-up: hypothesis profile for CI (no deadline; machines here are noisy)."""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("default", deadline=None)
settings.load_profile("default")
