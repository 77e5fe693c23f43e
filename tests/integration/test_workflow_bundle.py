"""The workflow fixture bundle end to end through `arena run`: what each run's messages, tool results and
workflow record show (the per-run pass/fail is checked with every fixture bundle in test_compat_bundles.py),
and the load-time errors of broken workflows and skills, with file and line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from arena_operator import cli
from arena_operator.engine.bundle import load_bundle
from arena_operator.engine.errors import BundleInvalid

BUNDLE = Path(__file__).resolve().parents[1] / "fixtures" / "bundles" / "workflow"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("workflow")
    code = cli.main(["run", str(BUNDLE), "--out", str(out), "--formats", "json", "-q", "--ci"])
    assert code == 1, "two scenarios fail on purpose"
    lines = (out / "results.jsonl").read_text().splitlines()
    return {run["ScenarioID"]: run for run in map(json.loads, lines)}


def _replies(run: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(state that spoke, text, tools called) per assistant message."""
    return [(m["meta"]["current_workflow_state"]["current_state"], m["content"],
             [c["name"] for c in m.get("tool_calls", [])]) for m in run["Messages"] if m["role"] == "assistant"]


def _tool_results(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [m["tool_result"] for m in run["Messages"] if m["role"] == "tool"]


def test_the_destination_state_speaks_within_the_turn(runs: dict[str, dict[str, Any]]) -> None:
    assert _replies(runs["billing-flow"]) == [
        ("triage", "Let me get billing.", ["workflow__transition"]),
        ("billing", "Billing here.", ["skill__activate"]),
        ("billing", "Looking it up.", ["lookup_invoice"]),
        ("billing", "Refunding.", ["issue_refund"]),
        ("billing", "Refunded INV-7.", []),
        ("billing", "Closing the ticket.", ["workflow__transition"]),
        ("closed", "Anything else? Goodbye.", []),
    ]
    run = runs["billing-flow"]
    assert run["Workflow"]["workflow_transitions"] == [{"from": "triage", "to": "billing", "event": "Billing"},
                                                       {"from": "billing", "to": "closed", "event": "Resolve"}]
    activation = json.loads(_tool_results(run)[1]["content"])
    assert activation["added_tools"] == ["issue_refund"], "a skill adds only tools the bundle declares"


def test_preloaded_skills_are_in_every_state_prompt(runs: dict[str, dict[str, Any]]) -> None:
    system = runs["billing-flow"]["Params"]["system_prompt"]
    assert system.startswith("You are the triage desk.") and "## house-style\n\nBe brief and kind." in system


def test_max_visits_redirects_to_an_external_state_which_ends_the_turn(runs: dict[str, dict[str, Any]]) -> None:
    run = runs["tech-loop"]
    assert _replies(run) == [("tech", "Rebooting it remotely.", ["workflow__set_artifact", "workflow__transition"]),
                             ("tech", "Trying a reset.", ["workflow__set_artifact", "workflow__transition"]),
                             ("human", "A person will call you shortly.", [])]
    redirect = run["Workflow"]["workflow_transitions"][-1]
    assert redirect == {"from": "tech", "to": "human", "event": "Retry", "redirected": True,
                        "original_target": "tech", "redirect_reason": "max_visits (2) reached for 'tech'"}
    assert run["Workflow"]["workflow_artifacts"] == {"notes": "rebooted; reset; "}, "an append artifact grows"
    assert run["Status"] == "failed", "human is not terminal: workflow_complete fails"


def test_rejected_events_are_violations_and_the_run_stays(runs: dict[str, dict[str, Any]]) -> None:
    assert runs["bad-event"]["Violations"] == [
        "workflow event 'Refund' rejected: event 'Refund' not defined for state 'triage' (available: Billing, "
        "Done, Tech)"]
    assert runs["bad-event"]["Status"] == "passed"
    assert runs["closed-tool-access"]["Violations"] == [
        "workflow event 'Billing' rejected: state 'closed' is terminal"]


def test_skills_are_scoped_to_the_state(runs: dict[str, dict[str, Any]]) -> None:
    errors = [r.get("error") for r in _tool_results(runs["skill-scope"])]
    assert errors == [
        "skill 'reset' is not available in the current state (filter: 'none')",
        None, None, None,
        "resource '../../billing/refunds/SKILL.md' is not a file inside skill 'reset'",
        "skill 'refunds' is not available in the current state (filter: 'skills/tech/*')",
    ]
    steps = json.loads(_tool_results(runs["skill-scope"])[3]["content"])
    assert steps == {"content": "Hold the power button for ten seconds.\n"}
    assert runs["skill-scope"]["Workflow"]["skills_activated"] == ["reset"]


def _broken(tmp_path: Path, edit: dict[str, tuple[str, str]]) -> str:
    root = tmp_path / "bundle"
    shutil.copytree(BUNDLE, root)
    for name, (old, new) in edit.items():
        path = root / name
        text = path.read_text()
        assert old in text, (name, old)
        path.write_text(text.replace(old, new, 1))
    with pytest.raises(BundleInvalid) as caught:
        load_bundle(root)
    return str(caught.value)


@pytest.mark.parametrize(("edit", "message"), [
    ({"config.arena.yaml": ("Tech: tech\n", "Tech: tek\n")},
     "config.arena.yaml:44:11: workflow.states.triage.on_event.Tech: target 'tek' is not a state"),
    ({"config.arena.yaml": ("prompt_task: billing", "prompt_task: bill")},
     "config.arena.yaml:47:9: workflow.states.billing.prompt_task: 'bill' is no prompt config's task_type"),
    ({"config.arena.yaml": ("on_max_visits: human", "on_max_visits: people")},
     "workflow.states.tech.on_max_visits: 'people' is not a state"),
    ({"config.arena.yaml": ("entry: triage", "entry: start")},
     "config.arena.yaml:33:5: workflow.entry: 'start' is not a state (states: billing, closed, human, tech, triage)"),
    ({"config.arena.yaml": ("orchestration: external", "orchestration: sideways")},
     "workflow.states.human.orchestration"),
    ({"scenarios/tech-loop.yaml": ("task_type: tech", "task_type: nobody")},
     "scenarios/tech-loop.yaml:7:3: task_type: task_type 'nobody' matches no workflow state"),
    ({"skills/tech/reset/SKILL.md": ("name: reset", "name: Reset Me")},
     "skills/tech/reset/SKILL.md:2: invalid skill name 'Reset Me'"),
    ({"config.arena.yaml": ("- path: skills/", "- path: ../skills/")},
     "skills[0].path: skill directory '../skills/' is outside the bundle"),
])
def test_broken_workflows_name_file_and_line(tmp_path: Path, edit: dict[str, tuple[str, str]], message: str) -> None:
    assert message in _broken(tmp_path, edit)
