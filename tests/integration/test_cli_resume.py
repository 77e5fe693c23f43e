"""`arena run --resume` as a user runs it: finished runs whose inputs are unchanged are reused (their unit files
untouched), edited inputs rerun with the reason printed, errored runs rerun, runs no longer planned are dropped,
and the reports equal those of a fresh run of the same bundle."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.fakes.llm_servers import FakeLLMServer, Reply, echo

REPO = Path(__file__).resolve().parents[2]
# What differs between two runs of the same inputs: wall-clock times (and what is measured from them).
VOLATILE = frozenset({"StartTime", "EndTime", "Duration", "TTFT", "latency_ms", "timestamp"})


def arena(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "arena_operator.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, timeout=180, check=False, env=env)


def units(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "units").glob("*.json"))}


def _without_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def stable(out: Path) -> list[Any]:
    return _without_times(json.loads((out / "results.json").read_text()))


def test_unchanged_runs_are_reused_and_edited_ones_rerun_with_the_reason(tmp_path: Path) -> None:
    bundle, out = tmp_path / "bundle", tmp_path / "out"
    shutil.copytree(REPO / "examples" / "quickstart", bundle)
    assert arena("run", bundle, "-o", out, "-q").returncode == 0
    first = units(out)
    assert len(first) == 6 and (out / "units" / ".inputs.sqlite").is_file()

    same = arena("run", bundle, "-o", out, "-q", "--resume")
    assert same.returncode == 0, same.stderr
    assert "resume: 6 finished runs reused" in same.stdout and "rerun" not in same.stdout
    assert "0 runs executed, 6 resumed" in same.stdout
    assert units(out) == first

    greeting = bundle / "scenarios" / "greeting.yaml"
    greeting.write_text(greeting.read_text().replace("I need some help", "I need some urgent help"))
    edited = arena("run", bundle, "-o", out, "-q", "--resume")
    assert edited.returncode == 0, edited.stderr
    assert "resume: 5 finished runs reused" in edited.stdout
    assert "1 run rerun: scenario scenarios/greeting.yaml changed" in edited.stdout
    now = units(out)
    assert [name for name in now if now[name] != first[name]] == [
        name for name, data in now.items() if b"urgent help" in data]

    prompt = bundle / "prompts" / "support.yaml"
    prompt.write_text(prompt.read_text().replace("Be concise and friendly.", "Be concise, friendly and calm."))
    mocks = bundle / "mocks" / "customer.yaml"
    mocks.write_text(mocks.read_text() + "\n# edited\n")
    both = arena("run", bundle, "-o", out, "-q", "--resume")
    assert both.returncode == 0, both.stderr
    reruns = {why: int(n) for n, why in re.findall(r"^(\d+) runs? rerun: (.+)$", both.stdout, re.MULTILINE)}
    assert reruns == {"prompt prompts/support.yaml changed": 5,
                      "prompt prompts/support.yaml and mock responses mocks/customer.yaml changed": 1}, both.stdout

    fresh = tmp_path / "fresh"
    assert arena("run", bundle, "-o", fresh, "-q").returncode == 0
    assert stable(out) == stable(fresh)
    assert json.loads((out / "summary.json").read_text())["passed"] == json.loads(
        (fresh / "summary.json").read_text())["passed"]


def test_runs_no_longer_planned_are_dropped(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert arena("run", "examples/quickstart", "-o", out, "-q").returncode == 0
    narrowed = arena("run", "examples/quickstart", "-o", out, "-q", "--resume", "--scenario", "greeting")
    assert narrowed.returncode == 0, narrowed.stderr
    assert "resume: 1 finished run reused" in narrowed.stdout
    assert "5 earlier runs not in this plan removed from units/" in narrowed.stdout
    fresh = tmp_path / "fresh"
    assert arena("run", "examples/quickstart", "-o", fresh, "-q", "--scenario", "greeting").returncode == 0
    assert stable(out) == stable(fresh) and len(stable(out)) == 1


def test_a_flag_that_changes_results_reruns_everything(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert arena("run", "examples/quickstart", "-o", out, "-q", "--scenario", "greeting").returncode == 0
    hotter = arena("run", "examples/quickstart", "-o", out, "-q", "--resume", "--scenario", "greeting",
                   "--temperature", "0.9")
    assert hotter.returncode == 0, hotter.stderr
    assert re.search(r"^1 run rerun: .*provider support-assistant.* changed$", hotter.stdout, re.MULTILINE), \
        hotter.stdout
    assert json.loads((out / "results.json").read_text())[0]["Params"]["temperature"] == 0.9


async def test_errored_runs_rerun_once_the_error_is_fixed(tmp_path: Path) -> None:
    """An infrastructure error is not a result: the same inputs are tried again on --resume."""
    out = tmp_path / "out"
    async with FakeLLMServer() as server:
        env = {**os.environ, "ARENA_PROVIDER": "openai", "OPENAI_BASE_URL": server.openai_url,
               "OPENAI_API_KEY": "test-key"}

        async def run(*extra: str) -> subprocess.CompletedProcess[str]:
            return await asyncio.to_thread(arena, "run", "examples/quickstart", "-o", out, "-q",
                                           "--scenario", "greeting,escalation", *extra, env=env)

        server.responder = lambda _request: Reply(status=401, error="invalid api key")
        broken = await run()
        errored = [r for r in json.loads((out / "results.json").read_text()) if r["Status"] == "error"]
        assert errored, broken.stdout
        server.responder = echo
        fixed = await run("--resume")
    assert fixed.returncode == 0, fixed.stderr
    assert f"{len(errored)} run{'s' if len(errored) > 1 else ''} rerun: they errored last time" in fixed.stdout
    runs = json.loads((out / "results.json").read_text())
    assert len(runs) == 2 and not [r for r in runs if r["Status"] == "error"]
