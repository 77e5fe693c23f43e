"""The upstream-vocabulary and guardrails-upstream bundles in detail: providers this version cannot call,
provider roles outside the run matrix, what a validator does to a reply, and guardrail param translation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from arena_operator.engine.assertions.guardrails import fires, normalize
from arena_operator.engine.bundle import load_bundle
from arena_operator.engine.executor import ConversationExecutor
from arena_operator.engine.plan import generate_plan
from arena_operator.engine.providers.registry import build_providers

BUNDLES = Path(__file__).resolve().parents[1] / "fixtures" / "bundles"


async def _run_all(name: str, mock_all: bool = False) -> dict[tuple[str, str], dict[str, Any]]:
    bundle = load_bundle(BUNDLES / name)
    executor = ConversationExecutor(bundle, build_providers(bundle.providers, bundle.root, mock_all))
    try:
        return {(c.scenario_id, c.provider_id): (await executor.execute(c)).to_dict()
                for c in generate_plan(bundle).combinations}
    finally:
        await executor.aclose()


async def test_providers_that_need_other_services_error_clearly_without_mock_provider() -> None:
    runs = await _run_all("upstream-vocabulary")
    for provider, needle in (("claude-bedrock", "platform 'bedrock'"), ("imagen-gen", "Imagen")):
        run = runs[("provider-types", provider)]
        assert run["Status"] == "error" and run["ErrorKind"] == "unsupported", run["Error"]
        assert needle in run["Error"] and "--mock-provider" in run["Error"]
    replayed = runs[("provider-types", "replay-rec")]  # replay needs no service: it answers from its recording
    assert replayed["Status"] == "failed" and not replayed["Error"], "the recorded reply is not the mock's"
    assert next(m["content"] for m in replayed["Messages"] if m["role"] == "assistant") == \
        "Here is the photo you asked for."
    assert runs[("classifiers-skipped", "mock-main")]["Status"] == "passed", "the mock providers still run"


def test_provider_roles_outside_the_matrix_still_load() -> None:
    bundle = load_bundle(BUNDLES / "upstream-vocabulary")
    assert set(bundle.service_providers) == {"hf", "voice"}
    assert {c.provider_id for c in generate_plan(bundle).combinations} == {
        "mock-main", "claude-bedrock", "imagen-gen", "replay-rec"}
    assert bundle.providers["imagen-gen"].role == "image", "image providers join the matrix, as upstream"


async def test_tool_calls_of_agents_and_skills_without_their_runtime_fail_as_tool_errors() -> None:
    runs = await _run_all("upstream-vocabulary", mock_all=True)
    tool_messages = [m for m in runs[("agents-and-skills", "mock-main")]["Messages"] if m["role"] == "tool"]
    assert [m["tool_result"]["name"] for m in tool_messages] == ["a2a__research__search", "skill__activate"]
    assert all("unknown or not allowed tool" in m["tool_result"]["error"] for m in tool_messages)


async def test_validators_record_and_enforce() -> None:
    runs = await _run_all("guardrails-upstream")
    replies = {scenario: [m for m in run["Messages"] if m["role"] == "assistant"]
               for (scenario, _), run in runs.items()}
    [blocked] = replies["input-fires"]
    assert blocked["content"] == "I can't discuss passwords."
    assert blocked["meta"]["validators"][0]["direction"] == "input"
    assert "latency_ms" in blocked and blocked.get("cost_info") is None, "the model was not called"
    cut = replies["min-score"][1]
    assert len(cut["content"].encode()) == 40 and cut["meta"]["original_content"].startswith(cut["content"])
    assert [v["type"] for v in replies["first-firing-wins"][0]["meta"]["validators"]] == ["banned_words"]
    dropped = replies["enforced-drops-tools"]
    assert len(dropped) == 1 and not dropped[0].get("tool_calls")


@pytest.mark.parametrize(("kind", "params", "expected"), [
    ("banned_words", {"words": ["x"]}, {"patterns": ["x"], "match_mode": "word_boundary"}),
    ("banned_words", {"words": ["x"], "match_mode": "substring"}, {"patterns": ["x"], "match_mode": "substring"}),
    ("content_excludes", {"words": ["x"], "patterns": ["y"]}, {"words": ["x"], "patterns": ["y"]}),
    ("length", {"max_characters": 5}, {"max": 5}),
    ("max_length", {"max_chars": 5}, {"max": 5}),
    ("min_length", {"min_characters": 5}, {"min": 5}),
    ("max_sentences", {"max_sentences": 2}, {"max": 2}),
    ("required_fields", {"required_fields": ["a"]}, {"fields": ["a"]}),
    ("regex", {"pattern": "x"}, {"pattern": "x"}),
])
def test_guardrail_params_are_translated_as_upstream(kind: str, params: dict[str, Any],
                                                     expected: dict[str, Any]) -> None:
    assert normalize(kind, params) == expected


@pytest.mark.parametrize(("score", "low", "high", "fired"), [
    (1.0, None, None, False), (0.99, None, None, True), (None, None, None, True),  # fail-closed
    (0.6, 0.5, None, False), (0.4, 0.5, None, True), (0.6, None, 0.5, True), (0.4, None, 0.5, False),
])
def test_when_a_guardrail_fires(score: float | None, low: float | None, high: float | None, fired: bool) -> None:
    assert fires(score, low, high) is fired
