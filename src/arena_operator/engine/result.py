"""RunResult: the outcome of one scenario × provider × region × trial, in upstream's JSON shape."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .assertions.base import AssertionResult
from .media import media_outputs
from .types import CostInfo, Message


def run_id_for(region: str, scenario_id: str, provider_id: str, trial: int) -> str:
    """Deterministic, so a re-run or a re-enqueued unit has the same id (idempotent, resumable)."""
    key = f"{region}\x00{scenario_id}\x00{provider_id}\x00{trial}".encode()
    return hashlib.sha256(key).hexdigest()[:16]


@dataclass(slots=True)
class ToolStats:
    total_calls: int = 0
    by_tool: dict[str, int] = field(default_factory=dict)
    errors: int = 0

    def record(self, name: str, failed: bool) -> None:
        self.total_calls += 1
        self.by_tool[name] = self.by_tool.get(name, 0) + 1
        self.errors += int(failed)

    def to_dict(self) -> dict[str, Any]:
        return {"TotalCalls": self.total_calls, "ByTool": self.by_tool, "Errors": self.errors}


def summarise(results: list[AssertionResult]) -> dict[str, Any]:
    failed = sum(1 for r in results if not r.passed)
    return {"results": [r.to_dict() for r in results], "passed": failed == 0, "total": len(results),
            "failed": failed}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class RunResult:
    run_id: str
    scenario_id: str
    provider_id: str
    region: str = "default"
    trial: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    cost: CostInfo = field(default_factory=CostInfo)
    tool_stats: ToolStats = field(default_factory=ToolStats)
    violations: list[str] = field(default_factory=list)
    start_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    end_time: datetime | None = None
    error: str = ""
    error_kind: str = ""
    self_play: bool = False
    persona_id: str = ""
    conversation_assertions: list[AssertionResult] = field(default_factory=list)
    ttft_ms: float | None = None
    prompt_pack: str = ""
    eval_results: list[dict[str, Any]] = field(default_factory=list)  # pack evals (packevals.py)
    recording_path: str = ""  # where this run's session recording went (engine/recording.py), when recorded
    workflow: dict[str, Any] = field(default_factory=dict)  # where a workflow run ended, its skills

    def _media_and_evals(self) -> dict[str, Any]:
        """Upstream's omitempty MediaOutputs and eval_results."""
        out: dict[str, Any] = {}
        if outputs := media_outputs(self.messages):
            out["MediaOutputs"] = outputs
        if self.eval_results:
            out["eval_results"] = self.eval_results
        return out

    @property
    def duration_ms(self) -> float:
        end = self.end_time or self.start_time
        return (end - self.start_time).total_seconds() * 1000

    @property
    def turn_assertions(self) -> list[AssertionResult]:
        return [r for m in self.messages for r in m.assertions]

    @property
    def warnings(self) -> list[str]:
        """Where an outcome rests on upstream behaviour worth a second look (each once, in order)."""
        found = [w for r in (*self.turn_assertions, *self.conversation_assertions) for w in r.warnings]
        return list(dict.fromkeys(found))

    @property
    def failed_assertions(self) -> list[AssertionResult]:
        return [r for r in (*self.turn_assertions, *self.conversation_assertions) if not r.passed]

    @property
    def passed(self) -> bool:
        """A run passes with no error, every turn assertion passed and its conversation assertions passed."""
        return not self.error and not self.failed_assertions

    @property
    def status(self) -> str:
        if self.error:
            return "error"
        return "passed" if self.passed else "failed"

    def to_dict(self) -> dict[str, Any]:
        messages = []
        for message in self.messages:
            data = message.to_dict()
            if message.assertions:
                data.setdefault("meta", {})["assertions"] = summarise(message.assertions)
            messages.append(data)
        return {
            "RunID": self.run_id,
            "PromptPack": self.prompt_pack,
            "Region": self.region,
            "ScenarioID": self.scenario_id,
            "ProviderID": self.provider_id,
            "Trial": self.trial,
            "Params": self.params,
            "Messages": messages,
            "Cost": self.cost.to_dict(),
            "ToolStats": self.tool_stats.to_dict(),
            "Violations": self.violations,
            "StartTime": _iso(self.start_time),
            "EndTime": _iso(self.end_time or self.start_time),
            "Duration": round(self.duration_ms, 3),
            "Error": self.error,
            "ErrorKind": self.error_kind,
            "SelfPlay": self.self_play,
            "PersonaID": self.persona_id,
            "TTFT": None if self.ttft_ms is None else round(self.ttft_ms, 3),
            "Status": self.status,
            "Passed": self.passed,
            "conversation_assertions": summarise(self.conversation_assertions),
            "Warnings": self.warnings,
            **self._media_and_evals(),
            **({"RecordingPath": self.recording_path} if self.recording_path else {}),
            **({"Workflow": self.workflow} if self.workflow else {}),
        }
