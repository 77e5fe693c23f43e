"""ArenaJob type loadtest end to end: the seed's "Load Testing Job" (examples/arenajob-reference/provider-loadtest.yaml,
as written but for shorter durations) against an ArenaConfig `load-test-config` on a git source, run by the test
kubelet as real `arena worker` pods → Redis → S3 (moto_server) → Succeeded with the reports in the bucket; and the
Go operator's closed-model form (tests/fixtures/goform/arenajob-loadtest.yaml) with its thresholds and budget."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from tests.e2e.operator_env import NAMESPACE, arena_operator, condition, wait_event
from tests.e2e.test_arenajob import finished, mock_provider, quickstart_files
from tests.fakes.services import GitDaemon
from tests.harness.k8s import ARENA_API_VERSION, K8sApi, dig
from tests.harness.k8s import k8s_api as k8s_api
from tests.harness.kubelet import Kubelet

REPO = Path(__file__).resolve().parents[2]
SEED_EXAMPLE = REPO / "examples" / "arenajob-reference" / "provider-loadtest.yaml"
GO_FORM = REPO / "tests" / "fixtures" / "goform" / "arenajob-loadtest.yaml"
BUCKET = "loadtest-results"
REPORTS = ("summary.json", "timeseries.csv", "report.html", "junit.xml")


@pytest.fixture
def cluster(k8s_api: K8sApi, git_daemon: GitDaemon, redis_server: Any, s3_server: Any, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Operator, kubelet (worker pods get ambient S3 credentials and endpoint, as a pod with an IAM role would),
    the quickstart in git, its ArenaSource, a mock Provider and the ArenaConfig load-test-config."""
    git_daemon.create_repo("prompts")
    git_daemon.work("prompts").commit(quickstart_files())
    s3 = boto3.client("s3", endpoint_url=s3_server.url, region_name="us-east-1", aws_access_key_id="test",
                      aws_secret_access_key="test")
    s3.create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("ARENA_REDIS_URL", redis_server.url)
    monkeypatch.setenv("ARENA_AGGREGATION_LEASE_SECONDS", "2")
    ambient = {"AWS_ENDPOINT_URL": s3_server.url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
               "AWS_DEFAULT_REGION": "us-east-1"}
    with arena_operator(k8s_api, tmp_path / "artifacts", monkeypatch), \
            Kubelet(k8s_api, tmp_path / "kubelet", namespaces=[NAMESPACE], extra_env=ambient) as kubelet:
        k8s_api.create(mock_provider("mock-a", {"tier": "production"}, latency_ms=20))
        for name in ("my-prompts", "go-prompts"):
            k8s_api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaSource",
                            "metadata": {"name": name, "namespace": NAMESPACE},
                            "spec": {"type": "git", "interval": "5m",
                                     "git": {"url": git_daemon.url("prompts"), "ref": {"branch": "main"}}}})
        k8s_api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaConfig",
                        "metadata": {"name": "load-test-config", "namespace": NAMESPACE},
                        "spec": {"sourceRef": {"name": "my-prompts"}, "providerRef": {"name": "mock-a"},
                                 "scenarios": {"include": ["greeting", "order-status"]}}})
        k8s_api.wait_for(ARENA_API_VERSION, "arenaconfigs", NAMESPACE, "load-test-config",
                         lambda o: dig(o, "status.phase") == "Ready", timeout=30)
        yield {"api": k8s_api, "s3": s3, "kubelet": kubelet}


def _object(s3: Any, key: str) -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def test_the_seed_example_runs_to_succeeded_with_reports_in_s3(cluster: dict[str, Any]) -> None:
    api, s3 = cluster["api"], cluster["s3"]
    job = yaml.safe_load(SEED_EXAMPLE.read_text())
    job["spec"]["loadTest"].update(rampUp="2s", duration="8s")  # the example's 2m / 30m, shortened
    api.create(job)
    live = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "provider-loadtest",
                        lambda o: finished(o) or (dig(o, "status.result.summary.current_rps") or 0) > 0, timeout=90)
    if not finished(live):  # the live status while it runs: merged over the workers every tick
        summary = live["status"]["result"]["summary"]
        assert {"current_rps", "latency_ms", "error_rate", "dropped", "cost_usd", "active_workers"} <= set(summary)
        assert live["status"]["progressText"].endswith("s/8s") and live["status"]["progress"]["total"] == 8
    obj = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "provider-loadtest", finished, timeout=120)
    status = obj["status"]
    assert status["phase"] == "Succeeded", status
    assert status["progress"] == {"total": 8, "completed": 8, "failed": 0, "pending": 0}
    prefix = f"loadtests/{NAMESPACE}/provider-loadtest/"
    assert status["result"]["url"] == f"s3://{BUCKET}/{prefix}"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])}
    assert {prefix + name for name in REPORTS} <= keys
    summary = json.loads(_object(s3, prefix + "summary.json"))
    assert summary == status["result"]["summary"]
    assert summary["target_rps"] == 500 and summary["model"] == "open"
    # 500/s ramped over 2 s then held for 6 s: 3500 arrivals, every one due on some worker (started or dropped)
    assert summary["expected_arrivals"] == 3500 and summary["arrivals"] >= 3500 - 500
    assert summary["runs"]["started"] + summary["dropped"] == summary["arrivals"]
    assert len(summary["workers"]) >= 5  # minReplicas
    assert summary["requests"] > 0 and summary["latency_ms"]["p50"] >= 20  # the mock's 20 ms
    rows = list(csv.DictReader(io.StringIO(_object(s3, prefix + "timeseries.csv").decode())))
    assert len(rows) >= 8 and sum(int(r["arrivals"]) for r in rows) == summary["arrivals"]  # + runs finishing
    # the ramp: ∫ 250 t dt over [0, 1) and [1, 2); an arrival late by a millisecond at a second's edge is counted in
    # the next second (rows are by when a request started), so each second may be off by a couple
    assert all(abs(int(r["arrivals"]) - ideal) <= 3 for r, ideal in zip(rows[:2], (125, 375), strict=True)), rows[:2]
    assert "<svg" in _object(s3, prefix + "report.html").decode()
    assert condition(obj, "Thresholds")["reason"] == "NoThresholds" and condition(obj, "Ready")["status"] == "True"
    assert condition(obj, "Complete")["message"].startswith("load test done: ")
    for reason in ("Planned", "JobCreated", "Completed"):
        wait_event(api, "provider-loadtest", reason)


def test_the_go_operator_form_runs_its_closed_model_with_thresholds(cluster: dict[str, Any]) -> None:
    api = cluster["api"]
    job = yaml.safe_load(GO_FORM.read_text())
    job["metadata"]["namespace"] = NAMESPACE
    job["spec"]["trials"] = 10  # 200 × 6 scenarios: shortened
    job["spec"]["loadTest"]["ramp"] = {"up": "1s", "down": "1s"}
    job["spec"]["loadTest"]["duration"] = "20s"
    api.create(job)
    obj = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "go-loadtest", finished, timeout=120)
    status = obj["status"]
    assert status["phase"] == "Succeeded", status
    summary = status["result"]["summary"]
    assert summary["model"] == "closed" and summary["vus"] == {"concurrency": 20, "per_worker": 5, "iterations": 60}
    assert summary["runs"]["started"] == 60  # exactly the fixed amount of work, over all workers
    assert [(t["metric"], t["passed"]) for t in summary["thresholds"]] == [("latency_p95", True),
                                                                          ("error_rate", True)]
    assert summary["budget"]["limit"] == 25.0 and summary["budget"]["spent"] < 25
    assert condition(obj, "Thresholds")["status"] == "True" and "latency_p95 < 3s (measured" in \
        condition(obj, "Thresholds")["message"]
    assert "url" not in status["result"]  # no spec.output: the summary only
