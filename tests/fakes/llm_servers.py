"""A real local HTTP server speaking the OpenAI, Anthropic and Gemini wire formats, for tests.

One aiohttp server on 127.0.0.1 (free port) answers all three APIs:

    OpenAI chat completions  POST /v1/chat/completions                 base_url = server.openai_url
    Anthropic messages       POST /v1/messages                         base_url = server.url
    Gemini                   POST /v1beta/models/{model}:generateContent, :streamGenerateContent?alt=sse
                                                                       base_url = server.url

Replies are scripted per test (`server.script(Reply(...), ...)`) and consumed in arrival order; once the script
is empty, `responder` answers — by default deterministically from the last user message ("echo: <text>"), so
the server doubles as a general OpenAI-compatible endpoint. Every request is recorded (`server.requests`), and
the peak number of requests in flight is kept (`server.max_in_flight`).

    async with FakeLLMServer() as server:
        server.script(Reply(status=429, headers={"Retry-After": "1"}), Reply("hello"))
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Event = tuple[str | None, Any]  # (SSE event name, data: a JSON-able value or a raw string)


@dataclass
class FakeCall:
    """A tool call the fake model makes. `args` given as a string is sent verbatim (e.g. malformed JSON)."""

    name: str
    args: dict[str, Any] | str = field(default_factory=dict)
    thought_signature: str | None = None  # Gemini only

    def args_text(self) -> str:
        return self.args if isinstance(self.args, str) else json.dumps(self.args)

    def args_object(self) -> dict[str, Any]:
        return json.loads(self.args) if isinstance(self.args, str) else self.args


@dataclass
class Reply:
    """One scripted answer: a text and/or tool calls, or an HTTP error (`status` >= 400), after `delay` s."""

    text: str = ""
    tool_calls: list[FakeCall] = field(default_factory=list)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error: str = "scripted error"
    delay: float = 0.0
    usage: tuple[int, int] | None = None  # (input, output); estimated from the texts when None
    stream_error: str | None = None  # Anthropic streams: end with an `error` event of this type


@dataclass
class Recorded:
    """One request as the server received it; header names are lower-cased."""

    api: str  # openai | anthropic | gemini
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def stream(self) -> bool:
        if self.api == "gemini":
            return self.path.endswith(":streamGenerateContent")
        return self.body.get("stream") is True

    def last_user_text(self) -> str:
        if self.api == "gemini":
            turns = [c.get("parts") or [] for c in self.body.get("contents") or [] if c.get("role") == "user"]
        else:
            turns = [m.get("content") for m in self.body.get("messages") or [] if m.get("role") == "user"]
        return _text_of(turns[-1]) if turns else ""


def _text_of(content: Any) -> str:
    """A message's text: a plain string, or the text parts/blocks of a list."""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict))


def echo(request: Recorded) -> Reply:
    """The default responder: deterministic, so any conversation can run against the server."""
    return Reply(text=f"echo: {request.last_user_text()}")


def _estimate(text: str) -> int:
    return max(1, len(text) // 4)


def _usage(request: Recorded, reply: Reply) -> tuple[int, int]:
    if reply.usage is not None:
        return reply.usage
    calls = "".join(c.name + c.args_text() for c in reply.tool_calls)
    return _estimate(json.dumps(request.body)), _estimate(reply.text + calls)


def _words(text: str) -> list[str]:
    return re.findall(r"\S+\s*", text)


def _halves(text: str) -> list[str]:
    return [text[: len(text) // 2], text[len(text) // 2 :]]


_ANTHROPIC_ERRORS = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                     404: "not_found_error", 429: "rate_limit_error", 529: "overloaded_error"}
_GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                  429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}


def _error_body(api: str, reply: Reply) -> dict[str, Any]:
    if api == "anthropic":
        return {"type": "error", "error": {"type": _ANTHROPIC_ERRORS.get(reply.status, "api_error"),
                                           "message": reply.error}}
    if api == "gemini":
        return {"error": {"code": reply.status, "message": reply.error,
                          "status": _GOOGLE_STATUS.get(reply.status, "INTERNAL")}}
    return {"error": {"message": reply.error, "type": "invalid_request_error" if reply.status < 500 else "server_error",
                      "param": None, "code": None}}


class _Wire:
    """Builds one API's replies, whole and as SSE events. Tool call ids come from the server's counter."""

    def __init__(self, ids: itertools.count[int]) -> None:
        self._ids = ids

    def call_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"

    # OpenAI chat completions

    def openai_json(self, request: Recorded, reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": self.call_id("call_fake_"), "type": "function",
                 "function": {"name": c.name, "arguments": c.args_text()}} for c in reply.tool_calls]
        prompt, completion = _usage(request, reply)
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                "model": request.body.get("model"),
                "choices": [{"index": 0, "message": message,
                             "finish_reason": "tool_calls" if reply.tool_calls else "stop"}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                          "total_tokens": prompt + completion}}

    def openai_events(self, request: Recorded, reply: Reply) -> list[Event]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> Event:
            return None, {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                          "model": request.body.get("model"),
                          "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": word}) for word in _words(reply.text)]
        for index, call in enumerate(reply.tool_calls):
            head = {"index": index, "id": self.call_id("call_fake_"), "type": "function",
                    "function": {"name": call.name, "arguments": ""}}
            events.append(chunk({"tool_calls": [head]}))
            events += [chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                       for piece in _halves(call.args_text())]
        events.append(chunk({}, "tool_calls" if reply.tool_calls else "stop"))
        if (request.body.get("stream_options") or {}).get("include_usage"):
            prompt, completion = _usage(request, reply)
            events.append((None, {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "choices": [],
                                  "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                            "total_tokens": prompt + completion}}))
        return [*events, (None, "[DONE]")]

    # Anthropic messages

    def anthropic_json(self, request: Recorded, reply: Reply) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
        content += [{"type": "tool_use", "id": self.call_id("toolu_fake_"), "name": c.name,
                     "input": c.args_object()} for c in reply.tool_calls]
        prompt, completion = _usage(request, reply)
        return {"id": "msg_fake", "type": "message", "role": "assistant", "model": request.body.get("model"),
                "content": content, "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
                "stop_sequence": None, "usage": {"input_tokens": prompt, "output_tokens": completion}}

    def anthropic_events(self, request: Recorded, reply: Reply) -> list[Event]:
        prompt, completion = _usage(request, reply)
        message = {"id": "msg_fake", "type": "message", "role": "assistant", "model": request.body.get("model"),
                   "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": prompt, "output_tokens": 1}}
        events: list[Event] = [("message_start", {"type": "message_start", "message": message}),
                               ("ping", {"type": "ping"})]
        if reply.stream_error:
            error = {"type": reply.stream_error, "message": reply.error}
            return [*events, ("error", {"type": "error", "error": error})]
        blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        if reply.text:
            blocks.append(({"type": "text", "text": ""},
                           [{"type": "text_delta", "text": w} for w in _words(reply.text)]))
        for call in reply.tool_calls:
            start = {"type": "tool_use", "id": self.call_id("toolu_fake_"), "name": call.name, "input": {}}
            blocks.append((start, [{"type": "input_json_delta", "partial_json": p}
                                   for p in _halves(call.args_text())]))
        for index, (start, deltas) in enumerate(blocks):
            events.append(("content_block_start",
                           {"type": "content_block_start", "index": index, "content_block": start}))
            events += [("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
                       for d in deltas]
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        stop = "tool_use" if reply.tool_calls else "end_turn"
        return [*events,
                ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                   "usage": {"output_tokens": completion}}),
                ("message_stop", {"type": "message_stop"})]

    # Gemini generateContent

    @staticmethod
    def _gemini_call(call: FakeCall) -> dict[str, Any]:
        part: dict[str, Any] = {"functionCall": {"name": call.name, "args": call.args_object()}}
        if call.thought_signature:
            part["thoughtSignature"] = call.thought_signature
        return part

    @staticmethod
    def _gemini_chunk(parts: list[dict[str, Any]], usage: dict[str, int], finish: str | None) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "fake"}

    def gemini_json(self, request: Recorded, reply: Reply) -> dict[str, Any]:
        parts = [{"text": reply.text}] if reply.text else []
        parts += [self._gemini_call(c) for c in reply.tool_calls]
        prompt, completion = _usage(request, reply)
        usage = {"promptTokenCount": prompt, "candidatesTokenCount": completion, "totalTokenCount": prompt + completion}
        return self._gemini_chunk(parts, usage, "STOP")

    def gemini_events(self, request: Recorded, reply: Reply) -> list[Event]:
        prompt, completion = _usage(request, reply)
        partial = {"promptTokenCount": prompt, "totalTokenCount": prompt}
        events: list[Event] = [(None, self._gemini_chunk([{"text": w}], partial, None)) for w in _words(reply.text)]
        final = {"promptTokenCount": prompt, "candidatesTokenCount": completion,
                 "totalTokenCount": prompt + completion}
        return [*events, (None, self._gemini_chunk([self._gemini_call(c) for c in reply.tool_calls], final, "STOP"))]


def _sse(event: str | None, data: Any) -> bytes:
    head = f"event: {event}\n" if event else ""
    payload = data if isinstance(data, str) else json.dumps(data)
    return f"{head}data: {payload}\n\n".encode()


class FakeLLMServer:
    """See the module docstring. Start and stop it with `async with`."""

    def __init__(self, responder: Callable[[Recorded], Reply] = echo, chunk_delay: float = 0.02) -> None:
        self.responder = responder
        self.chunk_delay = chunk_delay
        self.requests: list[Recorded] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._script: deque[Reply] = deque()
        self._wire = _Wire(itertools.count(1))
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    def script(self, *replies: Reply) -> None:
        self._script.extend(replies)

    async def __aenter__(self) -> FakeLLMServer:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/v1/messages", self._anthropic)
        app.router.add_post("/v1beta/models/{target}", self._gemini)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stopping.set()  # wakes handlers still delaying, so shutdown does not wait for them
        if self._runner is not None:
            await self._runner.cleanup()

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "openai")

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "anthropic")

    async def _gemini(self, request: web.Request) -> web.StreamResponse:
        if not request.match_info["target"].endswith((":generateContent", ":streamGenerateContent")):
            raise web.HTTPNotFound()
        return await self._handle(request, "gemini")

    async def _handle(self, request: web.Request, api: str) -> web.StreamResponse:
        recorded = Recorded(api, request.path, dict(request.query),
                            {k.lower(): v for k, v in request.headers.items()}, await request.json())
        self.requests.append(recorded)
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            reply = self._script.popleft() if self._script else self.responder(recorded)
            if reply.delay:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), reply.delay)
            if reply.status >= 400:
                return web.json_response(_error_body(api, reply), status=reply.status, headers=reply.headers)
            if recorded.stream:
                return await self._stream(request, getattr(self._wire, f"{api}_events")(recorded, reply), reply)
            return web.json_response(getattr(self._wire, f"{api}_json")(recorded, reply), headers=reply.headers)
        finally:
            self._in_flight -= 1

    async def _stream(self, request: web.Request, events: list[Event], reply: Reply) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream", **reply.headers})
        await response.prepare(request)
        for index, (event, data) in enumerate(events):
            if index:
                await asyncio.sleep(self.chunk_delay)
            await response.write(_sse(event, data))
        await response.write_eof()
        return response
