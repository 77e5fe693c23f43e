"""`arena run --baseline` and `arena diff` as a user runs them: a regression introduced by a bundle change is
named (scenario × provider), written to comparison.json and the report, and fails `--ci`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def arena(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "arena_operator.cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120, check=False)


def regressed_bundle(tmp_path: Path) -> Path:
    """The quickstart with the greeting's `contains` assertion asking for a word the mock never says."""
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "examples" / "quickstart", bundle)
    greeting = bundle / "scenarios" / "greeting.yaml"
    greeting.write_text(greeting.read_text().replace('patterns: ["help"]', 'patterns: ["abracadabra"]'))
    return bundle


def test_run_with_a_baseline_names_the_regression_and_fails_ci(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    first = arena("run", "examples/quickstart", "--out", str(old), "--trials", "2", "-q")
    assert first.returncode == 0, first.stderr
    again = arena("run", "examples/quickstart", "--out", str(tmp_path / "same"), "--trials", "2", "-q",
                  "--baseline", str(old), "--ci")
    assert "escalation" not in again.stdout.split("Changes")[-1] or "no scenario" in again.stdout
    assert '"regressed": false' in (tmp_path / "same" / "comparison.json").read_text()

    done = arena("run", str(regressed_bundle(tmp_path)), "--out", str(new), "--trials", "2", "-q",
                 "--baseline", str(old), "--ci")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "regressed since" in done.stdout and "greeting × " in done.stdout
    comparison = json.loads((new / "comparison.json").read_text())
    assert comparison["regressed"] and comparison["counts"]["newlyFailing"] == 2
    worst = comparison["topRegressions"][0]
    assert worst["scenario"] == "greeting" and worst["baselinePassRate"] == 1.0 and worst["passRate"] == 0.0
    report = (new / "report.html").read_text()
    assert "Changes since" in report and report.index("Changes since") < report.index('id="providers-h"')


def test_diff_compares_two_result_directories(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    assert arena("run", "examples/quickstart", "--out", str(old), "-q").returncode == 0
    assert arena("run", str(regressed_bundle(tmp_path)), "--out", str(new), "-q").returncode == 0
    done = arena("diff", str(old), str(new), "--ci")
    assert done.returncode == 1 and "greeting" in done.stdout and "-100 pts" in done.stdout
    assert arena("diff", str(old), str(new)).returncode == 0  # without --ci a regression is reported, not fatal
    assert arena("diff", str(old), str(new), "--max-drop", "1.0", "--ci").returncode == 0
    missing = arena("diff", str(tmp_path / "nope"), str(new))
    assert missing.returncode == 2 and "no such results directory" in missing.stderr
