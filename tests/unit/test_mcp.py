"""The MCP declarations and policy, table-driven: names, upstream's keys, tool filters, which servers a prompt
needs, and where stdio servers may run (locally always; in the cluster only when the admin allows it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arena_operator.engine import mcp
from arena_operator.engine.egress import EgressPolicy, confine_process
from arena_operator.engine.spec import ArenaSpec
from arena_operator.reconcile.worker_job import REDIS_URL_KEY, SecretKeyRef, WorkerJobParams, build_worker_job


def arena(**extra: Any) -> ArenaSpec:
    return ArenaSpec.model_validate({"defaults": {}, **extra})


@pytest.fixture
def in_cluster() -> Iterator[None]:
    confine_process(EgressPolicy.cluster({}))
    yield
    confine_process(None)


@pytest.mark.parametrize(("name", "server"), [
    ("mcp__docs__search", "docs"), ("mcp__docs__search__deep", "docs"), ("mcp__", None), ("search", None),
    ("a2a__docs__search", None),
])
def test_server_of(name: str, server: str | None) -> None:
    assert mcp.server_of(name) == server


@pytest.mark.parametrize(("entry", "expected"), [
    ({"name": "fs"}, mcp.ServerConfig("fs")),
    ({"name": "fs", "command": "fs-server", "args": ["-v", 3], "env": {"LEVEL": 2}, "working_dir": "srv",
      "timeout_ms": 500, "start_timeout_ms": 900},
     mcp.ServerConfig("fs", "fs-server", ("-v", "3"), {"LEVEL": "2"}, "srv", timeout_ms=500, start_timeout_ms=900)),
    ({"name": "web", "url": "http://127.0.0.1:9/mcp", "transport": "streamable_http", "headers": {"X-Team": "a"},
      "tool_filter": {"allowlist": ["get"]}},
     mcp.ServerConfig("web", url="http://127.0.0.1:9/mcp", transport="streamable_http", headers={"X-Team": "a"},
                      allowlist=frozenset({"get"}))),
])
def test_declarations_take_upstreams_keys(entry: dict[str, Any], expected: mcp.ServerConfig) -> None:
    assert mcp.ServerConfig.parse(entry) == expected


@pytest.mark.parametrize(("filters", "offered"), [
    ({}, {"read", "write"}), ({"allowlist": ["read"]}, {"read"}), ({"blocklist": ["write"]}, {"read"}),
    ({"allowlist": ["read"], "blocklist": ["read"]}, {"read"}),  # as upstream: the allowlist wins
])
def test_tool_filter(filters: dict[str, Any], offered: set[str]) -> None:
    config = mcp.ServerConfig.parse({"name": "fs", "tool_filter": filters})
    assert {t for t in ("read", "write") if config.offers(t)} == offered


def test_servers_come_from_the_arena_and_its_runtime_and_only_needed_ones_start() -> None:
    spec = arena(mcp_servers=[{"name": "docs", "command": "d"}, "junk"],
                 runtime={"mcp_servers": [{"name": "fs", "command": "f"}]})
    assert set(mcp.declared_servers(spec)) == {"docs", "fs"}
    tools = mcp.McpTools(spec, Path("."))
    assert tools.needed(["lookup", "mcp__fs__read", "mcp__fs__write", "mcp__gone__x"]) == ["fs"]


@pytest.mark.parametrize(("environ", "allowed"), [
    ({}, False), ({"ARENA_ALLOW_MCP_STDIO": "true"}, True), ({"ARENA_ALLOW_MCP_STDIO": " TRUE "}, True),
    ({"ARENA_ALLOW_MCP_STDIO": "1"}, False),
])
def test_stdio_in_the_cluster_only_when_allowed(in_cluster: None, environ: dict[str, str], allowed: bool) -> None:
    assert mcp.stdio_allowed(environ) is allowed


def test_stdio_locally_always() -> None:
    assert mcp.stdio_allowed({})


@pytest.mark.parametrize(("entry", "message"), [
    ({"name": "web", "url": "http://127.0.0.1:9/mcp", "transport": "websocket"}, "unknown transport 'websocket'"),
    ({"name": "sandbox", "source": "docker"}, "neither a `command` .stdio. nor a `url`"),
])
async def test_servers_this_version_cannot_run_fail_clearly(entry: dict[str, Any], message: str) -> None:
    tools = mcp.McpTools(arena(mcp_servers=[entry]), Path("."))
    with pytest.raises(mcp.McpStartError, match=message):
        await tools.ensure([entry["name"]])


async def test_a_stdio_server_in_the_cluster_without_the_switch_is_refused(
        in_cluster: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARENA_ALLOW_MCP_STDIO", raising=False)
    tools = mcp.McpTools(arena(mcp_servers=[{"name": "fs", "command": "fs-server"}]), Path("."))
    with pytest.raises(mcp.McpStartError, match="'fs': stdio servers run in the cluster only when"):
        await tools.ensure(["fs"])


def test_the_operator_copies_the_switch_into_worker_pods() -> None:
    job = build_worker_job(WorkerJobParams(
        namespace="team-a", job_name="nightly", job_uid="uid-1", image="arena:test", artifact_url="http://a/x",
        artifact_digest="sha256:" + "0" * 64, job_key="k", redis_secret=SecretKeyRef("s", REDIS_URL_KEY),
        egress={"ARENA_ALLOW_MCP_STDIO": "true"}))
    env = {item["name"]: item for item in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ARENA_ALLOW_MCP_STDIO"] == {"name": "ARENA_ALLOW_MCP_STDIO", "value": "true"}
