"""Shared test fixtures: repository paths, and the real-service fixtures of tests/fakes/services.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Source timers tick fast in tests, so "within seconds" is checked in well under a second per step.
# Set before any operator module is imported (the tick is read at import, as kopf decorators need it).
os.environ.setdefault("ARENA_SOURCE_TICK_SECONDS", "0.2")
os.environ.setdefault("ARENA_JOB_TICK_SECONDS", "0.2")

pytest_plugins = ["tests.fakes.services"]

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def quickstart() -> Path:
    return REPO / "examples" / "quickstart"
