"""The egress policy for the MCP SDK's HTTP clients (httpx2, the fork of httpx the SDK speaks): the same checks as
:mod:`.egress` — the URL on its face, then every address the host resolves to, connecting to the checked address;
no redirects, no proxies from the environment — so a bundle's MCP `url` reaches only what a provider URL may."""

from __future__ import annotations

import httpcore2
import httpx2

from .egress import CheckedBackend, EgressPolicy, current_policy


class _EgressTransport(httpx2.AsyncHTTPTransport):
    def __init__(self, policy: EgressPolicy) -> None:
        super().__init__(trust_env=False)
        self.policy = policy
        pool = self._pool  # httpcore2's pool hands its backend to every connection it opens
        pool._network_backend = CheckedBackend(policy, pool._network_backend,
                                                (httpcore2.ConnectError, httpcore2.ConnectTimeout))

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.policy.check_url(str(request.url))
        return await super().handle_async_request(request)


def mcp_http_client(headers: dict[str, str] | None = None, timeout: httpx2.Timeout | None = None,
                    auth: httpx2.Auth | None = None) -> httpx2.AsyncClient:
    """The SDK's client factory (`McpHttpClientFactory`) under this process's egress policy."""
    return httpx2.AsyncClient(transport=_EgressTransport(current_policy()), headers=headers, auth=auth,
                              timeout=timeout or httpx2.Timeout(30.0, read=300.0), follow_redirects=False,
                              trust_env=False)
