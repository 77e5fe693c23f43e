"""Workflows, skills and compositions through the cluster: the workflow and compositions fixture bundles in git
ArenaSources, run by ArenaJobs through the real kopf operator, the emulated API and the test kubelet (real `arena
worker` processes, Redis, S3). The distributed runs have the outcomes `arena run` gives locally: the same per-run
status, the same states speaking, the same transitions, artifacts, skill activations and composition records."""

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

BUNDLES = Path(__file__).resolve().parents[1] / "fixtures" / "bundles"
NAMES = ("workflow", "compositions")


@pytest.fixture
def cluster(k8s_api: K8sApi, git_daemon: GitDaemon, redis_server: Any, s3_server: Any, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for name in NAMES:
        bundle = BUNDLES / name
        git_daemon.create_repo(name)
        git_daemon.work(name).commit({str(p.relative_to(bundle)): p.read_text() for p in bundle.rglob("*")
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
        for name in NAMES:
            k8s_api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaSource",
                            "metadata": {"name": name, "namespace": NAMESPACE},
                            "spec": {"type": "git", "interval": "5m",
                                     "git": {"url": git_daemon.url(name), "ref": {"branch": "main"}}}})
        for name in NAMES:
            k8s_api.wait_for(ARENA_API_VERSION, "arenasources", NAMESPACE, name,
                             lambda o: dig(o, "status.phase") == "Ready", timeout=30)
        yield {"api": k8s_api, "s3": s3, "s3_url": s3_server.url}


def _local_runs(bundle: Path, out: Path) -> dict[str, dict[str, Any]]:
    cli.main(["run", str(bundle), "--out", str(out), "--formats", "json", "-q"])
    return {r["ScenarioID"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


def _conversation(run: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(role, state stamp, text) of every message: what must not differ between local and distributed runs."""
    return [(m["role"], (m.get("meta") or {}).get("current_workflow_state", {}).get("current_state", ""),
             m["content"]) for m in run["Messages"]]


def _run_job(cluster: dict[str, Any], name: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    job = f"{name}-eval"
    cluster["api"].create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaJob",
                           "metadata": {"name": job, "namespace": NAMESPACE},
                           "spec": {"sourceRef": {"name": name}, "workers": {"replicas": 2},
                                    "output": s3_output(cluster["s3_url"])}})
    obj = cluster["api"].wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, job, finished, timeout=120)
    body = cluster["s3"].get_object(Bucket=BUCKET, Key=f"evals/parallel/{NAMESPACE}/{job}/results.json")["Body"]
    return obj, {r["ScenarioID"]: r for r in json.loads(body.read())}


@pytest.mark.parametrize("name", NAMES)
def test_the_bundle_runs_distributed_with_the_local_outcomes(cluster: dict[str, Any], tmp_path: Path,
                                                            name: str) -> None:
    obj, remote = _run_job(cluster, name)
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    expected = yaml.safe_load((BUNDLES / name / "expected.yaml").read_text())["scenarios"]
    outcomes = {scenario: next(iter(by_provider.values())) for scenario, by_provider in expected.items()}
    assert {s: r["Status"] for s, r in remote.items()} == {
        s: (e if isinstance(e, str) else e["status"]) for s, e in outcomes.items()}
    assert obj["status"]["progress"]["total"] == len(expected)
    local = _local_runs(BUNDLES / name, tmp_path / "local")
    for scenario, run in remote.items():
        mine = local[scenario]
        assert _conversation(run) == _conversation(mine), scenario
        assert (run["Workflow"], run["Violations"], run["ErrorKind"]) == (
            mine["Workflow"], mine["Violations"], mine["ErrorKind"]), scenario
    if name == "compositions":
        snapshot = [(m.get("meta") or {}).get("_composition_snapshot") for m in remote["billing-route"]["Messages"]]
        assert any(snapshot) and snapshot == [(m.get("meta") or {}).get("_composition_snapshot")
                                              for m in local["billing-route"]["Messages"]]
    if name == "workflow":
        assert remote["tech-loop"]["Workflow"]["workflow_artifacts"] == {"notes": "rebooted; reset; "}
        assert remote["billing-flow"]["Workflow"]["skills_activated"] == ["refunds"]
