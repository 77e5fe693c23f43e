"""Shared test fixtures: repository paths."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def quickstart() -> Path:
    return REPO / "examples" / "quickstart"
