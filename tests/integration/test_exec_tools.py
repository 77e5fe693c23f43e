"""`arena run --allow-exec` on the exec-tools fixture bundle: the exec tool answers the model and the tool_exec
gates run it again, in the sandbox (the same bundle without the flag is in tests/fixtures/bundles/exec-tools/
expected.yaml: everything exec fails, saying how to enable it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arena_operator import cli
from arena_operator.engine import sandbox

BUNDLE = Path(__file__).resolve().parents[1] / "fixtures" / "bundles" / "exec-tools"


def test_allow_exec_runs_the_bundles_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "_forced", None)  # the flag's process-wide switch is undone after the test
    monkeypatch.delenv("ARENA_ALLOW_EXEC", raising=False)
    code = cli.main(["run", str(BUNDLE), "--out", str(tmp_path), "--formats", "json", "-q", "--ci", "--allow-exec"])
    runs = {r["ScenarioID"]: r for r in map(json.loads, (tmp_path / "results.jsonl").read_text().splitlines())}
    assert code == 1  # lint-gate's failure_pattern matches, on purpose
    assert runs["count"]["Status"] == "passed"
    tool = next(m for m in runs["count"]["Messages"] if m["role"] == "tool")
    assert json.loads(tool["tool_result"]["content"]) == {"words": 3, "lint": "clean"}
    gate = runs["lint-gate"]["conversation_assertions"]["results"][0]
    assert (runs["lint-gate"]["Status"], gate["type"], gate["passed"]) == ("failed", "tool_exec", False)
    assert "matched failure_pattern 'TODO left'" in json.dumps(gate)
