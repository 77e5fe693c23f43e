"""The HTTP client of the providers under load: aiohttp, behind the part of httpx.AsyncClient they use.

Measured at 400 requests/s against a 50 ms server (bench/README.md): httpx with its own pool (httpcore) polls every
pooled connection for every request and cannot keep up (seconds of queueing); httpx over an aiohttp transport keeps
up at 1.1 CPU-ms a request; aiohttp alone needs 0.6. The providers (engine/providers/http.py) only call
``post(url, json=, headers=)`` and ``stream("POST", url, json=, headers=)`` and read ``status_code``, ``headers``,
``text``, ``json()``, ``aread()`` and ``aiter_lines()``; that is what this client offers, raising httpx's
exceptions (ReadTimeout, ConnectError, ReadError), so the providers' code and their error classification are
unchanged. tests/integration/test_loadtest.py runs it against the wire-format fakes (JSON, SSE streams, 429, 5xx).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import aiohttp
import httpx


@contextmanager
def _as_httpx(reading: bool) -> Iterator[None]:
    """aiohttp's errors as the httpx ones the providers classify: a timeout, else a transport error."""
    try:
        yield
    except (aiohttp.ServerTimeoutError, TimeoutError) as exc:
        raise httpx.ReadTimeout(f"{type(exc).__name__}: {exc}") from None
    except aiohttp.ClientError as exc:
        raise (httpx.ReadError if reading else httpx.ConnectError)(f"{type(exc).__name__}: {exc}") from None


class LoadResponse:
    """A response as the providers read it (the httpx.Response subset)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response, self._body = response, b""
        self.status_code = response.status
        self.headers = response.headers  # case-insensitive, like httpx.Headers

    async def aread(self) -> bytes:
        with _as_httpx(reading=True):
            self._body = await self._response.read()
        return self._body

    @property
    def text(self) -> str:
        return self._body.decode(self._response.charset or "utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self._body)

    async def aiter_lines(self) -> AsyncIterator[str]:
        with _as_httpx(reading=True):
            async for line in self._response.content:
                yield line.decode("utf-8", errors="replace").rstrip("\r\n")


class LoadClient:
    """One aiohttp session with up to ``connections`` connections kept alive; requests time out after ``timeout``
    seconds without a connection or without bytes (the providers bound the whole call themselves)."""

    def __init__(self, connections: int, timeout: float) -> None:
        self.connections = connections
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.connections, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout,
                                                  cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def _send(self, method: str, url: str, payload: Any, headers: dict[str, str] | None) -> LoadResponse:
        with _as_httpx(reading=False):
            response = await self._client().request(method, url, data=json.dumps(payload).encode(),
                                                    headers={"content-type": "application/json", **(headers or {})},
                                                    allow_redirects=False)
        return LoadResponse(response)

    async def post(self, url: str, json: Any = None, headers: dict[str, str] | None = None) -> LoadResponse:
        response = await self._send("POST", url, json, headers)
        await response.aread()
        return response

    @asynccontextmanager
    async def stream(self, method: str, url: str, json: Any = None,
                     headers: dict[str, str] | None = None) -> AsyncIterator[LoadResponse]:
        response = await self._send(method, url, json, headers)
        try:
            yield response
        finally:
            response._response.release()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
