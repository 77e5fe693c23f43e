"""The ArenaJob steps for type datagen, with the in-memory fakes of test_reconcile_steps: shards planned instead of
runs, the dataGen plan in the job config, progress in items, the verdict from the merged summary."""

from __future__ import annotations

from typing import Any

import pytest

from arena_operator.reconcile import arenajob as rjob
from arena_operator.reconcile import datagen as rdatagen
from arena_operator.sources.store import ArtifactStore
from arena_operator.workqueue.queue import Counters
from tests.unit.test_reconcile_steps import RUNNING, WORKER, FakeKube, job_world, ready_of
from tests.unit.test_reconcile_steps import store as store  # the fixture, re-exported for pytest

PVC = {"type": "pvc", "pvc": {"claimName": "generated-data", "subPath": "batch-001/"}}
SEED_EXAMPLE = {"type": "datagen", "dataGen": {"count": 10000, "format": "jsonl"}, "workers": {"replicas": 4},
                "output": PVC}


class FakeLedger:
    """The job's DataGenLedger (Redis; tested in tests/integration/test_datagen_redis.py): only its totals."""

    totals_now = (0, 0)

    def __init__(self, queue: Any) -> None:
        pass

    async def totals(self) -> tuple[int, int]:
        return self.totals_now


@pytest.fixture(autouse=True)
def ledger(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeLedger.totals_now = (0, 0)
    monkeypatch.setattr(rdatagen, "DataGenLedger", FakeLedger)


async def test_the_seed_example_plans_shards_of_exactly_count_items(store: tuple[ArtifactStore, str]) -> None:
    world = job_world(store, SEED_EXAMPLE, kube=FakeKube(claims={"generated-data"}))
    out = await rjob.reconcile_job(world.ctx)
    assert out.status["phase"] == "Running", out.conditions
    assert out.status["progress"] == {"total": 10000, "completed": 0, "failed": 0, "pending": 10000}
    assert out.status["progressText"] == "0/10000"
    units = world.queue.units
    assert sum(u["size"] for u in units) == 10000 and len(units) == 40 and units[0]["id"] == "shard-00000"
    plan = world.queue.config["dataGen"]
    assert (plan["count"], plan["format"], plan["dedupe"], plan["shardSize"]) == (10000, "jsonl", True, 250)
    assert plan["seed"] == 42 and len(plan["templates"]) == 6  # the quickstart's 6 scenarios × one provider
    assert world.queue.config["type"] == "datagen"
    assert "10000 items (jsonl) in 40 shards" in out.conditions["Planned"].message
    assert world.workloads.created[0]["spec"]["parallelism"] == 4


async def test_datagen_without_output_is_refused(store: tuple[ArtifactStore, str]) -> None:
    world = job_world(store, {"type": "datagen"})
    out = await rjob.reconcile_job(world.ctx)
    assert out.status["phase"] == "Failed" and ready_of(out) == (False, "InvalidSpec")
    assert "spec.output" in out.conditions["Planned"].message and not world.queue.units


SUMMARY = {"type": "datagen", "count": 10000, "items": 10000, "complete": True, "file": "data.jsonl",
           "duplicatesDropped": 3, "filtered": 7, "retries": 2, "inputTokens": 100, "outputTokens": 50,
           "costUSD": 0.25, "failures": []}


@pytest.mark.parametrize(("case", "phase", "ready"), [
    ("running", "Running", ("Unknown", "Running")),
    ("complete", "Succeeded", (True, "Completed")),
    ("incomplete", "Failed", (False, "DataIncomplete")),
])
async def test_progress_in_items_and_the_verdict(store: tuple[ArtifactStore, str], case: str, phase: str,
                                                 ready: tuple[Any, str]) -> None:
    world = job_world(store, SEED_EXAMPLE, status=RUNNING, worker_job={**WORKER, "status": dict(WORKER["status"])})
    world.queue.config = {"type": "datagen"}  # planned: the job's config is in Redis
    FakeLedger.totals_now = (4200, 0) if case == "running" else (9750, 250)
    if case == "complete":
        FakeLedger.totals_now = (10000, 0)
        world.queue.aggregate = {"url": "pvc://generated-data/batch-001/ns/job/", "summary": SUMMARY}
    if case == "incomplete":
        world.queue.counters_now = Counters(40, 39, 1, 0, 0, 0, 39, 0, 0)
        world.queue.aggregate = {"url": "pvc://generated-data/batch-001/ns/job/", "summary": {
            **SUMMARY, "items": 9750, "complete": False,
            "failures": [{"shard": "shard-00007", "error": "item 1750 was rejected 10 times in a row"}]}}
    out = await rjob.reconcile_job(world.ctx)
    assert out.status.get("phase", "Running") == phase and ready_of(out) == ready
    written, lost = FakeLedger.totals_now
    assert out.status["progress"] == {"total": 10000, "completed": written, "failed": lost,
                                      "pending": 10000 - written - lost}
    assert out.status["progressText"] == f"{written}/10000"
    message = out.conditions["Complete"].message
    if case == "complete":
        assert message.startswith("10000 items in pvc://generated-data/batch-001/ns/job/data.jsonl")
        assert "3 duplicates dropped, 7 filtered, 2 retries; 150 tokens, $0.2500" in message
        assert out.status["result"]["summary"]["items"] == 10000
    if case == "incomplete":
        assert "9750 of 10000 items" in message and "shard-00007: item 1750" in message
