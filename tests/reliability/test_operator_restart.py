"""An operator restart loses no status and duplicates nothing (guarantee 3): the operator is stopped at a point
chosen by a timing seed — while it plans and enqueues, before or after it creates the worker Job, while the job
runs — and a new one (same artifact port, same Redis) carries on. Stopping cancels the handler wherever it is
awaiting, which for a reconcile pass is what a crash is: nothing after that point ran, and status was not patched.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.operator_env import NAMESPACE, arena_operator
from tests.fakes.services import free_port
from tests.harness.k8s import ARENA_API_VERSION, K8sApi, dig
from tests.harness.k8s import k8s_api as k8s_api
from tests.reliability.cluster import Redis, arenajob, finished, sized, wait_config_ready, workers_and_bundle

UNITS = 3000  # planning and enqueueing them takes long enough for a stop to land in the middle of it


@pytest.mark.parametrize("stop_after", sized([0.2, 0.6, 1.2, 2.5, 5.0], [0.6, 2.5]))
def test_the_operator_stopped_anywhere_and_started_again_finishes_the_job_exactly_once(
        k8s_api: K8sApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop_after: float) -> None:
    redis = Redis(tmp_path / "redis", appendonly=True)
    port = free_port()  # the workers' artifact URL must stay valid across the restart
    try:
        with workers_and_bundle(k8s_api, tmp_path, monkeypatch, redis, trials=UNITS, unit_seconds=0.0):
            with arena_operator(k8s_api, tmp_path / "artifacts", monkeypatch, port=port):
                wait_config_ready(k8s_api)
                k8s_api.create(arenajob("restarted", replicas=2))
                time.sleep(stop_after)
            before = k8s_api.get(ARENA_API_VERSION, "arenajobs", NAMESPACE, "restarted")
            worker_before = k8s_api.get("batch/v1", "jobs", NAMESPACE, "restarted-worker")
            with arena_operator(k8s_api, tmp_path / "artifacts", monkeypatch, port=port):
                obj = k8s_api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "restarted", finished,
                                       timeout=150)
            worker_jobs = [j for j in k8s_api.list("batch/v1", "jobs", NAMESPACE)
                           if j["metadata"]["name"].startswith("restarted")]
        assert obj["status"]["phase"] == "Succeeded", (dig(before, "status"), obj["status"])
        assert obj["status"]["progress"] == {"total": UNITS, "completed": UNITS, "failed": 0, "pending": 0}
        assert obj["status"]["result"]["summary"]["runs"] == UNITS
        assert len(worker_jobs) == 1
        if worker_before is not None:  # the Job made before the stop is the one that ran
            assert worker_jobs[0]["metadata"]["uid"] == worker_before["metadata"]["uid"]
        prefix = f"arena:{{{NAMESPACE}/restarted/{obj['metadata']['uid']}}}"
        assert redis.command("scard", f"{prefix}:planned") == str(UNITS)
        assert redis.command("hlen", f"{prefix}:done") == str(UNITS)
    finally:
        redis.close()
