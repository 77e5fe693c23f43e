"""`arena push` against a real registry, read back by the same fetcher the operator uses."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from arena_operator.engine.bundle import load_bundle
from arena_operator.sources.oci import OCISource
from tests.fakes.services import OCIRegistry

REPO = Path(__file__).resolve().parents[2]


def arena(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "arena_operator.cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=60, check=False)


def test_push_then_fetch_round_trip(oci_registry: OCIRegistry, tmp_path: Path) -> None:
    url = oci_registry.url("prompts/quickstart", "v1")
    done = arena("push", "examples/quickstart", url, "--insecure")
    assert done.returncode == 0, done.stderr
    assert "sha256:" in done.stdout
    source = OCISource(url, insecure=True)
    revision = asyncio.run(source.fetch(tmp_path / "bundle"))
    assert revision.startswith("v1@sha256:")
    assert set(load_bundle(tmp_path / "bundle").scenarios) == set(load_bundle(REPO / "examples/quickstart").scenarios)


def test_push_refuses_an_invalid_bundle(oci_registry: OCIRegistry, tmp_path: Path) -> None:
    (tmp_path / "config.arena.yaml").write_text("kind: Arena\nspec: {}\n")
    done = arena("push", str(tmp_path), oci_registry.url("prompts/bad"), "--insecure")
    assert done.returncode == 2
    assert "config.arena.yaml" in done.stderr and "defaults" in done.stderr
