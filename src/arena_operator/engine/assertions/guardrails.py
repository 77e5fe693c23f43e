"""Prompt validators (guardrails), as upstream runs them, and the assertion that checks whether one fired.

Any registered eval type is a validator. Its params are normalised first (`words` → `patterns`, `max_characters`
→ `max`, `banned_words` defaults to `match_mode: word_boundary`, …); it *fires* when its score is below
`min_score` (default 1.0) or above `max_score`, or when it cannot score at all (fail-closed). Validators run in
order and the first that fires wins: on the reply (`direction: output`, the default) it truncates the reply to
its `max`/`max_characters` when it has one, else replaces it with its `message`; on the user's message
(`direction: input`) the model is not called and the blocked message is the reply. With streaming, the
streamable checks (`content_excludes`/`banned_words` as plain substrings, `max_length`) also run on every
chunk. Firings are recorded on the reply (`meta.validators`), where `guardrail_triggered` looks for them.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..types import Message
from .base import EvalContext, Score, number, scored, text

DEFAULT_BLOCKED_MESSAGE = "Sorry, we can't provide this response as it would violate our content policy."
STREAM_CHUNK = 20  # characters per streamed chunk of the mock provider

PARAM_ALIASES: dict[str, dict[str, str]] = {
    "content_excludes": {"words": "patterns"}, "banned_words": {"words": "patterns"},
    "max_length": {"max_characters": "max", "max_chars": "max"},
    "length": {"max_characters": "max", "max_chars": "max"},
    "min_length": {"min_characters": "min", "min_chars": "min"},
    "sentence_count": {"max_sentences": "max"}, "max_sentences": {"max_sentences": "max"},
    "field_presence": {"required_fields": "fields"}, "required_fields": {"required_fields": "fields"},
}
PARAM_DEFAULTS: dict[str, dict[str, Any]] = {"banned_words": {"match_mode": "word_boundary"}}
WRAPPER_ONLY = ("min_score", "max_score", "direction")


def normalize(eval_type: str, params: dict[str, Any]) -> dict[str, Any]:
    """Upstream's ApplyDefaults + NormalizeParams (guardrails only: assertions get their params as written)."""
    merged = {**PARAM_DEFAULTS.get(eval_type, {}), **params}
    aliases = PARAM_ALIASES.get(eval_type, {})
    return {(aliases[k] if k in aliases and aliases[k] not in merged else k): v for k, v in merged.items()}


def fires(score: float | None, low: float | None, high: float | None) -> bool:
    """A guardrail fires when it could not score, or the score is outside [min_score, max_score]."""
    if score is None:
        return True
    if low is None and high is None:
        low = 1.0
    return (low is not None and score < low) or (high is not None and score > high)


def _max_len(params: dict[str, Any]) -> int:
    for key in ("max_characters", "max", "max_chars"):
        value = number(params, key)
        if value is not None:
            return int(value)
    return 0


@dataclass
class Guardrail:
    """One compiled validator."""

    type: str
    run: Callable[[dict[str, Any], EvalContext], Score | Awaitable[Score]]
    params: dict[str, Any]  # normalised, without min_score/max_score/direction
    low: float | None
    high: float | None
    direction: str  # input, output or both
    message: str
    partial: Callable[[dict[str, Any], str], Score] | None = None

    def enforce(self, content: str) -> str:
        limit = _max_len(self.params)
        raw = content.encode()
        if limit > 0 and len(raw) > limit:
            return raw[:limit].decode(errors="ignore")
        return self.message or DEFAULT_BLOCKED_MESSAGE

    async def check(self, ctx: EvalContext) -> Score:
        result = self.run(self.params, ctx)
        return await result if inspect.isawaitable(result) else result  # type: ignore[return-value]


def compile_guardrail(eval_type: str, params: dict[str, Any], message: str, run: Any,
                      partial: Any = None) -> Guardrail:
    normalized = normalize(eval_type, params)
    direction = params.get("direction") if params.get("direction") in ("input", "output", "both") else "output"
    return Guardrail(eval_type, run, {k: v for k, v in normalized.items() if k not in WRAPPER_ONLY},
                     number(params, "min_score"), number(params, "max_score"), direction,
                     message or text(params, "message"), partial)


def firing(guard: Guardrail, direction: str, result: Score) -> dict[str, Any]:
    return {"type": guard.type, "triggered": True, "direction": direction, "score": result.score,
            "message": result.explanation or "fired"}


async def check_input(guards: list[Guardrail], ctx: EvalContext) -> tuple[dict[str, Any], str] | None:
    """(firing, blocked reply) when an input validator fires on the user's message; the model is not called."""
    for guard in guards:
        if guard.direction in ("input", "both"):
            result = await guard.check(ctx)
            if fires(result.score, guard.low, guard.high):
                return firing(guard, "input", result), guard.message or DEFAULT_BLOCKED_MESSAGE
    return None


async def check_output(guards: list[Guardrail], content: str, context: Callable[[str], EvalContext],
                       streaming: bool) -> tuple[list[dict[str, Any]], str]:
    """(firings, reply as delivered). `context(text)` builds the eval context for the text being judged."""
    firings: list[dict[str, Any]] = []
    outputs = [g for g in guards if g.direction != "input"]
    if streaming:
        content = _stream_check(outputs, content, firings)
    for guard in outputs:
        result = await guard.check(context(content))
        if fires(result.score, guard.low, guard.high):
            firings.append(firing(guard, "output", result))
            return firings, guard.enforce(content)
    return firings, content


def _stream_check(guards: list[Guardrail], content: str, firings: list[dict[str, Any]]) -> str:
    streamable = [g for g in guards if g.partial is not None]
    for end in range(STREAM_CHUNK, len(content) + STREAM_CHUNK, STREAM_CHUNK):
        prefix = content[:end]
        for guard in streamable:
            result = guard.partial(guard.params, prefix)  # type: ignore[misc]
            if fires(result.score, guard.low, guard.high):
                firings.append(firing(guard, "output", result))
                return guard.enforce(prefix)
    return content


# ---------------------------------------------------------------------------------------------------------
# guardrail_triggered


def firings_of(message: Message | None) -> list[dict[str, Any]]:
    return [v for v in (message.meta.get("validators") or []) if v.get("triggered")] if message else []


def guardrail_triggered(params: dict, ctx: EvalContext) -> Score:
    """Whether `validator` fired on the last reply (input firings included), as `should_trigger` expects."""
    wanted = text(params, "validator_type") or text(params, "validator")
    if not wanted:
        return scored(False, "validator_type parameter required")
    expect = params.get("should_trigger") if isinstance(params.get("should_trigger"), bool) else True
    direction = text(params, "direction")
    direction = "" if direction == "both" else direction
    last = ctx.assistant_messages[-1] if ctx.assistant_messages else None
    fired = any(f.get("type") == wanted and (not direction or f.get("direction") == direction)
                for f in reversed(firings_of(last)))
    subject = repr(wanted) + (f" (direction {direction!r})" if direction else "")
    if fired == expect:
        return scored(True, f"validator {subject} {'fired' if fired else 'did not fire'}, as expected")
    if expect:
        return scored(False, f"expected validator {subject} to fire but it did not")
    return scored(False, f"validator {subject} fired unexpectedly", fired=firings_of(last))
