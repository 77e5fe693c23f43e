"""One run's workflow state machine: the current state, visit counts, artifacts and the transitions taken, with
upstream's rules for events, `max_visits` redirects and the engine budget."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .spec import MAX_ARTIFACT_BYTES, StateSpec, WorkflowSpec

MAX_HISTORY = 1000  # transitions kept per run, as upstream


class TransitionRejected(Exception):
    """The workflow declined an event: the run stays in its state (the model sees it on its next round)."""


@dataclass(slots=True)
class Transition:
    source: str
    target: str
    event: str
    original_target: str = ""  # set when max_visits redirected the event elsewhere
    max_visits: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"from": self.source, "to": self.target, "event": self.event}
        if self.original_target:
            out.update(redirected=True, original_target=self.original_target,
                       redirect_reason=f"max_visits ({self.max_visits}) reached for {self.original_target!r}")
        return out


@dataclass(slots=True)
class StateMachine:
    spec: WorkflowSpec
    current: str
    clock: Callable[[], float] = time.monotonic
    visits: dict[str, int] = field(default_factory=dict)
    history: list[Transition] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)
    tool_calls: int = 0
    started: float = 0.0

    def __post_init__(self) -> None:
        self.visits = {self.current: 1}
        self.started = self.clock()

    @property
    def state(self) -> StateSpec:
        return self.spec.states[self.current]

    @property
    def terminal(self) -> bool:
        return self.state.is_terminal

    def available_events(self) -> list[str]:
        return [] if self.state.terminal else sorted(self.state.on_event)

    def process(self, event: str) -> Transition:
        """Apply an event; raises TransitionRejected with upstream's reasons."""
        self._check_budget()
        state = self.state
        if state.is_terminal:
            raise TransitionRejected(f"state {self.current!r} is terminal")
        target = state.on_event.get(event)
        if target is None:
            raise TransitionRejected(f"event {event!r} not defined for state {self.current!r} "
                                     f"(available: {', '.join(self.available_events())})")
        transition = Transition(self.current, target, event)
        limit = self.spec.states[target].max_visits
        if limit and self.visits.get(target, 0) >= limit:
            redirect = self.spec.states[target].on_max_visits
            if not redirect:
                raise TransitionRejected(f"max visits exceeded: state {target!r} visited "
                                         f"{self.visits.get(target, 0)} times (max {limit})")
            transition = Transition(self.current, redirect, event, original_target=target, max_visits=limit)
        self.history.append(transition)
        del self.history[:-MAX_HISTORY]
        self.visits[transition.target] = self.visits.get(transition.target, 0) + 1
        self.current = transition.target
        return transition

    def set_artifact(self, name: str, value: str) -> None:
        if self.spec.artifact_mode(self.current, name) == "append":
            value = self.artifacts.get(name, "") + value
        self.artifacts[name] = value[:MAX_ARTIFACT_BYTES]

    def _check_budget(self) -> None:
        budget = self.spec.budget
        if budget is None:
            return
        checks = (("max_total_visits", sum(self.visits.values()), budget.max_total_visits),
                  ("max_tool_calls", self.tool_calls, budget.max_tool_calls),
                  ("max_wall_time_sec", int(self.clock() - self.started), budget.max_wall_time_sec))
        for limit, current, maximum in checks:
            if maximum and current >= maximum:
                raise TransitionRejected(f"workflow budget exhausted: {limit} {current} reached limit {maximum}")
