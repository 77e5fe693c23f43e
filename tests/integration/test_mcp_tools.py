"""MCP tools end to end: `arena run` of the mcp bundle starts a real stdio MCP server (written with the official
SDK), the mock model calls its tool, and the result comes back as the tool result; `${VAR}` in the server's env
and headers reaches the server and never the results; a server that does not start fails its runs, named, with its
stderr tail; the bounds (start timeout, call timeout, output size, stderr kept) hold."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from arena_operator.engine import mcp
from arena_operator.engine.egress import EgressPolicy, confine_process
from arena_operator.engine.errors import ToolError
from arena_operator.engine.spec import ArenaSpec
from tests.fakes.mcp_notes import notes_http_server

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "tests" / "fixtures" / "bundles" / "mcp"
# The bundle's servers run `python`: this interpreter (it has the SDK) comes first on PATH.
VENV_PATH = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
TEAM = "support-east"  # what ${NOTES_TEAM_NAME} in the notes server's env resolves to


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mcp-out")
    done = subprocess.run([sys.executable, "-m", "arena_operator.cli", "run", str(BUNDLE), "--out", str(out)],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, **VENV_PATH, "NOTES_TEAM_NAME": TEAM})
    assert done.returncode == 0, done.stderr
    assert TEAM not in done.stdout + done.stderr, "a resolved ${VAR} is never logged"
    return out


@pytest.fixture(scope="module")
def runs(run_dir: Path) -> dict[str, dict[str, Any]]:
    return {r["ScenarioID"]: r for r in json.loads((run_dir / "results.json").read_text())}


def test_the_model_calls_an_mcp_tool_and_its_result_reaches_the_conversation(runs: dict[str, Any]) -> None:
    run = runs["mcp-lookup"]
    assert run["Status"] == "passed", run["Error"]
    tools = [m["tool_result"] for m in run["Messages"] if m["role"] == "tool"]
    assert tools[0] == {"id": "call_0_mcp__notes__lookup", "name": "mcp__notes__lookup",
                        "content": "Refunds take 5 business days."}
    reply = run["Messages"][3]["meta"]["assertions"]
    assert reply["passed"] and {r["type"] for r in reply["results"]} >= {"tools_called", "tool_result_includes"}
    assert tools[1]["name"] == "mcp__notes__fail" and "Error executing tool fail" in tools[1]["error"]
    assert run["ToolStats"], "MCP calls are counted like any other tool's"


def test_a_server_that_does_not_start_fails_its_runs_naming_it_with_its_stderr(runs: dict[str, Any]) -> None:
    run = runs["mcp-broken"]
    assert run["Status"] == "error" and run["ErrorKind"] == "mcp_start"
    assert "MCP server 'broken' did not start" in run["Error"]
    assert "stderr: broken: missing NOTES_DB" in run["Error"]


def test_a_var_in_the_servers_env_reaches_it_and_never_the_results(runs: dict[str, Any], run_dir: Path) -> None:
    run = runs["mcp-team"]
    assert run["Status"] == "passed", run["Error"]
    digest, reveal = (m["tool_result"]["content"] for m in run["Messages"] if m["role"] == "tool")
    assert digest == hashlib.sha256(TEAM.encode()).hexdigest(), "the server got the resolved value"
    assert reveal == "NOTES_TEAM=[redacted]", "what it sends back is cut"
    leaked = [p for p in run_dir.rglob("*") if p.is_file() and TEAM in p.read_text(errors="replace")]
    assert not leaked, leaked


def _tools(*servers: dict[str, Any]) -> mcp.McpTools:
    return mcp.McpTools(ArenaSpec.model_validate({"defaults": {}, "mcp_servers": list(servers)}), BUNDLE)


async def test_a_server_that_never_answers_is_bounded_by_its_start_timeout() -> None:
    tools = _tools({"name": "slow", "command": sys.executable, "args": ["-c", "import time; time.sleep(30)"],
                    "start_timeout_ms": 300})
    with pytest.raises(mcp.McpStartError, match=r"'slow' did not start \(no answer within 300 ms"):
        await tools.ensure(["slow"])
    with pytest.raises(mcp.McpStartError):  # remembered: the next run does not wait again
        await tools.ensure(["slow"])
    await tools.aclose()


CHATTY = "import sys; sys.stderr.write('x' * 1_000_000 + ' the end'); sys.exit(1)"


@pytest.mark.parametrize(("entry", "message", "within"), [
    ({"command": "arena-test-no-such-command"}, r"'bad' did not start \(FileNotFoundError: .*No such file or "
                                                r"directory: 'arena-test-no-such-command'\); no stderr$", 10),
    ({"command": sys.executable, "args": ["-c", "import time; print('not json-rpc', flush=True); time.sleep(60)"],
      "start_timeout_ms": 500}, r"'bad' did not start \(no answer within 500 ms\); no stderr$", 15),
    ({"command": sys.executable, "args": ["-c", CHATTY]},
     rf"'bad' did not start \(.*\); stderr: x{{{mcp.STDERR_TAIL_CHARS - 8}}} the end$", 10),
    ({"command": sys.executable, "args": ["-c", "import os, sys; sys.stderr.write('token ' + os.environ['T'])"],
      "env": {"T": "${ARENA_TEST_MCP_TOKEN}"}}, r"stderr: token \[redacted\]$", 10),
    ({"command": sys.executable, "args": ["-c", "import sys; sys.exit(0)"], "working_dir": "server"},
     r"'bad' did not start \(.*\); no stderr$", 10),
])
async def test_a_server_that_does_not_start_is_named_with_its_stderr_tail_within_a_bound(
        monkeypatch: pytest.MonkeyPatch, entry: dict[str, Any], message: str, within: float) -> None:
    monkeypatch.setenv("ARENA_TEST_MCP_TOKEN", "tok-0123456789")
    tools = _tools({"name": "bad", **entry})
    started = time.monotonic()
    with pytest.raises(mcp.McpStartError) as caught:
        await tools.ensure(["bad"])
    assert time.monotonic() - started < within
    assert re.search(message, str(caught.value)), str(caught.value)[-300:]
    assert "tok-0123456789" not in str(caught.value)
    await tools.aclose()


async def test_calls_are_bounded_in_time_and_output(monkeypatch: pytest.MonkeyPatch) -> None:
    tools = _tools({"name": "notes", "command": sys.executable, "args": ["server/notes_server.py"],
                    "timeout_ms": 5000, "tool_filter": {"blocklist": ["fail", "digest", "reveal"]}})
    try:
        specs = await tools.ensure(["notes"])
        assert set(specs) == {"mcp__notes__lookup", "mcp__notes__wait"}, "tool_filter applies"
        monkeypatch.setattr(mcp, "MAX_OUTPUT_CHARS", 10)
        assert await tools.call("mcp__notes__lookup", {"topic": "refunds"}) == (
            "Refunds ta… [cut at 10 characters]")
        server = tools._servers["notes"]
        monkeypatch.setattr(server, "config", dataclasses.replace(server.config, timeout_ms=200))
        with pytest.raises(ToolError, match="wait timed out after 200 ms"):
            await tools.call("mcp__notes__wait", {"seconds": 2})
    finally:
        await tools.aclose()
    with pytest.raises(ToolError, match="not running"):
        await tools.call("mcp__notes__lookup", {"topic": "refunds"})


@pytest.mark.parametrize(("kind", "transport", "path"), [("streamable-http", "streamable_http", "/mcp"),
                                                         ("sse", "", "/sse")])
async def test_http_servers_run_under_the_egress_policy(kind: str, transport: str, path: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTES_TEAM_NAME", TEAM)
    with notes_http_server(kind) as port:
        entry = {"name": "web", "url": f"http://127.0.0.1:{port}{path}", "transport": transport,
                 "headers": {"X-Team": "team ${NOTES_TEAM_NAME}"}}
        tools = _tools(entry)
        try:
            assert "mcp__web__lookup" in await tools.ensure(["web"])
            assert await tools.call("mcp__web__lookup", {"topic": "shipping"}) == "Orders ship within 24 hours."
            # The header's ${VAR}, resolved at start, is what the server received; sent back, it is cut.
            sent = hashlib.sha256(f"team {TEAM}".encode()).hexdigest()
            assert await tools.call("mcp__web__digest", {"name": "x-team"}) == sent
            assert await tools.call("mcp__web__reveal", {"name": "x-team"}) == "x-team=team [redacted]"
        finally:
            await tools.aclose()
        confine_process(EgressPolicy.cluster({}))
        try:
            with pytest.raises(mcp.McpStartError, match=r"'web' did not start .*egress to 127\.0\.0\.1 refused"):
                await _tools(entry).ensure(["web"])
        finally:
            confine_process(None)
