"""The connection layer under the providers' httpx client during a load test: aiohttp's connection pool.

httpcore's pool (httpx's default transport) checks every pooled connection for every request — a poll() system
call each and several Python frames — so its cost per request grows with the connections a load test needs:
measured here at 2.4 CPU-ms per request at 200 requests/s, and overloaded (seconds of queueing) at 400/s, where
aiohttp stays at 0.6–0.7 CPU-ms with the server's true latency (bench/loadtest.py). The providers keep their code:
they build httpx requests and read httpx responses (streamed ones too); only the bytes travel through aiohttp.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import httpx

# Computed by aiohttp from the body it sends; passing httpx's values along would duplicate them.
_OWN_HEADERS = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection"})


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.response.content.iter_any():
                yield chunk
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            raise httpx.ReadError(f"{type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        self.response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport over one aiohttp session with up to ``connections`` connections, kept alive."""

    def __init__(self, connections: int) -> None:
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.connections, keepalive_timeout=30)
            # httpx decodes Content-Encoding itself; cookies are not kept and redirects not followed (as httpx's)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                                  cookie_jar=aiohttp.DummyCookieJar(),
                                                  skip_auto_headers=("User-Agent",))
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        seconds = request.extensions.get("timeout") or {}
        timeout = aiohttp.ClientTimeout(total=None, connect=seconds.get("connect"), sock_read=seconds.get("read"))
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
                   if k.lower() not in _OWN_HEADERS]
        try:
            response = await self._client().request(request.method, str(request.url), data=await request.aread(),
                                                    headers=headers, allow_redirects=False, timeout=timeout)
        except (aiohttp.ServerTimeoutError, TimeoutError) as exc:
            raise httpx.ReadTimeout(f"{type(exc).__name__}: {exc}", request=request) from None
        except aiohttp.ClientError as exc:
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}", request=request) from None
        return httpx.Response(status_code=response.status, headers=list(response.raw_headers),
                              stream=_Body(response), request=request)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
