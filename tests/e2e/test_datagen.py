"""ArenaJob type datagen end to end: the seed's "Data Generation Job" (examples/arenajob-reference/synthetic-data.yaml,
as written but for a smaller count) against an ArenaConfig `datagen-config` on a git source, run by the test kubelet
as real `arena worker` processes → Redis → the PVC; and three workers with one SIGKILLed mid-shard."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from arena_operator.workqueue.queue import GROUP
from tests.e2e.operator_env import NAMESPACE, arena_operator, condition, wait_event
from tests.e2e.test_arenajob import finished
from tests.fakes.services import GitDaemon
from tests.harness.k8s import ARENA_API_VERSION, K8sApi, dig
from tests.harness.k8s import k8s_api as k8s_api
from tests.harness.kubelet import Kubelet

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "tests" / "fixtures" / "bundles" / "datagen"
SEED_EXAMPLE = REPO / "examples" / "arenajob-reference" / "synthetic-data.yaml"


@pytest.fixture
def cluster(k8s_api: K8sApi, git_daemon: GitDaemon, redis_server: Any, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Operator, kubelet, the datagen bundle in git, its ArenaSource, ArenaConfig datagen-config, the claim."""
    git_daemon.create_repo("prompts")
    git_daemon.work("prompts").commit({str(p.relative_to(BUNDLE)): p.read_text() for p in BUNDLE.rglob("*")
                                       if p.is_file()})
    monkeypatch.setenv("ARENA_REDIS_URL", redis_server.url)
    monkeypatch.setenv("ARENA_VISIBILITY_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("ARENA_AGGREGATION_LEASE_SECONDS", "2")
    with arena_operator(k8s_api, tmp_path / "artifacts", monkeypatch), \
            Kubelet(k8s_api, tmp_path / "kubelet", namespaces=[NAMESPACE]) as kubelet:
        k8s_api.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "metadata": {"name": "generated-data", "namespace": NAMESPACE},
                        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}})
        k8s_api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaSource",
                        "metadata": {"name": "datagen-prompts", "namespace": NAMESPACE},
                        "spec": {"type": "git", "interval": "5m",
                                 "git": {"url": git_daemon.url("prompts"), "ref": {"branch": "main"}}}})
        k8s_api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaConfig",
                        "metadata": {"name": "datagen-config", "namespace": NAMESPACE},
                        "spec": {"sourceRef": {"name": "datagen-prompts"}, "concurrency": 4}})
        k8s_api.wait_for(ARENA_API_VERSION, "arenaconfigs", NAMESPACE, "datagen-config",
                         lambda o: dig(o, "status.phase") == "Ready", timeout=20)
        yield {"api": k8s_api, "kubelet": kubelet}


def seed_example(count: int, **spec: Any) -> dict[str, Any]:
    job = yaml.safe_load(SEED_EXAMPLE.read_text())
    job["spec"]["dataGen"]["count"] = count
    job["spec"].update(spec)
    return job


def merged_items(kubelet: Kubelet, job: str) -> list[dict[str, Any]]:
    root = kubelet.workdir / "pvcs" / NAMESPACE / "generated-data" / "batch-001" / NAMESPACE / job
    return [json.loads(line) for line in (root / "data.jsonl").read_text().splitlines()]


def check_exact(items: list[dict[str, Any]], count: int) -> None:
    assert len(items) == count and len({item["hash"] for item in items}) == count
    assert [item["index"] for item in items] == list(range(count))


def test_the_seed_example_runs_to_succeeded_with_the_merged_file_on_the_claim(cluster: dict[str, Any]) -> None:
    api, kubelet = cluster["api"], cluster["kubelet"]
    api.create(seed_example(200))
    obj = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "synthetic-data", finished, timeout=90)
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    assert obj["status"]["progress"] == {"total": 200, "completed": 200, "failed": 0, "pending": 0}
    assert obj["status"]["progressText"] == "200/200"
    url = f"pvc://generated-data/batch-001/{NAMESPACE}/synthetic-data/"
    assert obj["status"]["result"]["url"] == url
    summary = obj["status"]["result"]["summary"]
    assert (summary["items"], summary["complete"], summary["format"], summary["shards"]) == (200, True, "jsonl", 16)
    assert summary["filtered"] > 0 and summary["revision"] == obj["status"]["revision"]
    items = merged_items(kubelet, "synthetic-data")
    check_exact(items, 200)
    assert {item["revision"] for item in items} == {obj["status"]["revision"]}
    assert {item["scenario"] for item in items} == {"refund-question", "shopper-chat"}
    assert condition(obj, "Ready")["status"] == "True"
    assert condition(obj, "Complete")["message"].startswith(f"200 items in {url}data.jsonl")
    assert api.get("batch/v1", "jobs", NAMESPACE, "synthetic-data-worker")["spec"]["parallelism"] == 4
    wait_event(api, "synthetic-data", "Completed")


def slow_provider() -> dict[str, Any]:
    mock = yaml.safe_load((BUNDLE / "mock-assistant.yaml").read_text())
    mock["latency_ms"] = 60
    return {"apiVersion": ARENA_API_VERSION, "kind": "Provider",
            "metadata": {"name": "slow-assistant", "namespace": NAMESPACE, "labels": {"speed": "slow"}},
            "spec": {"type": "mock", "model": "mock-1", "mockConfig": mock}}


def holder_of_a_fresh_shard(kubelet: Kubelet, url: str, uid: str, timeout: float = 30.0) -> Any:
    """A running worker pod that was handed a shard under 150 ms ago (a shard takes ≥ 600 ms), so a kill now lands
    mid-shard rather than between two shards."""
    client = redis.Redis.from_url(url)
    stream = f"arena:{{{NAMESPACE}/crash-data/{uid}}}:stream"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = {pod.name: pod for pod in kubelet.pods("crash-data-worker") if pod.running}
        for entry in client.xpending_range(stream, GROUP, min="-", max="+", count=20):
            holder = running.get(entry["consumer"].decode())
            if holder is not None and entry["time_since_delivered"] < 150:
                return holder
        time.sleep(0.02)
    raise AssertionError("no worker was seen starting a shard")


def test_three_workers_one_killed_mid_shard_still_give_exactly_count_unique_items(cluster: dict[str, Any],
                                                                                  redis_server: Any) -> None:
    api, kubelet = cluster["api"], cluster["kubelet"]
    api.create(slow_provider())
    job = seed_example(120, workers={"replicas": 3},
                       providerOverrides={"default": {"selector": {"matchLabels": {"speed": "slow"}}}})
    job["metadata"]["name"] = "crash-data"
    api.create(job)
    started = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "crash-data",
                           lambda o: 10 <= (dig(o, "status.progress.completed") or 0) <= 80, timeout=60)
    kubelet.kill(holder_of_a_fresh_shard(kubelet, redis_server.url, started["metadata"]["uid"]), signal.SIGKILL)
    obj = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "crash-data", finished, timeout=90)
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    assert obj["status"]["progressText"] == "120/120"
    check_exact(merged_items(kubelet, "crash-data"), 120)
    assert obj["status"]["resolvedProviders"]["default"] == ["slow-assistant"]
    key = f"arena:{{{NAMESPACE}/crash-data/{obj['metadata']['uid']}}}:done"
    done = redis.Redis.from_url(redis_server.url).hgetall(key)
    attempts = [json.loads(record)["attempt"] for record in done.values()]
    assert len(attempts) == 12 and max(attempts) == 2  # the killed worker's shard was generated again
