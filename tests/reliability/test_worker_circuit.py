"""The worker against a provider that is down: the real `arena worker` runtime (run_worker: artifact download over
HTTP, a real redis-server queue, a pvc-style results directory or none) on a bundle whose provider is a fault
server answering 503. The provider's circuit opens after a few units and the rest are recorded failed with kind
`unavailable` instead of circling through the queue with every attempt; the job drains in seconds and the
operator's observe step gives it a reason that names the provider and its error."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis.asyncio as aioredis

from arena_operator.api.arenajob import ArenaJobSpec
from arena_operator.engine.bundle import Bundle, load_bundle
from arena_operator.reconcile.arenajob import step_observe
from arena_operator.reconcile.outcome import Outcome
from arena_operator.runplan.providers import ResolvedProviders
from arena_operator.runplan.units import PlanInputs, batches, iter_units
from arena_operator.sources.artifact import build_artifact
from arena_operator.sources.server import ArtifactServer
from arena_operator.sources.store import ArtifactStore
from arena_operator.worker.run import WorkerSettings, run_worker
from arena_operator.workqueue.queue import WorkQueue, job_key
from tests.reliability.faultserver import Fault, FaultServer
from tests.reliability.providerkit import SEEDS, figure, write_bundle

UNITS, CONCURRENCY, RETRIES, MAX_ATTEMPTS, THRESHOLD = 12, 4, 2, 3, 5


@pytest.fixture(params=SEEDS, ids=[f"seed{s}" for s in SEEDS])
def seed(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def resolved(bundle: Bundle) -> dict[str, Any]:
    """The job config's providers, as the operator resolves them: a Provider `down` (its spec: the bundle's) for
    group default — in the cluster a bundle brings only mock providers of its own."""
    spec = bundle.providers["down"].model_dump(mode="json")
    return ResolvedProviders(groups={"default": ["down"]}, specs={"down": spec}).to_config()


async def observe(queue: WorkQueue) -> Outcome:
    """The operator's observe step on this job (the queue is the real one; nothing else is consulted)."""
    ctx: Any = SimpleNamespace(queue=queue, worker_job={"status": {"active": 0}}, now=datetime.now(UTC),
                               spec=ArenaJobSpec.model_validate({"configRef": {"name": "cfg"}}), workloads=None)
    out = Outcome()
    await step_observe(ctx, out)
    return out


@pytest.mark.parametrize("output", ["pvc", "none"])
async def test_a_job_against_a_down_provider_ends_quickly_with_the_reason_in_status(
        redis_server: Any, tmp_path: Path, seed: int, output: str) -> None:
    async with FaultServer(seed) as server:
        server.default = Fault.error(503, message="upstream unavailable")
        write_bundle(tmp_path / "bundle", {"down": server.base_url}, trials=UNITS, max_retries=RETRIES)
        bundle = load_bundle(tmp_path / "bundle")
        info = build_artifact(tmp_path / "bundle", tmp_path / "a.tar.gz")
        stored = ArtifactStore(tmp_path / "store").put("ns", "src", info.digest, tmp_path / "a.tar.gz")
        artifacts = ArtifactServer(ArtifactStore(tmp_path / "store"), "127.0.0.1", 0)
        port = await artifacts.start()
        client = aioredis.from_url(redis_server.url)
        key = job_key("ns", "down", f"u{seed}{output}")
        queue = WorkQueue(client, key)
        results = tmp_path / "pvc"
        results.mkdir()
        try:
            await queue.put_config({"namespace": "ns", "job": "down", "type": "evaluation", "revision": "main@sha1:1",
                                    "arenaFile": "config.arena.yaml", "providers": resolved(bundle), "tools": {},
                                    "visibilityTimeout": 30, "maxAttempts": MAX_ATTEMPTS, "aggregationLease": 2})
            for batch in batches(iter_units(bundle, PlanInputs([], [], UNITS))):
                await queue.enqueue(batch)
            await queue.seal()
            settings = WorkerSettings(
                artifact_url=f"http://127.0.0.1:{port}/artifacts/{stored.relative_url}",
                artifact_digest=info.digest, redis_url=redis_server.url, job_key=key,
                output={"type": "pvc", "pvc": {"claimName": "results"}} if output == "pvc" else {},
                namespace="ns", job="down", concurrency=CONCURRENCY, consumer=f"w{seed}",
                results_dir=results, workdir=tmp_path)
            started = time.monotonic()

            assert await asyncio.wait_for(run_worker(settings), 60) == 0

            seconds = time.monotonic() - started
            counters = await queue.counters()
            assert (counters.total, counters.completed, counters.failed, counters.pending) == (UNITS, 0, UNITS, 0)
            # Before the circuit opens, at most THRESHOLD + CONCURRENCY - 1 units try, RETRIES + 1 requests each;
            # without it every unit would be delivered MAX_ATTEMPTS times with RETRIES + 1 requests per delivery.
            assert len(server.hits) <= (THRESHOLD + CONCURRENCY - 1) * (RETRIES + 1)
            errors = {k.decode(): v.decode() for k, v in (await client.hgetall(queue.keys["errors"])).items()}
            assert len(errors) == UNITS and all(e.startswith("unavailable: provider 'down' is unavailable: HTTP 503: "
                                                             "upstream unavailable") for e in errors.values()), errors
            summary = (await queue.aggregated() or {})["summary"]
            assert summary["errorKinds"] == {"unavailable": UNITS} and summary["errors"] == UNITS
            if output == "pvc":
                units = list((results / "ns" / "down" / "units").glob("*.json")) or list(results.rglob("units/*.json"))
                assert len(units) == UNITS
                assert {json.loads(u.read_text())["ErrorKind"] for u in units} == {"unavailable"}

            out = await observe(queue)

            assert out.status["phase"] == "Failed"
            assert out.status["progress"] == {"total": UNITS, "completed": 0, "failed": UNITS, "pending": 0}
            message = out.status["message"]
            assert message.startswith(f"none of the {UNITS} units could run: {UNITS} unavailable (provider 'down' is "
                                      "unavailable: HTTP 503: upstream unavailable (gave up after 3 attempts); not "
                                      "attempted"), message
            assert out.conditions["Complete"].reason == "NoUnitRan"
            figure(f"worker, provider down (503), output {output}", seed=seed, units=UNITS, requests=len(server.hits),
                   without_circuit=UNITS * MAX_ATTEMPTS * (RETRIES + 1), seconds=round(seconds, 2))
        finally:
            await queue.delete()
            await client.aclose()
            await artifacts.stop()
