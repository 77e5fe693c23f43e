"""Mock scenario runs per second through the real engine, beside a reference measured in the same run.

Reference: the same number of asyncio tasks doing only a `json.dumps` of a run-sized dict — the floor cost of
producing one result line — so the ratio shows how much the engine adds. Run:

    .venv/bin/python bench/engine_throughput.py [--runs 20000] [-j 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, bench/ comes first on sys.path, and bench/queue.py (the work-queue benchmark) would shadow the
# standard library's `queue`, which asyncio's thread pool imports (a local run writes its units from threads).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from arena_operator.engine.plan import RunFilters  # noqa: E402
from arena_operator.local.run import LocalRunOptions, run_local  # noqa: E402

QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart"


async def reference(count: int, sample: dict) -> float:
    async def one() -> None:
        json.dumps(sample)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("-j", type=int, default=64)
    args = parser.parse_args()
    scenarios = 6
    trials = max(1, args.runs // scenarios)
    with tempfile.TemporaryDirectory() as out:
        options = LocalRunOptions(bundle=QUICKSTART, out_dir=Path(out), filters=RunFilters(trials=trials),
                                  concurrency=args.j, formats=["json"])
        marks: dict[str, float] = {}

        def on_result(_run: dict) -> None:
            marks["last"] = time.perf_counter()

        started = time.perf_counter()
        outcome = asyncio.run(run_local(options, on_result=on_result,
                                        on_plan=lambda _n: marks.setdefault("planned", time.perf_counter())))
        total = time.perf_counter() - started
        sample = json.loads((Path(out) / "results.jsonl").open().readline())
    runs = outcome.executed
    executing = marks["last"] - marks["planned"]
    print(f"cpus available: {len(os.sched_getaffinity(0))}")
    print(f"engine: {runs} mock scenario runs (quickstart, -j {args.j}): {runs / executing:,.0f} runs/s executing "
          f"(each written to units/); {runs / total:,.0f} runs/s end to end incl. results.json + report.html "
          f"({total:.2f}s)")
    ref = asyncio.run(reference(runs, sample))
    print(f"reference: json.dumps of one result per task = {ref:,.0f} results/s")


if __name__ == "__main__":
    main()
