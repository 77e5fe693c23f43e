"""Exec tools and A2A agents through the cluster: the exec-tools and a2a-agents fixture bundles in git ArenaSources,
run by ArenaJobs through the real kopf operator, the emulated API and the test kubelet (real `arena worker`
processes).

- with the cluster admin's exec gate on (ARENA_ALLOW_EXEC=true on the operator) and the job's spec.exec.allowTools,
  the exec tool answers the model and the tool_exec gates run it, in the sandbox of the worker;
- with either off (both are by default) every exec fails naming both keys;
- in-process A2A agents answer the model's delegations in worker pods as they do locally (no socket)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.bundle_jobs import BUNDLES, bundle_cluster, bundle_files, run_job
from tests.fakes.services import GitDaemon
from tests.harness.k8s import K8sApi
from tests.harness.k8s import k8s_api as k8s_api


@pytest.fixture(params=["on"])
def cluster(request: pytest.FixtureRequest, k8s_api: K8sApi, git_daemon: GitDaemon, redis_server: Any,
            s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Operator (exec gate per the param), kubelet, the two bundles in git as ArenaSources exec and agents, S3."""
    if request.param != "on":
        monkeypatch.delenv("ARENA_ALLOW_EXEC", raising=False)
    sources = {"exec": bundle_files(BUNDLES / "exec-tools"), "agents": bundle_files(BUNDLES / "a2a-agents")}
    with bundle_cluster(k8s_api, git_daemon, redis_server.url, s3_server.url, tmp_path, monkeypatch, sources,
                        {"ARENA_ALLOW_EXEC": "true"} if request.param == "on" else {}) as cluster:
        yield cluster


def gate(run: dict[str, Any]) -> dict[str, Any]:
    return run["conversation_assertions"]["results"][0]


def test_with_both_keys_exec_tools_run_in_the_worker(cluster: dict[str, Any]) -> None:
    obj, runs = run_job(cluster, "exec-on", "exec", exec={"allowTools": True})
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    assert runs["count"]["Status"] == "passed", runs["count"]
    tool = next(m for m in runs["count"]["Messages"] if m["role"] == "tool")
    assert json.loads(tool["tool_result"]["content"]) == {"words": 3, "lint": "clean"}
    assert (runs["lint-gate"]["Status"], gate(runs["lint-gate"])["passed"]) == ("failed", False)
    assert "matched failure_pattern 'TODO left'" in json.dumps(gate(runs["lint-gate"]))


DISABLED = ("exec tools are disabled in the cluster: they run only when the cluster admin allows them (Helm value "
            "exec.allowTools, ARENA_ALLOW_EXEC=true on the operator) and the ArenaJob sets spec.exec.allowTools: true")


@pytest.mark.parametrize(("cluster", "spec"), [
    ("on", {}),  # the admin allows, the job does not ask
    ("off", {"exec": {"allowTools": True}}),  # the job asks, the admin does not allow
], indirect=["cluster"])
def test_without_both_every_exec_fails_naming_the_keys(cluster: dict[str, Any], spec: dict[str, Any]) -> None:
    _, runs = run_job(cluster, "exec-off", "exec", **spec)
    for scenario in ("count", "lint-gate"):
        assert runs[scenario]["Status"] == "failed"
        assert DISABLED in json.dumps(gate(runs[scenario]))


def test_in_process_a2a_agents_answer_in_the_worker(cluster: dict[str, Any]) -> None:
    _, runs = run_job(cluster, "agents", "agents")
    assert {s: r["Status"] for s, r in runs.items()} == {
        "delegate": "passed", "wrong-agent": "failed", "agent-failure": "failed"}
    tools = [m["tool_result"]["content"] for m in runs["delegate"]["Messages"] if m["role"] == "tool"]
    assert tools == ['{"response": "TP1350 Lisbon 09:05\\nTP1352 Lisbon 18:40"}',
                     '{"response": "Booked: Hotel Ribeira, 2 nights"}']
