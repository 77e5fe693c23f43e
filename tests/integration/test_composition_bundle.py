"""The `compositions` fixture bundle through `arena run`: what each run records beyond its outcome (which
test_compat_bundles checks against expected.yaml) — the step trace, skipped steps, the violation of an output
schema, the error naming the failing parallel branch, and the spend of a composition that failed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from arena_operator import cli
from tests.integration.test_compat_bundles import BUNDLES, run_cli

Run = dict[str, Any]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    code, found = run_cli(BUNDLES / "compositions", tmp_path_factory.mktemp("compositions"), "--ci")
    assert code == 1  # one run failed an assertion, one errored
    return {r["ScenarioID"]: r for r in found}


def _reply(run: Run) -> dict[str, Any]:
    return next(m for m in run["Messages"] if m["role"] == "assistant")


def _trace(run: Run) -> list[str]:
    return [s["id"] for s in _reply(run)["meta"]["_composition_snapshot"]["steps"]]


def test_the_billing_route_runs_its_tool_step(runs: dict[str, Run]) -> None:
    run = runs["billing-route"]
    assert set(_trace(run)) == {"triage", "billing_answer", "invoice", "sentiment", "research", "reply"}
    snapshot = _reply(run)["meta"]["_composition_snapshot"]
    invoice = next(s for s in snapshot["steps"] if s["id"] == "invoice")
    assert json.loads(invoice["output"])["invoice"] == "INV-2041"
    assert snapshot["branches"] == {"route": "billing_answer"} and snapshot["parallel"] == {"enrich": "complete"}
    # the reply is the output step's JSON, as upstream; one user and one assistant message per turn
    assert [m["role"] for m in run["Messages"]] == ["user", "assistant"]
    assert json.loads(_reply(run)["content"]) == "Sorry about the double charge; the refund is on its way."
    assert run["Cost"]["total_cost_usd"] > 0 and run["Violations"] == []


def test_the_general_route_skips_the_billing_steps(runs: dict[str, Run]) -> None:
    trace = _trace(runs["general-route"])
    assert "billing_answer" not in trace and "invoice" not in trace  # invoice depends only on a skipped step
    assert trace[:2] == ["triage", "general_answer"] and trace[-1] == "reply"


def test_a_schema_violation_is_recorded_and_the_branch_sees_no_category(runs: dict[str, Run]) -> None:
    run = runs["schema-violation"]
    assert run["Violations"] == ["composition 'support_pipeline': step 'triage': the output does not match "
                                 "schemas/triage.json at (root): Additional properties are not allowed ('label' "
                                 "was unexpected)"]
    assert _reply(run)["meta"]["_composition_snapshot"]["branches"] == {"route": "general_answer"}


def test_a_failing_parallel_branch_errors_the_run(runs: dict[str, Run]) -> None:
    run = runs["parallel-failure"]
    assert run["ErrorKind"] == "composition" and run["Status"] == "error"
    assert run["Error"] == ("composition 'support_pipeline': step 'enrich': 1 of 2 branches failed: step 'research': "
                            "max rounds (2) exceeded: the model still asks for tools")
    assert [m["role"] for m in run["Messages"]] == ["user"]  # no reply, as upstream
    assert run["Cost"]["input_tokens"] > 0  # the calls made before the failure are paid for


def test_the_bundle_validates() -> None:
    assert cli.main(["validate", str(BUNDLES / "compositions")]) == 0


HAND_OFF_WORKFLOW = {
    "version": 1, "entry": "intake",
    "states": {"intake": {"prompt_task": "general", "on_event": {"Escalate": "pipeline"}},
               "pipeline": {"orchestration": "composition", "composition": "support_pipeline", "terminal": True}},
}
HAND_OFF_SCENARIO = """\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Scenario
metadata: {name: hand-off}
spec:
  id: hand-off
  description: The intake state's model escalates; the next user turn is the composition's.
  turns:
    - role: user
      content: I need help.
    - role: user
      content: I was charged twice.
      assertions:
        - {type: composition_branch_taken, params: {branch: route, expected: billing_answer}}
        - {type: state_is, params: {state: pipeline}}
        - {type: workflow_complete}
"""


def test_a_workflow_hands_off_to_a_composition_state(tmp_path: Path) -> None:
    """A state reached by a transition, not the entry: the lead-in turn is an ordinary model turn, the next
    user turn runs the composition, and the reply carries the state stamp."""
    root = tmp_path / "bundle"
    shutil.copytree(BUNDLES / "compositions", root)
    arena = yaml.safe_load((root / "config.arena.yaml").read_text())
    arena["spec"]["workflow"] = HAND_OFF_WORKFLOW
    arena["spec"]["scenarios"] = [{"file": "scenarios/hand-off.scenario.yaml"}]
    (root / "config.arena.yaml").write_text(yaml.safe_dump(arena, sort_keys=False))
    (root / "scenarios" / "hand-off.scenario.yaml").write_text(HAND_OFF_SCENARIO)
    mocks = yaml.safe_load((root / "mocks.yaml").read_text())
    mocks["scenarios"]["hand-off"] = {
        "turns": {1: {"type": "tool_calls", "content": "", "tool_calls": [
            {"name": "workflow__transition", "arguments": {"event": "Escalate", "context": "billing"}}]}},
        "steps": mocks["scenarios"]["billing-route"]["steps"]}
    (root / "mocks.yaml").write_text(yaml.safe_dump(mocks))
    code, found = run_cli(root, tmp_path / "out", "--ci")
    (run,) = found
    assert (code, run["Status"]) == (0, "passed"), run["Error"] or run["Messages"]
    replies = [m for m in run["Messages"] if m["role"] == "assistant"]
    assert "_composition_snapshot" not in replies[0].get("meta", {})  # the intake state's own model turn
    last = replies[-1]
    assert last["meta"]["current_workflow_state"]["current_state"] == "pipeline"
    assert json.loads(last["content"]) == "Sorry about the double charge; the refund is on its way."
