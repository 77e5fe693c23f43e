"""What a person sees in the terminal and in CI logs: failures named, no silent green, progress lines without a
TTY, a clean Ctrl-C that keeps what finished, and one-line errors for common mistakes."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from arena_operator.local.progress import RunProgress
from arena_operator.results.failures import FailureDigest, failure_reason

REPO = Path(__file__).resolve().parents[2]


def arena(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "arena_operator.cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120, check=False, env={**os.environ, **(env or {})})


def test_failures_are_listed_and_ci_says_why(tmp_path: Path) -> None:
    done = arena("run", "examples/quickstart", "--out", str(tmp_path / "out"), "--trials", "3", "--ci", "-q")
    assert done.returncode == 1
    assert "Failures (3 run(s) with failed assertions):" in done.stdout
    assert "✗ escalation × support-assistant ×3: regex: escalations must give a ticket number" in done.stdout
    assert "arena: exit 1 (--ci): 3 run(s) with failed assertions" in done.stderr
    assert "greeting ×" not in done.stdout  # passing scenarios are not listed


def test_mistakes_are_errors_not_green(tmp_path: Path) -> None:
    typo = arena("run", "examples/quickstart", "--scenario", "greetign", "--out", str(tmp_path / "a"))
    assert typo.returncode == 2 and "--scenario greetign selects no scenario" in typo.stderr
    assert "scenarios: competitor-question, escalation" in typo.stderr
    assert not (tmp_path / "a" / "report.html").exists()
    afile = tmp_path / "file"
    afile.write_text("")
    assert "is a file; give a directory" in arena("run", "examples/quickstart", "--out", str(afile)).stderr
    verbose_after = arena("run", "examples/quickstart", "-vv", "-q", "--out", str(tmp_path / "v"))
    assert verbose_after.returncode == 0 and "DEBUG" in verbose_after.stderr


def test_the_operator_without_credentials_says_so_once(tmp_path: Path) -> None:
    started = time.monotonic()
    done = arena("operator", env={"KUBECONFIG": str(tmp_path / "none"), "KUBERNETES_SERVICE_HOST": ""})
    assert done.returncode == 2 and time.monotonic() - started < 30
    assert done.stderr.count("no Kubernetes credentials") == 1 and "Traceback" not in done.stderr


def test_plain_output_gets_progress_lines_with_rate_and_eta() -> None:
    now = [0.0]
    out = io.StringIO()
    progress = RunProgress(Console(file=out, force_terminal=False, width=120), clock=lambda: now[0])
    progress.start(40)
    for index in range(40):
        now[0] = index * 0.5  # 2 runs/s: a line every 10 s, and one at the end
        progress.advance({"Status": "failed" if index % 10 == 0 else "passed"})
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("arena run: 21/40 (2.") and "ETA 9s" in lines[0]
    assert lines[-1] == "arena run: 40/40 (2.1 runs/s, ETA 0s) — 36 passed, 4 failed, 0 errors"
    assert len(lines) == 2


def test_identical_failures_group_with_counts_and_stay_bounded() -> None:
    digest = FailureDigest()
    for index in range(500):
        digest.add({"Status": "error", "ScenarioID": f"s{index}", "ProviderID": "p", "Error": "401 unauthorized",
                    "ErrorKind": "auth"})
    digest.add({"Status": "error", "ScenarioID": "s0", "ProviderID": "p", "Error": "401 unauthorized",
                "ErrorKind": "auth"})
    assert digest.errors == 501 and digest.groups[("s0", "p", "error", "auth: 401 unauthorized")] == 2
    assert len(digest.groups) == 100 and digest.ungrouped == 400
    assert failure_reason({"Status": "passed"}) is None


def test_ctrl_c_keeps_what_finished_and_resume_runs_the_rest(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "examples" / "quickstart", bundle)
    mocks = bundle / "mocks" / "assistant.yaml"
    mocks.write_text("latency_ms: 150\n" + mocks.read_text())
    out = tmp_path / "out"
    args = [sys.executable, "-m", "arena_operator.cli", "run", str(bundle), "--out", str(out), "--trials", "10",
            "-j", "4", "--mock-provider"]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(list((out / "units").glob("*.json"))) < 4:
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    assert "rerun the same command with --resume" in stdout
    done_first = len(list((out / "units").glob("*.json")))
    assert 4 <= done_first < 60
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs"] == done_first and (out / "report.html").exists()
    resumed = subprocess.run([*args, "--resume", "-q"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{done_first} resumed" in resumed.stdout
    assert json.loads((out / "summary.json").read_text())["runs"] == 60
