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

import boto3
import pytest

from tests.e2e.operator_env import NAMESPACE, arena_operator
from tests.e2e.test_arenajob import BUCKET, finished, s3_output
from tests.fakes.services import GitDaemon
from tests.harness.k8s import ARENA_API_VERSION, K8sApi, dig
from tests.harness.k8s import k8s_api as k8s_api
from tests.harness.kubelet import Kubelet

BUNDLES = Path(__file__).resolve().parents[1] / "fixtures" / "bundles"


def _files(name: str) -> dict[str, str]:
    root = BUNDLES / name
    return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()
            and "__pycache__" not in p.parts and p.name != "expected.yaml"}


@pytest.fixture(params=["on"])
def cluster(request: pytest.FixtureRequest, k8s_api: K8sApi, git_daemon: GitDaemon, redis_server: Any,
            s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Operator (exec gate per the param), kubelet, the two bundles in git as ArenaSources exec and agents, S3."""
    for name, bundle in (("exec", "exec-tools"), ("agents", "a2a-agents")):
        git_daemon.create_repo(name)
        git_daemon.work(name).commit(_files(bundle))
    s3 = boto3.client("s3", endpoint_url=s3_server.url, region_name="us-east-1", aws_access_key_id="test",
                      aws_secret_access_key="test")
    s3.create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("ARENA_REDIS_URL", redis_server.url)
    monkeypatch.setenv("ARENA_VISIBILITY_TIMEOUT_SECONDS", "5")
    monkeypatch.setenv("ARENA_AGGREGATION_LEASE_SECONDS", "2")
    if request.param == "on":
        monkeypatch.setenv("ARENA_ALLOW_EXEC", "true")
    else:
        monkeypatch.delenv("ARENA_ALLOW_EXEC", raising=False)
    with arena_operator(k8s_api, tmp_path / "artifacts", monkeypatch), \
            Kubelet(k8s_api, tmp_path / "kubelet", namespaces=[NAMESPACE]):
        k8s_api.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-credentials",
                                                                         "namespace": NAMESPACE},
                        "stringData": {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}})
        for name in ("exec", "agents"):
            k8s_api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaSource",
                            "metadata": {"name": name, "namespace": NAMESPACE},
                            "spec": {"type": "git", "interval": "5m",
                                     "git": {"url": git_daemon.url(name), "ref": {"branch": "main"}}}})
            k8s_api.wait_for(ARENA_API_VERSION, "arenasources", NAMESPACE, name,
                             lambda o: dig(o, "status.phase") == "Ready", timeout=30)
        yield {"api": k8s_api, "s3": s3, "s3_url": s3_server.url}


def run_job(cluster: dict[str, Any], name: str, source: str,
            **spec: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Create the ArenaJob, wait for its end; its status and its runs (from S3) by scenario."""
    api = cluster["api"]
    api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaJob", "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {"sourceRef": {"name": source}, "output": s3_output(cluster["s3_url"]), **spec}})
    obj = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, name, finished, timeout=120)
    body = cluster["s3"].get_object(Bucket=BUCKET, Key=f"evals/parallel/{NAMESPACE}/{name}/results.json")["Body"]
    return obj, {r["ScenarioID"]: r for r in json.loads(body.read())}


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
