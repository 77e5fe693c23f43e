"""MCP server declarations checked at load time (file:line), table-driven; `${VAR}` in env and headers: resolved at
start from what the run may read (never stored in the spec), unset or ungranted variables named, resolved values cut
out of what the server sends back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from arena_operator.engine import mcp, mcp_vars
from arena_operator.engine.bundle import load_bundle
from arena_operator.engine.envexpand import BundleEnv, reading
from arena_operator.engine.errors import BundleInvalid
from arena_operator.engine.spec import ArenaSpec

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "bundles" / "mcp"


def bundle_with(tmp_path: Path, servers: Any, key: str = "mcp_servers") -> Path:
    """A one-provider bundle whose arena file declares `servers` (under `runtime` for runtime.mcp_servers)."""
    (tmp_path / "providers").mkdir(exist_ok=True)
    (tmp_path / "providers" / "mock.provider.yaml").write_text(
        (FIXTURE / "providers" / "mock.provider.yaml").read_text())
    (tmp_path / "mock-responses.yaml").write_text("defaultResponse: ok\n")
    spec: dict[str, Any] = {"providers": [{"file": "providers/mock.provider.yaml"}], "defaults": {"temperature": 0}}
    spec.update({"runtime": {"mcp_servers": servers}} if key == "runtime" else {"mcp_servers": servers})
    (tmp_path / "config.arena.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "promptkit.altairalabs.ai/v1alpha1", "kind": "Arena", "metadata": {"name": "t"},
         "spec": spec}, sort_keys=False))
    return tmp_path


def problems(root: Path) -> list[str]:
    with pytest.raises(BundleInvalid) as caught:
        load_bundle(root)
    return [str(p) for p in caught.value.problems]


OK = {"name": "notes", "command": "python"}


@pytest.mark.parametrize(("entry", "expected"), [
    ("notes", "mcp_servers[0]: expected a mapping (name, command or url, …), got str"),
    ({"command": "python"}, "mcp_servers[0].name: expected a name of letters, digits, '-' and single '_' (tools are "
                            "called mcp__<name>__<tool>), got None"),
    ({**OK, "name": "a__b"}, "mcp_servers[0].name: expected a name of letters, digits, '-' and single '_'"),
    ({**OK, "name": "a.b"}, "mcp_servers[0].name: expected a name"),
    ({"name": "x"}, "mcp_servers[0]: set exactly one of command (stdio), url (HTTP) or source, got none"),
    ({**OK, "url": "http://127.0.0.1:1/mcp"}, "got command and url"),
    ({**OK, "transport": "websocket"}, "mcp_servers[0].transport: unknown transport 'websocket'"),
    ({**OK, "transport": "sse"}, "mcp_servers[0].transport: transport sse needs a url"),
    ({"name": "web", "url": "http://127.0.0.1:1/mcp", "transport": "stdio"}, "transport stdio needs a command"),
    ({**OK, "command": ["python"]}, "mcp_servers[0].command: expected a string, got a list"),
    ({**OK, "args": "server.py"}, "mcp_servers[0].args: expected a list of strings"),
    ({**OK, "args": [{"a": 1}]}, "mcp_servers[0].args: expected a list of strings"),
    ({**OK, "env": ["A=1"]}, "mcp_servers[0].env: expected a mapping of names to values, got a list"),
    ({**OK, "headers": {"X": {"y": 1}}}, "mcp_servers[0].headers.X: expected a string, got a mapping"),
    ({**OK, "working_dir": "../.."}, "mcp_servers[0].working_dir: '../..' is outside the bundle"),
    ({**OK, "working_dir": "/etc"}, "is outside the bundle"),
    ({**OK, "timeout_ms": 0}, "mcp_servers[0].timeout_ms: expected milliseconds between 1 and 600000, got 0"),
    ({**OK, "start_timeout_ms": 3_600_000}, "start_timeout_ms: expected milliseconds between 1 and 120000"),
    ({**OK, "start_timeout_ms": "5s"}, "start_timeout_ms: expected milliseconds"),
    ({**OK, "tool_filter": ["read"]}, "mcp_servers[0].tool_filter: expected a mapping with allowlist"),
    ({**OK, "tool_filter": {"allowlist": "read"}}, "mcp_servers[0].tool_filter.allowlist: expected a list"),
    ({**OK, "env": {"TOKEN": "${ARENA_TEST_UNSET_MCP_VAR}"}},
     "mcp_servers[0].env.TOKEN: environment variable ARENA_TEST_UNSET_MCP_VAR is not set (and has no default)"),
    ({"name": "web", "url": "http://127.0.0.1:1/mcp", "headers": {"Authorization": "Bearer ${ARENA_TEST_UNSET_X}"}},
     "mcp_servers[0].headers.Authorization: environment variable ARENA_TEST_UNSET_X is not set"),
])
def test_bad_declarations_are_named_with_file_and_line(tmp_path: Path, entry: Any, expected: str) -> None:
    found = problems(bundle_with(tmp_path, [entry]))
    assert any(expected in p for p in found), found
    assert all(p.startswith("config.arena.yaml:") and p.split(":")[1].isdigit() for p in found), found


def test_duplicates_across_both_lists_and_a_list_that_is_not_one(tmp_path: Path) -> None:
    found = problems(bundle_with(tmp_path, [OK, OK]))
    assert any("mcp_servers[1].name: duplicate MCP server name 'notes'" in p for p in found), found
    found = problems(bundle_with(tmp_path, {"notes": OK}, key="runtime"))
    assert any("runtime.mcp_servers: expected a list of MCP servers, got a mapping" in p for p in found), found


@pytest.mark.parametrize(("entry", "warning"), [
    ({**OK, "comand": "x"}, "mcp_servers[0].comand: unknown MCP server key 'comand' (did you mean 'command'?)"),
    ({**OK, "args": ["${HOME}"], "command": "${PYTHON}"}, "mcp_servers[0].command: ${…} is not expanded here"),
])
def test_suspicious_declarations_are_warnings(tmp_path: Path, entry: dict[str, Any], warning: str) -> None:
    bundle = load_bundle(bundle_with(tmp_path, [entry]))
    assert any(warning in str(w) for w in bundle.warnings), bundle.warnings


def test_good_declarations_load_and_keep_their_references_unexpanded(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARENA_TEST_MCP_TOKEN", "tok-123456")
    servers = [{**OK, "args": ["server.py", 3], "env": {"TOKEN": "${ARENA_TEST_MCP_TOKEN}", "LEVEL": 2},
                "tool_filter": {"blocklist": ["write"]}, "timeout_ms": 500, "start_timeout_ms": 900},
               {"name": "web", "url": "http://127.0.0.1:1/mcp", "transport": "streamable_http",
                "headers": {"X-Team": "${ARENA_TEST_UNSET_TEAM:-none}"}},
               {"name": "sandbox", "source": "docker"}]
    bundle = load_bundle(bundle_with(tmp_path, servers))
    assert not bundle.warnings
    assert mcp.declared_servers(bundle.arena)["notes"].env["TOKEN"] == "${ARENA_TEST_MCP_TOKEN}"


def test_in_the_cluster_references_are_left_to_the_worker(tmp_path: Path) -> None:
    """The operator's grant is not the worker's (the job owner's extraEnv): the load does not judge them."""
    with reading(BundleEnv.granted([], {})):
        load_bundle(bundle_with(tmp_path, [{**OK, "env": {"TOKEN": "${NOT_GRANTED_HERE}"}}]))


GRANTED = BundleEnv.granted(["TEAM"], {"TEAM": "support-east", "SECRET_KEY": "never"})


@pytest.mark.parametrize(("mapping", "expected", "secrets", "error"), [
    ({"A": "plain"}, {"A": "plain"}, [], None),
    ({"A": "${TEAM}", "B": "x-${TEAM}-y"}, {"A": "support-east", "B": "x-support-east-y"},
     ["support-east", "support-east"], None),
    ({"A": "${MISSING:-fallback}"}, {"A": "fallback"}, [], None),  # a default is the bundle's, not a secret
    ({"A": "${SECRET_KEY}"}, None, None, "headers.A: environment variable SECRET_KEY may not be read by a bundle "
                                         "here (granted: TEAM); the job owner grants a variable by setting it in "
                                         "workers.podOverrides.extraEnv"),
    ({"A": "${TEAM}${GONE}"}, None, None, "headers.A: environment variable GONE may not be read"),
])
def test_expand_fields(mapping: dict[str, str], expected: dict[str, str] | None, secrets: list[str] | None,
                       error: str | None) -> None:
    if error:
        with pytest.raises(mcp_vars.MissingVariable) as caught:
            mcp_vars.expand_fields("headers", mapping, GRANTED)
        assert str(caught.value).startswith(error) and "never" not in str(caught.value)
    else:
        assert mcp_vars.expand_fields("headers", mapping, GRANTED) == (expected, secrets)


@pytest.mark.parametrize(("text", "secrets", "expected"), [
    ("token=abcd1234 again abcd1234", ["abcd1234"], "token=[redacted] again [redacted]"),
    ("on and on", ["on"], "on and on"),  # too short to mean anything
    ("key=abcdef", ["abcd", "abcdef"], "key=[redacted]"),  # the longer first
    ("nothing here", [], "nothing here"),
])
def test_redact(text: str, secrets: list[str], expected: str) -> None:
    assert mcp_vars.redact(text, secrets) == expected


async def test_a_variable_the_worker_may_not_read_fails_the_server_naming_field_and_variable() -> None:
    spec = ArenaSpec.model_validate({"defaults": {}, "mcp_servers": [
        {"name": "notes", "command": "python", "env": {"NOTES_TEAM": "${SECRET_KEY}"}}]})
    tools = mcp.McpTools(spec, FIXTURE)
    with reading(GRANTED), pytest.raises(mcp.McpStartError) as caught:
        await tools.ensure(["notes"])
    assert str(caught.value).startswith("MCP server 'notes': env.NOTES_TEAM: environment variable SECRET_KEY may not")
