"""The arena file's `workflow:` (a state machine over prompt tasks) and `skills:` sources, as upstream PromptKit
declares them. Kept free of the rest of the engine's models so engine/spec.py can embed them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_STATES = 200
MAX_EVENTS_PER_STATE = 100
MAX_ARTIFACT_BYTES = 256 * 1024  # one artifact's value; an `append` artifact stops growing here

Orchestration = Literal["internal", "external", "hybrid", "composition"]
EXTERNAL, COMPOSITION = "external", "composition"


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ArtifactDef(_Model):
    type: str = "text/plain"
    description: str = ""
    mode: Literal["replace", "append", ""] = ""


class StateSpec(_Model):
    prompt_task: str = ""
    description: str = ""
    on_event: dict[str, str] = Field(default_factory=dict, max_length=MAX_EVENTS_PER_STATE)
    persistence: Literal["transient", "persistent", ""] = ""
    orchestration: Orchestration | Literal[""] = ""
    skills: str = ""
    composition: str = ""
    terminal: bool = False
    max_visits: int = Field(default=0, ge=0)
    on_max_visits: str = ""
    artifacts: dict[str, ArtifactDef] = Field(default_factory=dict)

    @property
    def is_terminal(self) -> bool:
        """As upstream: a state without outgoing events is terminal too."""
        return self.terminal or not self.on_event


class Budget(_Model):
    max_total_visits: int = Field(default=0, ge=0)
    max_tool_calls: int = Field(default=0, ge=0)
    max_wall_time_sec: int = Field(default=0, ge=0)


class EngineSettings(_Model):
    budget: Budget | None = None


class WorkflowSpec(_Model):
    version: int = 1
    entry: str
    states: dict[str, StateSpec] = Field(max_length=MAX_STATES)
    engine: EngineSettings | None = None

    @property
    def budget(self) -> Budget | None:
        return self.engine.budget if self.engine else None

    @property
    def events(self) -> list[str]:
        """Every event the spec declares: the transition tool describes what the workflow can do, and the run's
        state machine decides what is legal now (upstream registers the union once)."""
        return sorted({event for state in self.states.values() for event in state.on_event})

    @property
    def artifact_names(self) -> list[str]:
        return sorted({name for state in self.states.values() for name in state.artifacts})

    def artifact_mode(self, state: str, name: str) -> str:
        """The current state's declaration wins, then any state's (upstream's lookup)."""
        own = self.states[state].artifacts.get(name) if state in self.states else None
        if own is not None:
            return own.mode
        return next((s.artifacts[name].mode for s in self.states.values() if name in s.artifacts), "")

    def start_state(self, task_type: str | None) -> str:
        """The state a scenario starts in: the entry, or the one state whose prompt_task is the scenario's
        task_type (a single-stage test). Raises ValueError naming the choices otherwise."""
        if not task_type or self.states[self.entry].prompt_task == task_type:
            return self.entry
        matches = sorted(name for name, state in self.states.items() if state.prompt_task == task_type)
        if len(matches) == 1:
            return matches[0]
        if not matches:
            tasks = ", ".join(sorted({s.prompt_task for s in self.states.values() if s.prompt_task}))
            raise ValueError(f"task_type {task_type!r} matches no workflow state's prompt_task (valid: {tasks})")
        raise ValueError(f"task_type {task_type!r} is ambiguous: matches workflow states {', '.join(matches)} "
                         "(give them distinct prompt_task values)")


class SkillSource(_Model):
    """A directory of SKILL.md files (`path` or `dir`), or one inline skill (`name`, `description`,
    `instructions`). `preload` puts a skill's instructions in the system prompt from the first turn."""

    path: str = ""
    dir: str = ""
    name: str = ""
    description: str = ""
    instructions: str = ""
    preload: bool = False

    @property
    def directory(self) -> str:
        return self.dir or self.path


def problems(spec: WorkflowSpec, prompt_tasks: set[str], compositions: set[str] | None) -> list[tuple[list[Any], str]]:
    """Blocking problems as (field path under `workflow`, message), upstream's checks. `compositions` is None
    when the bundle's compositions are not known here (they are checked where they are loaded)."""
    found: list[tuple[list[Any], str]] = []
    if spec.version not in (1, 2):
        found.append((["version"], f"must be 1 or 2, got {spec.version}"))
    if not spec.states:
        return [*found, (["states"], "must declare at least one state")]
    if spec.entry not in spec.states:
        found.append((["entry"], f"{spec.entry!r} is not a state (states: {', '.join(sorted(spec.states))})"))
    for name, state in spec.states.items():
        where = ["states", name]
        if state.orchestration != COMPOSITION and state.prompt_task not in prompt_tasks:
            found.append(([*where, "prompt_task"], f"{state.prompt_task!r} is no prompt config's task_type"
                                                   f" (known: {', '.join(sorted(prompt_tasks)) or 'none'})"))
        for event, target in state.on_event.items():
            if target not in spec.states:
                found.append(([*where, "on_event", event], f"target {target!r} is not a state"))
        if state.on_max_visits and state.on_max_visits not in spec.states:
            found.append(([*where, "on_max_visits"], f"{state.on_max_visits!r} is not a state"))
        if state.orchestration == COMPOSITION and not state.composition:
            found.append(([*where, "composition"], "orchestration composition requires a composition"))
        if state.orchestration != COMPOSITION and state.composition:
            found.append(([*where, "composition"], "is only valid with orchestration: composition"))
        if state.composition and compositions is not None and state.composition not in compositions:
            found.append(([*where, "composition"], f"no composition named {state.composition!r}"))
    return found


def warnings(spec: WorkflowSpec) -> list[tuple[list[Any], str]]:
    """Upstream's non-blocking findings: events not in PascalCase, transitions out of a terminal state,
    redirect chains."""
    found: list[tuple[list[Any], str]] = []
    for name, state in spec.states.items():
        for event in state.on_event:
            if not (event[:1].isupper() and event.isalnum()):
                found.append((["states", name, "on_event", event], "event names should be PascalCase"))
        if state.terminal and state.on_event:
            found.append((["states", name, "on_event"], "a terminal state's transitions never fire"))
        target = spec.states.get(state.on_max_visits)
        if target is not None and target.max_visits:
            found.append((["states", name, "on_max_visits"],
                          f"{state.on_max_visits!r} also has max_visits: a possible redirect chain"))
    return found
