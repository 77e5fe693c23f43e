"""OpenAI Chat Completions, also spoken by vLLM and Ollama (their OpenAI-compatible endpoints)."""

from __future__ import annotations

import json
import time
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from ..spec import ProviderSpec
from ..types import ChatRequest, ChatResponse, Message, ToolCall, ToolDefinition, Usage
from .base import RetryableError, RetryPolicy
from .http import DONE, HTTPProvider
from .media_wire import openai_content, openai_tool_content

# type → (base URL, key env). Local servers get no default key env, so an OpenAI key never leaves for them.
_DEFAULTS: dict[str, tuple[str, str | None]] = {
    "openai": ("https://api.openai.com/v1", "OPENAI_API_KEY"),
    "ollama": ("http://localhost:11434/v1", None),
    "vllm": ("http://localhost:8000/v1", None),
}


def parse_tool_args(raw: Any) -> dict[str, Any]:
    """Arguments arrive as a JSON string. A malformed one is kept as `{"_raw": ...}` rather than failing
    the call, so the conversation goes on and a tool_args assertion fails visibly."""
    if isinstance(raw, dict):
        return raw
    if raw is None or not str(raw).strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"_raw": raw}


def _message(message: Message) -> dict[str, Any]:
    if message.role == "tool" and message.tool_result is not None:
        return {"role": "tool", "tool_call_id": message.tool_result.call_id, "content": openai_tool_content(message)}
    if message.role == "assistant" and message.tool_calls:
        calls = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.args)}}
                 for c in message.tool_calls]
        return {"role": "assistant", "content": message.content or None, "tool_calls": calls}
    return {"role": message.role, "content": openai_content(message)}


def _tool(tool: ToolDefinition) -> dict[str, Any]:
    return {"type": "function",
            "function": {"name": tool.name, "description": tool.description, "parameters": tool.input_schema}}


def _usage(data: Any) -> Usage:
    if not isinstance(data, dict):
        return Usage()
    return Usage(input_tokens=int(data.get("prompt_tokens") or 0),
                 output_tokens=int(data.get("completion_tokens") or 0))


def _first_choice(data: Any) -> dict[str, Any]:
    """A 200 without choices is a broken reply, worth another attempt like any other bad response."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices or not isinstance(choices[0], dict):
        raise RetryableError("response has no choices", "bad_response")
    return choices[0]


@dataclass
class _StreamState:
    """Accumulates chat.completion.chunk deltas; tool calls arrive in fragments keyed by their index."""

    text: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, str]] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    ttft_ms: float | None = None

    def feed(self, chunk: dict[str, Any], ms: float) -> None:
        if chunk.get("error"):
            raise RetryableError(f"stream error: {chunk['error']}"[:300], "server_error")
        if chunk.get("usage"):
            self.usage = _usage(chunk["usage"])
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self.text.append(delta["content"])
            for part in delta.get("tool_calls") or []:
                self._feed_call(part)
            if self.ttft_ms is None and (delta.get("content") or delta.get("tool_calls")):
                self.ttft_ms = ms
            self.finish_reason = choice.get("finish_reason") or self.finish_reason

    def _feed_call(self, part: dict[str, Any]) -> None:
        call = self.calls.setdefault(int(part.get("index") or 0), {"id": "", "name": "", "arguments": ""})
        function = part.get("function") or {}
        call["id"] = call["id"] or part.get("id") or ""
        call["name"] = call["name"] or function.get("name") or ""
        call["arguments"] += function.get("arguments") or ""

    def response(self, latency_ms: float) -> ChatResponse:
        calls = [ToolCall(id=c["id"] or f"call_{i}", name=c["name"], args=parse_tool_args(c["arguments"]))
                 for i, c in sorted(self.calls.items())]
        return ChatResponse(content="".join(self.text), tool_calls=calls, usage=self.usage,
                            latency_ms=latency_ms, ttft_ms=self.ttft_ms, finish_reason=self.finish_reason)


class OpenAIProvider(HTTPProvider):
    """POST {base_url}/chat/completions with a Bearer key, when there is one (vLLM and Ollama need none)."""

    def __init__(self, provider_id: str, spec: ProviderSpec, retry: RetryPolicy | None = None) -> None:
        super().__init__(provider_id, spec, retry)
        default_url, self.default_key_env = _DEFAULTS.get(spec.type, _DEFAULTS["openai"])
        self.base_url = (spec.base_url or default_url).rstrip("/")

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def headers(self) -> dict[str, str]:
        key = self.api_key()
        return {**({"authorization": f"Bearer {key}"} if key else {}), **super().headers()}

    def body(self, request: ChatRequest) -> dict[str, Any]:
        messages = [{"role": "system", "content": request.system}] if request.system else []
        body: dict[str, Any] = {"model": self.model, "messages": messages + [_message(m) for m in request.messages]}
        if request.tools:
            body["tools"] = [_tool(t) for t in request.tools]
        sampling = {"temperature": request.temperature, "max_tokens": request.max_tokens,
                    "top_p": request.top_p, "seed": request.seed}
        body.update({k: v for k, v in sampling.items() if v is not None})
        if request.stream:
            body.update(stream=True, stream_options={"include_usage": True})
        return body

    async def _complete_once(self, request: ChatRequest) -> ChatResponse:
        data, latency = await self.post_json(self.url, self.body(request), self.headers())
        choice = _first_choice(data)
        message = choice.get("message") or {}
        calls = [ToolCall(id=c.get("id") or f"call_{i}", name=(c.get("function") or {}).get("name") or "",
                          args=parse_tool_args((c.get("function") or {}).get("arguments")))
                 for i, c in enumerate(message.get("tool_calls") or [])]
        return ChatResponse(content=message.get("content") or "", tool_calls=calls, usage=_usage(data.get("usage")),
                            latency_ms=latency, finish_reason=choice.get("finish_reason"))

    async def _complete_stream(self, request: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        state = _StreamState()
        done = False
        async with aclosing(self.stream_events(self.url, self.body(request), self.headers())) as events:
            async for _event, chunk, ms in events:
                if isinstance(chunk, dict):
                    state.feed(chunk, ms)
                done = done or chunk == DONE
        if not done and state.finish_reason is None:
            # The connection ended cleanly but early (a proxy's cut-off): a reply missing its end is no reply.
            raise RetryableError("stream ended before the reply was complete (no finish_reason, no [DONE])",
                                 "bad_response")
        return state.response((time.perf_counter() - started) * 1000)
