"""What an eval sees and returns, and the Go-compatible param readers every handler shares.

Upstream PromptArena splits an assertion in two: an *eval handler* measures (a raw score in [0, 1], or None when
it cannot judge) and the `assertion` wrapper turns the score into pass/fail with `min_score`/`max_score`. The
handlers here return a :class:`Score`; :mod:`.registry` applies the wrapper. Params are read the way the Go
handlers read them (a list where a list is expected, an int where an int is expected), so a bundle scores the
same here as upstream.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..types import Message


@dataclass(slots=True)
class Score:
    """A handler's measurement. `score is None` means it could not judge (the assertion wrapper passes it)."""

    score: float | None
    explanation: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    skipped: bool = False
    warnings: list[str] = field(default_factory=list)


def scored(passed: bool, explanation: str, **details: Any) -> Score:
    return Score(1.0 if passed else 0.0, explanation, details)


def ratio(found: int, total: int) -> float:
    """found/total clamped to [0, 1]; 1.0 when there is nothing to find."""
    return 1.0 if total == 0 else min(1.0, found / total)


@dataclass(slots=True)
class AssertionResult:
    type: str
    passed: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    score: float | None = None
    skipped: bool = False
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "passed": self.passed, "message": self.message}
        if self.details:
            out["details"] = self.details
        if self.score is not None:
            out["score"] = self.score
        if self.skipped:
            out["skipped"] = True
        if self.warnings:
            out["warnings"] = self.warnings
        return out


@dataclass(slots=True)
class ToolCallRecord:
    """One tool call of the transcript paired with its result (upstream's ToolCallRecord)."""

    name: str
    args: dict[str, Any]
    index: int  # the index of the assistant message that made the call
    result: Any = None  # text, or a list of content parts
    error: str = ""
    error_type: str = ""  # "validation" when the arguments failed the tool's input_schema


@dataclass(slots=True)
class EvalServices:
    """What handlers may call out to; each is None when the bundle does not configure it."""

    judge: Callable[[str, str, str], Awaitable[str]] | None = None  # (judge name, system, user) → reply text
    classify: Callable[..., Awaitable[list[tuple[str, float]]]] | None = None
    run_tool: Callable[[str, dict[str, Any], float], Awaitable[Any]] | None = None  # → ToolResult


@dataclass
class EvalContext:
    """The conversation as an eval sees it.

    `messages` is the whole transcript so far (for a turn assertion: every earlier turn plus this one), as
    upstream's eval context; `turn_messages` is the current turn only (what `when` looks at). Content checks
    that scan "every assistant message" scan `messages`; `current_output` is the last assistant reply, or, for
    a guardrail, the one message being judged.
    """

    scope: str  # "turn", "conversation" or "guardrail"
    messages: list[Message]
    turn_messages: list[Message] = field(default_factory=list)
    services: EvalServices = field(default_factory=EvalServices)
    metadata: dict[str, Any] = field(default_factory=dict)
    guardrail_output: str | None = None

    @property
    def current_output(self) -> str:
        if self.guardrail_output is not None:
            return self.guardrail_output
        for message in reversed(self.messages):
            if message.role == "assistant":
                return message.content
        return ""

    def scan_targets(self) -> list[tuple[int, str]]:
        """(message index, text) of what content handlers examine: the guarded text, or every reply."""
        if self.guardrail_output is not None:
            return [(max(0, len(self.messages) - 1), self.guardrail_output)]
        return [(i, m.content) for i, m in enumerate(self.messages) if m.role == "assistant"]

    @cached_property
    def tool_calls(self) -> list[ToolCallRecord]:
        return tool_call_records(self.messages)

    @property
    def assistant_messages(self) -> list[Message]:
        return [m for m in self.messages if m.role == "assistant"]

    def turn_scope(self) -> list[Message]:
        """The replies of this turn (a turn assertion) or of the whole conversation."""
        scope = self.turn_messages if self.scope == "turn" and self.turn_messages else self.messages
        return [m for m in scope if m.role == "assistant"]


def tool_call_records(messages: list[Message]) -> list[ToolCallRecord]:
    """Assistant tool calls in order, each matched to its result by call id, else by the first unresolved name."""
    records: list[tuple[str, ToolCallRecord]] = []
    for index, message in enumerate(messages):
        if message.role == "assistant":
            records.extend((c.id, ToolCallRecord(c.name, dict(c.args or {}), index)) for c in message.tool_calls)
    resolved: set[int] = set()
    for message in messages:
        result = message.tool_result
        if message.role != "tool" or result is None:
            continue
        slot = next((i for i, (cid, _) in enumerate(records) if result.call_id and cid == result.call_id
                     and i not in resolved), None)
        if slot is None:
            slot = next((i for i, (_, r) in enumerate(records) if r.name == result.name and i not in resolved), None)
        if slot is None:
            continue
        resolved.add(slot)
        record = records[slot][1]
        parts = message.meta.get("parts") if message.meta else None
        record.result = parts if parts else result.content
        record.error = result.error or ""
        record.error_type = result.error_type
    return [r for _, r in records]


# ---------------------------------------------------------------------------------------------------------
# Params, read as the Go handlers read them


def str_list(params: dict[str, Any], key: str) -> list[str]:
    """A list of strings (non-strings dropped); a scalar is *not* a list, as upstream."""
    value = params.get(key)
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def text(params: dict[str, Any], key: str) -> str:
    value = params.get(key)
    return value if isinstance(value, str) else ""


def flag(params: dict[str, Any], key: str) -> bool:
    return params.get(key) is True


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def integer(params: dict[str, Any], key: str, default: int | None = None) -> int | None:
    """An int param: ints as they are, floats truncated, anything else the default."""
    value = params.get(key)
    if not is_number(value) or (isinstance(value, float) and not math.isfinite(value)):
        return default
    return int(value)


def number(params: dict[str, Any], key: str) -> float | None:
    value = params.get(key)
    return float(value) if is_number(value) else None


def mapping(params: dict[str, Any], key: str) -> dict[str, Any]:
    value = params.get(key)
    return value if isinstance(value, dict) else {}


def go_str(value: Any) -> str:
    """Go's `fmt.Sprintf("%v")` of a decoded YAML/JSON value, which upstream compares tool arguments with."""
    if isinstance(value, str):
        return value
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return repr(value)
    if isinstance(value, list):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{go_str(k)}:{go_str(v)}" for k, v in sorted(value.items(), key=str)) + "]"
    return str(value)


def contains_fold(haystack: str, needle: str) -> bool:
    return needle.lower() in haystack.lower()


Handler = Callable[[dict[str, Any], EvalContext], "Score | Awaitable[Score]"]
