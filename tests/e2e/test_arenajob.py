"""The headline path: Provider + ArenaSource (git daemon) + ArenaConfig + ArenaJob → worker Job run by the test
kubelet as real `arena worker` processes → Redis → S3 (moto_server) → status Succeeded with the results URL."""

from __future__ import annotations

import http.server
import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import redis
import yaml

from tests.e2e.operator_env import NAMESPACE, arena_operator, condition, events, wait_event
from tests.e2e.test_arenasource import FLAT_BUNDLE
from tests.fakes.services import GitDaemon, free_port
from tests.harness.k8s import ARENA_API_VERSION, K8sApi, dig
from tests.harness.k8s import k8s_api as k8s_api
from tests.harness.kubelet import Kubelet

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart"
BUCKET = "arena-results"
SCENARIOS = 6


def quickstart_files() -> dict[str, str]:
    return {str(p.relative_to(QUICKSTART)): p.read_text() for p in QUICKSTART.rglob("*") if p.is_file()}


def mock_provider(name: str, labels: dict[str, str], latency_ms: int = 0) -> dict[str, Any]:
    mock = yaml.safe_load((QUICKSTART / "mocks" / "assistant.yaml").read_text())
    mock["latency_ms"] = latency_ms
    return {"apiVersion": ARENA_API_VERSION, "kind": "Provider",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": {"type": "mock", "model": "mock-1", "mockConfig": mock}}


def job(name: str, replicas: int = 3, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": ARENA_API_VERSION, "kind": "ArenaJob", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"configRef": {"name": "provider-comparison"}, "type": "evaluation",
                     "evaluation": {"outputFormats": ["junit", "json"]}, "workers": {"replicas": replicas},
                     "output": {"type": "s3", "s3": {"bucket": BUCKET, "prefix": "evals/parallel/"}}, **spec}}


@pytest.fixture
def cluster(k8s_api: K8sApi, git_daemon: GitDaemon, redis_server: Any, s3_server: Any, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Operator, kubelet, a git repo holding the quickstart, an S3 bucket, a Provider, source and config."""
    git_daemon.create_repo("prompts")
    work = git_daemon.work("prompts")
    work.commit(quickstart_files())
    s3 = boto3.client("s3", endpoint_url=s3_server.url, region_name="us-east-1", aws_access_key_id="test",
                      aws_secret_access_key="test")
    s3.create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("ARENA_REDIS_URL", redis_server.url)
    monkeypatch.setenv("ARENA_VISIBILITY_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("ARENA_AGGREGATION_LEASE_SECONDS", "2")
    with arena_operator(k8s_api, tmp_path / "artifacts", monkeypatch), \
            Kubelet(k8s_api, tmp_path / "kubelet", namespaces=[NAMESPACE]) as kubelet:
        k8s_api.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-credentials",
                                                                         "namespace": NAMESPACE},
                        "stringData": {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}})
        k8s_api.create(mock_provider("mock-a", {"tier": "production"}, latency_ms=50))
        k8s_api.create(mock_provider("mock-slow", {"speed": "slow"}, latency_ms=400))
        k8s_api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaSource",
                        "metadata": {"name": "my-prompts", "namespace": NAMESPACE},
                        "spec": {"type": "git", "interval": "5m",
                                 "git": {"url": git_daemon.url("prompts"), "ref": {"branch": "main"}}}})
        k8s_api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaConfig",
                        "metadata": {"name": "provider-comparison", "namespace": NAMESPACE},
                        "spec": {"sourceRef": {"name": "my-prompts"}, "providerRef": {"name": "mock-a"},
                                 "workers": 4, "timeout": "5m", "trials": 4}})
        k8s_api.wait_for(ARENA_API_VERSION, "arenaconfigs", NAMESPACE, "provider-comparison",
                         lambda o: dig(o, "status.phase") == "Ready", timeout=20)
        yield {"api": k8s_api, "s3": s3, "kubelet": kubelet, "s3_url": s3_server.url, "git": work}


def s3_output(endpoint: str) -> dict[str, Any]:
    return {"type": "s3", "s3": {"bucket": BUCKET, "prefix": "evals/parallel/", "endpoint": endpoint,
                                 "region": "us-east-1", "secretRef": {"name": "s3-credentials"}}}


def finished(o: dict[str, Any] | None) -> bool:
    return dig(o, "status.phase") in ("Succeeded", "Failed", "Cancelled")


def test_multi_worker_evaluation_succeeds_with_reports_in_s3(cluster: dict[str, Any]) -> None:
    api, s3 = cluster["api"], cluster["s3"]
    api.create(job("parallel-eval", output=s3_output(cluster["s3_url"])))
    obj = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "parallel-eval", finished, timeout=60)
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    progress = obj["status"]["progress"]
    total = SCENARIOS * 4
    assert progress["total"] == total == progress["completed"] + progress["failed"] and progress["pending"] == 0
    url = obj["status"]["result"]["url"]
    assert url == f"s3://{BUCKET}/evals/parallel/{NAMESPACE}/parallel-eval/"
    keys = {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET) for o in
            page.get("Contents", [])}
    prefix = f"evals/parallel/{NAMESPACE}/parallel-eval/"
    for name in ("results.json", "junit.xml", "report.html", "summary.json"):
        assert prefix + name in keys
    assert len([k for k in keys if k.startswith(prefix + "units/")]) == total
    runs = json.loads(s3.get_object(Bucket=BUCKET, Key=prefix + "results.json")["Body"].read())
    assert len(runs) == total and {r["ProviderID"] for r in runs} == {"mock-a"}
    summary = obj["status"]["result"]["summary"]
    assert summary["runs"] == total and "mock-a" in summary["providers"]
    for kind in ("ConfigValid", "JobCreated", "Ready"):
        assert condition(obj, kind)["status"] == "True", kind
    for reason in ("Planned", "JobCreated", "Completed"):
        wait_event(api, "parallel-eval", reason)


SLOW = {"default": {"selector": {"matchLabels": {"speed": "slow"}}}}  # ~0.4 s per model call: time to interfere


def test_killed_worker_still_counts_every_unit_once(cluster: dict[str, Any]) -> None:
    api, kubelet = cluster["api"], cluster["kubelet"]
    api.create(job("crash-eval", providerOverrides=SLOW, output=s3_output(cluster["s3_url"])))
    api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "crash-eval",
                 lambda o: (dig(o, "status.progress.completed") or 0) >= 2, timeout=30)
    victim = kubelet.pods("crash-eval-worker")[0]
    kubelet.kill(victim, signal.SIGKILL)
    obj = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "crash-eval", finished, timeout=60)
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    progress = obj["status"]["progress"]
    assert progress["completed"] + progress["failed"] == progress["total"] == SCENARIOS * 4
    assert obj["status"]["result"]["summary"]["runs"] == progress["total"]


def test_provider_overrides_selecting_two_providers_double_the_units(cluster: dict[str, Any]) -> None:
    api = cluster["api"]
    api.create(mock_provider("mock-b", {"tier": "production"}))
    api.create(job("two-providers", providerOverrides={"default": {"selector": {"matchLabels": {
        "tier": "production"}}}}, output=s3_output(cluster["s3_url"])))
    obj = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "two-providers", finished, timeout=60)
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    assert obj["status"]["progress"]["total"] == 2 * SCENARIOS * 4
    assert obj["status"]["resolvedProviders"] == {"default": ["mock-a", "mock-b"]}


def test_selector_matching_nothing_fails_naming_the_group(cluster: dict[str, Any]) -> None:
    api = cluster["api"]
    api.create(job("no-match", providerOverrides={"judge": {"selector": {"matchLabels": {"role": "evaluator"}}}},
                   output=s3_output(cluster["s3_url"])))
    obj = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "no-match", finished, timeout=30)
    assert obj["status"]["phase"] == "Failed"
    ready = condition(obj, "Ready")
    assert ready["reason"] == "NoProviderMatched" and "judge" in ready["message"]


def test_cancel_then_ttl_cleans_everything_up(cluster: dict[str, Any], redis_server: Any) -> None:
    api, kubelet = cluster["api"], cluster["kubelet"]
    api.create(job("cancel-me", replicas=1, ttlSecondsAfterFinished=1, output=s3_output(cluster["s3_url"])))
    api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "cancel-me",
                 lambda o: condition(o, "JobCreated").get("status") == "True", timeout=30)
    api.patch(ARENA_API_VERSION, "arenajobs", NAMESPACE, "cancel-me", {"spec": {"suspend": True}})
    obj = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "cancel-me", finished, timeout=30)
    assert obj["status"]["phase"] == "Cancelled"
    api.wait_gone(ARENA_API_VERSION, "arenajobs", NAMESPACE, "cancel-me", timeout=30)
    api.wait_gone("batch/v1", "jobs", NAMESPACE, "cancel-me-worker", timeout=30)
    deadline = time.monotonic() + 10
    client = redis.Redis.from_url(redis_server.url)
    while client.keys("arena:{arena/cancel-me/*"):
        assert time.monotonic() < deadline, "Redis keys of the job were not removed"
        time.sleep(0.1)
    assert not [p for p in kubelet.pods("cancel-me-worker") if p.running]


def test_pvc_output_and_operator_metrics(cluster: dict[str, Any]) -> None:
    api = cluster["api"]
    api.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "results",
                                                                                "namespace": NAMESPACE},
                "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}})
    api.create(job("pvc-eval", replicas=2, output={"type": "pvc", "pvc": {"claimName": "results",
                                                                          "subPath": "evals/"}}))
    obj = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "pvc-eval", finished, timeout=60)
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    assert obj["status"]["result"]["url"] == f"pvc://results/evals/{NAMESPACE}/pvc-eval/"
    root = cluster["kubelet"].workdir / "pvcs" / NAMESPACE / "results" / "evals" / NAMESPACE / "pvc-eval"
    assert {"junit.xml", "results.json", "report.html", "summary.json"} <= {p.name for p in root.iterdir()}
    assert len(list((root / "units").iterdir())) == SCENARIOS * 4
    source = api.get(ARENA_API_VERSION, "arenasources", NAMESPACE, "my-prompts")
    base = source["status"]["artifact"]["url"].split("/artifacts/")[0]
    metrics = httpx.get(f"{base}/metrics", timeout=5).text
    assert 'arena_operator_jobs{phase="Succeeded"}' in metrics
    assert 'arena_operator_job_units{job="pvc-eval",namespace="arena",state="completed"} 24.0' in metrics
    assert "arena_operator_source_fetch_seconds_count" in metrics


def test_missing_bucket_fails_the_job_with_the_s3_error(cluster: dict[str, Any]) -> None:
    api = cluster["api"]
    output = s3_output(cluster["s3_url"])
    output["s3"]["bucket"] = "no-such-bucket"
    api.create(job("bad-bucket", replicas=1, output=output))
    obj = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "bad-bucket", finished, timeout=60)
    assert obj["status"]["phase"] == "Failed"
    ready = condition(obj, "Ready")
    assert ready["reason"] == "WorkerFailed" and "no-such-bucket" in ready["message"]
    assert "NoSuchBucket" in ready["message"] or "BucketNotFound" in ready["message"]
    assert "test" not in ready["message"].split("no-such-bucket")[0].lower().replace("arena", "")


def test_autoscaling_follows_the_queue_within_bounds(cluster: dict[str, Any]) -> None:
    api = cluster["api"]
    # 24 units at concurrency 4: about 5 pending units per run slot asks for 2 workers, within 1..3
    api.create(job("autoscaled", workers={"replicas": 1, "minReplicas": 1, "maxReplicas": 3}, providerOverrides=SLOW,
                   output=s3_output(cluster["s3_url"])))
    obj = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "autoscaled", finished, timeout=60)
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    wait_event(api, "autoscaled", "Scaled")
    messages = [e["message"] for e in events(api, "autoscaled") if e["reason"] == "Scaled"]
    assert any("1 → 2" in m and "bounds 1..3" in m for m in messages), messages
    assert obj["status"]["progress"]["completed"] + obj["status"]["progress"]["failed"] == SCENARIOS * 4


def test_missing_references_fail_before_any_pod_naming_the_object(cluster: dict[str, Any]) -> None:
    api = cluster["api"]
    keyed = mock_provider("keyed", {"tier": "keyed"})
    keyed["spec"] = {"type": "openai", "model": "gpt-4o-mini",
                     "credential": {"secretRef": {"name": "openai-credentials"}}}
    api.create(keyed)
    api.create(job("no-secret", providerOverrides={"default": {"selector": {"matchLabels": {"tier": "keyed"}}}},
                   output=s3_output(cluster["s3_url"])))
    api.create(job("no-claim", output={"type": "pvc", "pvc": {"claimName": "absent"}}))
    cases = (("no-secret", "SecretNotFound", "Secret arena/openai-credentials (Provider credential"),
             ("no-claim", "ClaimNotFound", "PersistentVolumeClaim arena/absent"))
    for name, reason, words in cases:
        obj = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, name, finished, timeout=30)
        assert obj["status"]["phase"] == "Failed"
        ready = condition(obj, "Ready")
        assert ready["reason"] == reason and words in ready["message"], ready
        assert api.get("batch/v1", "jobs", NAMESPACE, f"{name}-worker") is None


def test_job_waits_for_its_config_and_config_follows_the_source(cluster: dict[str, Any]) -> None:
    api = cluster["api"]
    api.create(job("early", configRef={"name": "later-config"}, output=s3_output(cluster["s3_url"])))
    obj = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "early",
                       lambda o: condition(o, "ConfigValid").get("reason") == "ConfigNotFound", timeout=30)
    assert obj["status"]["phase"] == "Pending"
    assert "ArenaConfig arena/later-config not found" in condition(obj, "ConfigValid")["message"]
    before = api.get(ARENA_API_VERSION, "arenaconfigs", NAMESPACE, "provider-comparison")["status"]["revision"]
    sha = cluster["git"].commit({"README.md": "new revision\n"})
    api.patch(ARENA_API_VERSION, "arenasources", NAMESPACE, "my-prompts",
              {"metadata": {"annotations": {"omnia.altairalabs.ai/reconcile-requested-at": "now"}}})
    obj = api.wait_for(ARENA_API_VERSION, "arenaconfigs", NAMESPACE, "provider-comparison",
                       lambda o: dig(o, "status.revision") == f"main@sha1:{sha}", timeout=30)
    assert before != obj["status"]["revision"] and obj["status"]["scenarioCount"] == SCENARIOS


def test_redis_outage_is_a_condition_and_the_job_recovers(k8s_api: K8sApi, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("ARENA_REDIS_URL", f"redis://127.0.0.1:{port}/0")
    with arena_operator(k8s_api, tmp_path / "artifacts", monkeypatch):
        k8s_api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bundle",
                                                                            "namespace": NAMESPACE},
                        "data": FLAT_BUNDLE})
        k8s_api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaSource",
                        "metadata": {"name": "cm", "namespace": NAMESPACE},
                        "spec": {"type": "configmap", "configMap": {"name": "bundle"}}})
        k8s_api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaConfig",
                        "metadata": {"name": "provider-comparison", "namespace": NAMESPACE},
                        "spec": {"sourceRef": {"name": "cm"}}})
        k8s_api.create(job("outage", replicas=1))
        obj = k8s_api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "outage",
                               lambda o: condition(o, "Ready").get("reason") == "RedisUnavailable", timeout=30)
        assert "Redis unavailable" in condition(obj, "Ready")["message"]
        wait_event(k8s_api, "outage", "RedisUnavailable", "Warning")
        redis_proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no"], stdout=subprocess.DEVNULL)
        try:
            obj = k8s_api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "outage",
                                   lambda o: dig(o, "status.progress.total") == 1, timeout=30)
            assert condition(obj, "JobCreated")["status"] == "True"
        finally:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)


class _OrderTool(http.server.BaseHTTPRequestHandler):
    calls: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append(body)
        reply = json.dumps({"order_id": body.get("order_id"), "status": "delivered-by-live-tool"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        """Quiet: the test asserts on `calls`."""


def test_tool_registry_override_reaches_the_workers(cluster: dict[str, Any]) -> None:
    api, s3 = cluster["api"], cluster["s3"]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OrderTool)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        api.create({"apiVersion": ARENA_API_VERSION, "kind": "ToolRegistry",
                    "metadata": {"name": "orders-live", "namespace": NAMESPACE, "labels": {"environment": "test"}},
                    "spec": {"handlers": [{"name": "orders", "type": "http",
                                           "tool": {"name": "lookup_order", "description": "Live order lookup"},
                                           "httpConfig": {"endpoint": f"http://127.0.0.1:{server.server_port}/o",
                                                          "method": "POST"}}]}})
        api.create(job("live-tools", replicas=1, scenarios={"include": ["order-status"]},
                       toolRegistryOverride={"selector": {"matchLabels": {"environment": "test"}}},
                       output=s3_output(cluster["s3_url"])))
        obj = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "live-tools", finished, timeout=60)
    finally:
        server.shutdown()
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    assert obj["status"]["resolvedTools"][0]["name"] == "lookup_order"
    assert [c["order_id"] for c in _OrderTool.calls] == ["A1234"] * 4
    prefix = f"evals/parallel/{NAMESPACE}/live-tools/"
    runs = json.loads(s3.get_object(Bucket=BUCKET, Key=prefix + "results.json")["Body"].read())
    results = [m["tool_result"]["content"] for r in runs for m in r["Messages"] if m.get("tool_result")]
    assert len(results) == 4 and all("delivered-by-live-tool" in r for r in results)


def test_basic_job_without_output_keeps_a_summary(cluster: dict[str, Any]) -> None:
    """The seed's "Basic Evaluation Job": only configRef. No files are written; the summary is in status."""
    api = cluster["api"]
    api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaJob",
                "metadata": {"name": "basic-eval", "namespace": NAMESPACE},
                "spec": {"configRef": {"name": "provider-comparison"}}})
    obj = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "basic-eval", finished, timeout=60)
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    summary = obj["status"]["result"]["summary"]
    assert summary["runs"] == SCENARIOS * 4 and summary["passed"] + summary["failed"] == SCENARIOS * 4
    assert "url" not in obj["status"]["result"]
    worker = api.get("batch/v1", "jobs", NAMESPACE, "basic-eval-worker")
    assert worker is not None and worker["spec"]["parallelism"] == 4  # the config's `workers: 4`
