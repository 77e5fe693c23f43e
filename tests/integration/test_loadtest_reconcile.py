"""The ArenaJob controller's load-test steps against a real Redis: planning (the profile and the mix, no units), the
live status merged from what workers pushed, autoscaling on saturation, and the verdict on the thresholds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from arena_operator.loadtest.coord import RedisCoordinator
from arena_operator.loadtest.metrics import Recorder
from arena_operator.loadtest.profile import LoadProfile
from arena_operator.loadtest.summary import WorkerInfo, build_summary
from arena_operator.loadtest.thresholds import parse_threshold
from arena_operator.reconcile import arenajob as rjob
from arena_operator.sources.store import ArtifactStore
from arena_operator.workqueue.queue import WorkQueue
from tests.unit.test_reconcile_steps import job_world
from tests.unit.test_reconcile_steps import store as store

SEED = {"type": "loadtest", "loadTest": {"rampUp": "2m", "duration": "30m", "targetRPS": 500},
        "workers": {"minReplicas": 5, "maxReplicas": 50}}
RUNNING = {"phase": "Running", "progress": {"total": 60}, "conditions": [
    {"type": "Planned", "status": "True", "reason": "Planned"},
    {"type": "JobCreated", "status": "True", "reason": "Created"}]}
WORKER = {"name": "job-worker", "spec": {"parallelism": 5}, "status": {"active": 5}}


@pytest.fixture
async def redis_client(redis_server: Any) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_server.url)
    yield client
    await client.flushall()
    await client.aclose()


def _world(store: tuple[ArtifactStore, str], client: aioredis.Redis, spec: dict[str, Any],
           status: dict[str, Any] | None = None, worker_job: dict[str, Any] | None = None) -> Any:
    world = job_world(store, spec, status, worker_job=worker_job)
    world.ctx.queue = WorkQueue(client, world.ctx.queue.key)
    return world


async def test_the_seed_example_plans_a_load_test_without_units(store: tuple[ArtifactStore, str],
                                                                redis_client: aioredis.Redis) -> None:
    world = _world(store, redis_client, SEED)
    out = await rjob.reconcile_job(world.ctx)
    assert out.status["phase"] == "Running"
    assert out.status["progress"] == {"total": 1800, "completed": 0, "failed": 0, "pending": 1800}
    config = await world.ctx.queue.get_config() or {}
    load = config["loadTest"]
    assert (load["model"], load["target_rps"], load["ramp_up"], load["duration"]) == ("open", 500, 120, 1800)
    assert len(load["mix"]) == 6 and (await world.ctx.queue.counters()).total == 0
    assert await world.ctx.queue.is_drained()  # sealed empty: the aggregation lease serves the load test
    assert "an open-model load test (500 runs/s for 1800s over 6 scenario × provider combination(s))" in \
        out.conditions["Planned"].message
    [worker_job] = world.workloads.created
    assert worker_job["spec"]["parallelism"] == 5  # minReplicas


async def _push(client: aioredis.Redis, key: str, worker: str, *, dropped: int = 0, errors: int = 0,
                final: bool = False) -> None:
    coordinator = RedisCoordinator(client, key, worker, f"{key}:cancel")
    await coordinator.join()
    recorder = Recorder(lambda: 0.5, (0.0, 60.0))
    for i in range(40):
        recorder.arrival(i >= dropped, 0.001)
        if i >= dropped:
            recorder.request(0.05 + i / 1000, None, (10, 5), 0.002, "server_error" if i < dropped + errors else None)
            recorder.run_done("error" if i < dropped + errors else "passed")
    recorder.clock = lambda: 4.5  # the bucket of second 0 is over
    await coordinator.push(recorder, final=final)


async def test_live_status_merges_the_workers_and_autoscaling_follows_saturation(
        store: tuple[ArtifactStore, str], redis_client: aioredis.Redis) -> None:
    world = _world(store, redis_client, SEED, RUNNING, WORKER)
    profile = LoadProfile(model="open", duration=60, target_rps=80)
    await world.ctx.queue.put_config({"type": "loadtest", "loadTest": profile.to_config()})
    key = world.ctx.queue.key
    seconds, micros = await redis_client.time()
    await redis_client.set(f"{key}:lt:start", int(seconds) * 1000 + int(micros) // 1000 - 2500)  # 2.5 s in
    await _push(redis_client, key, "w0", dropped=5)
    await _push(redis_client, key, "w1", errors=4)
    out = await rjob.reconcile_job(world.ctx)
    live = out.status["result"]["summary"]
    assert live["requests"] == 75 and live["dropped"] == 5 and live["error_rate"] == pytest.approx(4 / 75, abs=1e-6)
    assert live["active_workers"] == 2 and live["cost_usd"] == pytest.approx(75 * 0.002)
    assert {"p50", "p95", "p99"} <= set(live["latency_ms"]) and live["latency_ms"]["p50"] > 50
    assert out.status["progressText"].endswith("s/60s") and out.status["progress"]["total"] == 60
    assert out.conditions["Complete"].status == "Unknown" and "workers active" in out.conditions["Progressing"].message
    # 5 arrivals dropped in the last seconds: saturated, so more workers (within 5..50)
    assert world.workloads.scaled and world.workloads.scaled[0] > 5
    assert [e.reason for e in out.events] == ["Scaled"] and "5 arrivals dropped" in out.events[0].message
    # a cooldown before the next decision
    out = await rjob.reconcile_job(world.ctx)
    assert len(world.workloads.scaled) == 1


def _final(thresholds: list[str], stop: dict[str, Any] | None = None) -> dict[str, Any]:
    profile = LoadProfile(model="open", duration=10, target_rps=4, budget_limit=1.0 if stop else None,
                          thresholds=tuple(parse_threshold(t) for t in thresholds))
    recorder = Recorder(lambda: 1.0, (0.0, 10.0))
    for i in range(40):
        recorder.arrival(True, 0.001)
        recorder.request(0.1 + i / 100, None, (10, 5), 0.01, None)
        recorder.run_done("passed")
    return build_summary(profile, recorder.total, elapsed=10, stop=stop,
                         workers=[WorkerInfo("w0", 0.0, 10.0, "finished", recorder.total)])


@pytest.mark.parametrize(("thresholds", "stop", "phase", "reason", "condition", "words"), [
    (["latency_p95<2s", "error_rate<=0.01"], None, "Succeeded", "Completed", ("True", "ThresholdsPassed"),
     "all 2 thresholds held"),
    ([], None, "Succeeded", "Completed", ("True", "NoThresholds"), "no thresholds set"),
    (["latency_p95<200", "error_rate<=0.01", "ttft_p95<1s"], None, "Failed", "ThresholdsFailed",
     ("False", "ThresholdsFailed"), "2 of 3 thresholds failed: latency_p95 < 200 (measured 4"),
    (["latency_p95<2s"], {"reason": "BudgetExceeded", "message": "spend 1.0100 USD reached loadTest.budgetLimit 1",
                          "at": 4.2}, "Failed", "BudgetExceeded", ("True", "ThresholdsPassed"),
     "spend 1.0100 USD reached loadTest.budgetLimit 1"),
])
async def test_the_verdict_names_each_failed_threshold_with_its_measured_value(
        store: tuple[ArtifactStore, str], redis_client: aioredis.Redis, thresholds: list[str],
        stop: dict[str, Any] | None, phase: str, reason: str, condition: tuple[str, str], words: str) -> None:
    world = _world(store, redis_client, SEED, RUNNING, WORKER)
    await world.ctx.queue.put_config({"type": "loadtest", "loadTest": LoadProfile(
        model="open", duration=10, target_rps=4).to_config()})
    await world.ctx.queue.mark_aggregated("s3://b/loadtests/ns/job/", _final(thresholds, stop))
    out = await rjob.reconcile_job(world.ctx)
    assert out.status["phase"] == phase and out.conditions["Complete"].reason == reason
    assert words in out.status["message"] and "results at s3://b/loadtests/ns/job/" in out.status["message"]
    assert (str(out.conditions["Thresholds"].status), out.conditions["Thresholds"].reason) == condition
    if "ttft_p95<1s" in thresholds:
        assert "ttft_p95 < 1s (not computed: no streamed response" in out.status["message"]
    assert out.status["result"]["url"] == "s3://b/loadtests/ns/job/"
    assert out.status["result"]["summary"]["thresholds"] == _final(thresholds, stop)["thresholds"]
