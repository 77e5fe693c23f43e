"""MCP tools through the cluster: the mcp fixture bundle in a git ArenaSource, run by ArenaJobs through the real kopf
operator, the emulated API and the test kubelet (real `arena worker` processes starting the real notes server).

- a job that lists `python` in spec.mcp.allowStdioCommands (the cluster admin's gate, ARENA_ALLOW_MCP_STDIO, is on):
  the model's call reaches the stdio server and its result passes the run's assertions; the job owner's grant
  (extraEnv) resolves the server's `${NOTES_TEAM_NAME}`, which reaches the server and no result; the broken server
  errors its run naming its stderr tail;
- the same bundle without the field: every run errors (mcp_start) naming the server, the command and the field, and
  the job ends Failed NoUnitRan as any job in which no unit ran;
- the notes server over streamable HTTP on loopback (egress allow-private is on here): no field needed."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.bundle_jobs import bundle_cluster, run_job
from tests.e2e.operator_env import NAMESPACE, condition
from tests.e2e.test_arenajob import BUCKET
from tests.fakes.mcp_notes import notes_http_server
from tests.fakes.services import GitDaemon
from tests.harness.k8s import K8sApi
from tests.harness.k8s import k8s_api as k8s_api

BUNDLE = Path(__file__).resolve().parents[1] / "fixtures" / "bundles" / "mcp"
TEAM = "support-east"
GRANT = {"podOverrides": {"extraEnv": [{"name": "NOTES_TEAM_NAME", "value": TEAM}]}}


def bundle_files(http_port: int) -> dict[str, str]:
    """The fixture bundle, plus http.arena.yaml: the same prompts and scenarios with the notes server over
    streamable HTTP on `http_port` (its header carries the `${VAR}` the stdio server has in its env)."""
    files = {str(p.relative_to(BUNDLE)): p.read_text() for p in BUNDLE.rglob("*") if p.is_file()
             and "__pycache__" not in p.parts}
    arena = yaml.safe_load(files["config.arena.yaml"])
    arena["spec"]["mcp_servers"] = [{"name": "notes", "url": f"http://127.0.0.1:{http_port}/mcp",
                                     "transport": "streamable_http",
                                     "headers": {"NOTES_TEAM": "${NOTES_TEAM_NAME:-nobody}"}}]
    for key in ("scenarios", "prompt_configs"):  # the broken server is stdio: not in this file
        arena["spec"][key] = [entry for entry in arena["spec"][key] if "broken" not in entry["file"]]
    files["http.arena.yaml"] = yaml.safe_dump(arena, sort_keys=False)
    return files


@pytest.fixture
def http_notes() -> Iterator[int]:
    """The notes server over streamable HTTP on a free loopback port, up before the test goes on."""
    with notes_http_server("streamable-http") as port:
        yield port


@pytest.fixture
def cluster(k8s_api: K8sApi, git_daemon: GitDaemon, redis_server: Any, s3_server: Any, http_notes: int,
            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Operator (with the admin's stdio gate on: each job gives its own), kubelet, the bundle as source mcp-notes."""
    with bundle_cluster(k8s_api, git_daemon, redis_server.url, s3_server.url, tmp_path, monkeypatch,
                        {"mcp-notes": bundle_files(http_notes)}, {"ARENA_ALLOW_MCP_STDIO": "true"}) as cluster:
        yield cluster


def run_mcp_job(cluster: dict[str, Any], name: str, **spec: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    return run_job(cluster, name, "mcp-notes", **spec)


def tool_results(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [m["tool_result"] for m in run["Messages"] if m["role"] == "tool"]


def stored_text(s3: Any, job: str) -> str:
    """Every object the job wrote, as one text (to look for what must not be there)."""
    prefix = f"evals/parallel/{NAMESPACE}/{job}/"
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
            for o in page.get("Contents", [])]
    assert keys
    return "\n".join(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read().decode(errors="replace") for k in keys)


def assert_lookup_and_team_pass(runs: dict[str, dict[str, Any]]) -> None:
    lookup = runs["mcp-lookup"]
    assert lookup["Status"] == "passed", lookup["Error"]
    assert tool_results(lookup)[0] == {"id": "call_0_mcp__notes__lookup", "name": "mcp__notes__lookup",
                                       "content": "Refunds take 5 business days."}
    checks = next(m["meta"]["assertions"] for m in lookup["Messages"] if (m.get("meta") or {}).get("assertions"))
    assert checks["passed"] and {r["type"] for r in checks["results"] if r["passed"]} >= {
        "tools_called", "tool_args", "tool_result_includes"}
    team = runs["mcp-team"]
    assert team["Status"] == "passed", team["Error"]
    digest, reveal = (r["content"] for r in tool_results(team))
    assert digest == hashlib.sha256(TEAM.encode()).hexdigest(), "the job owner's grant reached the server"
    assert reveal == "NOTES_TEAM=[redacted]"


def test_a_job_that_allows_the_command_runs_the_stdio_server(cluster: dict[str, Any]) -> None:
    obj, runs = run_mcp_job(cluster, "mcp-allowed", mcp={"allowStdioCommands": ["python"]}, workers=GRANT)
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    assert_lookup_and_team_pass(runs)
    broken = runs["mcp-broken"]
    assert broken["Status"] == "error" and broken["ErrorKind"] == "mcp_start"
    assert "MCP server 'broken' did not start" in broken["Error"]
    assert broken["Error"].endswith("stderr: broken: missing NOTES_DB")
    assert "1 mcp_start" in obj["status"]["message"]
    assert TEAM not in stored_text(cluster["s3"], "mcp-allowed")


def test_a_job_without_the_field_errors_its_runs_naming_the_field(cluster: dict[str, Any]) -> None:
    obj, runs = run_mcp_job(cluster, "mcp-refused", workers=GRANT)
    assert obj["status"]["phase"] == "Failed" and condition(obj, "Ready")["reason"] == "NoUnitRan", obj["status"]
    assert "none of the 3 units could run: 3 mcp_start" in obj["status"]["message"]
    assert "spec.mcp.allowStdioCommands" in obj["status"]["message"]
    for scenario, server in (("mcp-lookup", "notes"), ("mcp-team", "notes"), ("mcp-broken", "broken")):
        run = runs[scenario]
        assert (run["Status"], run["ErrorKind"]) == ("error", "mcp_start")
        assert run["Error"] == (f"MCP server {server!r}: command 'python' is not allowed by the ArenaJob: add it to "
                                "spec.mcp.allowStdioCommands (allowed now: none)")


def test_an_http_server_on_loopback_needs_no_field(cluster: dict[str, Any]) -> None:
    obj, runs = run_mcp_job(cluster, "mcp-http", arenaFile="http.arena.yaml", workers=GRANT)
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    assert set(runs) == {"mcp-lookup", "mcp-team"}
    assert_lookup_and_team_pass(runs)
    assert TEAM not in stored_text(cluster["s3"], "mcp-http")
