"""One job of many units (issue 17, Load): 10 scenarios × trials (quick 10k units, full 100k — trials are at most
10,000 a config) planned and enqueued by `arena operator` (its own process, so its memory is its own) and run by
real `arena worker` processes of the test kubelet against a mock provider that answers at once. Planning streams
the units in batches (runplan/units.py): the operator's memory grows by a bounded amount while it plans, whatever
the plan's size; `status.progress` only ever moves forward and never past what Redis recorded; the final status
and the report count every unit exactly once."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.k8s import ARENA_API_VERSION, K8sApi, dig
from tests.harness.k8s import k8s_api as k8s_api
from tests.harness.kubelet import Kubelet
from tests.reliability.cluster import FULL, Redis, finished, provision
from tests.reliability.loadkit import CONFIG, RssSampler, job, mib, operator_process, report, rss_kib, wait

SCENARIOS = 10
TRIALS = 10_000 if FULL else 1_000
UNITS = SCENARIOS * TRIALS
REPLICAS, CONCURRENCY = 3, 8
NAMESPACE = "big"
# A plan held in memory would cost ~1 KiB a unit (its dict and JSON); streamed, planning costs a batch and the
# loaded bundle. The bound is loose (allocator slack, the kopf timer's other work) and independent of UNITS.
PLANNING_GROWTH_BOUND_KIB = 48 * 1024


def bundle() -> dict[str, str]:
    names = [f"s{i}" for i in range(SCENARIOS)]
    files = {f"{name}.yaml": f"kind: Scenario\nmetadata: {{name: {name}}}\n"
                             f"spec: {{description: {name}, turns: [{{role: user, content: hi {name}}}]}}\n"
             for name in names}
    scenarios = ", ".join(f"{{file: {name}.yaml}}" for name in names)
    return {"config.arena.yaml": "apiVersion: promptkit.altairalabs.ai/v1alpha1\nkind: Arena\n"
                                 f"metadata: {{name: big}}\nspec:\n  providers: [{{file: provider.yaml}}]\n"
                                 f"  scenarios: [{scenarios}]\n  defaults: {{}}\n",
            "provider.yaml": "kind: Provider\nmetadata: {name: bot}\n"
                             "spec: {type: mock, additional_config: {latency_ms: 0}}\n", **files}


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    server = Redis(tmp_path / "redis", appendonly=False)
    yield server
    server.close()


@pytest.mark.timeout(300 + UNITS // 50)  # the suite's 120 s is for one test of ordinary size
def test_one_job_of_many_units_plans_in_bounded_memory_and_counts_every_unit_once(
        k8s_api: K8sApi, tmp_path: Path, redis: Redis) -> None:
    provision(k8s_api, NAMESPACE, trials=TRIALS, concurrency=CONCURRENCY, bundle=bundle())
    with Kubelet(k8s_api, tmp_path / "kubelet", namespaces=[NAMESPACE]), \
            operator_process(k8s_api, tmp_path / "operator", redis, [NAMESPACE]) as op:
        k8s_api.wait_for(ARENA_API_VERSION, "arenaconfigs", NAMESPACE, CONFIG,
                         lambda o: dig(o, "status.phase") == "Ready", timeout=90)
        sampler = RssSampler(op.pid)
        sampler.start()
        started = time.monotonic()
        created = k8s_api.create(job(NAMESPACE, "big", replicas=REPLICAS))
        prefix = f"arena:{{{NAMESPACE}/big/{created['metadata']['uid']}}}"
        wait(lambda: dig(k8s_api.get(ARENA_API_VERSION, "arenajobs", NAMESPACE, "big"), "status.progress.total"),
             timeout=300, what="planning", interval=0.1)
        planned_in = time.monotonic() - started
        growth_kib = sampler.stop()
        seen: list[dict[str, int]] = []  # status.progress as polled, each beside what Redis recorded before it
        obj = None
        while time.monotonic() - started < 300 + UNITS / 20:
            recorded = int(redis.command("hget", f"{prefix}:counters", "completed") or 0)
            obj = k8s_api.get(ARENA_API_VERSION, "arenajobs", NAMESPACE, "big")
            seen.append({**dig(obj, "status.progress"), "recorded_before": recorded})
            if finished(obj):
                break
            time.sleep(0.5)
        took = time.monotonic() - started
        peak_kib = rss_kib(op.pid, "VmHWM")
    assert obj is not None and obj["status"]["phase"] == "Succeeded", dig(obj, "status")
    assert obj["status"]["progress"] == {"total": UNITS, "completed": UNITS, "failed": 0, "pending": 0}
    assert obj["status"]["result"]["summary"]["runs"] == UNITS
    assert redis.command("scard", f"{prefix}:planned") == str(UNITS)
    assert redis.command("hlen", f"{prefix}:done") == str(UNITS)
    assert all(p["total"] == UNITS and p["completed"] + p["failed"] + p["pending"] == UNITS for p in seen)
    completed = [p["completed"] for p in seen]
    assert completed == sorted(completed), "status.progress went backwards"
    # what status shows was recorded in Redis at most one tick before it; never more than Redis has now
    assert all(p["completed"] <= later["recorded_before"] for p, later in itertools.pairwise(seen))
    assert growth_kib < PLANNING_GROWTH_BOUND_KIB, f"planning {UNITS} units grew the operator by {mib(growth_kib)}"
    report(f"one job of {UNITS} units", planned_and_enqueued=f"{planned_in:.1f}s", wall=f"{took:.0f}s",
           operator_rss_before=mib(sampler.baseline), planning_rss_growth=mib(growth_kib),
           operator_rss_peak=mib(peak_kib), progress_samples=len(seen))
