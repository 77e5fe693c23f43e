"""Aggregation and report writing for 100k and 1M unit results: time and peak RSS (results/aggregate.py).

Each size is a child process (its own peak RSS) running `aggregate()` over a sink that generates the units as they
are read — realistic runs (the shape `arena run` writes for a one-turn scenario with a `contains` assertion, 4
scenarios, one failing) with their own ids, trials and times — so the figure is the aggregation's alone: the
external sort, every report format (results.json, results.jsonl, results.csv, junit.xml, report.html,
summary.json) and nothing of a sink's I/O (bench/local_rss.py measures `arena run` with its unit files). The
reference, in the same child: one pass that only serializes each unit to a JSONL line and writes it to a file —
the floor of writing any one report — so `ratio:` is aggregation time over that floor at the largest size.

    .venv/bin/python bench/results.py [--units 100000 1000000] [--quick]
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
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402
from typing import Any  # noqa: E402

from bench.benchlib import machine, peak_rss_mb  # noqa: E402

SCENARIOS = ("greeting", "hours", "returns", "escalation")
TEMPLATE: dict[str, Any] = json.loads("""{"Cost":{"input_cost_usd":6e-05,"input_tokens":6,"output_cost_usd":6e-05,
"output_tokens":6,"total_cost_usd":0.00012},"Duration":0.086,"Error":"","ErrorKind":"","Messages":[{"content":
"A question.","role":"user"},{"content":"Happy to help with that.","cost_info":{"input_cost_usd":6e-05,
"input_tokens":6,"output_cost_usd":6e-05,"output_tokens":6,"total_cost_usd":0.00012},"latency_ms":0.005,"meta":
{"assertions":{"failed":0,"passed":true,"results":[{"details":{"missing":[]},"message":"all patterns found in output",
"passed":true,"score":1.0,"type":"contains"}],"total":1}},"role":"assistant"}],"Params":{"max_tokens":null,"model":
"mock-1","prompt_version":null,"streaming":false,"system_prompt":"You are a concise support assistant.",
"temperature":null},"Passed":true,"PersonaID":"","PromptPack":"bundle","ProviderID":"assistant","Region":"default",
"SelfPlay":false,"Status":"passed","TTFT":null,"ToolStats":{"ByTool":{},"Errors":0,"TotalCalls":0},
"Violations":[],"Warnings":[],"conversation_assertions":{"failed":0,"passed":true,"results":[],"total":0}}""")


def make_run(index: int) -> dict[str, Any]:
    scenario = SCENARIOS[index % len(SCENARIOS)]
    trial = index // len(SCENARIOS)
    seconds = index // 1000
    run = {**TEMPLATE, "RunID": f"{index:016x}", "ScenarioID": scenario, "Trial": trial,
           "Params": {**TEMPLATE["Params"], "trial": trial},
           "StartTime": f"2026-12-02T{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.000100Z",
           "EndTime": f"2026-12-02T{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.086100Z"}
    if scenario == "escalation":
        run.update(Passed=False, Status="failed")
    return run


class GeneratedSink:
    """A ResultSink whose units are generated as they are read; report files are moved into `out`."""

    def __init__(self, units: int, out: Path) -> None:
        self.units, self.out = units, out

    async def check(self) -> None:
        return None

    async def put_unit(self, unit_id: str, run: dict[str, Any]) -> None:
        raise NotImplementedError

    async def iter_units(self, *, ordered: bool = True) -> AsyncIterator[dict[str, Any]]:
        # Generated in reverse, so the sort has real work; a yield to the loop now and then, as a sink's reads do.
        for index in range(self.units - 1, -1, -1):
            if index % 256 == 0:
                await asyncio.sleep(0)
            yield make_run(index)

    async def put_file(self, name: str, path: Path, content_type: str) -> None:
        shutil.move(path, self.out / name)

    async def put_object(self, name: str, path: Path, content_type: str) -> None:
        await self.put_file(name, path, content_type)

    async def get_object(self, name: str, dest: Path) -> None:
        raise FileNotFoundError(name)


def measure(units: int) -> dict[str, float]:
    from arena_operator.results.aggregate import aggregate
    from arena_operator.results.formats import jsonl_line

    with tempfile.TemporaryDirectory(prefix="arena-results-") as tmp:
        out = Path(tmp)
        started = time.perf_counter()
        with (out / "floor.jsonl").open("w", encoding="utf-8") as handle:
            for index in range(units):
                handle.write(jsonl_line(make_run(index)))
        floor = time.perf_counter() - started
        (out / "floor.jsonl").unlink()
        floor_rss = peak_rss_mb()
        started = time.perf_counter()
        summary = asyncio.run(aggregate(GeneratedSink(units, out)))
        elapsed = time.perf_counter() - started
        size = sum(p.stat().st_size for p in out.iterdir())
        assert (summary["runs"], summary["failed"]) == (units, units // 4), summary
    return {"units": units, "aggregate_s": elapsed, "floor_s": floor, "rss_mb": peak_rss_mb(),
            "floor_rss_mb": floor_rss, "out_mb": size / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--quick", action="store_true", help="10k and 30k units")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    sizes = [10_000, 30_000] if args.quick else args.units
    print(machine())
    print(f"{'units':>10} {'aggregate':>10} {'units/s':>9} {'floor (jsonl only)':>19} {'peak RSS':>10} "
          f"{'RSS before':>11} {'reports':>9}")
    rows = []
    for units in sizes:
        done = subprocess.run([sys.executable, __file__, "--child", str(units)], capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            sys.exit(f"child failed:\n{done.stderr[-3000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{units:>10,} {row['aggregate_s']:>9.2f}s {units / row['aggregate_s']:>9,.0f} "
              f"{row['floor_s']:>18.2f}s {row['rss_mb']:>7.1f} MB {row['floor_rss_mb']:>8.1f} MB "
              f"{row['out_mb']:>6,.0f} MB", flush=True)
    last = rows[-1]
    print(f"ratio: {last['aggregate_s'] / last['floor_s']:.1f} (aggregation into every report / one JSONL pass, "
          f"{last['units']:,} units)")


if __name__ == "__main__":
    main()
