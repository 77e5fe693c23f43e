"""The HTTP providers against a real local server speaking each wire format; nothing leaves 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from arena_operator.engine.errors import ProviderError
from arena_operator.engine.providers.base import RetryPolicy
from arena_operator.engine.providers.claude import ClaudeProvider
from arena_operator.engine.providers.gemini import GeminiProvider
from arena_operator.engine.providers.http import HTTPProvider
from arena_operator.engine.providers.openai import OpenAIProvider
from arena_operator.engine.spec import ProviderSpec
from arena_operator.engine.types import ChatRequest, ChatResponse, Message, ToolCall, ToolDefinition, ToolResult
from tests.fakes.llm_servers import FakeCall, FakeLLMServer, Recorded, Reply

KEY = "sk-test-0123456789-very-secret"
KEY_ENV = "ARENA_TEST_PROVIDER_KEY"
DEFAULT_KEY_ENVS = {"openai": "OPENAI_API_KEY", "claude": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY"}
CLASSES: dict[str, type[HTTPProvider]] = {"openai": OpenAIProvider, "claude": ClaudeProvider, "gemini": GeminiProvider}
MODELS = {"openai": "gpt-test", "claude": "claude-test", "gemini": "gemini-test"}
KEY_HEADERS = {"openai": ("authorization", f"Bearer {KEY}"), "claude": ("x-api-key", KEY),
               "gemini": ("x-goog-api-key", KEY)}
STOP = {"openai": "stop", "claude": "end_turn", "gemini": "STOP"}
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
          "additionalProperties": False}
TOOLS = [ToolDefinition("get_weather", "Weather for a city", SCHEMA),
         ToolDefinition("get_time", "Local time", {"type": "object", "properties": {"tz": {"type": "string"}}})]

Make = Callable[..., HTTPProvider]


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real keys from the environment must never reach even the local fake."""
    for env in [*DEFAULT_KEY_ENVS.values(), "GOOGLE_API_KEY"]:
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setenv(KEY_ENV, KEY)


@pytest.fixture
async def server() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer() as fake:
        yield fake


@pytest.fixture
async def make(server: FakeLLMServer) -> AsyncIterator[Make]:
    """Builds providers pointed at the fake, with short backoff; closes them afterwards."""
    built: list[HTTPProvider] = []

    def build(name: str, **fields: Any) -> HTTPProvider:
        spec = ProviderSpec.model_validate({
            "type": name, "model": MODELS[name], "credential": {"api_key_env": KEY_ENV},
            "base_url": server.openai_url if name == "openai" else server.url, **fields})
        retry = RetryPolicy(max_retries=spec.max_retries, base_delay=0.01, max_delay=0.05)
        built.append(CLASSES[name](name, spec, retry=retry))
        return built[-1]

    yield build
    for provider in built:
        await provider.aclose()


@pytest.fixture(params=sorted(CLASSES))
def name(request: pytest.FixtureRequest) -> str:
    return request.param


def ask(text: str = "Hi", **fields: Any) -> ChatRequest:
    return ChatRequest(system="Be brief.", messages=[Message("user", text)], **fields)


PLAIN_BODIES: dict[str, dict[str, Any]] = {
    "openai": {"model": "gpt-test", "messages": [{"role": "system", "content": "Be brief."},
                                                 {"role": "user", "content": "Hi"}],
               "temperature": 0.2, "max_tokens": 50, "top_p": 0.9, "seed": 7},
    "claude": {"model": "claude-test", "max_tokens": 50, "system": "Be brief.",
               "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
               "temperature": 0.2, "top_p": 0.9},
    "gemini": {"systemInstruction": {"parts": [{"text": "Be brief."}]},
               "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
               "generationConfig": {"temperature": 0.2, "maxOutputTokens": 50, "topP": 0.9, "seed": 7}},
}
PATHS = {"openai": "/v1/chat/completions", "claude": "/v1/messages",
         "gemini": "/v1beta/models/gemini-test:generateContent"}


async def test_plain_reply_usage_and_cost(name: str, server: FakeLLMServer, make: Make) -> None:
    server.script(Reply("Hello there!", usage=(1000, 500)))
    provider = make(name, pricing={"input_cost_per_1k": 0.5, "output_cost_per_1k": 2.0})

    response = await provider.chat(ask(temperature=0.2, max_tokens=50, top_p=0.9, seed=7))

    assert response.content == "Hello there!"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (1000, 500)
    cost = provider.cost(response.usage)
    assert (cost.input_cost_usd, cost.output_cost_usd) == (pytest.approx(0.5), pytest.approx(1.0))
    assert response.finish_reason == STOP[name]
    assert response.latency_ms > 0
    assert response.ttft_ms is None
    assert response.tool_calls == []
    [recorded] = server.requests
    assert recorded.path == PATHS[name]
    assert recorded.body == PLAIN_BODIES[name]


async def test_streaming_reply_sets_ttft(name: str, server: FakeLLMServer, make: Make) -> None:
    server.script(Reply("one two three four five", usage=(12, 5)))

    response = await make(name).chat(ask(stream=True))

    assert response.content == "one two three four five"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 5)
    assert response.finish_reason == STOP[name]
    assert response.ttft_ms is not None
    assert 0 < response.ttft_ms < response.latency_ms
    [recorded] = server.requests
    assert recorded.stream
    if name == "openai":
        assert recorded.body["stream_options"] == {"include_usage": True}
    if name == "gemini":
        assert recorded.path == "/v1beta/models/gemini-test:streamGenerateContent"
        assert recorded.query == {"alt": "sse"}


async def _tool_round_trip(provider: HTTPProvider, server: FakeLLMServer, stream: bool) -> ChatResponse:
    """First reply asks for two tools; the second request carries both results (one an error)."""
    calls = [FakeCall("get_weather", {"city": "Paris"}, thought_signature="sig-weather"),
             FakeCall("get_time", {"tz": "CET"})]
    server.script(Reply("Let me check.", tool_calls=calls), Reply("Sunny, 14:00."))
    messages = [Message("user", "Weather and time in Paris?")]

    first = await provider.chat(ChatRequest("Be brief.", messages, tools=TOOLS, stream=stream))

    assert first.content == "Let me check."
    assert [(c.name, c.args) for c in first.tool_calls] == [("get_weather", {"city": "Paris"}),
                                                            ("get_time", {"tz": "CET"})]
    messages.append(Message("assistant", first.content, list(first.tool_calls)))
    results = [ToolResult(first.tool_calls[0].id, "get_weather", '{"sky": "sunny"}'),
               ToolResult(first.tool_calls[1].id, "get_time", '{"error": "no clock"}', error="no clock")]
    messages += [Message("tool", r.content, tool_result=r) for r in results]
    second = await provider.chat(ChatRequest("Be brief.", messages, tools=TOOLS, stream=stream))
    assert second.content == "Sunny, 14:00."
    assert len(server.requests) == 2
    return first


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_openai_tool_round_trip(stream: bool, server: FakeLLMServer, make: Make) -> None:
    first = await _tool_round_trip(make("openai"), server, stream)

    assert first.finish_reason == "tool_calls"
    weather, clock = (c.id for c in first.tool_calls)
    assert weather.startswith("call_fake_") and clock.startswith("call_fake_") and weather != clock
    assert server.requests[0].body["tools"] == [
        {"type": "function", "function": {"name": t.name, "description": t.description,
                                          "parameters": t.input_schema}} for t in TOOLS]
    assert server.requests[1].body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather and time in Paris?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": weather, "type": "function",
             "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}},
            {"id": clock, "type": "function", "function": {"name": "get_time", "arguments": json.dumps({"tz": "CET"})}},
        ]},
        {"role": "tool", "tool_call_id": weather, "content": '{"sky": "sunny"}'},
        {"role": "tool", "tool_call_id": clock, "content": '{"error": "no clock"}'},
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_claude_tool_round_trip(stream: bool, server: FakeLLMServer, make: Make) -> None:
    first = await _tool_round_trip(make("claude"), server, stream)

    assert first.finish_reason == "tool_use"
    weather, clock = (c.id for c in first.tool_calls)
    assert weather.startswith("toolu_fake_") and clock.startswith("toolu_fake_") and weather != clock
    assert server.requests[0].body["max_tokens"] == 1024
    assert server.requests[0].body["tools"] == [
        {"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in TOOLS]
    assert server.requests[1].body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather and time in Paris?"}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": weather, "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": clock, "name": "get_time", "input": {"tz": "CET"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": weather, "content": '{"sky": "sunny"}'},
            {"type": "tool_result", "tool_use_id": clock, "content": '{"error": "no clock"}', "is_error": True},
        ]},
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_gemini_tool_round_trip(stream: bool, server: FakeLLMServer, make: Make) -> None:
    first = await _tool_round_trip(make("gemini"), server, stream)

    assert [c.id for c in first.tool_calls] == ["call_1", "call_2"]
    assert server.requests[0].body["tools"] == [{"functionDeclarations": [
        {"name": t.name, "description": t.description, "parametersJsonSchema": t.input_schema} for t in TOOLS]}]
    assert server.requests[1].body["contents"] == [
        {"role": "user", "parts": [{"text": "Weather and time in Paris?"}]},
        {"role": "model", "parts": [
            {"text": "Let me check."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "sig-weather"},
            {"functionCall": {"name": "get_time", "args": {"tz": "CET"}}},
        ]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"sky": "sunny"}}},
            {"functionResponse": {"name": "get_time", "response": {"error": "no clock"}}},
        ]},
    ]


async def test_gemini_call_ids_continue_the_conversation(server: FakeLLMServer, make: Make) -> None:
    server.script(Reply(tool_calls=[FakeCall("get_time", {"tz": "UTC"})]))
    earlier = [ToolResult("call_1", "get_time", "12:00"), ToolResult("call_2", "get_time", "13:00")]
    messages = [Message("user", "Times?"),
                Message("assistant", "", [ToolCall(r.call_id, r.name, {}) for r in earlier]),
                *[Message("tool", r.content, tool_result=r) for r in earlier],
                Message("user", "And in UTC?")]

    response = await make("gemini").chat(ChatRequest("", messages, tools=TOOLS))

    assert [c.id for c in response.tool_calls] == ["call_3"]
    assert "systemInstruction" not in server.requests[0].body
    assert server.requests[0].body["contents"][2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_time", "response": {"output": "12:00"}}},
        {"functionResponse": {"name": "get_time", "response": {"output": "13:00"}}},
        {"text": "And in UTC?"},
    ]}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_openai_malformed_arguments_are_kept_raw(stream: bool, server: FakeLLMServer, make: Make) -> None:
    server.script(Reply(tool_calls=[FakeCall("get_weather", '{"city": "Par')]))

    response = await make("openai").chat(ask(stream=stream, tools=TOOLS))

    assert [(c.name, c.args) for c in response.tool_calls] == [("get_weather", {"_raw": '{"city": "Par'})]


async def test_rate_limit_honours_retry_after(name: str, server: FakeLLMServer, make: Make) -> None:
    server.script(Reply(status=429, headers={"Retry-After": "1"}, error="slow down"), Reply("ok"))
    started = time.perf_counter()

    response = await make(name).chat(ask())

    assert time.perf_counter() - started >= 0.95
    assert response.content == "ok"
    assert len(server.requests) == 2


async def test_server_error_is_retried(name: str, server: FakeLLMServer, make: Make) -> None:
    server.script(Reply(status=500, error="boom"), Reply("ok"))

    response = await make(name).chat(ask(stream=True))

    assert response.content == "ok"
    assert len(server.requests) == 2


async def test_auth_error_is_final_and_never_shows_the_key(name: str, server: FakeLLMServer, make: Make) -> None:
    masked = f"Incorrect API key provided: {KEY[:3]}****{KEY[-4:]}"
    server.script(Reply(status=401, error=masked), Reply("never reached"))

    with pytest.raises(ProviderError) as caught:
        await make(name).chat(ask())

    assert (caught.value.kind, caught.value.status) == ("auth_error", 401)
    assert len(server.requests) == 1
    assert KEY not in str(caught.value)


async def test_timeout_after_all_attempts(name: str, server: FakeLLMServer, make: Make) -> None:
    server.script(Reply("late", delay=5), Reply("late", delay=5))
    started = time.perf_counter()

    with pytest.raises(ProviderError) as caught:
        await make(name, timeout="0.3s", max_retries=1).chat(ask())

    assert caught.value.kind == "timeout"
    assert len(server.requests) == 2
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("configured", [True, False], ids=["credential_env", "default_env"])
async def test_api_key_goes_in_its_header_only(
    name: str, configured: bool, server: FakeLLMServer, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not configured:
        monkeypatch.setenv(DEFAULT_KEY_ENVS[name], KEY)
    provider = make(name) if configured else make(name, credential={})

    await provider.chat(ask())

    [recorded] = server.requests
    header, value = KEY_HEADERS[name]
    assert recorded.headers[header] == value
    assert [h for h, v in recorded.headers.items() if KEY in v] == [header]
    assert KEY not in recorded.path and KEY not in json.dumps(recorded.query)
    if name == "claude":
        assert recorded.headers["anthropic-version"] == "2023-06-01"


async def test_max_concurrency_bounds_requests_in_flight(name: str, server: FakeLLMServer, make: Make) -> None:
    server.script(*[Reply(f"ok {i}", delay=0.1) for i in range(6)])
    provider = make(name, rate_limit={"max_concurrency": 2})

    responses = await asyncio.gather(*[provider.chat(ask(f"chat {i}")) for i in range(6)])

    assert sorted(r.content for r in responses) == [f"ok {i}" for i in range(6)]
    assert len(server.requests) == 6
    assert server.max_in_flight == 2


async def test_claude_overloaded_stream_event_is_retried(server: FakeLLMServer, make: Make) -> None:
    server.script(Reply(stream_error="overloaded_error", error="Overloaded"), Reply("ok"))

    response = await make("claude").chat(ask(stream=True))

    assert response.content == "ok"
    assert len(server.requests) == 2


async def test_claude_overloaded_stream_gives_up_as_overloaded(server: FakeLLMServer, make: Make) -> None:
    server.script(Reply(stream_error="overloaded_error", error="Overloaded"))

    with pytest.raises(ProviderError) as caught:
        await make("claude", max_retries=0).chat(ask(stream=True))

    assert caught.value.kind == "overloaded"


async def test_claude_invalid_request_stream_event_is_final(server: FakeLLMServer, make: Make) -> None:
    server.script(Reply(stream_error="invalid_request_error", error="bad"), Reply("never reached"))

    with pytest.raises(ProviderError) as caught:
        await make("claude").chat(ask(stream=True))

    assert caught.value.kind == "provider_error"
    assert len(server.requests) == 1


async def test_gemini_falls_back_to_google_api_key(
    server: FakeLLMServer, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)

    await make("gemini", credential={}).chat(ask())

    assert server.requests[0].headers["x-goog-api-key"] == KEY


@pytest.mark.parametrize("kind", ["vllm", "ollama"])
async def test_local_openai_compatible_servers_get_no_key(
    kind: str, server: FakeLLMServer, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)

    response = await make("openai", type=kind, credential={}).chat(ask("What is 2+2?"))

    assert response.content == "echo: What is 2+2?"  # the fake's default, deterministic answer
    assert "authorization" not in server.requests[0].headers


@pytest.mark.parametrize(("kind", "url"), [("openai", "https://api.openai.com/v1"),
                                           ("ollama", "http://localhost:11434/v1"),
                                           ("vllm", "http://localhost:8000/v1")])
def test_openai_compatible_default_base_urls(kind: str, url: str) -> None:
    assert OpenAIProvider(kind, ProviderSpec(type=kind, model="m")).base_url == url


def test_recorded_last_user_text_reads_every_wire_format() -> None:
    bodies = {"openai": {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}]},
              "anthropic": {"messages": [{"role": "user", "content": [{"type": "text", "text": "b"}]}]},
              "gemini": {"contents": [{"role": "user", "parts": [{"text": "c"}]}]}}
    texts = {api: Recorded(api, "/", {}, {}, body).last_user_text() for api, body in bodies.items()}
    assert texts == {"openai": "a", "anthropic": "b", "gemini": "c"}
