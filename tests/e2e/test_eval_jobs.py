"""Session recording and eval mode in the cluster: ArenaJobs (real kopf operator, emulated API, the test kubelet
running real `arena worker` processes, redis-server, moto S3) over ConfigMap bundles. A job whose bundle enables
`defaults.output.recording` leaves one recording per unit beside the units, named by each unit's RecordingPath; a
job whose bundle holds evals and no scenarios plans one unit per recorded conversation and runs them as evals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.e2e.operator_env import NAMESPACE, arena_operator
from tests.e2e.test_arenajob import finished, mock_provider
from tests.harness.k8s import ARENA_API_VERSION, K8sApi
from tests.harness.k8s import k8s_api as k8s_api
from tests.harness.kubelet import Kubelet

BUCKET = "arena-evals"
PREFIX = "recorded/"
PROVIDER = "kind: Provider\nmetadata: {name: bot}\nspec: {type: mock, model: m}\n"
RECORDING_BUNDLE = {
    "config.arena.yaml": """\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Arena
metadata: {name: recorded}
spec:
  providers: [{file: provider.yaml}]
  scenarios: [{file: scenario.yaml}]
  defaults:
    output:
      recording: {enabled: true}
""",
    "provider.yaml": PROVIDER,
    "scenario.yaml": """\
kind: Scenario
metadata: {name: hello}
spec:
  description: says hello twice
  turns: [{role: user, content: hi}, {role: user, content: bye}]
""",
}
EVAL_BUNDLE = {
    "config.arena.yaml": """\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Arena
metadata: {name: evals}
spec:
  providers: [{file: provider.yaml}]
  evals: [{file: politeness.eval.yaml}]
  defaults: {}
""",
    "provider.yaml": PROVIDER,
    "politeness.eval.yaml": """\
kind: Eval
metadata: {name: politeness}
spec:
  id: politeness
  recording: {path: runs.json, type: arena_output}
  turns:
    - all_turns:
        assertions: [{type: content_excludes, params: {patterns: [stupid]}}]
  conversation_assertions: [{type: contains_any, params: {patterns: [thanks, welcome]}}]
""",
    "runs.json": json.dumps([
        {"RunID": "a", "Messages": [{"role": "user", "content": "thanks"},
                                    {"role": "assistant", "content": "You are welcome."}]},
        {"RunID": "b", "Messages": [{"role": "user", "content": "help"},
                                    {"role": "assistant", "content": "Sure, welcome aboard."},
                                    {"role": "user", "content": "thanks"},
                                    {"role": "assistant", "content": "Glad to help."}]}]),
}


@pytest.fixture
def cluster(k8s_api: K8sApi, redis_server: Any, s3_server: Any, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    s3 = boto3.client("s3", endpoint_url=s3_server.url, region_name="us-east-1", aws_access_key_id="test",
                      aws_secret_access_key="test")
    s3.create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("ARENA_REDIS_URL", redis_server.url)
    monkeypatch.setenv("ARENA_AGGREGATION_LEASE_SECONDS", "2")
    with arena_operator(k8s_api, tmp_path / "artifacts", monkeypatch), \
            Kubelet(k8s_api, tmp_path / "kubelet", namespaces=[NAMESPACE]):
        k8s_api.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-credentials",
                                                                         "namespace": NAMESPACE},
                        "stringData": {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}})
        k8s_api.create(mock_provider("mock-a", {"tier": "production"}))
        yield {"api": k8s_api, "s3": s3, "s3_url": s3_server.url}


def run_job(cluster: dict[str, Any], name: str, files: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """ConfigMap → ArenaSource → ArenaConfig → ArenaJob (S3 output); the finished job and its unit results."""
    api, s3 = cluster["api"], cluster["s3"]
    api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NAMESPACE},
                "data": files})
    api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaSource", "metadata": {"name": name, "namespace":
                NAMESPACE}, "spec": {"type": "configmap", "interval": "1h", "configMap": {"name": name}}})
    api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaConfig", "metadata": {"name": name, "namespace":
                NAMESPACE}, "spec": {"sourceRef": {"name": name}, "providerRef": {"name": "mock-a"}}})
    api.wait_for(ARENA_API_VERSION, "arenaconfigs", NAMESPACE, name, lambda o: (o or {}).get("status", {})
                 .get("phase") == "Ready", timeout=20)
    api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaJob", "metadata": {"name": name, "namespace":
                NAMESPACE}, "spec": {
        "configRef": {"name": name}, "type": "evaluation", "workers": {"replicas": 2},
        "output": {"type": "s3", "s3": {"bucket": BUCKET, "prefix": PREFIX, "endpoint": cluster["s3_url"],
                                         "region": "us-east-1", "secretRef": {"name": "s3-credentials"}}}}})
    obj = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, name, finished, timeout=60)
    units_prefix = f"{PREFIX}{NAMESPACE}/{name}/units/"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=units_prefix).get("Contents", [])]
    units = [json.loads(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()) for k in keys]
    return obj, units


def test_a_job_records_each_unit_beside_its_result(cluster: dict[str, Any]) -> None:
    obj, units = run_job(cluster, "recorded", RECORDING_BUNDLE)
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    assert len(units) == 1
    [unit] = units
    key = f"{PREFIX}{NAMESPACE}/recorded/recordings/{unit['RunID']}.jsonl"
    assert unit["RecordingPath"] == f"s3://{BUCKET}/{key}"
    lines = cluster["s3"].get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()
    events = [json.loads(line)["event"] for line in lines]
    assert {e["session_id"] for e in events} == {unit["RunID"]}
    said = [(e["data"]["Role"], e["data"]["Content"]) for e in events if e["type"] == "message.created"]
    assert said == [(m["role"], m["content"]) for m in unit["Messages"]]
    assert [role for role, _ in said] == ["user", "assistant", "user", "assistant"]


def test_a_job_of_evals_runs_one_unit_per_recorded_conversation(cluster: dict[str, Any]) -> None:
    obj, units = run_job(cluster, "evals", EVAL_BUNDLE)
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    progress = obj["status"]["progress"]
    assert (progress["total"], progress["completed"], progress["failed"]) == (2, 2, 0)
    assert sorted((u["ScenarioID"], u["ProviderID"], u["Status"], u["Params"]["session_id"]) for u in units) == [
        ("politeness", "eval", "passed", "a"), ("politeness", "eval", "passed", "b")]
    replies = {u["Params"]["session_id"]: [m for m in u["Messages"] if m["role"] == "assistant"] for u in units}
    assert all(m["meta"]["assertions"]["passed"] for ms in replies.values() for m in ms)
    assert len(replies["b"]) == 2  # each recorded reply judged
