"""Google Gemini generateContent: contents of parts, functionCall / functionResponse, usageMetadata."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import OrderedDict
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from ..spec import ProviderSpec
from ..types import ChatRequest, ChatResponse, Message, ToolCall, ToolDefinition, ToolResult, Usage
from .base import RetryableError, RetryPolicy
from .http import HTTPProvider
from .media_wire import gemini_parts, gemini_tool_response

_KEY_ENVS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
SIGNATURE_CAPACITY = 4096


def _function_response(result: ToolResult) -> dict[str, Any]:
    """`response` must be an object: errors go under "error", a JSON object as is, anything else under "output"."""
    if result.error:
        payload: dict[str, Any] = {"error": result.error}
    else:
        try:
            value = json.loads(result.content)
        except json.JSONDecodeError:
            value = result.content
        payload = value if isinstance(value, dict) else {"output": value}
    return {"functionResponse": {"name": result.name, "response": payload}}


def _declaration(tool: ToolDefinition) -> dict[str, Any]:
    """parametersJsonSchema takes JSON Schema as is (`parameters` rejects e.g. additionalProperties)."""
    return {"name": tool.name, "description": tool.description, "parametersJsonSchema": tool.input_schema}


def _digests(system: str, messages: list[Message]) -> list[str]:
    """digests[i] identifies the conversation before messages[i]; digests[-1] the whole request."""
    running = hashlib.sha256(system.encode())
    out = [running.hexdigest()]
    for m in messages:
        canonical = [m.role, m.content, [c.to_dict() for c in m.tool_calls],
                     m.tool_result.to_dict() if m.tool_result else None]
        running.update(json.dumps(canonical, sort_keys=True, default=str).encode())
        out.append(running.hexdigest())
    return out


def _usage(data: Any) -> Usage:
    """Thinking tokens are billed as output, so they count as output."""
    if not isinstance(data, dict):
        return Usage()
    output = int(data.get("candidatesTokenCount") or 0) + int(data.get("thoughtsTokenCount") or 0)
    return Usage(input_tokens=int(data.get("promptTokenCount") or 0), output_tokens=output)


class _Signatures:
    """Gemini 3 rejects a replayed functionCall without the thoughtSignature it came with, and ToolCall has
    no slot for one; so they are kept here (bounded), keyed by the digest of the conversation before the turn."""

    def __init__(self, capacity: int = SIGNATURE_CAPACITY) -> None:
        self._items: OrderedDict[str, list[str | None]] = OrderedDict()
        self._capacity = capacity

    def put(self, key: str, signatures: list[str | None]) -> None:
        if not any(signatures):
            return
        self._items[key] = signatures
        self._items.move_to_end(key)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def get(self, key: str) -> list[str | None]:
        return self._items.get(key, [])


@dataclass
class _Reply:
    """One reply, fed whole (generateContent) or chunk by chunk (streamGenerateContent).
    Gemini has no call ids, so calls are numbered on from those earlier in the conversation."""

    next_call: int
    text: list[str] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    signatures: list[str | None] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    ttft_ms: float | None = None

    def feed(self, chunk: dict[str, Any], ms: float | None = None) -> None:
        if chunk.get("error"):
            raise RetryableError(f"stream error: {chunk['error']}"[:300], "server_error")
        if chunk.get("usageMetadata"):
            self.usage = _usage(chunk["usageMetadata"])
        candidates = chunk.get("candidates") or []
        if not candidates:
            self.finish_reason = (chunk.get("promptFeedback") or {}).get("blockReason") or self.finish_reason
            return
        for part in (candidates[0].get("content") or {}).get("parts") or []:
            if self._part(part) and self.ttft_ms is None:
                self.ttft_ms = ms
        self.finish_reason = candidates[0].get("finishReason") or self.finish_reason

    def _part(self, part: dict[str, Any]) -> bool:
        """Adds a text or functionCall part (thought summaries are skipped); True when it was content."""
        if part.get("thought"):
            return False
        if isinstance(part.get("functionCall"), dict):
            call = part["functionCall"]
            call_id = call.get("id") or f"call_{self.next_call + len(self.calls)}"
            self.calls.append(ToolCall(id=call_id, name=call.get("name") or "", args=dict(call.get("args") or {})))
            self.signatures.append(part.get("thoughtSignature"))
            return True
        if part.get("text"):
            self.text.append(part["text"])
            return True
        return False

    def response(self, latency_ms: float) -> ChatResponse:
        return ChatResponse(content="".join(self.text), tool_calls=self.calls, usage=self.usage,
                            latency_ms=latency_ms, ttft_ms=self.ttft_ms, finish_reason=self.finish_reason)


class GeminiProvider(HTTPProvider):
    """POST {base_url}/v1beta/models/{model}:generateContent with the key in `x-goog-api-key`."""

    default_base_url = "https://generativelanguage.googleapis.com"

    def __init__(self, provider_id: str, spec: ProviderSpec, retry: RetryPolicy | None = None) -> None:
        super().__init__(provider_id, spec, retry)
        self._signatures = _Signatures()

    def api_key(self) -> str | None:
        """The configured env var; else GEMINI_API_KEY, then GOOGLE_API_KEY (both are Google's conventions)."""
        if self.spec.credential.credential_env or self.spec.credential.api_key_env:
            return super().api_key()
        return next((os.environ[env] for env in _KEY_ENVS if os.environ.get(env)), None)

    def url(self, stream: bool) -> str:
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{self.base_url}/v1beta/models/{self.model.removeprefix('models/')}:{method}"

    def headers(self) -> dict[str, str]:
        key = self.api_key()
        return {**({"x-goog-api-key": key} if key else {}), **super().headers()}

    def body(self, request: ChatRequest, digests: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"contents": self._contents(request.messages, digests)}
        if request.system:
            body["systemInstruction"] = {"parts": [{"text": request.system}]}
        if request.tools:
            body["tools"] = [{"functionDeclarations": [_declaration(t) for t in request.tools]}]
        config = {"temperature": request.temperature, "maxOutputTokens": request.max_tokens,
                  "topP": request.top_p, "seed": request.seed}
        if any(v is not None for v in config.values()):
            body["generationConfig"] = {k: v for k, v in config.items() if v is not None}
        return body

    def _contents(self, messages: list[Message], digests: list[str]) -> list[dict[str, Any]]:
        """Roles are user/model; tool results are user functionResponse parts, merged per turn like the calls."""
        contents: list[dict[str, Any]] = []
        for i, message in enumerate(messages):
            role = "model" if message.role == "assistant" else "user"
            parts = self._parts(message, self._signatures.get(digests[i]))
            if not parts:
                continue
            if contents and contents[-1]["role"] == role:
                contents[-1]["parts"].extend(parts)
            else:
                contents.append({"role": role, "parts": parts})
        return contents

    @staticmethod
    def _parts(message: Message, signatures: list[str | None]) -> list[dict[str, Any]]:
        if message.role == "tool" and message.tool_result is not None:
            return [gemini_tool_response(message, _function_response(message.tool_result))]
        parts = gemini_parts(message) or ([{"text": message.content}] if message.content else [])
        for i, call in enumerate(message.tool_calls):
            part: dict[str, Any] = {"functionCall": {"name": call.name, "args": call.args}}
            if i < len(signatures) and signatures[i]:
                part["thoughtSignature"] = signatures[i]
            parts.append(part)
        return parts

    def _reply(self, request: ChatRequest) -> _Reply:
        earlier = sum(len(m.tool_calls) for m in request.messages if m.role == "assistant")
        return _Reply(next_call=earlier + 1)

    async def _complete_once(self, request: ChatRequest) -> ChatResponse:
        digests = _digests(request.system, request.messages)
        data, latency = await self.post_json(self.url(stream=False), self.body(request, digests), self.headers())
        if not isinstance(data, dict):
            raise RetryableError("response is not a JSON object", "bad_response")
        reply = self._reply(request)
        reply.feed(data)
        self._signatures.put(digests[-1], reply.signatures)
        return reply.response(latency)

    async def _complete_stream(self, request: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        digests = _digests(request.system, request.messages)
        reply = self._reply(request)
        async with aclosing(self.stream_events(self.url(stream=True), self.body(request, digests),
                                               self.headers())) as events:
            async for _event, chunk, ms in events:
                if isinstance(chunk, dict):
                    reply.feed(chunk, ms)
        self._signatures.put(digests[-1], reply.signatures)
        return reply.response((time.perf_counter() - started) * 1000)
