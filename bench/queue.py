"""Work-queue throughput (enqueue, claim + complete) beside raw Redis, measured in the same run on one server.

Starts its own `redis-server` (no persistence) on a free 127.0.0.1 port, then measures on it:

- reference: `redis-benchmark -P 16` for XADD (a custom command) and LPUSH — what the server does with no client cost;
- floor: redis-py (hiredis) pipelines of 1,000 raw XADD, and XREADGROUP COUNT 1000 + pipelined XACK;
- queue: `WorkQueue.enqueue` (Lua, batches of 500), then consumers draining with `claim(count)` + `complete_many`,
  with `complete_and_claim` (one script call per batch), and with `claim` + one `complete` per unit (what a worker
  does when units finish one by one);
- the full lifecycle end to end: the planner enqueueing while the consumers drain (`complete_and_claim`), as an
  ArenaJob runs; its rate over the raw XADD rate is the `ratio:` line. Redis time per unit (`INFO commandstats`,
  top-level commands only) is printed for each phase.

    .venv/bin/python bench/queue.py [--units 100000] [--consumers 4] [--claim 100] [--quick]

(`PYTHONPATH=<old checkout>/src` measures another version of the queue with the same script.)
"""

import sys
from pathlib import Path

# This file is named like the stdlib `queue` module, which asyncio imports: keep bench/ off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: `bench.benchlib`

import argparse  # noqa: E402
import asyncio  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import redis.asyncio as aioredis  # noqa: E402

from arena_operator.workqueue.queue import WorkQueue, job_key  # noqa: E402
from bench.benchlib import start_redis  # noqa: E402

SINGLE_UNITS = 20_000  # one round trip per unit is slow: measure that mode on fewer units


def redis_benchmark(port: int, count: int, *command: str) -> float:
    out = subprocess.run(["redis-benchmark", "-p", str(port), "-P", "16", "-q", "-n", str(count), *command],
                         capture_output=True, text=True, check=True).stdout
    return float(re.findall(r"([\d.]+) requests per second", out)[-1])


def unit(i: int) -> dict:
    return {"id": f"scenario-{i % 50:02d}.openai-gpt-4o.t{i:06d}", "scenario": f"scenario-{i % 50:02d}",
            "provider": "openai-gpt-4o", "trial": i, "variables": {"region": "eu", "persona": "new-customer"}}


async def floor(client: aioredis.Redis, count: int) -> tuple[float, float]:
    """redis-py + hiredis raw XADD (pipelines of 1000) and XREADGROUP COUNT 1000 + XACK, units/s."""
    fields = {"id": unit(0)["id"], "u": "x" * 150}
    await client.xgroup_create("floor", "g", id="0", mkstream=True)
    started = time.perf_counter()
    for _ in range(0, count, 1000):
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(1000):
                pipe.xadd("floor", fields)
            await pipe.execute()
    xadd = count / (time.perf_counter() - started)
    started = time.perf_counter()
    while reply := await client.xreadgroup("g", "c", {"floor": ">"}, count=1000):
        ids = [msgid for msgid, _ in reply[0][1]]
        await client.xack("floor", "g", *ids)
    read_ack = count / (time.perf_counter() - started)
    await client.delete("floor")
    return xadd, read_ack


RESULT = {"score": 1.0, "turns": 3}


async def consume(queue: WorkQueue, name: str, claim: int, mode: str, planned: bool = True) -> None:
    """Drain until nothing is left; with `planned` False, until the queue is drained (sealed and all recorded),
    waiting for units in a blocking claim as a worker does."""
    combined = mode == "combined" and hasattr(queue, "complete_and_claim")  # (an older queue: complete_many)
    claimed: list = []
    while True:
        if combined:  # records the previous batch and claims the next in one call
            _, claimed = await queue.complete_and_claim([(c, RESULT, "passed") for c in claimed], name, claim)
        else:
            claimed = await queue.claim(name, count=claim, block_ms=0)
        if not claimed:
            if planned or await queue.is_drained():
                return
            if not (claimed := await queue.claim(name, count=claim, block_ms=20)):
                continue
        if combined:
            continue
        if mode == "single":
            for c in claimed:
                await queue.complete(c, RESULT, "passed")
        else:
            await queue.complete_many([(c, RESULT, "passed") for c in claimed])


async def drain(client: aioredis.Redis, key: str, consumers: int, claim: int, mode: str) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(consume(WorkQueue(client, key), f"worker-{n}", claim, mode) for n in range(consumers)))
    return time.perf_counter() - started


async def redis_usec(client: aioredis.Redis) -> float:
    """Redis time of the top-level commands since the last reset (scripts include the commands they call)."""
    stats = await client.info("commandstats")
    inner = {"xadd", "sadd", "smismember", "hmget", "hset", "hsetnx", "hincrby", "hexists", "xack", "xdel",
             "xautoclaim", "xreadgroup", "exists", "sismember", "hget"}
    usec = sum(v["usec"] for k, v in stats.items() if k.removeprefix("cmdstat_") not in inner)
    await client.config_resetstat()
    return usec


async def lifecycle(client: aioredis.Redis, key: str, units: list[dict], consumers: int, claim: int,
                    processes: int = 0) -> float:
    """Planner and consumers at once: enqueue in batches of 500 while `complete_and_claim` drains — in this
    process, or (`processes` > 0) in that many worker processes of `consumers` consumers each, as pods would."""
    queue = WorkQueue(client, key)
    await queue.enqueue(units[:1])
    url = "redis://{host}:{port}/0".format(**client.connection_pool.connection_kwargs)
    ctx = multiprocessing.get_context("spawn")
    ready, go = ctx.Barrier(processes + 1), ctx.Event()
    children = [ctx.Process(target=worker_process, args=(url, key, n, consumers, claim, ready, go))
                for n in range(processes)]
    for child in children:
        child.start()
    if children:
        ready.wait()
    started = time.perf_counter()
    go.set()

    async def plan() -> None:
        for start in range(0, len(units), 500):
            await queue.enqueue(units[start:start + 500])
        await queue.seal()

    local = [] if children else [consume(WorkQueue(client, key), f"worker-{n}", claim, "combined", planned=False)
                                 for n in range(consumers)]
    await asyncio.gather(plan(), *local)
    while children and not await queue.is_drained():
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - started
    for child in children:
        child.join(30)
    return elapsed


def worker_process(url: str, key: str, index: int, consumers: int, claim: int, ready: Any, go: Any) -> None:
    async def run() -> None:
        client = aioredis.from_url(url)
        await client.ping()
        ready.wait()
        go.wait()
        await asyncio.gather(*(consume(WorkQueue(client, key), f"p{index}-worker-{n}", claim, "combined",
                                       planned=False) for n in range(consumers)))
        await client.aclose()

    asyncio.run(run())


async def check_exact(queue: WorkQueue, count: int) -> None:
    counters = await queue.counters()
    assert counters.total == count and counters.completed == count, counters
    assert counters.pending == 0 and counters.in_flight == 0, counters
    assert await queue.is_drained()


async def measure_queue(url: str, count: int, consumers: int, claim: int) -> dict[str, float]:
    client = aioredis.from_url(url)
    figures: dict[str, float] = {}
    try:
        figures["floor_xadd"], figures["floor_read_ack"] = await floor(client, count)
        single = min(count, SINGLE_UNITS if count > SINGLE_UNITS else count // 5)
        for mode in ("batched", "combined", "single"):
            queue = WorkQueue(client, job_key("bench", "queue", f"uid-{mode}"))
            units = [unit(i) for i in range(single if mode == "single" else count)]
            await redis_usec(client)
            started = time.perf_counter()
            assert await queue.enqueue(units, batch=500) == len(units)
            enqueue_s = time.perf_counter() - started
            figures.setdefault("enqueue_us", await redis_usec(client) / len(units))
            await queue.seal()
            drain_s = await drain(client, queue.key, consumers, claim, mode)
            figures[f"drain_{mode}_us"] = await redis_usec(client) / len(units)
            await check_exact(queue, len(units))
            figures.setdefault("enqueue", len(units) / enqueue_s)
            figures[f"drain_{mode}"] = len(units) / drain_s
            figures[f"total_{mode}"] = len(units) / (enqueue_s + drain_s)
            await queue.delete()
        key = job_key("bench", "queue", "uid-lifecycle")
        units = [unit(i) for i in range(count)]
        await redis_usec(client)
        for processes in (0, 2):
            name = f"lifecycle_{processes}"
            figures[name] = count / await lifecycle(client, key, units, consumers, claim, processes)
            figures[f"{name}_us"] = await redis_usec(client) / count
            queue = WorkQueue(client, key)
            await check_exact(queue, count)
            await queue.delete()
    finally:
        await client.aclose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--claim", type=int, default=100, help="units per claim call")
    parser.add_argument("--quick", action="store_true", help="20,000 units: the same table in a few seconds")
    args = parser.parse_args()
    if args.quick:
        args.units = min(args.units, 20_000)
    proc, port = start_redis()
    try:
        requests = max(args.units, 200_000)  # fewer requests end before redis-benchmark's rate settles
        xadd = redis_benchmark(port, requests, "XADD", "benchstream", "*", "f", "v")
        lpush = redis_benchmark(port, requests, "-t", "lpush")
        figures = asyncio.run(measure_queue(f"redis://127.0.0.1:{port}/0", args.units, args.consumers,
                                            args.claim))
    finally:
        proc.terminate()
        proc.wait(10)
    rows = [
        ("reference: redis-benchmark -P 16 XADD", xadd),
        ("reference: redis-benchmark -P 16 LPUSH", lpush),
        ("floor: redis-py raw XADD, pipelines of 1000", figures["floor_xadd"]),
        ("floor: redis-py XREADGROUP 1000 + XACK", figures["floor_read_ack"]),
        ("queue: enqueue (Lua SADD+XADD, batches of 500)", figures["enqueue"], figures["enqueue_us"]),
        (f"queue: claim({args.claim}) + complete_many, {args.consumers} consumers", figures["drain_batched"],
         figures["drain_batched_us"]),
        (f"queue: complete_and_claim({args.claim}), {args.consumers} consumers", figures["drain_combined"],
         figures["drain_combined_us"]),
        (f"queue: claim({args.claim}) + complete per unit, {args.consumers} consumers (fewer units)",
         figures["drain_single"], figures["drain_single_us"]),
        ("queue: enqueue, then drain (complete_many)", figures["total_batched"], None),
        ("queue: full lifecycle, planner + consumers at once, one process", figures["lifecycle_0"],
         figures["lifecycle_0_us"]),
        (f"queue: full lifecycle, planner + 2 worker processes × {args.consumers} consumers",
         figures["lifecycle_2"], figures["lifecycle_2_us"]),
    ]
    print(f"cpus available: {len(os.sched_getaffinity(0))}; load average {os.getloadavg()[0]:.1f} (others' work "
          f"skews every figure alike); {args.units:,} units per measurement")
    print(f"{'what':<80} {'per s':>9}   Redis µs/unit")
    for label, rate in rows[:4]:
        print(f"{label:<80} {rate:>9,.0f}")
    for label, rate, usec in rows[4:]:
        print(f"{label:<80} {rate:>9,.0f}   {'' if usec is None else f'{usec:.1f}'}")
    best = max(figures["lifecycle_0"], figures["lifecycle_2"])
    print(f"ratio: {best / xadd:.3f} (full lifecycle, the faster row / redis-benchmark -P 16 XADD; target >= 0.25)")


if __name__ == "__main__":
    main()
