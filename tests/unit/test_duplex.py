"""Duplex scenarios (engine/duplex.py): which provider a duplex run talks to and for how long, the mock's
`duplex_scenario` answers, realtime providers refused with a clear kind, and the `duplex:` block's load checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from arena_operator.engine import duplex
from arena_operator.engine.bundle import load_bundle
from arena_operator.engine.errors import BundleInvalid
from arena_operator.engine.providers.mock import MockConfig, MockProvider
from arena_operator.engine.spec import ProviderSpec, ScenarioSpec
from arena_operator.engine.types import ChatRequest, Message

SCRIPT = MockConfig({"scenarios": {"voice-basic": {"turns": {1: "from voice-basic"}},
                                   "other": {"turns": {1: "from other"}}}})


def _mock(**config: Any) -> MockProvider:
    return MockProvider("m", ProviderSpec(type="mock", model="m", additional_config=config), SCRIPT)


def _scenario(block: dict[str, Any] | None) -> ScenarioSpec:
    return ScenarioSpec(description="d", duplex=block)


@pytest.mark.parametrize(("block", "config", "timeout", "answer"), [
    (None, {"auto_respond": True, "duplex_scenario": "voice-basic"}, 300.0, "from other"),  # not duplex: as before
    ({}, {}, duplex.DEFAULT_TIMEOUT_S, "from other"),
    ({"timeout": "45s"}, {}, 45.0, "from other"),
    ({"timeout": "2m"}, {"auto_respond": True, "duplex_scenario": "voice-basic"}, 120.0, "from voice-basic"),
    ({}, {"auto_respond": "true", "duplex_scenario": "voice-basic"}, duplex.DEFAULT_TIMEOUT_S, "from voice-basic"),
    ({}, {"duplex_scenario": "voice-basic"}, duplex.DEFAULT_TIMEOUT_S, "from other"),  # auto_respond off
])
async def test_session_of_a_local_provider(block: dict[str, Any] | None, config: dict[str, Any], timeout: float,
                                           answer: str) -> None:
    provider = _mock(**config)
    session = duplex.session(_scenario(block), "other", provider, 300.0)
    assert session.timeout == timeout
    request = ChatRequest(system="", messages=[Message("user", "hi")], context={"scenario_id": "other"})
    assert (await session.provider.chat(request)).content == answer
    assert session.provider.model == "m" and session.provider.spec is provider.spec  # the mock's own otherwise


@pytest.mark.parametrize("kind", ["openai", "gemini", "claude", "elevenlabs"])
def test_realtime_providers_fail_clearly(kind: str) -> None:
    provider = MockProvider("live", ProviderSpec(type=kind, model="gpt-4o-realtime"), SCRIPT)
    with pytest.raises(duplex.DuplexUnsupported) as caught:
        duplex.session(_scenario({"timeout": "30s"}), "voice", provider, 300.0)
    assert caught.value.kind == "duplex_unsupported"
    assert f"provider 'live' ({kind}, network required)" in str(caught.value)
    assert "mock and replay providers only" in str(caught.value)
    assert duplex.session(_scenario(None), "voice", provider, 300.0).provider is provider  # not duplex: runs


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
