"""workqueue.reclaim against a real redis-server: a dead worker's units go to the others at once (not after the
120 s visibility timeout), a live worker's stay with it, and a released unit is still counted once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from arena_operator.workqueue.queue import WorkQueue, job_key
from arena_operator.workqueue.reclaim import release
from tests.fakes.services import RedisServer

VISIBILITY = 120.0  # the default: what a dead worker's units would wait without release


@pytest.fixture
async def queue(redis_server: RedisServer) -> AsyncIterator[WorkQueue]:
    client = aioredis.from_url(redis_server.url)
    queue = WorkQueue(client, job_key("ns", "job", "uid"), visibility_timeout=VISIBILITY)
    await queue.enqueue([{"id": f"u{i}"} for i in range(6)])
    await queue.seal()
    yield queue
    await client.aclose()


@pytest.mark.parametrize("held", [1, 3])
async def test_units_of_a_named_dead_consumer_are_claimed_at_once_by_another(queue: WorkQueue, held: int) -> None:
    lost = await queue.claim("dead-pod", count=held, block_ms=0)
    await queue.claim("live-pod", count=2, block_ms=0)
    assert await release(queue, ["dead-pod"], stale_after=0) == held
    taken = await queue.claim("other-pod", count=10, block_ms=0)
    assert {c.unit_id for c in lost} <= {c.unit_id for c in taken}
    assert all(c.attempt == 2 for c in taken if c.unit_id in {u.unit_id for u in lost})
    assert await release(queue, ["dead-pod"], stale_after=0) == 0  # nothing left to hand back


async def test_a_silent_consumer_is_released_and_a_beating_one_is_not(queue: WorkQueue) -> None:
    silent = await queue.claim("silent", count=2, block_ms=0)
    beating = await queue.claim("beating", count=2, block_ms=0)
    await queue.heartbeat("silent")
    await asyncio.sleep(1.2)
    await queue.heartbeat("beating")
    assert await release(queue, stale_after=1.0) == len(silent)
    taken = {c.unit_id for c in await queue.claim("other", count=10, block_ms=0)}
    assert {c.unit_id for c in silent} <= taken and not taken & {c.unit_id for c in beating}


async def test_a_released_unit_finished_late_by_its_first_worker_counts_once(queue: WorkQueue) -> None:
    [first] = await queue.claim("slow-pod", count=1, block_ms=0)
    await release(queue, ["slow-pod"], stale_after=0)
    [second] = [c for c in await queue.claim("other", count=10, block_ms=0) if c.unit_id == first.unit_id]
    assert await queue.complete(second, {"Status": "passed"}, "passed")
    assert not await queue.complete(first, {"Status": "passed"}, "passed")  # the late outcome only acks
    counters = await queue.counters()
    assert (counters.completed, counters.passed) == (1, 1)


async def test_release_is_a_no_op_for_a_job_without_a_stream(redis_server: RedisServer) -> None:
    client = aioredis.from_url(redis_server.url)
    try:
        queue = WorkQueue(client, job_key("ns", "gone", "uid"))
        assert await release(queue, ["anyone"]) == 0
        assert await client.keys("*") == []
    finally:
        await client.aclose()
