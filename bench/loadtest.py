"""Load-test accuracy: arena's load-test engine beside locust, in one run, against the same local OpenAI-compatible
server (tests/fakes/latency_server.py: a fixed 50 ms latency, in a process of its own), at the same target rates on
one worker: achieved rate, p50 error against the server's true 50 ms, scheduling lag p99, and client CPU seconds
per 1,000 requests (each client a process of its own, start-up included). Then the same engine against the server
slowed to 500 ms with 50 runs in flight at most: the arrivals stay those of the target, and the dropped ones are
counted exactly (the server's count of requests = the runs started).

    .venv/bin/python bench/loadtest.py [--rates 50 200 400] [--seconds 20] [--locust PATH] [--quick]

`--quick`: 200 req/s for 5 s, the slowed server for 3 s. The last line, `ratio:`, is arena's CPU per 1k requests
over locust's (net of start-up) at the highest rate.

locust is not a dependency of the project. Install it beside it, once:

    python3 -m venv .bench-venv && .bench-venv/bin/pip install locust

(the script looks for .bench-venv/bin/locust, then `locust` on PATH, else skips the locust columns). locust runs
`constant_throughput(1)` HttpUsers, as many as the target rate, all started in the first second.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Run as a script, bench/ comes first on sys.path and bench/queue.py would shadow the standard library's queue.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))

from tests.fakes.latency_server import latency_server  # noqa: E402

TRUE_MS = 50.0
LOCUSTFILE = """
from locust import HttpUser, constant_throughput, task

class Chat(HttpUser):
    wait_time = constant_throughput(1)

    @task
    def chat(self):
        self.client.post("/chat/completions", json={"model": "m-load", "messages": [{"role": "user",
                         "content": "ping"}]}, headers={"authorization": "Bearer sk-local"})
"""


def write_bundle(root: Path, base_url: str) -> Path:
    """One provider at ``base_url`` and a one-turn scenario without assertions: the client's own cost."""
    head = "apiVersion: promptkit.altairalabs.ai/v1alpha1\n"
    (root / "providers").mkdir(parents=True)
    (root / "scenarios").mkdir()
    (root / "config.arena.yaml").write_text(
        f"{head}kind: Arena\nmetadata: {{name: bench}}\nspec:\n  providers:\n    - file: providers/llm.yaml\n"
        "  scenarios:\n    - file: scenarios/ask.yaml\n  defaults: {temperature: 0, run_timeout: 30s}\n")
    (root / "providers" / "llm.yaml").write_text(
        f"{head}kind: Provider\nmetadata: {{name: llm}}\nspec:\n  type: openai\n  model: m-load\n"
        f"  base_url: {base_url}\n  credential: {{api_key_env: BENCH_KEY}}\n"
        "  pricing: {input_cost_per_1k: 0.001, output_cost_per_1k: 0.002}\n")
    (root / "scenarios" / "ask.yaml").write_text(
        f"{head}kind: Scenario\nmetadata: {{name: ask}}\nspec:\n  description: one question\n  turns:\n"
        "    - role: user\n      content: ping\n")
    return root


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def startup(command: list[str]) -> float:
    """CPU seconds of a client process that sends (almost) nothing: its start-up, subtracted for the net figure."""
    cpu = _cpu(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return _cpu(resource.RUSAGE_CHILDREN) - cpu


def ours(url: str, rate: float, seconds: float, work: Path, vus: int | None = None, net: bool = True) -> dict[str, Any]:
    """`arena run BUNDLE --type loadtest ...` as a user runs it, in its own process (CPU: the whole process)."""
    bundle = write_bundle(work / f"bundle-{rate:g}-{vus}", url)
    out = work / f"out-{rate:g}-{vus}"
    def command(rps: float, duration: float) -> list[str]:
        return [str(REPO / ".venv" / "bin" / "arena"), "run", str(bundle), "--type", "loadtest", "--rps", f"{rps:g}",
                "--duration", f"{duration:g}s", "--ramp-up", "0s", "--out", str(out), "-q",
                *(["--vus", str(vus)] if vus else [])]

    base = startup(command(1, 1)) if net else 0.0
    cpu = _cpu(resource.RUSAGE_CHILDREN)
    subprocess.run(command(rate, seconds), check=True, stdout=subprocess.DEVNULL)
    cpu = _cpu(resource.RUSAGE_CHILDREN) - cpu
    summary = json.loads((out / "summary.json").read_text())
    requests = max(1, summary["requests"])
    return {"achieved": summary["achieved_rps"], "p50": summary["latency_ms"]["p50"],
            "lag_p99": summary["scheduling_lag_ms"]["p99"], "cpu_per_1k": 1000 * cpu / requests,
            "net_per_1k": 1000 * (cpu - base) / requests,
            "requests": summary["requests"], "arrivals": summary["arrivals"], "dropped": summary["dropped"],
            "started": summary["runs"]["started"]}


def locust_run(locust: str, url: str, rate: float, seconds: float, work: Path) -> dict[str, Any]:
    locustfile = work / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    prefix = work / f"locust-{rate:g}"
    users = str(int(rate))
    base = startup([locust, "-f", str(locustfile), "--headless", "-u", "1", "-r", "1", "-t", "1s", "-H", url,
                    "--only-summary", "--loglevel", "ERROR"])
    cpu = _cpu(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([locust, "-f", str(locustfile), "--headless", "-u", users, "-r", users, "-t", f"{seconds:g}s",
                    "-H", url, "--csv", str(prefix), "--only-summary", "--loglevel", "ERROR"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cpu = _cpu(resource.RUSAGE_CHILDREN) - cpu
    wall = time.perf_counter() - started
    with open(f"{prefix}_stats.csv") as handle:
        row = next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")
    requests = int(row["Request Count"])
    return {"achieved": float(row["Requests/s"]), "p50": float(row["50%"]), "lag_p99": None,
            "cpu_per_1k": 1000 * cpu / max(1, requests), "net_per_1k": 1000 * (cpu - base) / max(1, requests),
            "requests": requests, "failures": int(row["Failure Count"]),
            "wall": wall}


def find_locust(given: str | None) -> str | None:
    for candidate in (given, str(REPO / ".bench-venv" / "bin" / "locust"), shutil.which("locust")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def _cell(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=float, nargs="+", default=[50, 200, 400])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--locust", help="the locust executable (default: .bench-venv/bin/locust, then PATH)")
    parser.add_argument("--quick", action="store_true", help="200 req/s for 5 s; the slowed server for 3 s")
    args = parser.parse_args()
    if args.quick:
        args.rates, args.seconds = [200.0], 5.0
    locust = find_locust(args.locust)
    os.environ.setdefault("BENCH_KEY", "sk-local")
    work = Path(tempfile.mkdtemp(prefix="arena-bench-loadtest-"))
    print("| target req/s | client | achieved req/s | p50 (error vs 50 ms) | scheduling lag p99 | CPU-s / 1k req "
          "(net of start-up) |")
    print("|---|---|---|---|---|---|")
    cpu_ratio = None
    with latency_server([TRUE_MS]) as (url, _):
        for rate in args.rates:
            mine = ours(url, rate, args.seconds, work)
            rows = [("arena", mine)]
            if locust:
                rows.append(("locust", locust_run(locust, url, rate, args.seconds, work)))
                cpu_ratio = mine["net_per_1k"] / rows[-1][1]["net_per_1k"]
            for name, r in rows:
                print(f"| {rate:g} | {name} | {r['achieved']:.2f} ({(r['achieved'] / rate - 1) * 100:+.1f} %) | "
                      f"{r['p50']:.1f} ms ({r['p50'] - TRUE_MS:+.1f}) | {_cell(r['lag_p99'], '.2f')} ms | "
                      f"{r['cpu_per_1k']:.2f} ({r['net_per_1k']:.2f}) |", flush=True)
    if not locust:
        print("\nlocust not found: its rows are skipped (see the docstring to install it)")
    slow_rate, slow_seconds, cap = 200.0, 3.0 if args.quick else 10.0, 50
    with latency_server([500.0]) as (url, proc):
        mine = ours(url, slow_rate, slow_seconds, work, vus=cap, net=False)  # no start-up run: count served
    served = int((proc.stdout.read() if proc.stdout else "served -1").split()[-1])
    print(f"\nslowed server (500 ms, at most {cap} in flight), {slow_rate:g}/s for {slow_seconds:g}s: "
          f"{mine['arrivals']} arrivals (target {slow_rate * slow_seconds:g}), {mine['started']} started, "
          f"{mine['dropped']} dropped; the server answered {served} requests "
          f"({'= started' if served == mine['started'] else 'MISMATCH'})")
    print(f"ratio: {cpu_ratio:.2f} (arena / locust CPU-s per 1k requests, net of start-up, at {args.rates[-1]:g}/s)"
          if cpu_ratio is not None else "ratio: n/a (locust not installed)")


if __name__ == "__main__":
    main()
