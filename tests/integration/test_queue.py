"""The Redis work queue against a real `redis-server`: concurrency, crashes, retries, accounting, cleanup."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from arena_operator.workqueue.queue import Claimed, Counters, QueueSealedError, WorkQueue, job_key
from tests.fakes.services import RedisServer

OUTCOMES = ["passed", "assertion_failed", "error"]

# A worker that claims one unit, reports it, and then hangs: the test SIGKILLs it mid-unit.
DOOMED_WORKER = """
import asyncio, sys
import redis.asyncio as aioredis
from arena_operator.workqueue.queue import WorkQueue

async def main():
    client = aioredis.from_url(sys.argv[1])
    queue = WorkQueue(client, sys.argv[2], visibility_timeout=float(sys.argv[3]))
    claimed = await queue.claim("doomed", count=1, block_ms=5000)
    print(claimed[0].unit_id, claimed[0].attempt, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.from_url(redis_server.url)
    yield redis
    await redis.aclose()


def make_units(count: int, start: int = 0) -> list[dict]:
    return [{"id": f"s{i % 7}.mock.t{i:05d}", "scenario": f"s{i % 7}", "provider": "mock", "trial": i}
            for i in range(start, start + count)]


def outcome_of(unit: dict) -> str:
    return OUTCOMES[unit["trial"] % 3]


def counts(**fields: int) -> Counters:
    """The expected Counters: the given fields, zero elsewhere, `pending` derived."""
    values = dict.fromkeys(Counters.__dataclass_fields__, 0) | fields
    values["pending"] = values["total"] - values["completed"] - values["failed"]
    return Counters(**values)


async def claim_one(queue: WorkQueue, consumer: str, block_ms: int = 0) -> Claimed:
    claimed = await queue.claim(consumer, count=1, block_ms=block_ms)
    assert len(claimed) == 1, claimed
    return claimed[0]


async def all_keys(client: aioredis.Redis, pattern: str = "*") -> set[str]:
    return {key.decode() async for key in client.scan_iter(match=pattern)}


async def test_10k_units_enqueued_while_4_consumers_drain_each_counted_once(client: aioredis.Redis) -> None:
    key = job_key("team-a", "nightly", "0b5c7e3e-uid")
    planner = WorkQueue(client, key)
    units = make_units(10_000)
    seen: Counter[str] = Counter()

    async def consumer(name: str, batched: bool) -> None:
        queue = WorkQueue(client, key)  # each worker has its own instance, as each pod would
        while True:
            claimed = await queue.claim(name, count=50, block_ms=50)
            seen.update(c.unit_id for c in claimed)
            items = [(c, {"score": c.unit["trial"]}, outcome_of(c.unit)) for c in claimed]
            if batched:
                assert all(await queue.complete_many(items))
            else:
                for item in items:
                    assert await queue.complete(*item)
            if not claimed and await queue.is_drained():
                return

    workers = [asyncio.create_task(consumer(f"worker-{n}", batched=n == 0)) for n in range(4)]
    assert await planner.enqueue(units[:1000], batch=250) == 1000
    async with asyncio.timeout(10):  # consumers are already working while the rest is planned
        while (await planner.counters()).completed == 0:
            await asyncio.sleep(0.005)
    for start in range(1000, 10_000, 1000):
        assert await planner.enqueue(iter(units[start:start + 1000]), batch=250) == 1000
        assert not await planner.is_drained()  # not sealed yet, whatever the counters say
    await planner.seal()
    async with asyncio.timeout(30):
        await asyncio.gather(*workers)

    assert len(seen) == 10_000 and set(seen.values()) == {1}
    expected = Counter(outcome_of(u) for u in units)
    assert await planner.counters() == counts(total=10_000, completed=10_000, passed=expected["passed"],
                                                assertion_failed=expected["assertion_failed"],
                                                errors=expected["error"])
    assert await client.hlen(planner.keys["done"]) == 10_000
    assert await client.xlen(planner.keys["stream"]) == 0  # settled entries are deleted, memory stays bounded
    results = {unit_id: summary async for unit_id, summary in planner.done_results()}
    assert results["s3.mock.t00010"] == {"outcome": "assertion_failed", "attempt": 1, "result": {"score": 10}}
    assert len(results) == 10_000


async def test_enqueue_is_idempotent_and_sealed_total_is_final(client: aioredis.Redis) -> None:
    queue = WorkQueue(client, job_key("ns", "job", "uid"))

    async def stream_units(units: list[dict]) -> AsyncIterator[dict]:
        for unit in units:
            yield unit

    assert await queue.enqueue(make_units(100), batch=30) == 100
    assert await queue.enqueue(make_units(110), batch=30) == 10  # a re-planning adds only what is new
    assert await queue.enqueue(stream_units(make_units(5) * 3)) == 0
    assert await queue.enqueue([*make_units(1, 200), *make_units(1, 200)]) == 1  # duplicate inside one batch
    assert (await queue.counters()).total == 111
    assert await client.xlen(queue.keys["stream"]) == 111
    await queue.seal()
    assert await queue.enqueue(make_units(110)) == 0  # re-planning after seal is harmless
    with pytest.raises(QueueSealedError, match=r"s0\.mock\.t00700"):
        await queue.enqueue([*make_units(3), *make_units(1, 700)])
    assert (await queue.counters()).total == 111
    assert await client.xlen(queue.keys["stream"]) == 111  # the refused batch added nothing at all
    with pytest.raises(ValueError, match="id"):
        await queue.enqueue([{"scenario": "no id"}])


async def test_killed_worker_unit_is_reclaimed_after_visibility_timeout(client: aioredis.Redis,
                                                                        redis_server: RedisServer) -> None:
    key = job_key("ns", "job", "uid")
    queue = WorkQueue(client, key, visibility_timeout=0.5)
    await queue.enqueue(make_units(3))
    await queue.seal()
    proc = subprocess.Popen([sys.executable, "-c", DOOMED_WORKER, redis_server.url, key, "0.5"],
                            stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
    finally:
        proc.send_signal(signal.SIGKILL)  # dies mid-unit, never acks
        proc.wait(5)
        proc.stdout.close()
    doomed_id, attempt = line.split()
    killed_at = time.monotonic()
    assert attempt == "1"
    survivors = await queue.claim("survivor", count=10, block_ms=0)
    assert sorted(c.unit_id for c in survivors) == sorted(u["id"] for u in make_units(3) if u["id"] != doomed_id)
    for c in survivors:
        assert await queue.complete(c, {}, "passed")
    assert (await queue.counters()).in_flight == 1  # the dead worker's unit, not yet reclaimable
    async with asyncio.timeout(5):
        while not (reclaimed := await queue.claim("survivor", count=10, block_ms=50)):
            pass
    assert time.monotonic() - killed_at >= 0.3
    assert [(c.unit_id, c.attempt) for c in reclaimed] == [(doomed_id, 2)]
    assert await queue.complete(reclaimed[0], {}, "passed")
    assert await queue.counters() == counts(total=3, completed=3, passed=3)
    assert await queue.is_drained()


@pytest.mark.parametrize("late_first", [False, True])
async def test_slow_worker_finishing_after_reclaim_is_not_double_counted(client: aioredis.Redis,
                                                                        late_first: bool) -> None:
    queue = WorkQueue(client, job_key("ns", "job", "uid"), visibility_timeout=0.2)
    await queue.enqueue(make_units(1))
    slow = await claim_one(queue, "slow")
    await asyncio.sleep(0.25)
    fast = await claim_one(queue, "fast")
    assert (fast.unit_id, fast.attempt, slow.attempt) == (slow.unit_id, 2, 1)
    assert not await queue.extend(slow, "slow")  # the slow worker learns its unit moved on, and steals nothing
    first, second = (slow, fast) if late_first else (fast, slow)
    assert await queue.complete(first, {"by": "first"}, "passed")
    assert not await queue.complete(second, {"by": "second"}, "error")
    assert await queue.counters() == counts(total=1, completed=1, passed=1)
    assert [s["result"] async for _, s in queue.done_results()] == [{"by": "first"}]
    assert await queue.claim("fast", block_ms=0) == []


async def test_extend_keeps_a_long_unit_from_being_reclaimed(client: aioredis.Redis) -> None:
    queue = WorkQueue(client, job_key("ns", "job", "uid"), visibility_timeout=0.2)
    await queue.enqueue(make_units(1))
    claimed = await claim_one(queue, "long")
    for _ in range(5):  # 0.5 s in all, well past the visibility timeout
        await asyncio.sleep(0.1)
        assert await queue.extend(claimed, "long")
        assert await queue.claim("other", block_ms=0) == []
    assert await queue.complete(claimed, {}, "passed")
    assert (await queue.counters()).completed == 1


async def test_retryable_failures_are_redelivered_at_once_then_recorded_failed(client: aioredis.Redis) -> None:
    queue = WorkQueue(client, job_key("ns", "job", "uid"), visibility_timeout=30, max_attempts=3)
    await queue.enqueue(make_units(1))
    await queue.seal()
    for attempt in (1, 2, 3):
        started = time.monotonic()
        claimed = await claim_one(queue, f"w{attempt}")  # no wait for the 30 s visibility timeout
        assert time.monotonic() - started < 1
        assert claimed.attempt == attempt
        assert await queue.fail(claimed, f"provider timeout #{attempt}") is (attempt == 3)
    assert await queue.claim("w4", block_ms=0) == []
    assert await queue.counters() == counts(total=1, failed=1, retried=2)
    assert [s async for _, s in queue.done_results()] == [
        {"outcome": "failed", "attempt": 3, "error": "provider timeout #3"}]
    assert await queue.is_drained()


async def test_non_retryable_failure_is_recorded_at_once(client: aioredis.Redis) -> None:
    queue = WorkQueue(client, job_key("ns", "job", "uid"), max_attempts=5)
    await queue.enqueue(make_units(2))
    claimed = await claim_one(queue, "w")
    assert await queue.fail(claimed, "scenario references unknown tool", retryable=False)
    assert await queue.counters() == counts(total=2, failed=1)
    late = await queue.fail(claimed, "again")  # a duplicate report of the same attempt changes nothing
    assert not late and (await queue.counters()).failed == 1


async def test_late_duplicate_failure_does_not_fork_a_second_copy(client: aioredis.Redis) -> None:
    queue = WorkQueue(client, job_key("ns", "job", "uid"), visibility_timeout=0.2, max_attempts=5)
    await queue.enqueue(make_units(1))
    slow = await claim_one(queue, "slow")
    await asyncio.sleep(0.25)
    fast = await claim_one(queue, "fast")
    assert not await queue.fail(fast, "flaky")
    assert not await queue.fail(slow, "flaky too")  # its entry is gone: no second copy
    assert await client.xlen(queue.keys["stream"]) == 1
    assert (await queue.counters()).retried == 1
    retry = await claim_one(queue, "fast")
    assert retry.attempt == 3 and await queue.complete(retry, {}, "passed")
    assert await queue.claim("fast", block_ms=0) == []


async def test_unit_abandoned_max_attempts_times_is_recorded_failed(client: aioredis.Redis) -> None:
    queue = WorkQueue(client, job_key("ns", "job", "uid"), visibility_timeout=0.1, max_attempts=2)
    await queue.enqueue(make_units(1))
    await queue.seal()
    for attempt in (1, 2):  # each holder "dies" (never reports)
        assert (await claim_one(queue, f"victim-{attempt}")).attempt == attempt
        await asyncio.sleep(0.15)
    assert await queue.claim("next", block_ms=0) == []
    assert await queue.counters() == counts(total=1, failed=1)
    [(_, summary)] = [item async for item in queue.done_results()]
    assert summary["outcome"] == "failed" and "no result after 2 deliveries" in summary["error"]
    assert await queue.is_drained()


async def test_blocking_claim_wakes_for_units_enqueued_later(client: aioredis.Redis) -> None:
    queue = WorkQueue(client, job_key("ns", "job", "uid"))
    waiting = asyncio.create_task(queue.claim("w", count=5, block_ms=5000))
    await asyncio.sleep(0.05)
    await queue.enqueue(make_units(3))
    claimed = await asyncio.wait_for(waiting, 5)
    assert [c.attempt for c in claimed] == [1, 1, 1]
    assert [c.unit for c in claimed] == make_units(3)
    counters = await queue.counters()
    assert (counters.in_flight, counters.pending) == (3, 3)


async def test_blocking_claim_ends_before_the_client_socket_timeout(redis_server: RedisServer) -> None:
    client = aioredis.from_url(redis_server.url, socket_timeout=0.5)
    try:
        queue = WorkQueue(client, job_key("ns", "job", "uid"))
        started = time.monotonic()
        assert await queue.claim("w", block_ms=5000) == []  # would raise TimeoutError if it blocked 5 s
        assert time.monotonic() - started < 4.5  # well short of the 5 s asked for, however loaded the machine
    finally:
        await client.aclose()


async def test_cancel_flag_and_fatal_report(client: aioredis.Redis) -> None:
    queue = WorkQueue(client, job_key("ns", "job", "uid"))
    assert not await queue.is_cancelled() and await queue.fatal() is None
    await queue.cancel()
    assert await WorkQueue(client, queue.key).is_cancelled()
    await queue.report_fatal("artifact digest mismatch")
    await queue.report_fatal("a later, secondary error")
    assert await queue.fatal() == "artifact digest mismatch"


async def test_recorded_summary_is_compact(client: aioredis.Redis) -> None:
    queue = WorkQueue(client, job_key("ns", "job", "uid"))
    await queue.enqueue(make_units(1))
    result = {"RunID": "r1", "Passed": True, "Error": "", "DurationMs": 12.5, "Trial": 0, "EndTime": None,
              "Cost": {"InputTokens": 10, "OutputTokens": 5, "TotalCost": 0.0001}, "Violations": ["x"],
              "Messages": [{"role": "user", "content": "hi" * 1000}], "Params": {"temperature": 0.2, "style": "x"},
              "Note": "n" * 1000}
    assert await queue.complete(await claim_one(queue, "w"), result, "passed")
    [(_, summary)] = [item async for item in queue.done_results()]
    assert summary["result"] == {"RunID": "r1", "Passed": True, "Error": "", "DurationMs": 12.5, "Trial": 0,
                                 "EndTime": None, "Cost": result["Cost"], "Note": "n" * 300}


async def test_exactly_one_of_4_racing_consumers_aggregates(client: aioredis.Redis) -> None:
    queue = WorkQueue(client, job_key("ns", "job", "uid"))
    racers = [WorkQueue(client, queue.key) for _ in range(4)]
    await queue.enqueue(make_units(4))
    for claimed in await queue.claim("w", count=4):
        await queue.complete(claimed, {}, "passed")
    assert not any(await asyncio.gather(*(r.claim_aggregation(f"w{n}") for n, r in enumerate(racers))))  # unsealed
    await queue.seal()
    wins = await asyncio.gather(*(r.claim_aggregation(f"w{n}") for n, r in enumerate(racers)))
    assert sum(wins) == 1
    winner = f"w{wins.index(True)}"
    assert await queue.claim_aggregation(winner)  # the holder may ask again; nobody else may
    assert sum(await asyncio.gather(*(r.claim_aggregation(f"w{n}") for n, r in enumerate(racers)))) == 1
    assert await queue.aggregated() is None
    await queue.mark_aggregated("s3://results/ns/job/", {"passed": 4})
    assert await queue.aggregated() == {"url": "s3://results/ns/job/", "summary": {"passed": 4}}
    assert not await queue.claim_aggregation(winner)


async def test_aggregation_lease_of_a_dead_aggregator_expires(client: aioredis.Redis) -> None:
    queue = WorkQueue(client, job_key("ns", "job", "uid"))
    await queue.seal()  # an empty, sealed job is drained
    assert await queue.claim_aggregation("dies", lease=0.1)
    assert not await queue.claim_aggregation("other")
    await asyncio.sleep(0.15)
    assert await queue.claim_aggregation("other")


async def test_heartbeats_count_recent_consumers(client: aioredis.Redis) -> None:
    queue = WorkQueue(client, job_key("ns", "job", "uid"))
    await queue.heartbeat("too-early")  # a no-op while the job has no units (and after its keys are deleted)
    await queue.enqueue(make_units(1))
    assert await queue.active_consumers() == 0
    await asyncio.gather(queue.heartbeat("a"), queue.heartbeat("b"), queue.heartbeat("a"))
    assert await queue.active_consumers() == 2
    await asyncio.sleep(0.2)
    await queue.heartbeat("c")
    assert await queue.active_consumers(within=0.1) == 1


async def test_config_round_trip_refuses_secrets(client: aioredis.Redis) -> None:
    queue = WorkQueue(client, job_key("ns", "job", "uid"))
    assert await queue.get_config() is None
    config = {"providers": [{"name": "gpt", "credential": {"secretRef": {"name": "openai", "key": "api-key"}},
                             "defaults": {"max_tokens": 256}, "headers": {"Authorization": "Bearer ${API_TOKEN}"}}],
              "tools": [], "filters": {"include": ["*"]}}
    await queue.put_config(config)
    assert await queue.get_config() == config
    for leaky in ({"providers": [{"api_key": "sk-live-123"}]}, {"s3": {"secretAccessKey": "x"}},
                  {"headers": {"Authorization": "Bearer t"}}):
        with pytest.raises(ValueError, match="secret"):
            await queue.put_config(leaky)
    assert await queue.get_config() == config


async def test_lifecycle_with_decoded_responses_client(redis_server: RedisServer) -> None:
    client = aioredis.from_url(redis_server.url, decode_responses=True)
    try:
        queue = WorkQueue(client, job_key("ns", "job", "uid"), visibility_timeout=0.1, max_attempts=2)
        await queue.enqueue(make_units(3))
        first = await queue.claim("w", count=2, block_ms=0)
        assert [c.unit_id for c in first] == [u["id"] for u in make_units(2)]
        assert await queue.complete(first[0], {"ok": True}, "passed")
        assert not await queue.fail(first[1], "later")
        rest = await queue.claim("w", count=5, block_ms=100)
        assert sorted(c.attempt for c in rest) == [1, 2]
        await queue.complete_many([(c, {}, "error") for c in rest])
        assert await queue.counters() == counts(total=3, completed=3, passed=1, errors=2, retried=1)
        await queue.set_ttl(60)
        assert await queue.delete() > 0
    finally:
        await client.aclose()


async def test_keys_share_one_slot_and_jobs_of_the_same_name_never_collide(client: aioredis.Redis) -> None:
    assert job_key("team-a", "nightly", "uid-1") == "arena:{team-a/nightly/uid-1}"
    with pytest.raises(ValueError):
        job_key("team-a", "nightly}", "uid-1")
    old = WorkQueue(client, job_key("team-a", "nightly", "uid-1"))
    new = WorkQueue(client, job_key("team-a", "nightly", "uid-1b"))  # uid-1 is a prefix of uid-1b
    assert await old.enqueue(make_units(10)) == 10
    assert await new.enqueue(make_units(10)) == 10  # same unit ids, separate job
    for claimed in await old.claim("w", count=10):
        await old.complete(claimed, {}, "passed")
    await old.seal()
    await old.cancel()
    assert (await old.counters()).completed == 10
    assert await new.counters() == counts(total=10)
    assert not await new.is_cancelled() and not await new.is_drained()
    assert len(await new.claim("w", count=20)) == 10
    assert {key_slot(k.encode()) for k in old.keys.values()} == {key_slot(b"arena:{team-a/nightly/uid-1}:x")}


async def populate(queue: WorkQueue) -> None:
    """Create every kind of key a job run has."""
    await queue.put_config({"providers": []})
    await queue.enqueue(make_units(5))
    claimed = await queue.claim("w", count=5)
    await queue.complete(claimed[0], {}, "passed")
    await queue.fail(claimed[1], "boom")
    await queue.fail(claimed[2], "fatal", retryable=False)
    await queue.complete(claimed[3], {}, "passed")
    await queue.complete(claimed[4], {}, "passed")
    await queue.complete(await claim_one(queue, "w"), {}, "passed")
    await queue.seal()
    await queue.cancel()
    await queue.report_fatal("sink unreachable")
    await queue.heartbeat("w")
    assert await queue.claim_aggregation("w")
    await queue.mark_aggregated("pvc://results/x", {})


async def test_delete_removes_every_key_of_the_job_only(client: aioredis.Redis) -> None:
    doomed = WorkQueue(client, job_key("ns", "job", "uid-1"))
    kept = WorkQueue(client, job_key("ns", "job", "uid-2"))
    await populate(doomed)
    await populate(kept)
    doomed_keys = await all_keys(client, "arena:{ns/job/uid-1}:*")
    assert doomed_keys == set(doomed.keys.values())  # every documented key exists, and no other
    await doomed.set_ttl(120)
    assert all(0 < ttl <= 120 for ttl in [await client.ttl(k) for k in doomed_keys])
    held = Claimed(make_units(1)[0], make_units(1)[0]["id"], "1-0", 2)  # a straggler's unit from before the delete
    assert await doomed.delete() == len(doomed_keys)
    assert await all_keys(client, "arena:{ns/job/uid-1}:*") == set()
    # The straggler finishes after the delete: it must not leave orphan keys behind.
    assert not await doomed.complete(held, {}, "passed")
    assert not await doomed.fail(held, "late")
    assert not await doomed.extend(held, "straggler")
    await doomed.heartbeat("straggler")
    remaining = await all_keys(client)  # plain SCAN of the whole database
    assert remaining == set(kept.keys.values())
    untouched = {k: await client.ttl(k) for k in remaining}  # the other job's TTLs are its own (-1, or a lease)
    assert {k: -1 if t == -1 else "lease" if 590 < t <= 600 else t for k, t in untouched.items()} == {
        k: "lease" if k.endswith(":aggregator") else -1 for k in remaining}
    assert await kept.counters() == counts(total=5, completed=4, failed=1, passed=4, retried=1)
