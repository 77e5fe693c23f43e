"""The mock provider and the provider registry, as upstream PromptArena behaves: response lookup order, turn
numbering, response shapes, token counts, fallback texts, and which provider types run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from arena_operator.engine.errors import ProviderError
from arena_operator.engine.providers.mock import MockConfig, MockProvider, mock_turn
from arena_operator.engine.providers.registry import GENERIC_MOCK_TEXT, UnavailableProvider, build_providers
from arena_operator.engine.spec import ProviderSpec
from arena_operator.engine.types import ChatRequest, Message, ToolCall, ToolDefinition, ToolResult

CONFIG = {
    "defaultResponse": "global",
    "scenarios": {
        "s": {"defaultResponse": "scenario default", "turns": {1: "turn one", "2": "turn two (string key)"},
              "steps": {"classify": "step reply"}},
        "blank": {"defaultResponse": "", "turns": {}},  # an empty default counts as unset
    },
    "selfplay": {"p": {"defaultResponse": "persona default", "turns": {2: "persona turn two"}},
                 "silent": {"turns": {}}},
}


@pytest.mark.parametrize(("scenario", "persona", "turn", "step", "expected"), [
    ("s", None, 1, None, "turn one"),
    ("s", None, 2, None, "turn two (string key)"),
    ("s", None, 7, None, "scenario default"),
    ("s", None, 0, None, "scenario default"),
    ("s", None, 1, "classify", "step reply"),
    ("s", None, 1, "other-step", "turn one"),
    ("s", "p", 2, None, "persona turn two"),
    ("s", "p", 5, None, "persona default"),
    ("s", "silent", 1, None, "turn one"),  # a persona without a line falls through to the scenario
    ("s", "unknown", 1, None, "turn one"),
    ("blank", None, 1, None, "global"),
    ("missing", None, 1, None, "global"),
    (None, None, 1, None, "global"),  # a judge call: no scenario
])
def test_lookup_order(scenario: str | None, persona: str | None, turn: int, step: str | None, expected: str) -> None:
    assert MockConfig(CONFIG).lookup(scenario, persona, turn, step) == expected


def test_no_global_default_is_the_builtin_text() -> None:
    assert MockConfig({"defaultResponse": ""}).lookup("s", None, 1) is None


U, A = Message("user", "hello"), Message("assistant", "hi")
CALLING = Message("assistant", "", [ToolCall("c1", "lookup", {})])
RESULT = Message("tool", "{}", tool_result=ToolResult("c1", "lookup", "{}"))
TOOLS = [ToolDefinition("lookup", "", {"type": "object"})]


@pytest.mark.parametrize(("messages", "tools", "context", "expected"), [
    ([U], [], {}, 1),
    ([U, A, U], [], {}, 2),  # no tools: the number of user messages
    ([U, A, A, U], [], {}, 2),
    ([U], TOOLS, {}, 1),
    ([U, CALLING, RESULT], TOOLS, {}, 2),  # a tool round trip advances it
    ([U, CALLING, RESULT, A, U], TOOLS, {}, 3),
    ([U, CALLING, RESULT, A, U, CALLING, RESULT], TOOLS, {}, 4),
    ([U, CALLING, RESULT, A, U], [], {}, 3),  # tool traffic in the history takes the tool path too
    ([U, A], [], {"mock_turn": 5}, 5),  # self-play: assistant replies so far + 1, given by the executor
])
def test_turn_numbering(messages: list[Message], tools: list[ToolDefinition], context: dict[str, Any],
                        expected: int) -> None:
    assert mock_turn(ChatRequest(system="", messages=messages, tools=tools, context=context)) == expected


def _mock(data: dict[str, Any], fallback: str | None = None) -> MockProvider:
    return MockProvider("bot", ProviderSpec(type="mock", model="m1"), MockConfig(data, fallback))


async def _ask(provider: MockProvider, tools: list[ToolDefinition] | None = None, **context: Any) -> Any:
    return await provider.chat(ChatRequest(system="a long system prompt", messages=[Message("user", "hey")],
                                           tools=tools or [], context=context))


TOOL_TURN = {"scenarios": {"s": {"turns": {1: {"type": "text", "content": "calling",
                                               "tool_calls": [{"name": "lookup", "arguments": {"id": 7}},
                                                              {"name": "refund"}]}}}}}


async def test_tool_calls_only_on_the_tool_path() -> None:
    provider = _mock(TOOL_TURN)
    with_tools = await _ask(provider, TOOLS, scenario_id="s")
    assert [(c.id, c.name, c.args) for c in with_tools.tool_calls] == [
        ("call_0_lookup", "lookup", {"id": 7}), ("call_1_refund", "refund", {})]
    assert with_tools.content == "calling"
    without = await _ask(provider, scenario_id="s")
    assert without.tool_calls == [] and without.content == "calling"


async def test_multimodal_turn_makes_no_calls_and_keeps_its_parts() -> None:
    data = {"scenarios": {"s": {"turns": {1: {"type": "multimodal", "text": "a chart",
                                              "tool_calls": [{"name": "lookup"}],
                                              "parts": [{"type": "image", "image_url": {"url": "x/chart.PNG"},
                                                         "metadata": {"width": 640, "height": 480}}]}}}}}
    reply = await _ask(_mock(data), TOOLS, scenario_id="s")
    assert reply.tool_calls == [] and reply.content == "a chart"
    assert reply.parts == [{"type": "image", "media": {"url": "x/chart.PNG", "mime_type": "image/png",
                                                       "width": 640, "height": 480}}]


async def test_tokens_and_cost() -> None:
    reply = await _ask(_mock({"defaultResponse": "x" * 41}))
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (10, 10), "input: the messages only, ≥ 10"
    empty = await _ask(_mock({"scenarios": {"s": {"turns": {1: {"content": ""}}}}}), scenario_id="s")
    assert empty.content == "" and empty.usage.output_tokens == 20
    cost = _mock({}).cost(reply.usage)
    assert cost.total_cost_usd == pytest.approx(20 * 0.01 / 1000)


async def test_fallback_texts(tmp_path: Path) -> None:
    assert (await _ask(_mock({}))).content == "Mock response for provider bot model m1"  # a file, no match
    (tmp_path / "mocks.yaml").write_text("scenarios: {}\n", encoding="utf-8")
    specs = {"declared": ProviderSpec(type="mock", model="m2"),
             "with-file": ProviderSpec(type="mock", model="m3", additional_config={"mock_config": "mocks.yaml"}),
             "openai": ProviderSpec(type="openai", model="gpt")}
    built = build_providers(specs, tmp_path)
    assert (await _ask(built["declared"])).content == "Mock response from declared model m2"
    assert (await _ask(built["with-file"])).content == "Mock response for provider with-file model m3"
    mocked = build_providers(specs, tmp_path, mock_all=True)
    assert (await _ask(mocked["openai"])).content == GENERIC_MOCK_TEXT
    assert (await _ask(mocked["with-file"])).content == "Mock response for provider with-file model m3"
    flag = build_providers(specs, tmp_path, mock_all=True, mock_config=tmp_path / "mocks.yaml")
    assert (await _ask(flag["openai"])).content == "Mock response for provider openai model gpt"


@pytest.mark.parametrize(("spec", "needle"), [
    ({"type": "imagen", "role": "image"}, "Imagen"),
    ({"type": "claude", "platform": {"type": "bedrock", "region": "eu-west-1"}}, "platform 'bedrock'"),
    ({"type": "openai", "platform": {"type": "azure", "endpoint": "https://x"}}, "platform 'azure'"),
    ({"type": "gemini", "platform": {"type": "vertex"}}, "platform 'vertex'"),
])
async def test_providers_this_version_cannot_call_fail_their_runs(spec: dict[str, Any], needle: str,
                                                                 tmp_path: Path) -> None:
    built = build_providers({"p": ProviderSpec.model_validate(spec)}, tmp_path)
    assert isinstance(built["p"], UnavailableProvider)
    with pytest.raises(ProviderError) as info:
        await _ask(built["p"])  # type: ignore[arg-type]
    assert info.value.kind == "unsupported" and needle in str(info.value) and "--mock-provider" in str(info.value)
    mocked = build_providers({"p": ProviderSpec.model_validate(spec)}, tmp_path, mock_all=True)
    assert (await _ask(mocked["p"])).content == GENERIC_MOCK_TEXT  # type: ignore[arg-type]
