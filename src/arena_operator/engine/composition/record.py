"""What a composition run leaves behind, in upstream's shapes: the ordered step trace attached to the reply
(`_composition_snapshot`) and the flat maps composition assertions read from the eval metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..types import CostInfo, Message

SNAPSHOT_KEY = "_composition_snapshot"  # upstream's key on the assistant message's meta


@dataclass(slots=True)
class StepRecord:
    id: str
    kind: str
    attempt: int
    output: str | None  # the step's raw JSON output (upstream's RawMessage), None when it failed
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "attempt": self.attempt}
        if self.output is not None:
            out["output"] = self.output
        if self.error:
            out["error"] = self.error
        return out


@dataclass(slots=True)
class CompositionOutcome:
    """One composition run: its output (the assistant's reply) and what each step did."""

    name: str
    output: str = ""
    steps: list[StepRecord] = field(default_factory=list)
    branches: dict[str, str] = field(default_factory=dict)  # branch step → the target it took ("" for none)
    parallel: dict[str, str] = field(default_factory=dict)  # parallel step → "complete" | "failed"
    cost: CostInfo = field(default_factory=CostInfo)
    model_calls: int = 0
    latency_ms: float = 0.0
    violations: list[str] = field(default_factory=list)  # outputs that do not match their output_schema

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {"composition": self.name, "steps": [s.to_dict() for s in self.steps]}
        if self.branches:
            out["branches"] = dict(self.branches)
        if self.parallel:
            out["parallel"] = dict(self.parallel)
        return out

    def reply(self) -> Message:
        """The assistant message that answers the turn, carrying the trace and the steps' summed cost."""
        return Message("assistant", self.output, latency_ms=self.latency_ms, cost_info=self.cost,
                       meta={SNAPSHOT_KEY: self.snapshot()})


def composition_metadata(message: Message | None) -> dict[str, Any]:
    """The eval metadata of a composition reply (upstream's CompositionMetadata): step id → raw output, branch →
    taken target, parallel → status. Empty for any other message: upstream resets them every turn."""
    snapshot = (message.meta or {}).get(SNAPSHOT_KEY) if message is not None else None
    if not isinstance(snapshot, dict):
        return {}
    steps = [s for s in snapshot.get("steps") or [] if isinstance(s, dict)]
    return {"composition_step_outputs": {str(s["id"]): s.get("output") or "" for s in steps if "id" in s},
            "composition_branch_taken": dict(snapshot.get("branches") or {}),
            "composition_parallel_status": dict(snapshot.get("parallel") or {})}
