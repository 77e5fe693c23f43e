"""Many ArenaJobs at once (issue 17, Load): N jobs applied together in one namespace, and spread over five
namespaces (the operator then watches all namespaces) — the operator (`arena operator`, its own process) against
the emulator, each job's worker a real `arena worker` process of the test kubelet, a mock provider answering at
once, one unit and one replica a job. All Succeed, each with exactly its own Redis keys under
`arena:{<ns>/<name>/<uid>}` (counted); the operator's peak RSS and the status lag (a counter's change in Redis →
`status.progress` in the API, both polled) are printed, never asserted."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_client

from arena_operator.workqueue.connect import MAX_CONNECTIONS, OPERATOR_RETRIES, connect
from tests.harness.client import ApiClient
from tests.harness.k8s import ARENA_API_VERSION, K8sApi, dig
from tests.harness.k8s import k8s_api as k8s_api
from tests.harness.kubelet import Kubelet
from tests.reliability.cluster import FULL, Redis, finished, provision
from tests.reliability.loadkit import (
    job,
    mib,
    operator_process,
    percentile,
    report,
    rss_kib,
    wait,
    wait_configs_ready,
)

JOBS = 200 if FULL else 30
POLL_SECONDS = 0.2  # the lag's resolution: each figure is within ± this of the truth
PROGRESS = {"total": 1, "completed": 1, "failed": 0, "pending": 0}


class LagProbe:
    """Polls every job's Redis counters and the API's ArenaJobs in turn: a done count first seen in Redis at t0
    and first seen in `status.progress` at t1 is a lag sample t1 − t0."""

    def __init__(self, api: K8sApi, redis: Redis) -> None:
        self.api, self.redis = ApiClient(api.url, timeout=30.0), redis_client.Redis.from_url(redis.url)
        self.jobs: dict[tuple[str, str], str] = {}  # (namespace, name) → the job's Redis key prefix
        self.seen: dict[tuple[str, str], tuple[int, float]] = {}  # in Redis: (done count, when first seen)
        self.matched: dict[tuple[str, str], int] = {}  # the done count last seen in the API too
        self.lags: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lag-probe", daemon=True)

    def add(self, namespace: str, name: str, uid: str) -> None:
        self.jobs[(namespace, name)] = f"arena:{{{namespace}/{name}/{uid}}}"

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            jobs = list(self.jobs.items())
            with self.redis.pipeline(transaction=False) as pipe:
                for _, prefix in jobs:
                    pipe.hmget(f"{prefix}:counters", "completed", "failed")
                counts = pipe.execute()
            now = time.monotonic()
            for (ref, _), (completed, failed) in zip(jobs, counts, strict=True):
                done = int(completed or 0) + int(failed or 0)
                if done > max(self.seen.get(ref, (0, 0.0))[0], self.matched.get(ref, 0)):
                    self.seen[ref] = (done, now)
            listed = self.api.list(ARENA_API_VERSION, "arenajobs")
            now = time.monotonic()
            for obj in listed:
                ref = (obj["metadata"]["namespace"], obj["metadata"]["name"])
                progress = dig(obj, "status.progress") or {}
                shown = int(progress.get("completed") or 0) + int(progress.get("failed") or 0)
                if ref in self.seen and shown >= self.seen[ref][0]:
                    self.matched[ref], first_seen = self.seen.pop(ref)
                    self.lags.append(now - first_seen)

    def settle(self, samples: int, timeout: float = 15.0) -> None:
        """Give the probe a few more polls to see the last changes (a figure, so never a failure)."""
        deadline = time.monotonic() + timeout
        while len(self.lags) < samples and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)

    def __enter__(self) -> LagProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self.api.close()
        self.redis.close()


def all_finished(api: K8sApi) -> list[dict] | None:
    objs = api.list(ARENA_API_VERSION, "arenajobs")
    return objs if objs and all(finished(o) for o in objs) else None


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    server = Redis(tmp_path / "redis", appendonly=False)
    yield server
    server.close()


@pytest.mark.timeout(300 + 8 * JOBS)  # the suite's 120 s is for one test of ordinary size
@pytest.mark.parametrize("spread", [1, 5], ids=["one-namespace", "five-namespaces"])
def test_many_jobs_at_once_all_succeed_each_with_its_own_redis_keys(k8s_api: K8sApi, tmp_path: Path, redis: Redis,
                                                                     spread: int) -> None:
    namespaces = [f"load-{i}" for i in range(spread)]
    for namespace in namespaces:
        provision(k8s_api, namespace, trials=1, unit_seconds=0)
    with Kubelet(k8s_api, tmp_path / "kubelet", namespaces=None) as kubelet, \
            operator_process(k8s_api, tmp_path / "operator", redis, namespaces if spread == 1 else None) as op:
        wait_configs_ready(k8s_api, namespaces)
        idle_kib = rss_kib(op.pid)
        started = time.monotonic()
        with LagProbe(k8s_api, redis) as probe:
            for i in range(JOBS):
                namespace = namespaces[i % spread]
                created = k8s_api.create(job(namespace, f"many-{i:03d}"))
                probe.add(namespace, f"many-{i:03d}", created["metadata"]["uid"])
            objs = wait(lambda: all_finished(k8s_api), timeout=240 + 6 * JOBS, what=f"{JOBS} jobs finishing",
                        interval=1.0)
            took = time.monotonic() - started
            probe.settle(JOBS)
        peak_kib = rss_kib(op.pid, "VmHWM")
        worker_jobs = [j for ns in namespaces for j in k8s_api.list("batch/v1", "jobs", ns)]
        pods = len(kubelet.pods())
    keys = redis.scan()
    assert len(objs) == JOBS
    failed = {o["metadata"]["name"]: dig(o, "status.message") for o in objs if dig(o, "status.phase") != "Succeeded"}
    assert not failed
    assert all(o["status"]["progress"] == PROGRESS and o["status"]["result"]["summary"]["runs"] == 1 for o in objs)
    assert sorted(j["metadata"]["name"] for j in worker_jobs) == sorted(f"many-{i:03d}-worker" for i in range(JOBS))
    prefixes = {f"arena:{{{o['metadata']['namespace']}/{o['metadata']['name']}/{o['metadata']['uid']}}}"
                for o in objs}
    by_prefix: dict[str, list[str]] = {}
    for key in keys:
        by_prefix.setdefault(key.split("}", 1)[0] + "}", []).append(key)
    assert set(by_prefix) == prefixes, set(by_prefix) ^ prefixes  # no key outside a job's own prefix, none shared
    for prefix in prefixes:
        assert redis.command("scard", f"{prefix}:planned") == "1"
        assert redis.command("hlen", f"{prefix}:done") == "1"
        assert redis.command("hget", f"{prefix}:counters", "completed") == "1"
    per_job = sorted(len(v) for v in by_prefix.values())
    report(f"{JOBS} jobs in {spread} namespace(s)", wall=f"{took:.0f}s", worker_pods=pods,
           operator_rss_idle=mib(idle_kib), operator_rss_peak=mib(peak_kib),
           status_lag_p50=f"{percentile(probe.lags, 0.5):.2f}s", status_lag_p95=f"{percentile(probe.lags, 0.95):.2f}s",
           lag_samples=len(probe.lags), redis_keys=len(keys), keys_per_job=f"{per_job[0]}-{per_job[-1]}")


async def test_more_commands_at_once_than_the_pool_has_connections_wait_for_one(redis: Redis) -> None:
    """Hundreds of jobs' timers use the operator's one Redis client at once: past its pool size a command waits
    for a connection (it failed with MaxConnectionsError, and healthy jobs said RedisUnavailable)."""
    client = connect(redis.url, retries=OPERATOR_RETRIES)
    try:
        replies = await asyncio.gather(*(client.blpop([f"nothing-{i}"], timeout=0.2)
                                         for i in range(3 * MAX_CONNECTIONS)))
    finally:
        await client.aclose()
    assert replies == [None] * (3 * MAX_CONNECTIONS)
