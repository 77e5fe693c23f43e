"""The Kubernetes API failing under a running job: 5xx on status patches, a refused worker Job creation (5xx,
429), 410 Gone and failing watches, a slow apiserver (tests.harness.faults injects them into the emulator).
Requests are retried (kopf's for its patches and watches, ours for the operator's own calls, within seconds) and
each pass recomputes status from Redis, so no status update is lost for good: the job ends Succeeded, counted
exactly, with one worker Job.

Not injected: 409 on kopf's status patch. kopf sends JSON merge patches without a resourceVersion, which an
apiserver never answers with a conflict; if one did, kopf 1.45 would end that object's timer until the operator
restarts (found here with this very fault)."""

from __future__ import annotations

from pathlib import Path

import kopf
import pytest

from tests.e2e.operator_env import NAMESPACE
from tests.harness.faults import Fault
from tests.harness.k8s import ARENA_API_VERSION, K8sApi, dig
from tests.harness.k8s import k8s_api as k8s_api
from tests.reliability.cluster import Redis, arenajob, finished, lifetime_cluster, sized

UNITS = 6
PLANS = {
    "status-patches-5xx": [Fault(method="PATCH", path="/arenajobs/", status=500, count=3),
                           Fault(method="PATCH", path="/arenajobs/", status=503, count=3),
                           Fault(method="PATCH", path="/arenajobs/", status=504, count=2)],
    "worker-job-create-refused": [Fault(method="POST", path="/jobs", status=503, count=2),
                                  Fault(method="POST", path="/jobs", status=429, count=1)],
    "watches-gone-and-failing": [Fault(method="GET", path="/arenajobs", watch=True, status=410, count=2),
                                 Fault(method="GET", path="/jobs", watch=True, status=500, count=2),
                                 Fault(method="GET", path="/pods", watch=True, status=410, count=2)],
    "slow-apiserver": [Fault(method="PATCH", path="/", delay=1.0, count=15),
                       Fault(method="GET", path="/", watch=False, delay=0.5, count=15)],
}


def short_watches(settings: kopf.OperatorSettings) -> None:
    """Watch requests end every few seconds, so the injected watch faults meet fresh watch requests."""
    settings.watching.client_timeout = 3
    settings.watching.reconnect_backoff = 0.2


@pytest.mark.parametrize("plan", sized(sorted(PLANS), ["status-patches-5xx", "watches-gone-and-failing"]))
def test_a_job_survives_api_faults_and_ends_counted_exactly(k8s_api: K8sApi, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch, plan: str) -> None:
    redis = Redis(tmp_path / "redis", appendonly=False)
    faults = [Fault(**{name: getattr(f, name) for name in ("method", "path", "status", "count", "delay", "watch")})
              for f in PLANS[plan]]  # fresh copies: hits are counted per test
    try:
        with lifetime_cluster(k8s_api, tmp_path, monkeypatch, redis, trials=UNITS, configure=short_watches,
                              faults=faults):
            k8s_api.create(arenajob("faulty", replicas=2))
            obj = k8s_api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "faulty", finished, timeout=120)
            k8s_api.emulator.faults.clear()
            workers = [j for j in k8s_api.list("batch/v1", "jobs", NAMESPACE) if dig(j, "metadata.name") ==
                       "faulty-worker"]
        assert [f.hits for f in faults] == [f.count for f in faults], "every injected fault happened"
        assert obj["status"]["phase"] == "Succeeded", obj["status"]
        assert obj["status"]["progress"] == {"total": UNITS, "completed": UNITS, "failed": 0, "pending": 0}
        assert obj["status"]["result"]["summary"]["runs"] == UNITS
        assert len(workers) == 1
    finally:
        redis.close()
