"""Duplex scenarios (engine/duplex.py): a duplex run's time limit, realtime providers refused with a clear kind,
and the `duplex:` block's load checks (tests/fixtures/bundles/duplex runs them end to end)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from arena_operator.engine import duplex
from arena_operator.engine.bundle import load_bundle
from arena_operator.engine.errors import BundleInvalid
from arena_operator.engine.providers.mock import MockConfig, MockProvider
from arena_operator.engine.spec import ProviderSpec, ScenarioSpec

SCRIPT = MockConfig({"scenarios": {"voice": {"turns": {1: "hello"}}}})


def _provider(kind: str, **config: Any) -> MockProvider:
    return MockProvider("live", ProviderSpec(type=kind, model="m", additional_config=config), SCRIPT)


def _scenario(block: dict[str, Any] | None) -> ScenarioSpec:
    return ScenarioSpec(description="d", duplex=block)


@pytest.mark.parametrize(("block", "kind", "limit"), [
    (None, "mock", 300.0),  # not duplex: the arena's run timeout
    (None, "openai", 300.0),  # … whatever the provider
    ({}, "mock", duplex.DEFAULT_TIMEOUT_S),  # duplex: upstream's default
    ({"timeout": "45s"}, "mock", 45.0),
    ({"timeout": "2m"}, "replay", 120.0),
])
def test_time_limit(block: dict[str, Any] | None, kind: str, limit: float) -> None:
    assert duplex.time_limit(_scenario(block), "voice", _provider(kind), 300.0) == limit


@pytest.mark.parametrize("kind", ["openai", "gemini", "claude", "elevenlabs"])
def test_realtime_providers_fail_clearly(kind: str) -> None:
    with pytest.raises(duplex.DuplexUnsupported) as caught:
        duplex.time_limit(_scenario({"timeout": "30s"}), "voice", _provider(kind), 300.0)
    assert caught.value.kind == "duplex_unsupported"
    assert f"provider 'live' ({kind}, network required)" in str(caught.value)
    assert "mock and replay providers only" in str(caught.value)


ARENA = """apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Arena
metadata: {{name: d}}
spec:
  provider_specs:
    m: {{type: mock, model: m}}
  scenario_specs:
    s:
      description: d
      turns: [{{role: user, content: hi}}]
      duplex:
{block}
  defaults: {{}}
"""


@pytest.mark.parametrize(("block", "line", "field", "message"), [
    ("        timeout: soon", 12, "scenario_specs.s.duplex.timeout", "soon"),
    ("        turn_detection: {mode: push}", 12, "scenario_specs.s.duplex.turn_detection.mode", "'vad' or 'asm'"),
    ("        turn_detection:\n          vad: {silence_threshold_ms: -1}", 13,
     "scenario_specs.s.duplex.turn_detection.vad.silence_threshold_ms", "greater than or equal to 0"),
    ("        resilience: {max_retries: many}", 12, "scenario_specs.s.duplex.resilience.max_retries", "integer"),
])
def test_bad_duplex_blocks_are_load_errors_at_their_line(tmp_path: Path, block: str, line: int, field: str,
                                                         message: str) -> None:
    (tmp_path / "config.arena.yaml").write_text(ARENA.format(block=block))
    with pytest.raises(BundleInvalid) as caught:
        load_bundle(tmp_path)
    problem = next(p for p in caught.value.problems if "duplex" in p.field)
    assert (problem.file, problem.line, problem.field) == ("config.arena.yaml", line, field)
    assert message in problem.message


def test_a_valid_duplex_block_loads(tmp_path: Path) -> None:
    block = ("        timeout: 30s\n        turn_detection:\n          mode: vad\n"
             "          vad: {silence_threshold_ms: 500, min_speech_ms: 100, max_turn_duration_s: 30}\n"
             "        resilience: {max_retries: 2, ignore_last_turn_session_end: true}")
    (tmp_path / "config.arena.yaml").write_text(ARENA.format(block=block))
    assert load_bundle(tmp_path).scenarios["s"].duplex["timeout"] == "30s"
