"""The workflow state machine, its load-time checks, skills and the per-run session, table-driven."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from arena_operator.engine.manifests import Collector
from arena_operator.engine.types import ToolCall
from arena_operator.engine.workflow.machine import StateMachine, TransitionRejected
from arena_operator.engine.workflow.session import SET_ARTIFACT, TRANSITION, WorkflowSession
from arena_operator.engine.workflow.skills import (
    ACTIVATE,
    MAX_RESOURCE_BYTES,
    READ_RESOURCE,
    Skill,
    SkillRegistry,
    SkillSession,
    _go_match,
    split_frontmatter,
    visible,
)
from arena_operator.engine.workflow.spec import SkillSource, WorkflowSpec, problems, warnings


def spec(states: dict[str, Any], entry: str = "a", **extra: Any) -> WorkflowSpec:
    return WorkflowSpec.model_validate({"version": 1, "entry": entry, "states": states, **extra})


LOOP = {
    "a": {"prompt_task": "a", "on_event": {"Go": "b", "Stay": "a", "End": "z", "Once": "d"}},
    "b": {"prompt_task": "b", "max_visits": 1, "on_max_visits": "c", "on_event": {"Back": "a"}},
    "c": {"prompt_task": "c", "max_visits": 1, "on_event": {"Back": "a"}},
    "d": {"prompt_task": "d", "max_visits": 1, "on_event": {"Back": "a"}},
    "z": {"prompt_task": "z", "terminal": True},
}


@pytest.mark.parametrize(("events", "state", "visits", "error"), [
    (["Go"], "b", {"a": 1, "b": 1}, None),
    (["Go", "Back", "Go"], "c", {"a": 2, "b": 1, "c": 1}, None),  # b's second visit redirects to c
    (["Once", "Back", "Once"], "a", None, "max visits exceeded: state 'd' visited 1 times (max 1)"),
    (["Nope"], "a", None, "event 'Nope' not defined for state 'a' (available: End, Go, Once, Stay)"),
    (["End", "Go"], "z", None, "state 'z' is terminal"),
])
def test_events(events: list[str], state: str, visits: dict[str, int] | None, error: str | None) -> None:
    machine = StateMachine(spec(LOOP), "a")
    raised = None
    for event in events:
        try:
            machine.process(event)
        except TransitionRejected as exc:
            raised = str(exc)
    if error is None:
        assert raised is None and machine.current == state and machine.visits == visits
    else:
        assert raised is not None and error in raised


def test_a_redirect_is_recorded_with_its_reason() -> None:
    machine = StateMachine(spec(LOOP), "a")
    for event in ("Go", "Back", "Go"):
        machine.process(event)
    assert machine.history[-1].to_dict() == {
        "from": "a", "to": "c", "event": "Go", "redirected": True, "original_target": "b",
        "redirect_reason": "max_visits (1) reached for 'b'"}


@pytest.mark.parametrize(("budget", "setup", "message"), [
    ({"max_total_visits": 3}, lambda m, clock: [m.process("Stay"), m.process("Stay")], "max_total_visits 3"),
    ({"max_tool_calls": 2}, lambda m, clock: setattr(m, "tool_calls", 2), "max_tool_calls 2 reached limit 2"),
    ({"max_wall_time_sec": 5}, lambda m, clock: clock.append(6.0), "max_wall_time_sec 6 reached limit 5"),
])
def test_the_engine_budget_stops_transitions(budget: dict[str, int], setup: Any, message: str) -> None:
    now = [0.0]
    machine = StateMachine(spec(LOOP, engine={"budget": budget}), "a", clock=lambda: now[-1])
    setup(machine, now)
    with pytest.raises(TransitionRejected, match="workflow budget exhausted: " + message):
        machine.process("Stay")


def test_append_artifacts_grow_and_replace_ones_are_replaced() -> None:
    states = {"a": {"prompt_task": "a", "artifacts": {"log": {"mode": "append"}, "last": {}},
                    "on_event": {"Go": "a"}}}
    machine = StateMachine(spec(states), "a")
    for value in ("x", "y"):
        machine.set_artifact("log", value)
        machine.set_artifact("last", value)
    assert machine.artifacts == {"log": "xy", "last": "y"}


@pytest.mark.parametrize(("states", "entry", "version", "expected"), [
    ({"a": {"prompt_task": "a", "on_event": {"Go": "nowhere"}}}, "a", 1,
     [(["states", "a", "on_event", "Go"], "target 'nowhere' is not a state")]),
    ({"a": {"prompt_task": "missing"}}, "a", 1,
     [(["states", "a", "prompt_task"], "'missing' is no prompt config's task_type (known: a, b)")]),
    ({"a": {"prompt_task": "a"}}, "b", 1, [(["entry"], "'b' is not a state (states: a)")]),
    ({"a": {"prompt_task": "a"}}, "a", 3, [(["version"], "must be 1 or 2, got 3")]),
    ({"a": {"orchestration": "composition"}}, "a", 1,
     [(["states", "a", "composition"], "orchestration composition requires a composition")]),
    ({"a": {"orchestration": "composition", "composition": "real"}}, "a", 1, []),
    ({"a": {"prompt_task": "a", "composition": "real"}}, "a", 1,
     [(["states", "a", "composition"], "is only valid with orchestration: composition")]),
    ({"a": {"orchestration": "composition", "composition": "ghost"}}, "a", 1,
     [(["states", "a", "composition"], "no composition named 'ghost'")]),
    ({"a": {"prompt_task": "a", "on_max_visits": "x"}}, "a", 1,
     [(["states", "a", "on_max_visits"], "'x' is not a state")]),
])
def test_problems(states: dict[str, Any], entry: str, version: int, expected: list[Any]) -> None:
    workflow = WorkflowSpec.model_validate({"version": version, "entry": entry, "states": states})
    assert problems(workflow, {"a", "b"}, {"real"}) == expected


def test_warnings() -> None:
    found = warnings(spec({"a": {"prompt_task": "a", "terminal": True, "on_event": {"go_on": "a"},
                                 "on_max_visits": "b"},
                           "b": {"prompt_task": "b", "max_visits": 2}}))
    assert [message for _, message in found] == [
        "event names should be PascalCase", "a terminal state's transitions never fire",
        "'b' also has max_visits: a possible redirect chain"]


@pytest.mark.parametrize(("task_type", "expected"), [
    (None, "a"), ("a", "a"), ("b", "b"),
    ("q", "task_type 'q' matches no workflow state's prompt_task (valid: a, b, dup)"),
    ("dup", "task_type 'dup' is ambiguous: matches workflow states x, y"),
])
def test_start_state(task_type: str | None, expected: str) -> None:
    workflow = spec({"a": {"prompt_task": "a"}, "b": {"prompt_task": "b"}, "x": {"prompt_task": "dup"},
                     "y": {"prompt_task": "dup"}})
    if " " in expected:
        with pytest.raises(ValueError, match=re.escape(expected)):
            workflow.start_state(task_type)
    else:
        assert workflow.start_state(task_type) == expected


@pytest.mark.parametrize(("pattern", "path", "matches"), [
    ("skills/billing/*", "skills/billing/refunds", True),
    ("skills/billing/*", "skills/billing/refunds/deeper", False),  # Go's `*` never crosses a `/`
    ("skills/*/refunds", "skills/billing/refunds", True),
    ("skills/bill?ng/*", "skills/billing/x", True),
    ("skills/*", "other/x", False),
])
def test_go_match(pattern: str, path: str, matches: bool) -> None:
    assert _go_match(pattern, path) is matches


@pytest.mark.parametrize(("state_filter", "expected"), [("", True), ("none", False), ("NONE", False),
                                                        ("skills/a/*", True), ("skills/b/*", False)])
def test_visible(state_filter: str, expected: bool) -> None:
    assert visible(Skill("s", "d", "", path="skills/a/s"), state_filter) is expected


@pytest.mark.parametrize(("text", "result"), [
    ("---\nname: a\n---\nbody\n", ("name: a", "body", 2)),
    ("\n\n---\nname: a\n---\n", ("name: a", "", 4)),
    ("", "empty skill file"),
    ("name: a\n", "missing frontmatter"),
    ("---\nname: a\n", "missing closing frontmatter delimiter"),
])
def test_split_frontmatter(text: str, result: Any) -> None:
    if isinstance(result, str):
        with pytest.raises(ValueError, match=result):
            split_frontmatter(text)
    else:
        assert split_frontmatter(text) == result


def _skill_tree(root: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)


@pytest.mark.parametrize(("files", "sources", "problem"), [
    ({"skills/a/SKILL.md": "---\nname: Bad_Name\ndescription: d\n---\n"}, [{"path": "skills"}],
     "skills/a/SKILL.md:2: invalid skill name 'Bad_Name'"),
    ({"skills/a/SKILL.md": "---\nname: ok\n---\n"}, [{"path": "skills"}],
     "skills/a/SKILL.md:2: skill description is required"),
    ({"skills/a/SKILL.md": "---\nname: [unclosed\n---\n"}, [{"path": "skills"}],
     "skills/a/SKILL.md:3: invalid frontmatter: invalid YAML"),
    ({"skills/a/SKILL.md": "no frontmatter"}, [{"path": "skills"}], "missing frontmatter"),
    ({}, [{"path": "../outside"}], "skills[0].path: skill directory '../outside' is outside the bundle"),
    ({}, [{"path": "nope"}], "skills[0].path: skill directory 'nope' does not exist"),
    ({}, [{"name": "x"}], "skills[0].name: skill description is required"),
    ({}, [{"preload": True}], "skills[0]: a skill source needs a path"),
])
def test_skill_loading_problems(tmp_path: Path, files: dict[str, str], sources: list[dict[str, Any]],
                                problem: str) -> None:
    root = tmp_path / "bundle"
    root.mkdir()
    _skill_tree(root, files)
    out = Collector(root)
    SkillRegistry.load([SkillSource.model_validate(s) for s in sources], root, root, "arena.yaml", None, out)
    assert any(problem in str(p) for p in out.problems), [str(p) for p in out.problems]


def test_a_symlinked_skill_directory_leading_out_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _skill_tree(outside, {"x/SKILL.md": "---\nname: x\ndescription: d\n---\n"})
    root = tmp_path / "bundle"
    root.mkdir()
    (root / "skills").symlink_to(outside)
    out = Collector(root)
    registry = SkillRegistry.load([SkillSource(path="skills")], root, root, "arena.yaml", None, out)
    assert not registry.skills and "outside the bundle" in str(out.problems[0])


@pytest.fixture
def registry(tmp_path: Path) -> SkillRegistry:
    _skill_tree(tmp_path, {
        "skills/billing/refunds/SKILL.md": "---\nname: refunds\ndescription: r\nallowed-tools: [refund, ghost]\n---\n"
                                           "Refund carefully.",
        "skills/billing/refunds/big.txt": "x" * (MAX_RESOURCE_BYTES + 1),
        "skills/billing/refunds/ok.txt": "fine",
        "skills/tech/reset/SKILL.md": "---\nname: reset\ndescription: t\n---\nReset.",
        "secret.txt": "not yours",
    })
    out = Collector(tmp_path)
    found = SkillRegistry.load([SkillSource(path="skills")], tmp_path, tmp_path, "arena.yaml", None, out)
    assert not out.problems
    return found


@pytest.mark.parametrize(("state_filter", "tool", "args", "expected"), [
    ("", ACTIVATE, {"name": "refunds"}, {"instructions": "Refund carefully.", "added_tools": ["refund"]}),
    ("skills/tech/*", ACTIVATE, {"name": "refunds"}, "not available in the current state"),
    ("", ACTIVATE, {"name": "ghost"}, "skill 'ghost' not found"),
    ("", READ_RESOURCE, {"skill_name": "refunds", "path": "ok.txt"}, {"content": "fine"}),
    ("", READ_RESOURCE, {"skill_name": "refunds", "path": "../../../secret.txt"}, "is not a file inside skill"),
    ("", READ_RESOURCE, {"skill_name": "refunds", "path": "big.txt"}, f"larger than {MAX_RESOURCE_BYTES} bytes"),
    ("", "skill__deactivate", {"name": "reset"}, "skill 'reset' is not active"),
])
def test_skill_tools(registry: SkillRegistry, state_filter: str, tool: str, args: dict[str, Any],
                     expected: Any) -> None:
    session = SkillSession(registry, {"refund"})
    session.set_filter(state_filter)
    if isinstance(expected, str):
        with pytest.raises(Exception, match=expected):
            session.execute(tool, args)
    else:
        assert json.loads(session.execute(tool, args)) == expected


def test_entering_a_state_deactivates_skills_it_does_not_allow(registry: SkillRegistry) -> None:
    session = SkillSession(registry, {"refund"})
    session.execute(ACTIVATE, {"name": "refunds"})
    assert session.active_tools() == {"refund"}
    session.set_filter("skills/tech/*")
    assert session.active == {} and session.active_tools() == set()


def _session(states: dict[str, Any], **extra: Any) -> WorkflowSession:
    return WorkflowSession(spec(states, **extra), None, None, set())


def test_a_transition_is_scheduled_then_applied() -> None:
    session = _session(LOOP)
    result = session.execute(ToolCall("1", TRANSITION, {"event": "Go", "context": "brief"}))
    assert json.loads(result.content) == {"status": "transition_scheduled", "event": "Go", "target_state": "b"}
    assert session.machine is not None and session.machine.current == "a", "deferred until the next round"
    assert session.hand_off() is False and session.machine.current == "b"
    assert session.variables()["workflow_context"] == "brief"


@pytest.mark.parametrize(("orchestration", "stops"), [("external", True), ("composition", True),
                                                      ("internal", False), ("", False)])
def test_hand_off_stops_the_turn_for_states_run_elsewhere(orchestration: str, stops: bool) -> None:
    target = {"prompt_task": "b", "orchestration": orchestration}
    if orchestration == "composition":
        target = {"orchestration": "composition", "composition": "c"}
    session = _session({"a": {"prompt_task": "a", "on_event": {"Go": "b"}}, "b": target})
    session.execute(ToolCall("1", TRANSITION, {"event": "Go", "context": ""}))
    assert session.hand_off() is stops


def test_a_rejected_event_is_kept_as_a_violation_and_the_state_stays() -> None:
    session = _session(LOOP)
    session.execute(ToolCall("1", TRANSITION, {"event": "Fly", "context": ""}))
    assert session.metadata()["workflow_current_state"] == "a"
    assert session.rejections == ["workflow event 'Fly' rejected: event 'Fly' not defined for state 'a' "
                                  "(available: End, Go, Once, Stay)"]


def test_unknown_artifacts_are_tool_errors() -> None:
    session = _session({"a": {"prompt_task": "a", "artifacts": {"notes": {}}, "on_event": {"Go": "a"}}})
    result = session.execute(ToolCall("1", SET_ARTIFACT, {"name": "other", "value": "v"}))
    assert result.error == "unknown artifact 'other' (declared: notes)"


def test_system_tools_offered() -> None:
    session = _session({"a": {"prompt_task": "a", "artifacts": {"n": {}}, "on_event": {"Go": "b"}},
                        "b": {"prompt_task": "b", "on_event": {"Back": "a"}}})
    tools = {d.name: d for d in session.definitions()}
    assert set(tools) == {TRANSITION, SET_ARTIFACT}
    assert tools[TRANSITION].input_schema["properties"]["event"]["enum"] == ["Back", "Go"]
