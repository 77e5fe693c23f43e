"""The egress policy for the MCP SDK's HTTP clients (httpx2, the fork of httpx the SDK speaks): the same checks as
:mod:`.egress` — the URL on its face, then every address the host resolves to, connecting to the checked address;
no redirects, no proxies from the environment — so a bundle's MCP `url` reaches only what a provider URL may."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpcore2
import httpx2

from .egress import EgressPolicy, EgressRefused, current_policy


class _CheckedBackend(httpcore2.AsyncNetworkBackend):
    """httpcore2's network backend, connecting only to addresses the policy accepts."""

    def __init__(self, policy: EgressPolicy, inner: httpcore2.AsyncNetworkBackend) -> None:
        self.policy, self.inner = policy, inner

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore2.AsyncNetworkStream:
        failure: Exception | None = None
        for address in await self.policy.resolve(host, port):
            try:
                return await self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # resolve() returns at least one address or raises
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore2.AsyncNetworkStream:
        raise EgressRefused(path, "unix sockets are not reachable from a bundle")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class _EgressTransport(httpx2.AsyncHTTPTransport):
    def __init__(self, policy: EgressPolicy) -> None:
        super().__init__(trust_env=False)
        self.policy = policy
        pool = self._pool  # httpcore2's pool hands its backend to every connection it opens
        pool._network_backend = _CheckedBackend(policy, pool._network_backend)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.policy.check_url(str(request.url))
        return await super().handle_async_request(request)


def mcp_http_client(headers: dict[str, str] | None = None, timeout: httpx2.Timeout | None = None,
                    auth: httpx2.Auth | None = None) -> httpx2.AsyncClient:
    """The SDK's client factory (`McpHttpClientFactory`) under this process's egress policy."""
    return httpx2.AsyncClient(transport=_EgressTransport(current_policy()), headers=headers, auth=auth,
                              timeout=timeout or httpx2.Timeout(30.0, read=300.0), follow_redirects=False,
                              trust_env=False)
