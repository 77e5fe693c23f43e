"""The work queue's batched scripts against a real `redis-server`: `complete_and_claim`, a batch that names a unit
twice, unit ids and results that need escaping on their way through the scripts' joined arguments."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from arena_operator.workqueue.queue import WorkQueue, job_key
from tests.fakes.services import RedisServer


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.from_url(redis_server.url)
    yield redis
    await redis.aclose()


async def test_complete_and_claim_drains_with_4_consumers_each_unit_counted_once(client: aioredis.Redis) -> None:
    queue = WorkQueue(client, job_key("ns", "batches", "u1"))
    assert await queue.enqueue([{"id": f"u{i:04d}", "n": i} for i in range(2000)], batch=300) == 2000
    await queue.seal()
    seen: list[str] = []

    async def consumer(name: str) -> None:
        own = WorkQueue(client, queue.key)
        claimed = await own.claim(name, count=50, block_ms=0)
        while claimed:
            seen.extend(c.unit_id for c in claimed)
            assert all(c.unit["id"] == c.unit_id and c.attempt == 1 for c in claimed)
            recorded, claimed = await own.complete_and_claim([(c, {"n": c.unit["n"]}, "passed") for c in claimed],
                                                            name, count=50)
            assert all(recorded)

    await asyncio.gather(*(consumer(f"w{n}") for n in range(4)))
    assert sorted(seen) == [f"u{i:04d}" for i in range(2000)]
    counters = await queue.counters()
    assert (counters.total, counters.completed, counters.passed, counters.in_flight) == (2000, 2000, 2000, 0)
    assert await queue.is_drained()
    assert await queue.complete_and_claim([], "w0", count=10) == ([], [])


async def test_a_batch_naming_a_unit_twice_records_and_enqueues_it_once(client: aioredis.Redis) -> None:
    queue = WorkQueue(client, job_key("ns", "batches", "u2"))
    assert await queue.enqueue([{"id": "a"}, {"id": "b"}, {"id": "a"}]) == 2
    claimed = await queue.claim("w", count=10, block_ms=0)
    assert sorted(c.unit_id for c in claimed) == ["a", "b"]
    first = claimed[0]
    assert await queue.complete_many([(first, {}, "passed"), (first, {}, "error"), (claimed[1], {}, "error")]) \
        == [True, False, True]
    counters = await queue.counters()
    assert (counters.completed, counters.passed, counters.errors, counters.in_flight) == (2, 1, 1, 0)


async def test_ids_and_results_that_need_escaping_survive_the_joined_arguments(client: aioredis.Redis) -> None:
    queue = WorkQueue(client, job_key("ns", "batches", "u3"))
    ids = ["line\nbreak", "space id", 'quote"back\\slash', "ünï/cødé ✓", "comma,semi;colon"]
    units = [{"id": unit_id, "text": f"{unit_id}\n\t\u2028end"} for unit_id in ids]
    assert await queue.enqueue(units) == len(ids)
    claimed = await queue.claim("w", count=10, block_ms=0)
    assert {c.unit_id: c.unit for c in claimed} == {u["id"]: u for u in units}
    results = [(c, {"output": c.unit["text"], "cost": {"usd": 0.5}}, "passed") for c in claimed]
    assert await queue.complete_many(results) == [True] * len(ids)
    done = {unit_id: record async for unit_id, record in queue.done_results()}
    assert set(done) == set(ids)
    assert all(done[c.unit_id]["result"] == {"output": c.unit["text"], "cost": {"usd": 0.5}} for c in claimed)
