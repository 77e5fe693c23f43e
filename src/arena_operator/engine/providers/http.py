"""Shared plumbing of HTTP providers: one pooled async client, API keys from env, errors classified.

Every failure becomes a RetryableError (another attempt may work) or a ProviderError (final), with a kind:
retryable statuses (RETRYABLE_STATUS) are `rate_limited`, `overloaded` or `server_error`; 401/403 `auth_error`;
other 4xx `bad_request`; a hung or endless response `timeout`; a refused, reset or cut connection and a failed DNS
lookup `connection` (the message says which, naming the host); a body that is not the JSON it should be —
truncated, a proxy's HTML page, a stream event cut in the middle, a stream that ends before its end marker —
`bad_response`. Messages never carry the API key (`_redact`)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..durations import parse_duration
from ..egress import async_client
from ..errors import ProviderError
from ..spec import ProviderSpec
from ..types import ChatRequest, ChatResponse
from .base import RETRYABLE_STATUS, Provider, RetryableError, RetryPolicy, parse_retry_after


class HTTPProvider(Provider):
    """Base of providers spoken over HTTP. Subclasses build the request and parse the response."""

    default_base_url: str = ""
    default_key_env: str | None = None

    def __init__(self, provider_id: str, spec: ProviderSpec, retry: RetryPolicy | None = None) -> None:
        super().__init__(provider_id, spec, retry)
        self.base_url = (spec.base_url or self.default_base_url).rstrip("/")
        self.timeout = parse_duration(spec.timeout, 60.0)
        self._client: httpx.AsyncClient | None = None

    def key_env(self) -> str | None:
        """The name of the environment variable the key is read from (for messages: the name, never the value)."""
        return self.spec.credential.credential_env or self.spec.credential.api_key_env or self.default_key_env

    def api_key(self) -> str | None:
        """The key is read from the environment variable the config names; it is never stored or logged."""
        env = self.key_env()
        return os.environ.get(env) if env else None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            limits = httpx.Limits(max_connections=self.spec.rate_limit.max_concurrency or 100,
                                  max_keepalive_connections=20)
            self._client = async_client(timeout=httpx.Timeout(self.timeout), limits=limits)  # egress policy
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def headers(self) -> dict[str, str]:
        return {"content-type": "application/json", **self.spec.headers}

    def _raise_for(self, response: httpx.Response, body: str) -> None:
        status = response.status_code
        if status < 400:
            return
        detail = self._redact(_error_detail(body))
        if status in RETRYABLE_STATUS:
            kind = {429: "rate_limited", 529: "overloaded"}.get(status, "server_error")
            raise RetryableError(f"HTTP {status}: {detail}", kind, status,
                                 parse_retry_after(response.headers.get("retry-after")))
        kind = "auth_error" if status in (401, 403) else "bad_request"
        raise ProviderError(f"{self.id}: HTTP {status}: {detail}", kind, status)

    async def post_json(self, url: str, payload: dict[str, Any], headers: dict[str, str]) -> tuple[Any, float]:
        """POST and decode JSON; returns (body, latency ms). Transport failures are retryable."""
        started = time.perf_counter()
        try:
            response = await self.client.post(url, json=payload, headers=headers)
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from None
        self._raise_for(response, response.text)
        try:
            return response.json(), (time.perf_counter() - started) * 1000
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RetryableError(f"response is not JSON (truncated, or not from the API?): "
                                 f"{self._redact(response.text[:80])!r}", "bad_response",
                                 response.status_code) from None

    async def stream_events(
        self, url: str, payload: dict[str, Any], headers: dict[str, str]
    ) -> AsyncIterator[tuple[str | None, Any, float]]:
        """POST and yield server-sent events as (event name, decoded data, ms since request)."""
        started = time.perf_counter()
        try:
            async with self.client.stream("POST", url, json=payload, headers=headers) as response:
                if response.status_code >= 400:
                    self._raise_for(response, (await response.aread()).decode(errors="replace"))
                event: str | None = None
                async for line in response.aiter_lines():
                    if not line:
                        event = None
                        continue
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data = line[5:].strip()
                        if data == "[DONE]":
                            yield event, DONE, (time.perf_counter() - started) * 1000
                            return
                        try:
                            decoded = json.loads(data)
                        except json.JSONDecodeError:
                            # A dropped event is a reply silently missing a piece: try again instead.
                            raise RetryableError(f"stream event is not JSON (cut short?): "
                                                 f"{self._redact(data[:80])!r}", "bad_response") from None
                        yield event, decoded, (time.perf_counter() - started) * 1000
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from None

    def _transport_error(self, exc: httpx.TransportError) -> RetryableError:
        """What went wrong on the wire, in words, with the host it went wrong with (never the URL's path or query)."""
        where = _host_of(self.base_url)
        if isinstance(exc, httpx.TimeoutException):
            return RetryableError(f"timeout after {self.timeout:g}s waiting for {where} ({type(exc).__name__})",
                                  "timeout")
        cause = _root_cause(exc)
        detail = self._redact(str(cause) or type(cause).__name__)
        if isinstance(cause, socket.gaierror):
            message = f"cannot resolve host {where.rsplit(':', 1)[0]!r} (DNS: {detail})"
        elif isinstance(cause, ConnectionRefusedError):
            message = f"connection to {where} refused (nothing listening there?)"
        elif isinstance(exc, httpx.ConnectError):
            message = f"cannot connect to {where}: {detail}"
        elif isinstance(exc, httpx.RemoteProtocolError):
            message = f"connection to {where} closed before the response was complete: {detail}"
        elif isinstance(exc, httpx.ReadError):
            message = f"connection to {where} reset while reading the response: {detail}"
        else:
            message = f"connection to {where} failed: {type(exc).__name__}: {detail}"
        return RetryableError(message, "connection")

    def _redact(self, text: str) -> str:
        """Servers and proxies sometimes echo the key in their error message; it must not reach a report."""
        key = self.api_key()
        return text.replace(key, "***") if key else text

    async def _complete(self, request: ChatRequest) -> ChatResponse:
        """One attempt, bounded as a whole: httpx's timeout is per read, and a stream of pings never ends."""
        try:
            async with asyncio.timeout(self.timeout):
                if request.stream:
                    return await self._complete_stream(request)
                return await self._complete_once(request)
        except TimeoutError:
            raise RetryableError(f"no complete response from {_host_of(self.base_url)} within {self.timeout:g}s",
                                 "timeout") from None

    async def _complete_once(self, request: ChatRequest) -> ChatResponse:
        raise NotImplementedError

    async def _complete_stream(self, request: ChatRequest) -> ChatResponse:
        raise NotImplementedError


DONE = "[DONE]"  # stream_events yields it as the data of OpenAI's end marker, then stops


def _host_of(base_url: str) -> str:
    """host:port of a base URL, without user info (which may hold a credential)."""
    parts = urlsplit(base_url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return f"{parts.hostname or base_url}:{port}" if port else str(parts.hostname or base_url)


def _root_cause(exc: BaseException) -> BaseException:
    """The OS error under httpx's and httpcore's wrappers (a refused connection, a failed lookup)."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    return exc


def _error_detail(body: str) -> str:
    """The provider's own error message, short; request bodies and headers are never echoed."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, ValueError):
        return body[:200].strip() or "no body"
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            return str(err.get("message") or err.get("type") or err)[:200]
        return str(err)[:200]
    return str(data)[:200]
