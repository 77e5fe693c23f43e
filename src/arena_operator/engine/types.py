"""Messages, tool calls and provider responses: the shapes every part of the engine speaks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    args: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "args": self.args}


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class CostInfo:
    input_tokens: int = 0
    output_tokens: int = 0
    input_cost_usd: float = 0.0
    output_cost_usd: float = 0.0

    @property
    def total_cost_usd(self) -> float:
        return self.input_cost_usd + self.output_cost_usd

    def add(self, other: CostInfo) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.input_cost_usd += other.input_cost_usd
        self.output_cost_usd += other.output_cost_usd

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "input_cost_usd": round(self.input_cost_usd, 8),
            "output_cost_usd": round(self.output_cost_usd, 8),
            "total_cost_usd": round(self.total_cost_usd, 8),
        }


@dataclass(slots=True)
class ToolResult:
    call_id: str
    name: str
    content: str
    error: str | None = None
    latency_ms: float = 0.0
    error_type: str = ""  # "validation": the arguments did not match the tool's input_schema
    parts: list[dict[str, Any]] = field(default_factory=list)  # a mock tool's content parts (media.py)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.call_id, "name": self.name, "content": self.content}
        if self.error:
            out["error"] = self.error
        return out


@dataclass(slots=True)
class Message:
    """One message of a conversation (system, user, assistant or tool)."""

    role: str
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_result: ToolResult | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    cost_info: CostInfo | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    assertions: list[Any] = field(default_factory=list)  # AssertionResults of the turn this reply answers

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        if self.tool_result is not None:
            out["tool_result"] = self.tool_result.to_dict()
        if self.latency_ms is not None:
            out["latency_ms"] = round(self.latency_ms, 3)
        if self.ttft_ms is not None:
            out["ttft_ms"] = round(self.ttft_ms, 3)
        if self.cost_info is not None:
            out["cost_info"] = self.cost_info.to_dict()
        if self.meta:
            out["meta"] = self.meta
        return out


@dataclass(slots=True)
class ToolDefinition:
    """What the model is told about a tool."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(slots=True)
class ChatRequest:
    """One call to a provider. `context` carries scenario/persona ids, used only by the mock provider."""

    system: str
    messages: list[Message]
    tools: list[ToolDefinition] = field(default_factory=list)
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stream: bool = False
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ChatResponse:
    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    finish_reason: str | None = None
    parts: list[dict[str, Any]] = field(default_factory=list)  # multimodal content parts, when any
