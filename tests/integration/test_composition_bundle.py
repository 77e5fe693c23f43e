"""The `compositions` fixture bundle through `arena run`: what each run records beyond its outcome (which
test_compat_bundles checks against expected.yaml) — the step trace, skipped steps, the violation of an output
schema, the error naming the failing parallel branch, and the spend of a composition that failed."""

from __future__ import annotations

import json
from typing import Any

import pytest

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
