"""Work-queue throughput (enqueue, claim + complete) beside raw Redis, measured in the same run on one server.

Starts its own `redis-server` (no persistence) on a free 127.0.0.1 port, then measures on it:

- reference: `redis-benchmark -P 16` for XADD (a custom command) and LPUSH — what the server does with no client cost;
- floor: redis-py (hiredis) pipelines of 1,000 raw XADD, and XREADGROUP COUNT 1000 + pipelined XACK;
- queue: `WorkQueue.enqueue` (Lua, batches of 500), then consumers draining with `claim(count)` + `complete_many`,
  and with `claim` + one `complete` per unit (what a worker does when units finish one by one).

    .venv/bin/python bench/queue.py [--units 100000] [--consumers 4] [--claim 100]
"""

import sys
from pathlib import Path

# This file is named like the stdlib `queue` module, which asyncio imports: keep bench/ off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import redis.asyncio as aioredis  # noqa: E402

from arena_operator.workqueue.queue import WorkQueue, job_key  # noqa: E402

SINGLE_UNITS = 20_000  # one round trip per unit is slow: measure that mode on fewer units


def start_redis() -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(7) == b"+PONG\r\n":
                    return proc, port
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.01)


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


async def drain(client: aioredis.Redis, key: str, consumers: int, claim: int, batched: bool) -> float:
    async def consumer(name: str) -> None:
        queue = WorkQueue(client, key)
        while claimed := await queue.claim(name, count=claim, block_ms=0):
            if batched:
                await queue.complete_many([(c, {"score": 1.0, "turns": 3}, "passed") for c in claimed])
            else:
                for c in claimed:
                    await queue.complete(c, {"score": 1.0, "turns": 3}, "passed")

    started = time.perf_counter()
    await asyncio.gather(*(consumer(f"worker-{n}") for n in range(consumers)))
    return time.perf_counter() - started


async def measure_queue(url: str, count: int, consumers: int, claim: int) -> dict[str, float]:
    client = aioredis.from_url(url)
    figures: dict[str, float] = {}
    try:
        figures["floor_xadd"], figures["floor_read_ack"] = await floor(client, count)
        for batched in (True, False):
            queue = WorkQueue(client, job_key("bench", "queue", f"uid-{int(batched)}"))
            units = [unit(i) for i in range(count if batched else min(count, SINGLE_UNITS))]
            count = len(units)
            started = time.perf_counter()
            assert await queue.enqueue(units, batch=500) == count
            enqueue_s = time.perf_counter() - started
            await queue.seal()
            drain_s = await drain(client, queue.key, consumers, claim, batched)
            counters = await queue.counters()
            assert counters.completed == count and counters.pending == 0 and counters.in_flight == 0, counters
            assert await queue.is_drained()
            mode = "batched" if batched else "single"
            figures.setdefault("enqueue", count / enqueue_s)
            figures[f"drain_{mode}"] = count / drain_s
            figures[f"total_{mode}"] = count / (enqueue_s + drain_s)
            await queue.delete()
    finally:
        await client.aclose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--claim", type=int, default=100, help="units per claim call")
    args = parser.parse_args()
    proc, port = start_redis()
    try:
        xadd = redis_benchmark(port, args.units, "XADD", "benchstream", "*", "f", "v")
        lpush = redis_benchmark(port, args.units, "-t", "lpush")
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
        ("queue: enqueue (Lua SADD+XADD, batches of 500)", figures["enqueue"]),
        (f"queue: claim({args.claim}) + complete_many, {args.consumers} consumers", figures["drain_batched"]),
        (f"queue: claim({args.claim}) + complete per unit, {args.consumers} consumers (first "
         f"{min(args.units, SINGLE_UNITS):,} units)", figures["drain_single"]),
        ("queue: enqueue + drain end to end (complete_many)", figures["total_batched"]),
    ]
    print(f"cpus available: {len(os.sched_getaffinity(0))}; load average {os.getloadavg()[0]:.1f} (others' work "
          f"skews every figure alike); {args.units:,} units per measurement")
    for label, rate in rows:
        print(f"{label:<80} {rate:>9,.0f} /s")


if __name__ == "__main__":
    main()
