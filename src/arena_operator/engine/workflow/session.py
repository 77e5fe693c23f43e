"""One run's conversation machinery: the workflow state machine and the skills, the system tools the model
drives them with (`workflow__transition`, `workflow__set_artifact`, `skill__*`), and what evals read of them.

As upstream: a transition is deferred — the tool answers "scheduled" and the event is applied before the next
provider round (so the destination state speaks within the same turn), before evals read the state, and at the
start of the next turn. A rejected event leaves the run where it is and is noted as a violation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import ToolError
from ..types import ToolCall, ToolDefinition, ToolResult
from .machine import StateMachine, TransitionRejected
from .skills import ACTIVATE, DEACTIVATE, READ_RESOURCE, SkillRegistry, SkillSession
from .spec import COMPOSITION, EXTERNAL, StateSpec, WorkflowSpec

TRANSITION, SET_ARTIFACT = "workflow__transition", "workflow__set_artifact"
SKILL_TOOLS = (ACTIVATE, DEACTIVATE, READ_RESOURCE)
CONTEXT_VAR = "workflow_context"  # the brief the outgoing state wrote for the incoming one
STATE_STAMP = "current_workflow_state"  # on each assistant message: the state that produced it


def template_defaults(spec: WorkflowSpec | None) -> dict[str, Any]:
    """The variables a workflow adds to every state's prompt template, before anything is set."""
    if spec is None:
        return {}
    return {CONTEXT_VAR: "", **{f"artifacts.{name}": "" for name in spec.artifact_names}}


def transition_definition(events: list[str]) -> ToolDefinition:
    return ToolDefinition(
        TRANSITION,
        "Transition the workflow to a new state by triggering an event. "
        "Use this when the conversation requires escalation, resolution, or any state change.",
        {"type": "object",
         "properties": {"event": {"type": "string", "enum": events, "description": "The workflow event to trigger."},
                        "context": {"type": "string",
                                    "description": "Summary of relevant context to carry forward."}},
         "required": ["event", "context"]})


def artifact_definition(names: list[str]) -> ToolDefinition:
    return ToolDefinition(
        SET_ARTIFACT, "Set a workflow artifact value. Artifacts persist across state transitions.",
        {"type": "object",
         "properties": {"name": {"type": "string", "enum": names, "description": "The artifact name to set."},
                        "value": {"type": "string", "description": "The artifact value."}},
         "required": ["name", "value"]})


@dataclass(slots=True)
class _Pending:
    event: str
    context: str


class WorkflowSession:
    """Created per run when the bundle has a workflow or skills; `machine` is None without a workflow."""

    def __init__(self, spec: WorkflowSpec | None, skills: SkillRegistry | None, task_type: str | None,
                 pack_tools: set[str]) -> None:
        self.spec = spec
        self.machine = StateMachine(spec, spec.start_state(task_type)) if spec else None
        self.skills = SkillSession(skills, pack_tools) if skills is not None and skills.skills else None
        self.pending: _Pending | None = None
        self.context_summary = ""
        self.rejections: list[str] = []
        self._definitions = self._build_definitions()  # fixed for the run: built once, not every provider round
        self._names = {d.name for d in self._definitions}
        if self.skills is not None and self.machine is not None:
            self.skills.set_filter(self.machine.state.skills)

    @property
    def state(self) -> StateSpec | None:
        return self.machine.state if self.machine else None

    @property
    def prompt_task(self) -> str | None:
        """The prompt the current state speaks with (None: the scenario's own)."""
        return self.machine.state.prompt_task or None if self.machine else None

    @property
    def in_composition(self) -> bool:
        return self.state is not None and self.state.orchestration == COMPOSITION

    def definitions(self) -> list[ToolDefinition]:
        """The system tools, offered in every state (upstream registers them once per bundle)."""
        return self._definitions

    def _build_definitions(self) -> list[ToolDefinition]:
        found: list[ToolDefinition] = []
        if self.spec is not None and self.spec.events:
            found.append(transition_definition(self.spec.events))
        if self.spec is not None and self.spec.artifact_names:
            found.append(artifact_definition(self.spec.artifact_names))
        if self.skills is not None:
            found.extend(self.skills.registry.definitions())
        return found

    def extra_tools(self) -> set[str]:
        """Bundle tools the active skills add to the prompt's own."""
        return self.skills.active_tools() if self.skills else set()

    def handles(self, name: str) -> bool:
        return name in self._names

    def execute(self, call: ToolCall) -> ToolResult:
        """Never raises: a refused call becomes a tool error the model sees."""
        try:
            content = self._execute(call)
        except ToolError as exc:
            return ToolResult(call.id, call.name, json.dumps({"error": str(exc)}), str(exc))
        return ToolResult(call.id, call.name, content)

    def _execute(self, call: ToolCall) -> str:
        if call.name in SKILL_TOOLS:
            assert self.skills is not None
            return self.skills.execute(call.name, call.args)
        assert self.machine is not None and self.spec is not None
        if call.name == SET_ARTIFACT:
            name = str(call.args.get("name") or "")
            if name not in self.spec.artifact_names:
                raise ToolError(f"unknown artifact {name!r} (declared: {', '.join(self.spec.artifact_names)})")
            self.machine.set_artifact(name, str(call.args.get("value") or ""))
            return json.dumps({"status": "artifact_set", "artifact": name})
        event = str(call.args.get("event") or "")
        self.pending = _Pending(event, str(call.args.get("context") or ""))
        answer = {"status": "transition_scheduled", "event": event}
        target = self.machine.state.on_event.get(event) or next(
            (s.on_event[event] for s in self.spec.states.values() if event in s.on_event), None)
        if target:
            answer["target_state"] = target
        return json.dumps(answer)

    def record_tool_calls(self, count: int) -> None:
        if self.machine is not None:
            self.machine.tool_calls += count

    def commit(self) -> bool:
        """Apply the pending event; True when the state changed."""
        pending, self.pending = self.pending, None
        if pending is None or self.machine is None:
            return False
        try:
            self.machine.process(pending.event)
        except TransitionRejected as exc:
            self.rejections.append(f"workflow event {pending.event!r} rejected: {exc}")
            return False
        self.context_summary = pending.context
        if self.skills is not None:
            self.skills.set_filter(self.machine.state.skills)
        return True

    def hand_off(self) -> bool:
        """Between provider rounds: commit; True when the turn must stop here (upstream: a state reached this
        way that is orchestrated externally or by a composition does not run on within the turn)."""
        return self.commit() and self.state is not None and self.state.orchestration in (EXTERNAL, COMPOSITION)

    def variables(self) -> dict[str, Any]:
        """What a state's prompt template sees besides the scenario's variables."""
        if self.machine is None:
            return {}
        found = template_defaults(self.spec)
        found.update({f"artifacts.{name}": value for name, value in self.machine.artifacts.items()})
        found[CONTEXT_VAR] = self.context_summary
        return found

    def system_suffix(self) -> str:
        return self.skills.preload_block() if self.skills else ""

    def state_stamp(self) -> dict[str, Any] | None:
        if self.machine is None:
            return None
        stamp: dict[str, Any] = {"current_state": self.machine.current, "terminal": self.machine.terminal}
        if self.machine.state.description:
            stamp["description"] = self.machine.state.description
        return stamp

    def metadata(self) -> dict[str, Any]:
        """What the workflow evals read (upstream commits a pending transition first)."""
        self.commit()
        if self.machine is None:
            return {}
        return {"workflow_current_state": self.machine.current, "workflow_complete": self.machine.terminal,
                "workflow_transitions": [t.to_dict() for t in self.machine.history]}

    def summary(self) -> dict[str, Any]:
        """For the run's result: where the workflow ended and how it got there."""
        out: dict[str, Any] = self.metadata()
        if self.machine is not None and self.machine.artifacts:
            out["workflow_artifacts"] = dict(self.machine.artifacts)
        if self.skills is not None:
            out["skills_activated"] = list(self.skills.activations)
        return out
