"""Peak memory and wall time of `arena run` as the number of runs grows: 10k, 100k, 1M runs of a generated bundle
with a mock provider (4 one-turn scenarios, one of them failing its assertion, × N/4 trials).

Each size is one `arena run` child process under `/usr/bin/time -v` (its "Maximum resident set size"; without
/usr/bin/time, resource.getrusage of the child). The whole local pipeline is measured: plan, run, one unit file
per run in <out>/units/, then the streaming aggregation into every report format. The reference, measured in the
same run: the same command for 4 runs (one trial each), i.e. the interpreter, imports and start-up alone. Run:

    .venv/bin/python bench/local_rss.py [--runs 10000 100000 1000000] [-j 64] [--quick]

`--quick`: 2,000 and 8,000 runs. The last line, `ratio:`, is the peak RSS of the largest size over the reference's
(the start-up floor): how much the runs add to memory.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARENA = ROOT / ".venv" / "bin" / "arena"
SCENARIOS = ("greeting", "hours", "returns", "escalation")  # escalation fails its assertion on purpose
API = "apiVersion: promptkit.altairalabs.ai/v1alpha1"


def write_bundle(root: Path) -> Path:
    (root / "scenarios").mkdir(parents=True)
    (root / "config.arena.yaml").write_text(f"""{API}
kind: Arena
metadata:
  name: rss-bench
spec:
  prompt_configs:
    - id: support
      file: prompt.yaml
  providers:
    - file: provider.yaml
  scenarios:
{"".join(f"    - file: scenarios/{s}.yaml{chr(10)}" for s in SCENARIOS)}  defaults:
    concurrency: 64
""")
    (root / "prompt.yaml").write_text(f"""{API}
kind: PromptConfig
metadata:
  name: support
spec:
  task_type: support
  system_template: You are a concise support assistant.
""")
    (root / "provider.yaml").write_text(f"""{API}
kind: Provider
metadata:
  name: assistant
spec:
  type: mock
  model: mock-1
  additional_config:
    mock_config: mock.yaml
""")
    (root / "mock.yaml").write_text('defaultResponse: "Happy to help with that."\n')
    for scenario in SCENARIOS:
        pattern = "ticket number" if scenario == "escalation" else "help"
        (root / "scenarios" / f"{scenario}.yaml").write_text(f"""{API}
kind: Scenario
metadata:
  name: {scenario}
spec:
  description: One question about {scenario}
  task_type: support
  turns:
    - role: user
      content: A question about {scenario}.
      assertions:
        - type: contains
          params:
            patterns: ["{pattern}"]
""")
    return root


def measure(bundle: Path, runs: int, concurrency: int, out: Path) -> dict[str, float]:
    trials = max(1, runs // len(SCENARIOS))
    command = [str(ARENA), "run", str(bundle), "--trials", str(trials), "-q", "-j", str(concurrency),
               "--out", str(out)]
    timer = shutil.which("time") and Path("/usr/bin/time").exists()
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *command] if timer else command, capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"arena run failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    if timer:
        rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    else:
        rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child so far
    executed = int(re.search(r"(\d+) runs executed", done.stdout).group(1))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"runs": executed, "rss_mb": rss_kb / 1024, "wall": wall, "disk_mb": size / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("-j", type=int, default=64)
    parser.add_argument("--workdir", type=Path, default=None, help="where the bundle and outputs go (default: TMP)")
    parser.add_argument("--quick", action="store_true", help="2,000 and 8,000 runs")
    args = parser.parse_args()
    if args.quick:
        args.runs = [2_000, 8_000]
    print(f"cpus available: {len(os.sched_getaffinity(0))}; python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="arena-rss-") as tmp:
        bundle = write_bundle(Path(tmp) / "bundle")
        print(f"{'runs':>9} {'peak RSS':>10} {'wall':>9} {'runs/s':>8} {'out dir':>9}")
        floor = measure(bundle, len(SCENARIOS), args.j, Path(tmp) / "out-floor")
        print(f"{'reference':>9} {floor['rss_mb']:>7.1f} MB {floor['wall']:>8.1f}s  (4 runs: start-up floor)",
              flush=True)
        for runs in args.runs:
            out = Path(tmp) / f"out-{runs}"
            row = measure(bundle, runs, args.j, out)
            print(f"{row['runs']:>9,} {row['rss_mb']:>7.1f} MB {row['wall']:>8.1f}s {row['runs'] / row['wall']:>8,.0f} "
                  f"{row['disk_mb']:>6,.0f} MB", flush=True)
            shutil.rmtree(out)
    print(f"ratio: {row['rss_mb'] / floor['rss_mb']:.2f} (peak RSS at {row['runs']:,} runs / at 4 runs)")


if __name__ == "__main__":
    main()
