"""Two benchmark scripts in `--quick` mode print their table and a `ratio:` line. Nothing here asserts a speed
(benchmarks never become timed tests): only that the scripts run, check what they measure, and say so."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def quick(script: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--quick"], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"^ratio: \d+\.\d+ \(", done.stdout, re.MULTILINE), done.stdout
    return done.stdout


def test_results_quick_aggregates_every_unit_and_prints_a_ratio() -> None:
    out = quick("results.py")
    assert re.search(r"^\s+30,000\s", out, re.MULTILINE), out  # the row of the larger size, checked exact inside


def test_artifacts_quick_finds_our_digest_stable_and_plain_tar_not() -> None:
    out = quick("artifacts.py")
    assert re.search(r"^build_artifact .* stable: (\w{16}) \1 \1$", out, re.MULTILINE), out
    assert re.search(r"^tar czf .* differ: ", out, re.MULTILINE), out
