"""Executes the tool calls a model asks for: mock results from the bundle, a live HTTP endpoint, an MCP server, an A2A
agent, or a command in the sandbox (exec)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import jsonschema

from .a2a import A2aAgents
from .egress import EgressRefused, async_client
from .envexpand import UnsetVariable, current_env
from .errors import TemplateError, ToolError
from .exec_tools import run_exec_tool
from .mcp import McpTools
from .schemas import first_error
from .spec import ToolSpec
from .templating import render
from .types import ToolCall, ToolDefinition, ToolResult


def definition(tool: ToolSpec) -> ToolDefinition:
    return ToolDefinition(name=tool.name, description=tool.description, input_schema=tool.input_schema)


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


class ToolRunner:
    """Runs tools by name. One shared HTTP client; live tools honour their own timeout. MCP tools join `tools`
    when their server starts (`mcp`), A2A tools when the agents are discovered (`a2a`); exec tools run from the
    bundle at `root`."""

    def __init__(self, tools: dict[str, ToolSpec], mcp: McpTools | None = None, a2a: A2aAgents | None = None,
                 root: Path | None = None) -> None:
        self.tools = dict(tools)
        self.mcp = mcp
        self.a2a = a2a
        self.root = root or Path.cwd()
        self._client: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self.mcp is not None:
            await self.mcp.aclose()
        if self.a2a is not None:
            await self.a2a.aclose()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def execute(self, call: ToolCall, allowed: set[str]) -> ToolResult:
        """Never raises: a failing tool becomes a ToolResult with `error`, which the model sees."""
        started = time.perf_counter()
        try:
            content = await self._run(call, allowed)
            error, kind = None, ""
        except ToolError as exc:
            content, error, kind = json.dumps({"error": str(exc)}), str(exc), exc.kind
        result = ToolResult(call.id, call.name, content, error, (time.perf_counter() - started) * 1000, kind)
        tool = self.tools.get(call.name)
        if error is None and tool is not None and tool.mode == "mock" and tool.mock_parts:
            result.parts = list(tool.mock_parts)  # resolved at load (media_check.py)
        return result

    async def _run(self, call: ToolCall, allowed: set[str]) -> str:
        tool = self.tools.get(call.name)
        if tool is None or call.name not in allowed:
            raise ToolError(f"unknown or not allowed tool {call.name!r}")
        try:
            invalid = first_error(tool.input_schema, call.args)
        except jsonschema.SchemaError as exc:
            raise ToolError(f"tool {call.name!r} has an invalid input_schema: {exc.message}") from None
        if invalid is not None:
            raise ToolError(f"arguments do not match input_schema: {invalid.message}", "validation")
        if tool.mode == "live" and tool.http is not None:
            return await self._http(tool, call.args)
        if tool.mode == "mcp" and self.mcp is not None:
            return await self.mcp.call(call.name, call.args)
        if tool.mode == "a2a" and self.a2a is not None:
            return await self.a2a.call(call.name, call.args)
        if tool.mode == "exec":
            return await run_exec_tool(tool, call.args, self.root)
        if tool.mode != "mock":
            raise ToolError(f"tool mode {tool.mode!r} is not supported (use mock, live http, exec, mcp or a2a)")
        if tool.mock_template is not None:
            try:
                return render(tool.mock_template, call.args)
            except TemplateError as exc:
                raise ToolError(f"mock_template: {exc}") from None
        return _as_text(tool.mock_result if tool.mock_result is not None else {"ok": True})

    async def _http(self, tool: ToolSpec, args: dict[str, Any]) -> str:
        http = tool.http
        assert http is not None
        headers = dict(http.headers)
        env = current_env()
        for header, name in http.headers_from_env.items():
            if not env.readable(name):
                raise ToolError(f"{tool.name}: headers_from_env {header}: {UnsetVariable(name, True).describe(env)}")
            if (value := env.get(name)) is not None:
                headers[header] = value
        if self._client is None:
            self._client = async_client()
        method = http.method.upper()
        try:
            response = await self._client.request(
                method, http.url, headers=headers, timeout=http.timeout_ms / 1000,
                params=args if method == "GET" else None, json=None if method == "GET" else args,
            )
        except EgressRefused as exc:
            raise ToolError(f"{tool.name}: {exc}") from None
        except httpx.TimeoutException:
            raise ToolError(f"{tool.name}: timed out after {http.timeout_ms} ms") from None
        except httpx.TransportError as exc:
            raise ToolError(f"{tool.name}: connection failed ({type(exc).__name__})") from None
        if response.status_code >= 400:
            raise ToolError(f"{tool.name}: HTTP {response.status_code}: {response.text[:200]}")
        return response.text
