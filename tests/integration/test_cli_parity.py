"""Upstream PromptArena's `arena run` flags and its markdown report, as a CI job uses them."""

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


def test_upstream_flags_and_the_markdown_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = arena("run", "examples/quickstart", "-o", str(out), "--formats", "markdown,json", "--temperature", "0.1",
                 "--seed", "7", "-q")
    assert done.returncode == 0, done.stderr
    report = (out / "report.md").read_text()
    assert report.startswith("# Arena report\n") and "**5/6 passed** (83.3%)" in report
    assert "| support-assistant | 6 | 5 | 1 | 0 |" in report
    assert "| escalation | ❌ 0/1 |" in report and "| greeting | ✅ 1/1 |" in report
    assert "- **escalation × support-assistant**: regex: escalations must give a ticket number" in report
    runs = json.loads((out / "results.json").read_text())
    assert {r["Params"]["temperature"] for r in runs if r["ProviderID"] == "support-assistant"} == {0.1}
    assert not (out / "results.csv").exists()
    alias = arena("run", "examples/quickstart", "--out-dir", str(tmp_path / "o2"), "-q")
    assert alias.returncode == 0 and (tmp_path / "o2" / "report.md").exists()  # markdown is a default format too


def test_strict_turns_warnings_into_errors(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "examples" / "quickstart", bundle)
    greeting = bundle / "scenarios" / "greeting.yaml"
    greeting.write_text(greeting.read_text().replace("  turns:", "  turnz_note: typo\n  turns:", 1))
    lenient = arena("validate", str(bundle))
    assert lenient.returncode == 0 and "turnz_note" in lenient.stderr
    strict = arena("validate", str(bundle), "--strict")
    assert strict.returncode == 1 and "scenarios/greeting.yaml:" in strict.stderr and "turnz_note" in strict.stderr
    run = arena("run", str(bundle), "--strict", "-o", str(tmp_path / "out"), "-q")
    assert run.returncode == 2 and "turnz_note" in run.stderr
