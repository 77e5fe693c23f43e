"""1,000 simulated workers draining 1M units from one real redis-server while an operator-like status loop polls.

Each worker is an asyncio task with its own Redis connection doing what `arena worker` does per unit
(worker/run.py): `is_cancelled`, `claim(count=1, block_ms=500)`, the unit (a mock engine: `asyncio.sleep` of the
per-unit time), `complete`, and a heartbeat every 5 s. The tasks are spread over `--processes` processes, as pods
would be. A status process polls like the operator's observe step (`counters()` = HGETALL + XPENDING, and
`is_drained()`) every `--status-every` seconds — far more often than the operator's 3 s tick for one job, so its
polls/s stand for that many jobs' ticks. Measured: units/s, Redis CPU (INFO cpu: user + sys seconds per second),
Redis time per unit (INFO commandstats), claim latency p50/p99, status polls/s and their p99.

The capacity model of docs/scaling.md is checked against it: a calibration phase (fewer workers, zero unit time:
Redis as busy as the clients can make it) gives Redis CPU-µs per unit (user + sys, network I/O included) and the
clients' CPU-µs per unit; the model then predicts the main phase: its Redis CPU per unit (the same: a unit costs
what it costs, whatever the number of workers — `ratio:` is measured / predicted), and its units/s = workers /
(unit time + claim and complete round trips), bounded by one Redis core (1 / Redis CPU per unit) and by the
cores the clients get (cores × 1 / client CPU per unit). Commandstats µs are printed too, but on a loaded machine
they count the time Redis waits for a core as well (they grow with the load; INFO cpu does not).

    .venv/bin/python bench/scale.py [--workers 1000] [--units 1000000] [--unit-ms 200] [--processes 4] [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(BENCH.parent))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from array import array  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import redis.asyncio as aioredis  # noqa: E402

from arena_operator.workqueue.queue import WorkQueue, job_key  # noqa: E402
from bench.benchlib import machine, start_redis, stop  # noqa: E402

HEARTBEAT_S = 5.0
RESULT = {"Status": "passed", "Duration": 0.2, "Cost": {"total_cost_usd": 0.0001}}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


CONNECT_TIMEOUT_S = 60.0  # a loaded machine opening a thousand connections at once is slow to accept them


async def connect(url: str) -> aioredis.Redis:
    client = aioredis.from_url(url, single_connection_client=True, socket_connect_timeout=CONNECT_TIMEOUT_S,
                               socket_timeout=CONNECT_TIMEOUT_S)
    await client.ping()
    return client


async def worker(client: aioredis.Redis, key: str, name: str, unit_s: float, latencies: array) -> int:
    queue = WorkQueue(client, key)
    done, beat = 0, 0.0
    try:
        while not await queue.is_cancelled():
            if time.monotonic() - beat >= HEARTBEAT_S:
                await queue.heartbeat(name)
                beat = time.monotonic()
            started = time.perf_counter()
            claimed = await queue.claim(name, count=1, block_ms=500)
            latencies.append(time.perf_counter() - started)
            if not claimed:
                if await queue.is_drained():
                    return done
                continue
            if unit_s:
                await asyncio.sleep(unit_s)
            await queue.complete(claimed[0], RESULT, "passed")
            done += 1
    finally:
        await client.aclose()
    return done


def worker_process(url: str, key: str, index: int, workers: int, unit_s: float, ready: Any, go: Any,
                   results: Any) -> None:
    async def run() -> None:
        latencies = array("d")
        clients = [await connect(url) for _ in range(workers)]  # every connection open before the clock starts
        ready.wait()
        go.wait()
        cpu = time.process_time()
        counts = await asyncio.gather(*(worker(client, key, f"p{index}-w{n}", unit_s, latencies)
                                        for n, client in enumerate(clients)))
        # A claim that found nothing and blocked is a wait, not latency: keep the claims under the block time.
        served = [x for x in latencies if x < 0.45]
        results.put({"done": sum(counts), "cpu": time.process_time() - cpu, "p50": percentile(served, 0.5),
                     "p99": percentile(served, 0.99),
                     "claims": len(latencies)})

    asyncio.run(run())


def status_process(url: str, key: str, every: float, stop_flag: Any, results: Any) -> None:
    async def run() -> None:
        client = aioredis.from_url(url)
        queue = WorkQueue(client, key)
        latencies: list[float] = []
        started = time.perf_counter()
        while not stop_flag.is_set():
            begin = time.perf_counter()
            await queue.counters()
            await queue.is_drained()
            latencies.append(time.perf_counter() - begin)
            await asyncio.sleep(max(0.0, every - (time.perf_counter() - begin)))
        elapsed = time.perf_counter() - started
        await client.aclose()
        results.put({"polls": len(latencies), "polls_s": len(latencies) / elapsed,
                     "p99": percentile(latencies, 0.99)})

    asyncio.run(run())


async def redis_cpu(client: aioredis.Redis) -> float:
    info = await client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def commandstats_usec(client: aioredis.Redis) -> tuple[float, float]:
    """Redis µs of the top-level commands (scripts include what they call), and of the status loop's own
    HGETALL + XPENDING (summary form, O(consumers)): nothing else sends those."""
    inner = {"xadd", "sadd", "smismember", "hmget", "hset", "hsetnx", "hincrby", "hexists", "xack", "xdel",
             "xautoclaim", "xreadgroup", "exists", "sismember", "hget", "zadd", "zremrangebyscore", "time", "xrange",
             "xpending", "xclaim"}
    stats = await client.info("commandstats")
    status = sum(stats.get(f"cmdstat_{name}", {}).get("usec", 0) for name in ("hgetall", "xpending"))
    return sum(v["usec"] for k, v in stats.items() if k.removeprefix("cmdstat_") not in inner), status


@dataclass
class Phase:
    workers: int
    units: int
    unit_s: float
    processes: int
    status_every: float
    elapsed: float = 0.0
    units_s: float = 0.0
    cpu: float = 0.0  # Redis CPU-seconds per second
    cpu_us_per_unit: float = 0.0
    client_us_per_unit: float = 0.0  # the worker processes' CPU (user + sys), all of them
    redis_us_per_unit: float = 0.0  # commandstats
    claim_p50: float = 0.0
    claim_p99: float = 0.0
    polls_s: float = 0.0
    poll_p99: float = 0.0
    poll_us: float = 0.0  # Redis µs of one status poll's HGETALL + XPENDING
    enqueue_s: float = 0.0


def unit(i: int) -> dict:
    return {"id": f"scenario-{i % 50:02d}.provider.default.t{i:07d}", "scenario": f"scenario-{i % 50:02d}",
            "provider": "provider", "region": "default", "trial": i}


async def run_phase(url: str, phase: Phase, name: str) -> Phase:
    client = aioredis.from_url(url)
    queue = WorkQueue(client, job_key("bench", "scale", name))
    started = time.perf_counter()
    for start in range(0, phase.units, 500):
        await queue.enqueue([unit(i) for i in range(start, min(phase.units, start + 500))])
    await queue.seal()
    phase.enqueue_s = time.perf_counter() - started
    ctx = multiprocessing.get_context("spawn")
    go, stop_flag, results, status_results = ctx.Event(), ctx.Event(), ctx.Queue(), ctx.Queue()
    ready = ctx.Barrier(phase.processes + 1)
    per = [phase.workers // phase.processes + (1 if n < phase.workers % phase.processes else 0)
           for n in range(phase.processes)]
    procs = [ctx.Process(target=worker_process, args=(url, queue.key, n, count, phase.unit_s, ready, go, results))
             for n, count in enumerate(per)]
    status = ctx.Process(target=status_process, args=(url, queue.key, phase.status_every, stop_flag,
                                                      status_results))
    for proc in [*procs, status]:
        proc.start()
    await asyncio.to_thread(ready.wait)  # every worker connected
    await client.config_resetstat()
    cpu0, started = await redis_cpu(client), time.perf_counter()
    go.set()
    reports = []
    while len(reports) < len(procs):
        await asyncio.sleep(0.2)
        while not results.empty():
            reports.append(results.get())
    phase.elapsed = time.perf_counter() - started
    cpu1 = await redis_cpu(client)
    usec, status_usec = await commandstats_usec(client)
    stop_flag.set()
    polled = status_results.get(timeout=30)
    for proc in [*procs, status]:
        proc.join(30)
    counters = await queue.counters()
    assert counters.completed == phase.units and counters.pending == 0 and counters.in_flight == 0, counters
    assert sum(r["done"] for r in reports) == phase.units  # each unit run and counted once
    phase.units_s = phase.units / phase.elapsed
    phase.cpu = (cpu1 - cpu0) / phase.elapsed
    phase.cpu_us_per_unit = (cpu1 - cpu0) / phase.units * 1e6
    phase.redis_us_per_unit = usec / phase.units
    phase.client_us_per_unit = sum(r["cpu"] for r in reports) / phase.units * 1e6
    phase.claim_p50 = statistics.median(r["p50"] for r in reports)
    phase.claim_p99 = max(r["p99"] for r in reports)
    phase.polls_s, phase.poll_p99 = polled["polls_s"], polled["p99"]
    phase.poll_us = status_usec / max(1, polled["polls"])
    await queue.delete()
    await client.aclose()
    return phase


def print_phase(label: str, p: Phase) -> None:
    print(f"{label:<12} {p.workers:>7,} {p.units:>9,} {p.unit_s * 1000:>6.0f} {p.units_s:>9,.0f} {p.cpu * 100:>7.1f}% "
          f"{p.cpu_us_per_unit:>9.1f} {p.redis_us_per_unit:>9.1f} {p.claim_p50 * 1000:>8.2f} "
          f"{p.claim_p99 * 1000:>8.2f} {p.polls_s:>8.1f} {p.poll_p99 * 1000:>8.2f} {p.poll_us:>8.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--units", type=int, default=1_000_000)
    parser.add_argument("--unit-ms", type=float, default=200.0, help="the mock engine's time per unit")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--status-every", type=float, default=0.1, help="seconds between status polls")
    parser.add_argument("--quick", action="store_true", help="300 workers, 20,000 units")
    args = parser.parse_args()
    if args.quick:
        args.workers, args.units = min(args.workers, 300), min(args.units, 20_000)
    print(machine())
    proc, port = start_redis("--maxclients", "20000")
    url = f"redis://127.0.0.1:{port}/0"
    try:
        calibration = Phase(workers=max(16, args.workers // 20), units=max(5_000, args.units // 50), unit_s=0.0,
                            processes=args.processes, status_every=args.status_every)
        main_phase = Phase(workers=args.workers, units=args.units, unit_s=args.unit_ms / 1000,
                           processes=args.processes, status_every=args.status_every)
        print(f"{'phase':<12} {'workers':>7} {'units':>9} {'ms/u':>6} {'units/s':>9} {'Redis CPU':>8} "
              f"{'CPU µs/u':>9} {'cmd µs/u':>9} {'claim p50':>8} {'p99 ms':>8} {'polls/s':>8} {'poll p99':>8} "
              f"{'poll µs':>8}")
        cal = asyncio.run(run_phase(url, calibration, "calibration"))
        print_phase("calibration", cal)
        # The model, from the calibration alone: a unit costs Redis `per_unit` CPU-seconds; a round trip pair
        # (claim + complete) the calibration's median claim latency twice.
        per_unit, client_per_unit = cal.cpu_us_per_unit / 1e6, cal.client_us_per_unit / 1e6
        round_trips = 2 * cal.claim_p50
        demand = main_phase.workers / (main_phase.unit_s + round_trips)
        measured = asyncio.run(run_phase(url, main_phase, "main"))
        print_phase("main", measured)
    finally:
        stop(proc)
    cores = len(os.sched_getaffinity(0))
    predicted_rate = min(demand, 1 / per_unit, cores / client_per_unit)
    print(f"model (from the calibration): Redis {cal.cpu_us_per_unit:.0f} CPU-µs a unit (measured in the main phase "
          f"{measured.cpu_us_per_unit:.0f}) — one Redis core serves {1 / per_unit:,.0f} units/s, i.e. "
          f"{1 / per_unit * (main_phase.unit_s + round_trips):,.0f} workers at {args.unit_ms:g} ms a unit; clients "
          f"{cal.client_us_per_unit:.0f} CPU-µs a unit (main phase {measured.client_us_per_unit:.0f}); units/s "
          f"predicted min(workers {demand:,.0f}, Redis {1 / per_unit:,.0f}, clients on {cores} cores "
          f"{cores / client_per_unit:,.0f}) = {predicted_rate:,.0f}, measured {measured.units_s:,.0f} (load average "
          f"{os.getloadavg()[0]:.1f}: the clients got {measured.units_s * measured.client_us_per_unit / 1e6:.2f} "
          "cores)")
    print(json.dumps({"calibration": cal.__dict__, "main": measured.__dict__}))
    print(f"ratio: {measured.cpu_us_per_unit / cal.cpu_us_per_unit:.2f} (Redis CPU per unit, measured / predicted; "
          f"units/s {measured.units_s / predicted_rate:.2f})")


if __name__ == "__main__":
    main()
