"""The HTTP client of the providers under load: aiohttp, behind the part of httpx.AsyncClient they use.

Measured at 400 requests/s against a 50 ms server (bench/README.md): httpx with its own pool (httpcore) polls every
pooled connection for every request and cannot keep up (seconds of queueing); httpx over an aiohttp transport keeps
up at 1.1 CPU-ms a request; aiohttp alone needs 0.6. The providers (engine/providers/http.py) only call
``post(url, json=, headers=)`` and ``stream("POST", url, json=, headers=)`` and read ``status_code``, ``headers``,
``text``, ``json()``, ``aread()`` and ``aiter_lines()``; that is what this client offers, raising httpx's
exceptions (ReadTimeout, ConnectError, ReadError), so the providers' code and their error classification are
unchanged. tests/integration/test_loadtest.py runs it against the wire-format fakes (JSON, SSE streams, 429, 5xx).

It follows the engine's egress policy (engine/egress.py) like every other client: the URL is checked before the
request (aiohttp does not ask a resolver about a literal address), every address a host name resolves to is checked
by :class:`_CheckedResolver` (aiohttp connects to what the resolver returned), redirects are not followed and the
environment's proxies are not used (aiohttp's default).
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult

from ..engine.egress import EgressPolicy, current_policy


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


class _CheckedResolver(AbstractResolver):
    """aiohttp's resolver under the egress policy: only addresses the policy allows, all of them checked."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        addresses = await self.policy.resolve(host, port)
        return [ResolveResult(hostname=host, host=address, port=port,
                              family=socket.AF_INET6 if ":" in address else socket.AF_INET, proto=0,
                              flags=socket.AI_NUMERICHOST) for address in addresses]

    async def close(self) -> None:
        return None


class LoadClient:
    """One aiohttp session with up to ``connections`` connections kept alive; requests time out after ``timeout``
    seconds without a connection or without bytes (the providers bound the whole call themselves)."""

    def __init__(self, connections: int, timeout: float) -> None:
        self.connections = connections
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None
        self.policy = current_policy()
        self._checked: set[str] = set()  # URLs that passed check_url (a pure function of the URL): parsed once

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.connections, keepalive_timeout=30,
                                             resolver=_CheckedResolver(self.policy))
            self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout,
                                                  cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def _send(self, method: str, url: str, payload: Any, headers: dict[str, str] | None) -> LoadResponse:
        if url not in self._checked:
            self.policy.check_url(url)
            self._checked.add(url)
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
