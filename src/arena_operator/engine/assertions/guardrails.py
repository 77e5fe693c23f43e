"""Prompt validators (guardrails) run on every reply, and the assertion that checks whether one fired."""

from __future__ import annotations

import re
from typing import Any

from ..spec import AssertionSpec, Validator
from ..types import Message
from .base import AssertionContext, AssertionResult


def _banned_words(params: dict[str, Any], text: str) -> str | None:
    lowered = text.lower()
    hits = [w for w in params.get("words", []) if re.search(rf"\b{re.escape(str(w).lower())}\b", lowered)]
    return f"banned words {hits}" if hits else None


def _max_length(params: dict[str, Any], text: str) -> str | None:
    limit = params.get("max_characters", params.get("max"))
    return f"{len(text)} characters > {limit}" if limit is not None and len(text) > int(limit) else None


def _max_sentences(params: dict[str, Any], text: str) -> str | None:
    count = len([s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s])
    limit = params.get("max_sentences", params.get("max"))
    return f"{count} sentences > {limit}" if limit is not None and count > int(limit) else None


def _regex(params: dict[str, Any], text: str) -> str | None:
    pattern = str(params.get("pattern", ""))
    return f"matches /{pattern}/" if pattern and re.search(pattern, text) else None


VALIDATORS = {
    "banned_words": _banned_words,
    "max_length": _max_length,
    "length": _max_length,
    "max_sentences": _max_sentences,
    "regex": _regex,
    "pattern": _regex,
}


DEFAULT_BLOCKED_MESSAGE = "I'm sorry, but I can't help with that."


def _enforce(validator: Validator, text: str) -> str:
    """What the user gets once a validator fired: a length limit truncates, anything else blocks the reply."""
    params = validator.params
    if validator.type in ("max_length", "length"):
        return text[: int(params.get("max_characters", params.get("max", len(text))))]
    return str(params.get("message") or params.get("blocked_message") or DEFAULT_BLOCKED_MESSAGE)


def run_validators(validators: list[Validator], text: str) -> tuple[list[dict[str, Any]], str]:
    """Evaluate every validator on a reply (the loader rejects unknown types) and enforce those that fire,
    as upstream's guardrail hooks do. Returns (results, the reply as delivered)."""
    results = []
    delivered = text
    for validator in validators:
        reason = VALIDATORS[validator.type](validator.params, delivered)
        results.append({"type": validator.type, "triggered": reason is not None, "message": reason or "ok"})
        if reason is not None:
            delivered = _enforce(validator, delivered)
    return results, delivered


def guardrail_triggered(a: AssertionSpec, ctx: AssertionContext) -> AssertionResult:
    wanted = a.params.get("validator") or a.params.get("validator_type") or a.params.get("type")
    expect = bool(a.params.get("should_trigger", a.params.get("expected", True)))
    fired = [v for m in ctx.assistant_messages for v in _validations(m)
             if v["triggered"] and (wanted is None or v["type"] == wanted)]
    label = f"guardrail {wanted}" if wanted else "a guardrail"
    if bool(fired) == expect:
        verb = "triggered" if fired else "did not trigger"
        return AssertionResult(a.type, True, f"{label} {verb}", {"fired": fired})
    verb = "did not trigger" if expect else "triggered unexpectedly"
    return AssertionResult(a.type, False, f"{label} {verb}", {"fired": fired})


def _validations(message: Message) -> list[dict[str, Any]]:
    return message.meta.get("validators", [])
