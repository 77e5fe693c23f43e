"""A worker SIGKILLed at any point of a unit's life — claiming, calling the model, writing its result, recording
it — or while it writes the reports: the job still ends Succeeded with every unit counted once (guarantee 1).
The kill times come from seeds, so each run of the suite hits the same points; the aggregating worker is found by
the lease it holds in Redis, so that kill always lands mid-aggregation."""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.operator_env import NAMESPACE
from tests.harness.k8s import ARENA_API_VERSION, K8sApi, dig
from tests.harness.k8s import k8s_api as k8s_api
from tests.reliability.cluster import Redis, arenajob, finished, lifetime_cluster, sized

CLAIM = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "results", "namespace": NAMESPACE},
         "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}}
OUTPUT = {"type": "pvc", "pvc": {"claimName": "results"}}


def results_of(tmp_path: Path, job: str) -> list[dict]:
    root = tmp_path / "kubelet" / "pvcs" / NAMESPACE / "results" / NAMESPACE / job
    return json.loads((root / "results.json").read_text())


@pytest.mark.parametrize("seed", sized(list(range(5)), [0, 3]))
def test_a_worker_killed_at_a_seeded_moment_loses_and_doubles_nothing(
        k8s_api: K8sApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    rng = random.Random(seed)
    redis = Redis(tmp_path / "redis", appendonly=False)
    try:
        with lifetime_cluster(k8s_api, tmp_path, monkeypatch, redis, trials=30, unit_seconds=0.3) as kubelet:
            k8s_api.create(CLAIM)
            k8s_api.create(arenajob("kill", replicas=3, output=OUTPUT))
            k8s_api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "kill",
                             lambda o: dig(o, "status.progress.total") == 30, timeout=60)
            time.sleep(rng.uniform(0.2, 3.5))
            running = [pod for pod in kubelet.pods("kill-worker") if pod.running]
            if running:
                kubelet.kill(rng.choice(running), signal.SIGKILL)
            obj = k8s_api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "kill", finished, timeout=120)
        assert obj["status"]["phase"] == "Succeeded", obj["status"]
        assert obj["status"]["progress"] == {"total": 30, "completed": 30, "failed": 0, "pending": 0}
        runs = results_of(tmp_path, "kill")
        assert len(runs) == 30 and len({run["RunID"] for run in runs}) == 30
    finally:
        redis.close()


def test_the_worker_writing_the_reports_killed_mid_way_another_finishes_them(
        k8s_api: K8sApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    redis = Redis(tmp_path / "redis", appendonly=False)
    try:
        with lifetime_cluster(k8s_api, tmp_path, monkeypatch, redis, trials=600, unit_seconds=0.0) as kubelet:
            k8s_api.create(CLAIM)
            job = k8s_api.create(arenajob("aggregate", replicas=3, output=OUTPUT,
                                          evaluation={"outputFormats": ["json", "junit", "csv"]}))
            lease = f"arena:{{{NAMESPACE}/aggregate/{job['metadata']['uid']}}}:aggregator"
            deadline, holder = time.monotonic() + 90, ""
            while not holder and time.monotonic() < deadline:
                holder = redis.command("get", lease)
                time.sleep(0.01)
            assert holder, "no worker was seen aggregating"
            kubelet.kill(kubelet.pod(holder), signal.SIGKILL)
            obj = k8s_api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "aggregate", finished, timeout=120)
            took_over = redis.command("get", lease)
        assert obj["status"]["phase"] == "Succeeded", obj["status"]
        assert obj["status"]["progress"]["completed"] == 600
        assert len(results_of(tmp_path, "aggregate")) == 600
        assert took_over != holder  # the reports were written by another worker
    finally:
        redis.close()
