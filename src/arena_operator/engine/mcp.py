"""MCP servers declared in the arena config (`mcp_servers`, `runtime.mcp_servers`), as tools for the model.

A server starts the first time a run's prompt offers one of its tools (`allowed_tools: [mcp__<server>__<tool>]`),
not at load time: `arena validate` starts nothing, and a declared server no prompt uses never runs. Its tools are
listed once and become ``ToolSpec(mode="mcp")`` entries named ``mcp__<server>__<tool>``, so the tool runner
validates arguments and records them like any other tool. Every server is bounded: the start (spawn, handshake
and tool listing) by ``start_timeout_ms``, each call by ``timeout_ms``, each result by ``MAX_OUTPUT_CHARS``, what
it writes to stderr by ``STDERR_TAIL_CHARS`` (only the tail is kept, in memory). A server that does not start is
remembered and fails every run that needs it, naming the server with its stderr tail.

Stdio servers (``command``) run as a subprocess; in the cluster only when both the cluster admin and the ArenaJob
allow the command (:mod:`.mcp_policy`). HTTP servers (``url``; SSE, or ``transport: streamable_http``) are reached
under the egress policy (:mod:`.mcp_http`). ``${VAR}`` in ``env`` and ``headers`` is resolved at start
(:mod:`.mcp_vars`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .envexpand import current_env
from .errors import ToolError
from .mcp_policy import stdio_refusal
from .mcp_vars import MissingVariable, expand_fields, redact
from .spec import ArenaSpec, ToolSpec

PREFIX = "mcp__"
START_TIMEOUT_MS = 20_000
CALL_TIMEOUT_MS = 30_000
MAX_START_TIMEOUT_MS = 120_000  # a run waits for its servers before its own run timeout starts
MAX_CALL_TIMEOUT_MS = 600_000
MAX_OUTPUT_CHARS = 64_000
STDERR_TAIL_CHARS = 2_000
START_KIND = "mcp_start"


class McpStartError(Exception):
    """A declared server that could not be started (or is not allowed to be): fails the runs that need it."""

    kind = START_KIND


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """One declaration, with upstream's keys (name, command, args, env, working_dir, url, transport, headers,
    timeout_ms, tool_filter) plus this engine's start bound."""

    name: str
    command: str = ""
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str = ""
    url: str = ""
    transport: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_ms: int = CALL_TIMEOUT_MS
    start_timeout_ms: int = START_TIMEOUT_MS
    allowlist: frozenset[str] = frozenset()
    blocklist: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entry: Mapping[str, Any]) -> ServerConfig:
        filters = entry.get("tool_filter") if isinstance(entry.get("tool_filter"), dict) else {}
        return cls(
            name=str(entry.get("name") or ""), command=str(entry.get("command") or ""),
            args=tuple(str(a) for a in entry.get("args") or []),
            env={str(k): str(v) for k, v in (entry.get("env") or {}).items()},
            working_dir=str(entry.get("working_dir") or ""), url=str(entry.get("url") or ""),
            transport=str(entry.get("transport") or ""),
            headers={str(k): str(v) for k, v in (entry.get("headers") or {}).items()},
            timeout_ms=int(entry.get("timeout_ms") or CALL_TIMEOUT_MS),
            start_timeout_ms=int(entry.get("start_timeout_ms") or START_TIMEOUT_MS),
            allowlist=frozenset(filters.get("allowlist") or []), blocklist=frozenset(filters.get("blocklist") or []),
        )

    def offers(self, tool: str) -> bool:
        return tool in self.allowlist if self.allowlist else tool not in self.blocklist


def declared_servers(arena: ArenaSpec) -> dict[str, ServerConfig]:
    """The arena's `mcp_servers` and `runtime.mcp_servers`, by name (a `source:` server has no command here)."""
    extra = arena.model_extra or {}
    runtime = extra.get("runtime") if isinstance(extra.get("runtime"), dict) else {}
    entries = [*(extra.get("mcp_servers") or []), *(runtime.get("mcp_servers") or [])]
    servers = (ServerConfig.parse(e) for e in entries if isinstance(e, dict) and e.get("name"))
    return {s.name: s for s in servers}


def server_of(tool_name: str) -> str | None:
    """`mcp__docs__search` → `docs`."""
    if not tool_name.startswith(PREFIX):
        return None
    return tool_name[len(PREFIX):].split("__", 1)[0] or None


class _StderrTail:
    """A stdio server's stderr through a pipe, drained by a thread that keeps only the last STDERR_TAIL_CHARS
    bytes: a chatty server can neither block on a full pipe nor fill the pod's disk."""

    def __init__(self) -> None:
        read_fd, write_fd = os.pipe()
        # The child's end (the SDK hands it to the subprocess), closed in close().
        self.writer: TextIO = os.fdopen(write_fd, "w", encoding="utf-8", errors="replace")
        self._tail = bytearray()
        self._thread = threading.Thread(target=self._drain, args=(read_fd,), daemon=True, name="mcp-stderr")
        self._thread.start()

    def _drain(self, read_fd: int) -> None:
        with os.fdopen(read_fd, "rb", buffering=0) as reader:
            while chunk := reader.read(65_536):
                self._tail += chunk
                del self._tail[:-STDERR_TAIL_CHARS]

    def close(self) -> str:
        """The tail, once the server (the pipe's other writer) is gone; waits at most a second for the drain."""
        if not self.writer.closed:
            self.writer.close()
        self._thread.join(1.0)
        return bytes(self._tail).decode("utf-8", errors="replace").strip()


def _leaf(exc: BaseException | None) -> BaseException | None:
    """The first real error inside anyio's task-group wrappers (what the user needs to read)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _result_text(result: Any) -> str:
    """A call's content as one string (text parts joined; other parts named), cut to MAX_OUTPUT_CHARS."""
    parts = [getattr(p, "text", None) or f"[{getattr(p, 'type', 'content')} content]" for p in result.content]
    if not parts and getattr(result, "structured_content", None) is not None:
        parts = [str(result.structured_content)]
    text = "\n".join(parts)
    if len(text) > MAX_OUTPUT_CHARS:
        text = text[:MAX_OUTPUT_CHARS] + f"… [cut at {MAX_OUTPUT_CHARS} characters]"
    return text


class _Server:
    """One running server: a task owns the transport and session (anyio scopes must close in the task that opened
    them); calls from any run go through the session."""

    def __init__(self, config: ServerConfig, root: Path, secrets: list[str]) -> None:
        self.config, self.root, self.secrets = config, root, secrets
        self.session: Any = None
        self.tools: list[Any] = []
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stderr: _StderrTail | None = None  # stdio servers only

    async def start(self) -> None:
        self._task = asyncio.create_task(self._serve())
        ready = asyncio.create_task(self._ready.wait())
        done, _ = await asyncio.wait({self._task, ready}, timeout=self.config.start_timeout_ms / 1000,
                                     return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if self._ready.is_set():
            return
        if self._task in done:
            failure = _leaf(self._task.exception())
            why = f"{type(failure).__name__}: {failure}" if failure else "it exited"
        else:
            why = f"no answer within {self.config.start_timeout_ms} ms"
        await self._halt()
        tail = self._stderr.close() if self._stderr is not None else ""
        message = f"MCP server {self.config.name!r} did not start ({why})" + (
            f"; stderr: {tail}" if tail else "; no stderr" if self._stderr is not None else "")
        raise McpStartError(redact(message, self.secrets))

    async def _open(self, stack: AsyncExitStack) -> Any:
        """The SDK's transport streams for this declaration, closed with `stack` (the SDK is imported here: it loads
        only when a bundle uses MCP)."""
        config = self.config
        if config.url and config.transport == "streamable_http":
            from mcp.client.streamable_http import streamable_http_client

            from .mcp_http import mcp_http_client
            client = await stack.enter_async_context(mcp_http_client(dict(config.headers)))  # not closed by the SDK
            return await stack.enter_async_context(streamable_http_client(config.url, http_client=client))
        if config.url:
            from mcp.client.sse import sse_client

            from .mcp_http import mcp_http_client
            return await stack.enter_async_context(
                sse_client(config.url, headers=dict(config.headers), httpx_client_factory=mcp_http_client))
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        cwd = self.root / config.working_dir if config.working_dir else self.root
        self._stderr = _StderrTail()
        return await stack.enter_async_context(stdio_client(
            StdioServerParameters(command=config.command, args=list(config.args), env=dict(config.env) or None,
                                  cwd=cwd), errlog=self._stderr.writer))

    async def _serve(self) -> None:
        from mcp import ClientSession

        async with AsyncExitStack() as stack:
            read, write = await self._open(stack)
            self.session = await stack.enter_async_context(ClientSession(read, write))
            await self.session.initialize()
            self.tools = list((await self.session.list_tools()).tools)
            self._ready.set()
            await self._stop.wait()

    async def _halt(self) -> None:
        self._stop.set()
        if self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5)
            except (TimeoutError, Exception):  # a server that will not stop is cancelled; its errors are moot
                self._task.cancel()

    async def stop(self) -> None:
        await self._halt()
        if self._stderr is not None:
            self._stderr.close()

    async def call(self, tool: str, args: dict[str, Any]) -> str:
        timeout = self.config.timeout_ms / 1000
        try:
            result = await asyncio.wait_for(self.session.call_tool(tool, args), timeout)
        except TimeoutError:
            raise ToolError(f"MCP server {self.config.name!r}: {tool} timed out after {self.config.timeout_ms} ms"
                            ) from None
        except Exception as exc:  # the server's protocol errors (unknown tool, bad arguments, gone) reach the model
            raise ToolError(redact(f"MCP server {self.config.name!r}: {tool}: {exc}", self.secrets)) from None
        text = redact(_result_text(result), self.secrets)
        if result.is_error:
            raise ToolError(f"MCP server {self.config.name!r}: {tool}: {text[:500]}")
        return text


class McpTools:
    """The bundle's MCP servers for one executor: started once on first need, shared by concurrent runs."""

    def __init__(self, arena: ArenaSpec, root: Path) -> None:
        self.configs = declared_servers(arena)
        self.root = root
        self._servers: dict[str, _Server] = {}
        self._failed: dict[str, McpStartError] = {}
        self._lock = asyncio.Lock()

    def needed(self, tool_names: list[str]) -> list[str]:
        """The declared servers these prompt tool names come from."""
        names = dict.fromkeys(server_of(n) for n in tool_names)
        return [n for n in names if n is not None and n in self.configs]

    async def ensure(self, servers: list[str]) -> dict[str, ToolSpec]:
        """Start the servers not yet started; their tools as ToolSpecs. Raises McpStartError for one that fails."""
        async with self._lock:
            for name in servers:
                if name in self._failed:
                    raise self._failed[name]
                if name not in self._servers:
                    try:
                        self._servers[name] = await self._start(self.configs[name])
                    except McpStartError as exc:
                        self._failed[name] = exc
                        raise
        return {spec.name: spec for name in servers for spec in self._specs(name)}

    async def _start(self, config: ServerConfig) -> _Server:
        if config.url and config.transport not in ("", "sse", "streamable_http"):
            raise McpStartError(f"MCP server {config.name!r}: unknown transport {config.transport!r} "
                                "(stdio, sse or streamable_http)")
        if not config.url and not config.command:
            raise McpStartError(f"MCP server {config.name!r}: neither a `command` (stdio) nor a `url` (HTTP) to run")
        if not config.url and (refusal := stdio_refusal(config.name, config.command)):
            raise McpStartError(refusal)
        env = current_env()
        try:
            expanded_env, env_secrets = expand_fields("env", config.env, env)
            headers, header_secrets = expand_fields("headers", config.headers, env)
        except MissingVariable as exc:
            raise McpStartError(f"MCP server {config.name!r}: {exc}") from None
        config = dataclasses.replace(config, env=expanded_env, headers=headers,
                                     start_timeout_ms=min(config.start_timeout_ms, MAX_START_TIMEOUT_MS),
                                     timeout_ms=min(config.timeout_ms, MAX_CALL_TIMEOUT_MS))
        server = _Server(config, self.root, env_secrets + header_secrets)
        await server.start()
        return server

    def _specs(self, name: str) -> list[ToolSpec]:
        server = self._servers[name]
        return [ToolSpec(name=f"{PREFIX}{name}__{t.name}", description=t.description or "",
                         input_schema=t.input_schema or {"type": "object"}, mode="mcp")
                for t in server.tools if server.config.offers(t.name)]

    async def call(self, tool_name: str, args: dict[str, Any]) -> str:
        server = self._servers.get(server_of(tool_name) or "")
        if server is None:
            raise ToolError(f"MCP server of {tool_name!r} is not running")
        return await server.call(tool_name[len(PREFIX) + len(server.config.name) + 2:], args)

    async def aclose(self) -> None:
        servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            await server.stop()
