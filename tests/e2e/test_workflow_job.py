"""Workflows and skills through the cluster: the workflow fixture bundle in a git ArenaSource, run by an ArenaJob
through the real kopf operator, the emulated API and the test kubelet (real `arena worker` processes, Redis, S3).
The distributed runs have the outcomes `arena run` gives locally: the same per-run pass/fail, the same states
speaking, the same transitions, artifacts and skill activations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from arena_operator import cli
from tests.e2e.operator_env import NAMESPACE, arena_operator
from tests.e2e.test_arenajob import BUCKET, finished, s3_output
from tests.fakes.services import GitDaemon
from tests.harness.k8s import ARENA_API_VERSION, K8sApi, dig
from tests.harness.k8s import k8s_api as k8s_api
from tests.harness.kubelet import Kubelet

BUNDLE = Path(__file__).resolve().parents[1] / "fixtures" / "bundles" / "workflow"


@pytest.fixture
def cluster(k8s_api: K8sApi, git_daemon: GitDaemon, redis_server: Any, s3_server: Any, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    git_daemon.create_repo("workflow")
    git_daemon.work("workflow").commit({str(p.relative_to(BUNDLE)): p.read_text() for p in BUNDLE.rglob("*")
                                        if p.is_file()})
    s3 = boto3.client("s3", endpoint_url=s3_server.url, region_name="us-east-1", aws_access_key_id="test",
                      aws_secret_access_key="test")
    s3.create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("ARENA_REDIS_URL", redis_server.url)
    monkeypatch.setenv("ARENA_VISIBILITY_TIMEOUT_SECONDS", "5")
    monkeypatch.setenv("ARENA_AGGREGATION_LEASE_SECONDS", "2")
    with arena_operator(k8s_api, tmp_path / "artifacts", monkeypatch), \
            Kubelet(k8s_api, tmp_path / "kubelet", namespaces=[NAMESPACE]):
        k8s_api.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-credentials",
                                                                         "namespace": NAMESPACE},
                        "stringData": {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}})
        k8s_api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaSource",
                        "metadata": {"name": "desk", "namespace": NAMESPACE},
                        "spec": {"type": "git", "interval": "5m",
                                 "git": {"url": git_daemon.url("workflow"), "ref": {"branch": "main"}}}})
        k8s_api.wait_for(ARENA_API_VERSION, "arenasources", NAMESPACE, "desk",
                         lambda o: dig(o, "status.phase") == "Ready", timeout=30)
        yield {"api": k8s_api, "s3": s3, "s3_url": s3_server.url}


def _local_runs(out: Path) -> dict[str, dict[str, Any]]:
    cli.main(["run", str(BUNDLE), "--out", str(out), "--formats", "json", "-q"])
    return {r["ScenarioID"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


def _conversation(run: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(role, state stamp, text) of every message: what must not differ between local and distributed runs."""
    return [(m["role"], (m.get("meta") or {}).get("current_workflow_state", {}).get("current_state", ""),
             m["content"]) for m in run["Messages"]]


def test_a_workflow_bundle_runs_distributed_with_the_local_outcomes(cluster: dict[str, Any], tmp_path: Path) -> None:
    api = cluster["api"]
    api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaJob",
                "metadata": {"name": "desk-eval", "namespace": NAMESPACE},
                "spec": {"sourceRef": {"name": "desk"}, "workers": {"replicas": 2},
                         "output": s3_output(cluster["s3_url"])}})
    obj = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "desk-eval", finished, timeout=120)
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    body = cluster["s3"].get_object(Bucket=BUCKET, Key=f"evals/parallel/{NAMESPACE}/desk-eval/results.json")["Body"]
    remote = {r["ScenarioID"]: r for r in json.loads(body.read())}
    expected = yaml.safe_load((BUNDLE / "expected.yaml").read_text())["scenarios"]
    statuses = {scenario: next(iter(by_provider.values())) for scenario, by_provider in expected.items()}
    assert {s: r["Status"] for s, r in remote.items()} == {
        s: (e if isinstance(e, str) else e["status"]) for s, e in statuses.items()}
    local = _local_runs(tmp_path / "local")
    for scenario, run in remote.items():
        assert _conversation(run) == _conversation(local[scenario]), scenario
        assert run["Workflow"] == local[scenario]["Workflow"], scenario
        assert run["Violations"] == local[scenario]["Violations"], scenario
    assert remote["tech-loop"]["Workflow"]["workflow_artifacts"] == {"notes": "rebooted; reset; "}
    assert remote["billing-flow"]["Workflow"]["skills_activated"] == ["refunds"]
    assert obj["status"]["progress"]["total"] == len(expected)
