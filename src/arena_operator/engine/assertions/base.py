"""What an assertion sees and what it returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..spec import AssertionSpec
from ..types import Message, ToolCall, ToolResult


@dataclass(slots=True)
class AssertionResult:
    type: str
    passed: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    score: float | None = None
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "passed": self.passed, "message": self.message}
        if self.details:
            out["details"] = self.details
        if self.score is not None:
            out["score"] = self.score
        if self.skipped:
            out["skipped"] = True
        return out


Judge = Callable[[str, str, str | None], Awaitable[Any]]  # → judge.Verdict


@dataclass(slots=True)
class AssertionContext:
    """The slice of a conversation an assertion checks: one turn's reply, or the whole transcript."""

    scope: str  # "turn" or "conversation"
    messages: list[Message]  # the messages in scope
    transcript: list[Message]  # the whole conversation so far
    judge: Judge | None = None

    @property
    def assistant_messages(self) -> list[Message]:
        return [m for m in self.messages if m.role == "assistant"]

    @property
    def content(self) -> str:
        """For a turn: the final reply. For a conversation: every assistant reply, one per line."""
        replies = [m.content for m in self.assistant_messages if m.content]
        if self.scope == "turn":
            return replies[-1] if replies else ""
        return "\n".join(replies)

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [c for m in self.messages for c in m.tool_calls]

    @property
    def tool_results(self) -> list[ToolResult]:
        return [m.tool_result for m in self.messages if m.tool_result is not None]

    @property
    def latency_ms(self) -> float:
        return sum(m.latency_ms or 0.0 for m in self.assistant_messages)

    @property
    def cost_usd(self) -> float:
        return sum(m.cost_info.total_cost_usd for m in self.assistant_messages if m.cost_info)


Check = Callable[[AssertionSpec, AssertionContext], "AssertionResult | Awaitable[AssertionResult]"]


def patterns_of(params: dict[str, Any], *names: str) -> list[str]:
    """Patterns may be given as a list or a single string under any of several upstream names."""
    for name in names:
        value = params.get(name)
        if value is None:
            continue
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return []
