"""Every job ends (guarantee 2) and a dead worker's units are not left waiting: the operator against the emulator
with real worker processes, each fault injected for real (SIGKILL, an image that cannot be pulled, Redis
killed), and the default 120 s visibility timeout, which no test waits for."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.e2e.operator_env import NAMESPACE, condition, wait_event
from tests.harness.k8s import ARENA_API_VERSION, K8sApi, dig
from tests.harness.k8s import k8s_api as k8s_api
from tests.reliability.cluster import Redis, arenajob, finished, lifetime_cluster, sized, wait_running_unit

JOBS = "arenajobs"


@pytest.fixture
def redis_aof(tmp_path: Path):
    server = Redis(tmp_path / "redis", appendonly=True)
    yield server
    server.close()


@pytest.mark.parametrize("seed", sized([0, 1, 2], [1]))
def test_a_sigkilled_worker_s_unit_runs_again_within_seconds_not_after_the_visibility_timeout(
        k8s_api: K8sApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_aof: Redis, seed: int) -> None:
    with lifetime_cluster(k8s_api, tmp_path, monkeypatch, redis_aof, trials=9) as kubelet:
        k8s_api.create(arenajob("killed", replicas=3))
        k8s_api.wait_for(ARENA_API_VERSION, JOBS, NAMESPACE, "killed",
                         lambda o: (dig(o, "status.progress.completed") or 0) >= seed, timeout=60)
        victim = wait_running_unit(kubelet, redis_aof, "killed")
        killed_at = time.monotonic()
        kubelet.kill(kubelet.pod(victim), signal.SIGKILL)
        obj = k8s_api.wait_for(ARENA_API_VERSION, JOBS, NAMESPACE, "killed", finished, timeout=90)
        took = time.monotonic() - killed_at
        assert obj["status"]["phase"] == "Succeeded", obj["status"]
        assert obj["status"]["progress"] == {"total": 9, "completed": 9, "failed": 0, "pending": 0}
        assert obj["status"]["result"]["summary"]["runs"] == 9
        assert took < 60, f"{took:.0f}s: the unit waited for the 120 s visibility timeout"
        event = wait_event(k8s_api, "killed", "UnitsReleased")
        assert victim in event["message"]


def test_an_image_that_cannot_be_pulled_fails_the_job_with_the_pod_s_reason(
        k8s_api: K8sApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_aof: Redis) -> None:
    monkeypatch.setenv("ARENA_WORKER_IMAGE", "registry.invalid/arena:missing")
    monkeypatch.setenv("ARENA_WORKER_START_TIMEOUT_SECONDS", "4")
    with lifetime_cluster(k8s_api, tmp_path, monkeypatch, redis_aof, trials=2,
                          unpullable_images=["registry.invalid/arena"]):
        k8s_api.create(arenajob("unpullable", replicas=2))
        waiting = k8s_api.wait_for(ARENA_API_VERSION, JOBS, NAMESPACE, "unpullable",
                                   lambda o: condition(o, "Progressing").get("reason") == "WaitingForWorkers",
                                   timeout=30)
        assert "ErrImagePull" in condition(waiting, "Progressing")["message"] or \
            "ImagePullBackOff" in condition(waiting, "Progressing")["message"]
        obj = k8s_api.wait_for(ARENA_API_VERSION, JOBS, NAMESPACE, "unpullable", finished, timeout=30)
        assert obj["status"]["phase"] == "Failed"
        assert condition(obj, "Complete")["reason"] == "WorkersNotStarted"
        message = obj["status"]["message"]
        assert message.startswith("no worker started within 4s: pod unpullable-worker-")
        assert "ImagePullBackOff" in message and 'registry.invalid/arena:missing' in message
        k8s_api.wait_for("batch/v1", "jobs", NAMESPACE, "unpullable-worker", lambda o: o is None, timeout=20)


def test_an_unschedulable_worker_fails_the_job_naming_the_scheduler_s_reason(
        k8s_api: K8sApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_aof: Redis) -> None:
    monkeypatch.setenv("ARENA_WORKER_START_TIMEOUT_SECONDS", "3")
    with lifetime_cluster(k8s_api, tmp_path, monkeypatch, redis_aof, trials=2, node_labels={"pool": "cpu"}):
        k8s_api.create(arenajob("unschedulable", replicas=1,
                                workers={"replicas": 1, "podOverrides": {"nodeSelector": {"pool": "gpu"}}}))
        obj = k8s_api.wait_for(ARENA_API_VERSION, JOBS, NAMESPACE, "unschedulable", finished, timeout=40)
        assert obj["status"]["phase"] == "Failed"
        assert "Unschedulable: 0/1 nodes are available" in obj["status"]["message"]


def test_active_deadline_fails_a_job_that_runs_too_long_and_stops_its_workers(
        k8s_api: K8sApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_aof: Redis) -> None:
    with lifetime_cluster(k8s_api, tmp_path, monkeypatch, redis_aof, trials=40) as kubelet:
        k8s_api.create(arenajob("deadline", replicas=1, activeDeadlineSeconds=6))
        obj = k8s_api.wait_for(ARENA_API_VERSION, JOBS, NAMESPACE, "deadline", finished, timeout=40)
        assert obj["status"]["phase"] == "Failed"
        assert condition(obj, "Complete")["reason"] == "DeadlineExceeded"
        assert obj["status"]["message"].startswith("exceeded spec.activeDeadlineSeconds (6s) with ")
        done = obj["status"]["progress"]["completed"]
        assert 0 < done < 40 and f"{done}/40 units done" in obj["status"]["message"]
        k8s_api.wait_for("batch/v1", "jobs", NAMESPACE, "deadline-worker", lambda o: o is None, timeout=20)
        deadline = time.monotonic() + 20
        while any(pod.running for pod in kubelet.pods("deadline-worker")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(pod.running for pod in kubelet.pods("deadline-worker"))
        wait_event(k8s_api, "deadline", "DeadlineExceeded", "Warning")


def test_redis_killed_mid_job_with_an_append_only_file_the_job_finishes_exactly(
        k8s_api: K8sApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_aof: Redis) -> None:
    with lifetime_cluster(k8s_api, tmp_path, monkeypatch, redis_aof, trials=12):
        k8s_api.create(arenajob("restart", replicas=2))
        k8s_api.wait_for(ARENA_API_VERSION, JOBS, NAMESPACE, "restart",
                         lambda o: (dig(o, "status.progress.completed") or 0) >= 2, timeout=60)
        redis_aof.crash()
        time.sleep(2)
        redis_aof.start()
        obj = k8s_api.wait_for(ARENA_API_VERSION, JOBS, NAMESPACE, "restart", finished, timeout=120)
        assert obj["status"]["phase"] == "Succeeded", obj["status"]
        assert obj["status"]["progress"] == {"total": 12, "completed": 12, "failed": 0, "pending": 0}
        assert obj["status"]["result"]["summary"]["runs"] == 12


def test_redis_restarted_without_persistence_the_job_is_planned_again_and_ends(
        k8s_api: K8sApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    redis = Redis(tmp_path / "redis", appendonly=False)
    try:
        with lifetime_cluster(k8s_api, tmp_path, monkeypatch, redis, trials=8):
            k8s_api.create(arenajob("amnesia", replicas=2))
            k8s_api.wait_for(ARENA_API_VERSION, JOBS, NAMESPACE, "amnesia",
                             lambda o: (dig(o, "status.progress.completed") or 0) >= 2, timeout=60)
            redis.crash()
            redis.start()
            obj = k8s_api.wait_for(ARENA_API_VERSION, JOBS, NAMESPACE, "amnesia", finished, timeout=120)
            assert obj["status"]["phase"] == "Succeeded", obj["status"]
            assert obj["status"]["progress"] == {"total": 8, "completed": 8, "failed": 0, "pending": 0}
            event = wait_event(k8s_api, "amnesia", "QueueLost", "Warning")
            assert "planning again" in event["message"]
    finally:
        redis.close()


def test_a_finished_job_s_redis_keys_expire(k8s_api: K8sApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            redis_aof: Redis) -> None:
    monkeypatch.setenv("ARENA_FINISHED_KEY_TTL_SECONDS", "600")
    with lifetime_cluster(k8s_api, tmp_path, monkeypatch, redis_aof, trials=2):
        k8s_api.create(arenajob("expiring", replicas=1))
        obj = k8s_api.wait_for(ARENA_API_VERSION, JOBS, NAMESPACE, "expiring", finished, timeout=60)
        assert obj["status"]["phase"] == "Succeeded", obj["status"]
        keys = [key for key in redis_aof.scan() if "/expiring/" in key]
        assert keys and all(0 < redis_aof.ttl(key) <= 600 for key in keys), {k: redis_aof.ttl(k) for k in keys}
