"""The MCP declarations and policy, table-driven: names, upstream's keys, tool filters, which servers a prompt
needs, and where stdio servers may run (locally always; in the cluster only when the admin allows stdio servers and
the ArenaJob lists the command), down to the ArenaJob field and the worker pod's environment."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from arena_operator.api.arenajob import ArenaJobSpec
from arena_operator.engine import mcp, mcp_policy
from arena_operator.engine.egress import EgressPolicy, confine_process
from arena_operator.engine.spec import ArenaSpec
from arena_operator.reconcile.jobspec import stdio_commands_of
from arena_operator.reconcile.worker_job import (
    REDIS_URL_KEY,
    SecretKeyRef,
    WorkerJobParams,
    build_worker_job,
    pod_override_problems,
)


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


ALLOWED = {"ARENA_ALLOW_MCP_STDIO": "true", "ARENA_MCP_STDIO_COMMANDS": '["npx","python"]'}


@pytest.mark.parametrize(("environ", "refusal"), [
    (ALLOWED, None),
    ({**ALLOWED, "ARENA_ALLOW_MCP_STDIO": " TRUE "}, None),
    ({}, "only when the cluster admin allows them .ARENA_ALLOW_MCP_STDIO=true on the operator, Helm value "
         "mcp.allowStdio. and the ArenaJob lists the command in spec.mcp.allowStdioCommands"),
    ({**ALLOWED, "ARENA_ALLOW_MCP_STDIO": "1"}, "only when the cluster admin allows them"),
    ({"ARENA_MCP_STDIO_COMMANDS": '["python"]'}, "only when the cluster admin allows them"),  # both must allow
    ({"ARENA_ALLOW_MCP_STDIO": "true"}, "'fs': command 'python' is not allowed by the ArenaJob: add it to "
                                        r"spec.mcp.allowStdioCommands \(allowed now: none\)"),
    ({**ALLOWED, "ARENA_MCP_STDIO_COMMANDS": '["npx"]'}, r"allowed now: 'npx'\)"),
    ({**ALLOWED, "ARENA_MCP_STDIO_COMMANDS": '["/usr/bin/python"]'}, "not allowed"),  # exactly as written
    ({**ALLOWED, "ARENA_MCP_STDIO_COMMANDS": "python"}, "allowed now: none"),  # not JSON: nothing allowed
    ({**ALLOWED, "ARENA_MCP_STDIO_COMMANDS": '{"python": 1}'}, "allowed now: none"),
])
def test_stdio_in_the_cluster_only_when_admin_and_job_allow(in_cluster: None, environ: dict[str, str],
                                                            refusal: str | None) -> None:
    found = mcp_policy.stdio_refusal("fs", "python", environ)
    assert found is None if refusal is None else re.search(refusal, found or ""), found


def test_stdio_locally_always() -> None:
    assert mcp_policy.stdio_refusal("fs", "anything", {}) is None


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
    monkeypatch.setenv("ARENA_ALLOW_MCP_STDIO", "true")
    monkeypatch.delenv("ARENA_MCP_STDIO_COMMANDS", raising=False)
    tools = mcp.McpTools(arena(mcp_servers=[{"name": "fs", "command": "fs-server"}]), Path("."))
    with pytest.raises(mcp.McpStartError, match="'fs': command 'fs-server' is not allowed by the ArenaJob"):
        await tools.ensure(["fs"])
    with pytest.raises(mcp.McpStartError):  # remembered: every later run of the server fails the same way
        await tools.ensure(["fs"])


def worker_env(**params: Any) -> dict[str, dict[str, Any]]:
    job = build_worker_job(WorkerJobParams(
        namespace="team-a", job_name="nightly", job_uid="uid-1", image="arena:test", artifact_url="http://a/x",
        artifact_digest="sha256:" + "0" * 64, job_key="k", redis_secret=SecretKeyRef("s", REDIS_URL_KEY), **params))
    return {item["name"]: item for item in job["spec"]["template"]["spec"]["containers"][0]["env"]}


@pytest.mark.parametrize(("params", "gate", "commands"), [
    ({}, "false", "[]"),
    ({"egress": {"ARENA_ALLOW_MCP_STDIO": "true"}}, "true", "[]"),
    ({"egress": {"ARENA_ALLOW_MCP_STDIO": "true"}, "mcp_stdio_commands": ("python", "npx", "python")}, "true",
     '["npx","python"]'),
])
def test_the_operator_always_sets_both_keys_in_worker_pods(params: dict[str, Any], gate: str, commands: str) -> None:
    env = worker_env(**params)
    assert env["ARENA_ALLOW_MCP_STDIO"] == {"name": "ARENA_ALLOW_MCP_STDIO", "value": gate}
    assert env["ARENA_MCP_STDIO_COMMANDS"] == {"name": "ARENA_MCP_STDIO_COMMANDS", "value": commands}
    assert mcp_policy.job_commands({"ARENA_MCP_STDIO_COMMANDS": commands}) == set(params.get("mcp_stdio_commands", ()))


@pytest.mark.parametrize("name", ["ARENA_ALLOW_MCP_STDIO", "ARENA_MCP_STDIO_COMMANDS"])
def test_a_job_owner_cannot_set_the_keys_through_pod_overrides(name: str) -> None:
    problems = pod_override_problems({"extraEnv": [{"name": name, "value": "true"}]}, None, [])
    assert problems == [f"spec.workers.podOverrides.extraEnv[0].name: {name} is set by the operator"]


@pytest.mark.parametrize(("mcp_spec", "commands", "error"), [
    (None, (), None),
    ({}, (), None),
    ({"allowStdioCommands": ["python", "/opt/mcp/server"]}, ("python", "/opt/mcp/server"), None),
    ({"allowStdioCommands": ["python -m x"]}, (), "should match pattern"),
    ({"allowStdioCommands": [""]}, (), "at least 1 character"),
    ({"allowStdioCommands": ["x"] * 33}, (), "at most 32 items"),
    ({"allowStdio": True}, (), "Extra inputs are not permitted"),
])
def test_the_arenajob_field(mcp_spec: dict[str, Any] | None, commands: tuple[str, ...], error: str | None) -> None:
    raw: dict[str, Any] = {"sourceRef": {"name": "prompts"}, **({"mcp": mcp_spec} if mcp_spec is not None else {})}
    if error:
        with pytest.raises(ValidationError, match=error):
            ArenaJobSpec.model_validate(raw)
    else:
        assert stdio_commands_of(ArenaJobSpec.model_validate(raw)) == commands
