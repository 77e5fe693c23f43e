"""The egress policy: which addresses a URL named by a bundle, a Provider or a ToolRegistry may reach.

A bundle (or a namespace owner's Provider object) chooses URLs; without a policy those URLs reach whatever the
worker pod can: the cloud's metadata service (instance credentials), the cluster's Redis, the operator's artifact
server, other tenants' services. So:

- link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254, 100.100.100.200,
  ``metadata.google.internal``) are always refused — nobody evaluates a prompt against them;
- loopback and private ranges are refused in the cluster (``arena worker``, the operator) unless the cluster admin
  allows them (``ARENA_EGRESS_ALLOW_PRIVATE=true``, or ``ARENA_EGRESS_ALLOW_CIDRS``, comma-separated CIDRs);
  locally (``arena run``) they stay allowed: a developer's own model server on localhost is the common case;
- the check runs on the URL (a literal address fails before any lookup or connection) and again at connect time on
  every address the host name resolves to, and the connection is made to the address that was checked: a name
  that resolves to an allowed address first and a refused one later (DNS rebinding) gains nothing;
- clients built here never follow redirects (a 3xx is answered to the caller, not followed elsewhere) and ignore
  the environment's proxies (a proxy would connect on our behalf, past the address check).

:func:`async_client` builds the httpx client every engine caller uses; :class:`EgressTransport` is the hook (an
``httpx.AsyncHTTPTransport`` whose connection pool connects through :class:`CheckedBackend`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from .errors import ProviderError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_PRIVATE_VARIABLE = "ARENA_EGRESS_ALLOW_PRIVATE"
ALLOW_CIDRS_VARIABLE = "ARENA_EGRESS_ALLOW_CIDRS"
#: Whether a bundle's stdio MCP server (a command: arbitrary code in the worker pod) may run in the cluster.
ALLOW_MCP_STDIO_VARIABLE = "ARENA_ALLOW_MCP_STDIO"
#: Whether a bundle's exec tools (arbitrary code, run in the sandbox: engine/sandbox.py) may run in the cluster,
#: and whether they may run where no network namespace can be made.
ALLOW_EXEC_VARIABLE = "ARENA_ALLOW_EXEC"
EXEC_ALLOW_NETWORK_VARIABLE = "ARENA_EXEC_ALLOW_NETWORK"
#: The operator's settings a worker Job copies into its pods (plain values: they are policy, not secrets).
SETTING_VARIABLES = (ALLOW_PRIVATE_VARIABLE, ALLOW_CIDRS_VARIABLE, ALLOW_MCP_STDIO_VARIABLE, ALLOW_EXEC_VARIABLE,
                     EXEC_ALLOW_NETWORK_VARIABLE)
REFUSED_KIND = "egress_refused"

_nets = ipaddress.ip_network
#: Never reachable, whatever the settings: (network, why).
ALWAYS_REFUSED: tuple[tuple[Network, str], ...] = (
    (_nets("fd00:ec2::254/128"), "the AWS metadata service (IPv6)"),
    (_nets("100.100.100.200/32"), "the Alibaba Cloud metadata service"),
    (_nets("169.254.0.0/16"), "link-local (cloud metadata services live here)"),
    (_nets("fe80::/10"), "link-local"),
    (_nets("224.0.0.0/4"), "multicast"),
    (_nets("ff00::/8"), "multicast"),
    (_nets("240.0.0.0/4"), "reserved"),
)
#: Refused in the cluster unless allowed: (network, why).
PRIVATE: tuple[tuple[Network, str], ...] = (
    (_nets("127.0.0.0/8"), "loopback"),
    (_nets("::1/128"), "loopback"),
    (_nets("0.0.0.0/8"), "this host"),
    (_nets("::/128"), "this host"),
    (_nets("10.0.0.0/8"), "private"),
    (_nets("172.16.0.0/12"), "private"),
    (_nets("192.168.0.0/16"), "private"),
    (_nets("100.64.0.0/10"), "shared address space (carrier-grade NAT, some pod networks)"),
    (_nets("fc00::/7"), "private (unique local)"),
)
#: Host names of metadata services, refused before they are even looked up.
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata.azure.internal"})
SCHEMES = frozenset({"http", "https"})


class EgressRefused(ProviderError):
    """A URL the egress policy does not let this process reach. Final: retrying cannot change the answer."""

    def __init__(self, host: str, why: str) -> None:
        super().__init__(f"egress to {host} refused: {why}", REFUSED_KIND)
        self.host, self.why = host, why


def _parse_cidrs(text: str) -> tuple[Network, ...]:
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{ALLOW_CIDRS_VARIABLE}: {item!r} is not a CIDR (e.g. 10.0.0.0/8)") from None
    return tuple(networks)


def _literal(host: str) -> Address | None:
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:169.254.169.254 is 169.254.169.254
    return mapped or address


@dataclass(frozen=True)
class EgressPolicy:
    """What this process may connect to. ``allow_private``: loopback and private ranges too (the local default);
    ``allow_cidrs``: these private networks only (the cluster admin's narrower grant)."""

    allow_private: bool = True
    allow_cidrs: tuple[Network, ...] = ()
    where: str = "locally"

    @classmethod
    def local(cls) -> EgressPolicy:
        return cls()

    @classmethod
    def cluster(cls, environ: Mapping[str, str] | None = None) -> EgressPolicy:
        """The cluster's policy, from the operator's settings (the worker Job copies them into its pods)."""
        environ = os.environ if environ is None else environ
        allow = environ.get(ALLOW_PRIVATE_VARIABLE, "").strip().lower()
        if allow not in ("", "true", "false"):
            raise ValueError(f"{ALLOW_PRIVATE_VARIABLE} must be true or false, got {allow!r}")
        return cls(allow == "true", _parse_cidrs(environ.get(ALLOW_CIDRS_VARIABLE, "")), "in the cluster")

    def refusal(self, address: Address) -> str | None:
        """Why `address` may not be reached (what it is, and who could allow it), or None."""
        for network, why in ALWAYS_REFUSED:
            if address in network:
                return f"{why}, never allowed"
        for network, why in PRIVATE:
            if address in network and not self.allow_private and not any(address in n for n in self.allow_cidrs):
                return (f"{why}, not allowed {self.where} (the cluster admin allows it with "
                        f"{ALLOW_PRIVATE_VARIABLE}=true or {ALLOW_CIDRS_VARIABLE})")
        return None

    def check_url(self, url: httpx.URL | str) -> None:
        """Refuse a URL on its face: a scheme other than http(s), a metadata host name, a refused literal address.
        Looks nothing up and connects nowhere."""
        url = httpx.URL(url) if isinstance(url, str) else url
        host = url.host.lower().rstrip(".")
        if url.scheme not in SCHEMES or not host:
            raise EgressRefused(str(url), "not an http(s) URL with a host")
        if host in METADATA_HOSTS:
            raise EgressRefused(host, "a cloud metadata service, never allowed")
        address = _literal(host)
        if address is not None and (why := self.refusal(address)) is not None:
            raise EgressRefused(host, f"{address} is {why}")

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of `host`, each checked: one refused address refuses the host (a name that also points at
        the metadata service is not a model server)."""
        name = host.lower().rstrip(".")
        if name in METADATA_HOSTS:
            raise EgressRefused(name, "a cloud metadata service, never allowed")
        literal = _literal(name)
        if literal is not None:
            infos: Iterable[Any] = [(None, None, None, None, (str(literal), port))]
        else:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(name, port, type=socket.SOCK_STREAM)
            except socket.gaierror as exc:
                raise httpcore.ConnectError(str(exc)) from exc  # as httpcore's own backend says it
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for text in addresses:
            address = _literal(text)
            if address is None:
                raise EgressRefused(name, f"it resolves to {text!r}, not an IP address")
            if (why := self.refusal(address)) is not None:
                raise EgressRefused(name, f"{address} is {why}" if literal is not None else
                                    f"it resolves to {address}, which is {why}")
        return addresses


_process_policy: EgressPolicy | None = None  # a cluster process confines itself once (`arena worker`, operator)


def confine_process(policy: EgressPolicy | None) -> None:
    """From now on clients built in this process follow `policy` (None: back to the local default)."""
    global _process_policy
    _process_policy = policy


def confined() -> bool:
    """Whether this is a cluster process (`arena worker`, the operator) rather than a developer's `arena run`."""
    return _process_policy is not None


def current_policy() -> EgressPolicy:
    return _process_policy or EgressPolicy.local()


HTTPCORE_CONNECT_ERRORS = (httpcore.ConnectError, httpcore.ConnectTimeout)


class CheckedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend connecting only to checked addresses (the TLS handshake still names the host,
    so certificates are verified against the name, not the address). `connect_errors` are the inner backend's
    connection failures, after which the next resolved address is tried: httpcore's by default; the MCP SDK's
    httpcore2 fork passes its own (its pool calls the backend by duck typing)."""

    def __init__(self, policy: EgressPolicy, inner: Any,
                 connect_errors: tuple[type[Exception], ...] = HTTPCORE_CONNECT_ERRORS) -> None:
        self.policy, self.inner, self.connect_errors = policy, inner, connect_errors

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> Any:
        failure: Exception | None = None
        for address in await self.policy.resolve(host, port):
            try:
                return await self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except self.connect_errors as exc:
                failure = exc
        assert failure is not None  # resolve() returns at least one address or raises
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> Any:
        raise EgressRefused(path, "unix sockets are not reachable from a bundle")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class EgressTransport(httpx.AsyncHTTPTransport):
    """httpx's transport under the egress policy: the URL is checked before anything happens, each connection at
    connect time. Takes AsyncHTTPTransport's arguments (limits, verify, …) except proxies."""

    def __init__(self, policy: EgressPolicy | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy = policy or current_policy()
        pool = self._pool  # httpcore's pool hands its backend to every connection it opens
        pool._network_backend = CheckedBackend(self.policy, pool._network_backend)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.policy.check_url(request.url)
        return await super().handle_async_request(request)


def async_client(policy: EgressPolicy | None = None, *, limits: httpx.Limits | None = None,
                 **kwargs: Any) -> httpx.AsyncClient:
    """An httpx.AsyncClient for a URL someone else chose: under the egress policy, redirects not followed, no
    proxies from the environment. `kwargs` go to the client (timeout, headers, …)."""
    transport = EgressTransport(policy, **({"limits": limits} if limits is not None else {}))
    return httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False, **kwargs)
