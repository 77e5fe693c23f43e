"""Anthropic Messages API: content blocks, tool_use / tool_result, and its typed SSE events."""

from __future__ import annotations

import time
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from ..errors import ProviderError
from ..types import ChatRequest, ChatResponse, Message, ToolCall, Usage
from .base import RetryableError
from .http import HTTPProvider
from .media_wire import claude_blocks, claude_tool_content
from .openai import parse_tool_args

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024  # the Messages API requires max_tokens
# Error types a stream may end with that are worth another attempt; others are final.
_RETRYABLE_STREAM_ERRORS = {"overloaded_error": "overloaded", "api_error": "server_error",
                            "rate_limit_error": "rate_limited"}


def _blocks(message: Message) -> list[dict[str, Any]]:
    """Anthropic rejects empty text blocks, so text is only sent when there is some."""
    if message.role == "tool" and message.tool_result is not None:
        result = message.tool_result
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": result.call_id,
                                 "content": claude_tool_content(message)}
        return [{**block, "is_error": True}] if result.error else [block]
    blocks = claude_blocks(message) or ([{"type": "text", "text": message.content}] if message.content else [])
    if message.role == "assistant":
        blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.args} for c in message.tool_calls]
    return blocks


def _messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Tool results travel as user messages; consecutive same-role messages merge, since every
    tool_result answering one assistant turn must sit in the single user message that follows it."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


def _usage(data: Any) -> Usage:
    """Input counts cache writes and reads too: they are prompt tokens all the same."""
    if not isinstance(data, dict):
        return Usage()
    prompt = sum(int(data.get(k) or 0)
                 for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
    return Usage(input_tokens=prompt, output_tokens=int(data.get("output_tokens") or 0))


@dataclass
class _Reply:
    """Content blocks by index: filled whole from a JSON reply, or piece by piece from stream events."""

    blocks: dict[int, dict[str, Any]] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    ttft_ms: float | None = None

    def feed(self, data: dict[str, Any], ms: float) -> None:
        kind = data.get("type")
        if kind == "message_start":
            self.usage = _usage((data.get("message") or {}).get("usage"))
        elif kind == "content_block_start":
            block = dict(data.get("content_block") or {})
            self.blocks[int(data.get("index") or 0)] = {**block, "partial_json": ""}
            if block.get("type") == "tool_use" or block.get("text"):
                self._first(ms)
        elif kind == "content_block_delta":
            self._delta(self.blocks.setdefault(int(data.get("index") or 0), {}), data.get("delta") or {}, ms)
        elif kind == "message_delta":
            self._message_delta(data)

    def _first(self, ms: float) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = ms

    def _delta(self, block: dict[str, Any], delta: dict[str, Any], ms: float) -> None:
        if delta.get("type") == "text_delta" and delta.get("text"):
            block["text"] = block.get("text", "") + delta["text"]
            self._first(ms)
        elif delta.get("type") == "input_json_delta":
            block["partial_json"] = block.get("partial_json", "") + (delta.get("partial_json") or "")

    def _message_delta(self, data: dict[str, Any]) -> None:
        self.finish_reason = (data.get("delta") or {}).get("stop_reason") or self.finish_reason
        usage = data.get("usage") or {}
        if "output_tokens" in usage:
            self.usage.output_tokens = int(usage["output_tokens"] or 0)
        if "input_tokens" in usage:
            self.usage.input_tokens = _usage(usage).input_tokens

    def response(self, latency_ms: float) -> ChatResponse:
        blocks = [b for _, b in sorted(self.blocks.items())]
        text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        calls = [ToolCall(id=b.get("id", ""), name=b.get("name", ""),
                          args=parse_tool_args(b["partial_json"]) if b.get("partial_json") else b.get("input") or {})
                 for b in blocks if b.get("type") == "tool_use"]
        return ChatResponse(content=text, tool_calls=calls, usage=self.usage, latency_ms=latency_ms,
                            ttft_ms=self.ttft_ms, finish_reason=self.finish_reason)


class ClaudeProvider(HTTPProvider):
    """POST {base_url}/v1/messages with `x-api-key` and a pinned `anthropic-version`."""

    default_base_url = "https://api.anthropic.com"
    default_key_env = "ANTHROPIC_API_KEY"

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1/messages"

    def headers(self) -> dict[str, str]:
        key = self.api_key()
        auth = {"x-api-key": key} if key else {}
        return {**auth, "anthropic-version": ANTHROPIC_VERSION, **super().headers()}

    def body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
                                "messages": _messages(request.messages)}
        if request.system:
            body["system"] = request.system
        if request.tools:
            body["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.input_schema}
                             for t in request.tools]
        sampling = {"temperature": request.temperature, "top_p": request.top_p}
        body.update({k: v for k, v in sampling.items() if v is not None})
        if request.stream:
            body["stream"] = True
        return body

    async def _complete_once(self, request: ChatRequest) -> ChatResponse:
        data, latency = await self.post_json(self.url, self.body(request), self.headers())
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            raise RetryableError("response has no content", "bad_response")
        state = _Reply(blocks={i: {**b, "partial_json": ""} for i, b in enumerate(data["content"])},
                             usage=_usage(data.get("usage")), finish_reason=data.get("stop_reason"))
        return state.response(latency)

    async def _complete_stream(self, request: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        state = _Reply()
        stopped = False
        async with aclosing(self.stream_events(self.url, self.body(request), self.headers())) as events:
            async for _event, data, ms in events:
                if not isinstance(data, dict):
                    continue
                if data.get("type") == "error":
                    raise self._stream_error(data.get("error") or {})
                stopped = stopped or data.get("type") == "message_stop"
                state.feed(data, ms)
        if not stopped:
            raise RetryableError("stream ended before the reply was complete (no message_stop)", "bad_response")
        return state.response((time.perf_counter() - started) * 1000)

    def _stream_error(self, error: dict[str, Any]) -> Exception:
        """An `error` event arrives after a 200: overloaded and server errors are transient."""
        error_type = str(error.get("type") or "error")
        message = f"stream error {error_type}: {str(error.get('message') or '')[:200]}"
        kind = _RETRYABLE_STREAM_ERRORS.get(error_type)
        if kind is not None:
            return RetryableError(message, kind)
        return ProviderError(f"{self.id}: {message}", "provider_error")
