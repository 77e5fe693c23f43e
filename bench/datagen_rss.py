"""Peak memory and wall time of `arena run --type datagen` as the count grows (default 1k, 10k, 100k items) with
the datagen fixture bundle's mock providers (tests/fixtures/bundles/datagen: a scripted two-turn scenario with a
regex quality filter that rejects a quarter of the first tries, a self-play scenario with a persona; every item
unique through `{{seed}}`, all of them dedupe-checked).

Each count is one child process under `/usr/bin/time -v` ("Maximum resident set size"; without /usr/bin/time,
resource.getrusage of the child): plan, generate shard by shard (each shard's items streamed to its file), then
the merged data.<format> streamed from the shard files, summary.json. The reference, measured in the same run, is
the same command for 4 items: the interpreter, imports and start-up alone. Run:

    .venv/bin/python bench/datagen_rss.py [--count 1000 10000 100000] [-j 64] [--format jsonl] [--quick]

`--quick`: 500 and 2,000 items. The last line, `ratio:`, is the peak RSS of the largest count over the
reference's (the start-up floor).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARENA = ROOT / ".venv" / "bin" / "arena"
BUNDLE = ROOT / "tests" / "fixtures" / "bundles" / "datagen"


def measure(count: int, concurrency: int, fmt: str, out: Path) -> dict[str, float]:
    command = [str(ARENA), "run", str(BUNDLE), "--type", "datagen", "--count", str(count), "--format", fmt, "-q",
               "-j", str(concurrency), "--out", str(out)]
    timer = Path("/usr/bin/time").exists()
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *command] if timer else command, capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"arena run failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr) if timer else None
    rss_kb = int(match.group(1)) if match else resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    summary = json.loads((out / "summary.json").read_text())
    assert summary["items"] == count and summary["complete"], summary
    data = out / summary["file"]
    return {"items": summary["items"], "generations": summary["generations"], "rss_mb": rss_kb / 1024,
            "wall": wall, "data_mb": data.stat().st_size / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("-j", type=int, default=64)
    parser.add_argument("--format", default="jsonl", choices=("jsonl", "json", "csv"))
    parser.add_argument("--workdir", type=Path, default=None, help="where the outputs go (default: TMP)")
    parser.add_argument("--quick", action="store_true", help="500 and 2,000 items")
    args = parser.parse_args()
    if args.quick:
        args.count = [500, 2_000]
    print(f"cpus available: {len(os.sched_getaffinity(0))}; python {sys.version.split()[0]}; format {args.format}")
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="arena-datagen-rss-") as tmp:
        print(f"{'items':>9} {'peak RSS':>10} {'wall':>9} {'items/s':>8} {'tries':>8} {'data file':>10}")
        floor = measure(4, args.j, args.format, Path(tmp) / "out-floor")
        print(f"{'reference':>9} {floor['rss_mb']:>7.1f} MB {floor['wall']:>8.1f}s  (4 items: start-up floor)",
              flush=True)
        for count in args.count:
            row = measure(count, args.j, args.format, Path(tmp) / f"out-{count}")
            print(f"{count:>9} {row['rss_mb']:>7.1f} MB {row['wall']:>8.1f}s {count / row['wall']:>8.0f} "
                  f"{row['generations']:>8.0f} {row['data_mb']:>7.1f} MB", flush=True)
    print(f"ratio: {row['rss_mb'] / floor['rss_mb']:.2f} (peak RSS at {count:,} items / at 4 items)")


if __name__ == "__main__":
    main()
