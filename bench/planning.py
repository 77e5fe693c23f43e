"""Planning + enqueueing of 1k, 10k, 100k and 1M work units: time and peak RSS, as the operator's plan step does it.

Each size is a child process (its own peak RSS): load the bundle (bench/local_rss.py's: 4 scenarios × a mock
provider, N/4 trials), `count_units` (the plan-size check), then `WorkQueue.enqueue` of `batches(iter_units(...))`
(500 units a batch) into a private redis-server, and `seal`. The units are streamed: the plan is never a list, so
RSS should stay flat beyond one batch and time grow linearly. The reference row is the same child for 4 units
(imports, bundle: the times are measured inside the child, from loading the bundle on); `ratio:` is µs per unit at
the largest size over µs per unit at a tenth of it (1.0 = linear; fixed costs push small sizes above).
Redis memory per unit (`INFO memory` used_memory) is printed too.

    .venv/bin/python bench/planning.py [--units 1000 10000 100000 1000000] [--quick]
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
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from bench.benchlib import machine, peak_rss_mb, start_redis, stop  # noqa: E402
from bench.local_rss import SCENARIOS, write_bundle  # noqa: E402


async def plan_and_enqueue(bundle_dir: Path, units: int, url: str) -> dict[str, float]:
    import redis.asyncio as aioredis

    from arena_operator.engine.bundle import load_bundle
    from arena_operator.runplan.units import PlanInputs, batches, count_units, iter_units
    from arena_operator.workqueue.queue import WorkQueue, job_key

    started = time.perf_counter()
    bundle = load_bundle(bundle_dir)
    inputs = PlanInputs([], [], max(1, units // len(SCENARIOS)))
    total = count_units(bundle, inputs, limit=units)
    counted = time.perf_counter()
    client = aioredis.from_url(url)
    queue = WorkQueue(client, job_key("bench", "planning", f"u{units}"))
    before = (await client.info("memory"))["used_memory"]
    added = 0
    for batch in batches(iter_units(bundle, inputs)):
        added += await queue.enqueue(batch)
    await queue.seal()
    enqueued = time.perf_counter()
    after = (await client.info("memory"))["used_memory"]
    await queue.delete()
    await client.aclose()
    assert added == total, (added, total)
    return {"units": total, "plan_s": counted - started, "enqueue_s": enqueued - counted,
            "total_s": enqueued - started, "rss_mb": peak_rss_mb(), "redis_bytes": (after - before) / total}


def child(bundle: Path, units: int, url: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--child", str(bundle), str(units), url], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--quick", action="store_true", help="1k, 10k, 100k units")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        bundle, units, url = args.child
        print(json.dumps(asyncio.run(plan_and_enqueue(Path(bundle), int(units), url))))
        return
    sizes = [1_000, 10_000, 100_000] if args.quick else args.units
    print(machine())
    proc, port = start_redis()
    url = f"redis://127.0.0.1:{port}/0"
    try:
        with tempfile.TemporaryDirectory(prefix="arena-planning-") as tmp:
            bundle = write_bundle(Path(tmp) / "bundle")
            print(f"{'units':>10} {'plan (count)':>13} {'enqueue':>9} {'total':>8} {'units/s':>9} {'µs/unit':>8} "
                  f"{'peak RSS':>10} {'Redis B/unit':>13}")
            floor = child(bundle, len(SCENARIOS), url)
            print(f"{'reference':>10} {floor['plan_s']:>12.2f}s {floor['enqueue_s']:>8.3f}s {floor['total_s']:>7.2f}s "
                  f"{'':>9} {'':>8} {floor['rss_mb']:>7.1f} MB   (4 units: imports + bundle)", flush=True)
            per_unit: dict[int, float] = {}
            for units in sizes:
                row = child(bundle, units, url)
                work = row["total_s"]
                per_unit[units] = work / row["units"] * 1e6
                print(f"{row['units']:>10,} {row['plan_s']:>12.2f}s {row['enqueue_s']:>8.2f}s {row['total_s']:>7.2f}s "
                      f"{row['units'] / work:>9,.0f} {per_unit[units]:>8.1f} {row['rss_mb']:>7.1f} MB "
                      f"{row['redis_bytes']:>13,.0f}", flush=True)
    finally:
        stop(proc)
    largest = max(per_unit)
    base = largest // 10 if largest // 10 in per_unit else min(per_unit)
    print(f"ratio: {per_unit[largest] / per_unit[base]:.2f} (µs per unit at {largest:,} / at {base:,}; 1.0 = linear)")


if __name__ == "__main__":
    main()
