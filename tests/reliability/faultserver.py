"""A fault-injecting OpenAI chat server for the provider reliability tests: real aiohttp on 127.0.0.1 (a free port),
started and stopped by the test, answering POST /v1/chat/completions (JSON and SSE streams) per a script.

    async with FaultServer(seed) as server:
        server.script(Fault.status(429, retry_after="2"), Fault.reset(), Fault.truncated_json())  # then answers
        server.default = Fault.status(503)    # "down": every request past the script

Each request takes the next scripted fault; when the script is empty, `default` answers (a normal reply unless
set). Faults: an HTTP status with Retry-After in seconds or as an HTTP date (computed when sent), a hang (no
answer for `hang` seconds, or until the server stops), a slow stream (`chunk_delay` between SSE events), a TCP
reset (RST, SO_LINGER 0) before any byte or after part of the body, a connection closed cleanly mid-body, a
complete response whose JSON is cut short, a stream cut before its end marker, a stream event of broken JSON.

Every request is logged as a Hit: when it arrived (monotonic and wall clock), what answered it, and for a
Retry-After the wall-clock instant the header designated — what the tests measure the client's delays against.
`seed` jitters each answer by up to 10 ms, so every timing seed interleaves concurrent requests differently.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import random
import socket
import struct
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Fault:
    """One scripted answer. Build them with the class methods."""

    name: str = "ok"
    status: int = 200
    retry_after: str | None = None  # "2" (seconds), or "date:2" (an HTTP date 2 s after the answer is sent)
    hang: float = 0.0  # seconds before answering; float("inf"): until the server stops
    reset: int | None = None  # bytes of body written before a TCP RST (0: before the status line)
    cut: int | None = None  # bytes of body written before a clean close, the body declared longer
    body: str | None = None  # a raw body instead of the reply (truncated JSON)
    chunk_delay: float = 0.0  # streams: seconds between events
    stream_end: bool = True  # streams: send finish_reason and [DONE]
    bad_event: bool = False  # streams: one event of cut JSON in the middle
    text: str = "hello from the fault server"
    message: str = "scripted failure"

    @classmethod
    def ok(cls, text: str = "hello from the fault server") -> Fault:
        return cls(text=text)

    @classmethod
    def error(cls, status: int, retry_after: str | None = None, message: str = "scripted failure") -> Fault:
        return cls(f"http {status}", status, retry_after=retry_after, message=message)

    @classmethod
    def stall(cls, seconds: float = float("inf")) -> Fault:
        return cls("hang", hang=seconds)

    @classmethod
    def slow_stream(cls, chunk_delay: float, text: str = "one two three four five six") -> Fault:
        return cls("slow stream", chunk_delay=chunk_delay, text=text)

    @classmethod
    def rst(cls, after_bytes: int = 0) -> Fault:
        return cls("reset mid-body" if after_bytes else "reset", reset=after_bytes)

    @classmethod
    def closed_mid_body(cls, after_bytes: int = 20) -> Fault:
        return cls("closed mid-body", cut=after_bytes)

    @classmethod
    def truncated_json(cls) -> Fault:
        whole = json.dumps(_completion("never seen", "gpt-test"))
        return cls("truncated json", body=whole[: len(whole) // 2])

    @classmethod
    def cut_stream(cls) -> Fault:
        return cls("stream cut before its end", stream_end=False)

    @classmethod
    def broken_event(cls) -> Fault:
        return cls("stream event of broken json", bad_event=True)


@dataclass
class Hit:
    """One request as the server saw it."""

    at: float  # time.monotonic() on arrival
    wall: float  # time.time() on arrival
    fault: Fault
    stream: bool
    authorization: str | None
    retry_at: float | None = None  # wall clock the Retry-After designated (seconds: arrival + answer delay + n)
    answered_at: float | None = None  # time.monotonic() when the fault's answer (or reset) went out


def _completion(text: str, model: str) -> dict[str, Any]:
    return {"id": "chatcmpl-fault", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": max(1, len(text) // 4),
                      "total_tokens": 10 + max(1, len(text) // 4)}}


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {"id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(body)}\n\n".encode()


def _kill(request: web.Request, rst: bool) -> None:
    """Drop the connection: with RST (the peer sees ECONNRESET) or a plain close (it sees EOF)."""
    transport = request.transport
    assert transport is not None
    if rst:
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()


class FaultServer:
    """See the module docstring."""

    def __init__(self, seed: int = 0, jitter: float = 0.01) -> None:
        self.rng = random.Random(seed)
        self.jitter = jitter
        self.default = Fault.ok()
        self.hits: list[Hit] = []
        self._script: deque[Fault] = deque()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (`…/v1`) to give a provider."""
        return f"{self.url}/v1"

    def script(self, *faults: Fault) -> None:
        self._script.extend(faults)

    def fail_first(self, count: int, fault: Fault) -> None:
        """The next `count` requests get `fault`."""
        self.script(*[fault] * count)

    def gaps(self) -> list[float]:
        """Seconds between each request's answer going out and the next request arriving."""
        return [b.at - (a.answered_at or a.at) for a, b in zip(self.hits, self.hits[1:], strict=False)]

    async def __aenter__(self) -> FaultServer:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stopping.set()  # wakes hanging handlers, so shutdown does not wait for them
        if self._runner is not None:
            await self._runner.cleanup()

    async def _pause(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), None if seconds == float("inf") else seconds)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        payload = await request.json()
        fault = self._script.popleft() if self._script else self.default
        hit = Hit(time.monotonic(), time.time(), fault, payload.get("stream") is True,
                  request.headers.get("authorization"))
        self.hits.append(hit)
        await self._pause(fault.hang + self.rng.uniform(0, self.jitter))
        if self._stopping.is_set():
            raise web.HTTPServiceUnavailable()
        try:
            return await self._answer(request, fault, hit, str(payload.get("model") or ""))
        finally:
            hit.answered_at = time.monotonic()

    async def _answer(self, request: web.Request, fault: Fault, hit: Hit, model: str) -> web.StreamResponse:
        if fault.reset == 0:
            _kill(request, rst=True)
            raise asyncio.CancelledError  # nothing more to send on a dead connection
        if fault.status >= 400:
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"], hit.retry_at = self._retry_after(fault.retry_after)
            body = {"error": {"message": fault.message, "type": "server_error" if fault.status >= 500 else
                              "invalid_request_error", "param": None, "code": None}}
            return web.json_response(body, status=fault.status, headers=headers)
        if fault.reset is not None or fault.cut is not None:
            return await self._break_body(request, fault, model)
        if fault.body is not None:
            return web.Response(text=fault.body, content_type="application/json")
        if hit.stream:
            return await self._stream(request, fault, model)
        return web.json_response(_completion(fault.text, model))

    def _retry_after(self, value: str) -> tuple[str, float]:
        """The header, and the wall-clock instant it designates."""
        if value.startswith("date:"):
            header = email.utils.formatdate(time.time() + float(value[5:]), usegmt=True)
            return header, email.utils.parsedate_to_datetime(header).timestamp()
        return value, time.time() + float(value)

    async def _break_body(self, request: web.Request, fault: Fault, model: str) -> web.StreamResponse:
        whole = json.dumps(_completion(fault.text, model)).encode()
        sent = fault.reset if fault.reset is not None else fault.cut or 0
        response = web.StreamResponse(headers={"content-type": "application/json"})
        response.content_length = len(whole)
        await response.prepare(request)
        await response.write(whole[:sent])
        await asyncio.sleep(0.02)  # the first bytes reach the client before the connection dies
        _kill(request, rst=fault.reset is not None)
        raise asyncio.CancelledError

    async def _stream(self, request: web.Request, fault: Fault, model: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        words = fault.text.split()
        await response.write(_chunk(model, {"role": "assistant", "content": ""}))
        for index, word in enumerate(words):
            await self._pause(fault.chunk_delay)
            if fault.bad_event and index == len(words) // 2:
                await response.write(b'data: {"id": "chatcmpl-fault", "choices": [{"delta": {"cont\n\n')
            await response.write(_chunk(model, {"content": word + (" " if index < len(words) - 1 else "")}))
        if fault.stream_end:
            await response.write(_chunk(model, {}, "stop"))
            await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response
