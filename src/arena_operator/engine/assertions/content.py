"""Content assertions: includes/excludes, regex, length and sentence bounds, latency and cost bounds."""

from __future__ import annotations

import re

from ..spec import AssertionSpec
from .base import AssertionContext, AssertionResult, patterns_of

PATTERN_KEYS = ("patterns", "pattern", "values", "value", "text")


def contains(a: AssertionSpec, ctx: AssertionContext) -> AssertionResult:
    text = ctx.content.lower()
    wanted = patterns_of(a.params, *PATTERN_KEYS)
    missing = [p for p in wanted if p.lower() not in text]
    if missing:
        return AssertionResult(a.type, False, f"response does not contain {missing}", {"missing": missing})
    return AssertionResult(a.type, True, f"response contains {wanted}")


def contains_any(a: AssertionSpec, ctx: AssertionContext) -> AssertionResult:
    text = ctx.content.lower()
    wanted = patterns_of(a.params, *PATTERN_KEYS)
    found = [p for p in wanted if p.lower() in text]
    if found:
        return AssertionResult(a.type, True, f"response contains {found[0]!r}", {"found": found})
    return AssertionResult(a.type, False, f"response contains none of {wanted}")


def excludes(a: AssertionSpec, ctx: AssertionContext) -> AssertionResult:
    text = ctx.content.lower()
    banned = patterns_of(a.params, *PATTERN_KEYS)
    found = [p for p in banned if p.lower() in text]
    if found:
        return AssertionResult(a.type, False, f"response contains forbidden {found}", {"found": found})
    return AssertionResult(a.type, True, f"response contains none of {banned}")


def regex(a: AssertionSpec, ctx: AssertionContext) -> AssertionResult:
    pattern = str(a.params.get("pattern") or a.params.get("regex"))
    expect = bool(a.params.get("expect_match", True))
    try:
        matched = re.search(pattern, ctx.content, re.MULTILINE) is not None
    except re.error as exc:
        return AssertionResult(a.type, False, f"invalid regex {pattern!r}: {exc}")
    if matched == expect:
        verb = "matches" if matched else "does not match"
        return AssertionResult(a.type, True, f"response {verb} /{pattern}/")
    verb = "does not match" if expect else "unexpectedly matches"
    return AssertionResult(a.type, False, f"response {verb} /{pattern}/")


def _bound(params: dict, *names: str) -> float | None:
    for name in names:
        if params.get(name) is not None:
            return float(params[name])
    return None


def _within(a: AssertionSpec, what: str, value: float, low: float | None, high: float | None) -> AssertionResult:
    shown = f"{value:g}"
    if low is not None and value < low:
        return AssertionResult(a.type, False, f"{what} {shown} is below the minimum {low:g}", {"value": value})
    if high is not None and value > high:
        return AssertionResult(a.type, False, f"{what} {shown} exceeds the maximum {high:g}", {"value": value})
    return AssertionResult(a.type, True, f"{what} {shown} within bounds", {"value": value})


def min_length(a: AssertionSpec, ctx: AssertionContext) -> AssertionResult:
    return _within(a, "length", len(ctx.content), _bound(a.params, "min", "length", "value", "min_length"), None)


def max_length(a: AssertionSpec, ctx: AssertionContext) -> AssertionResult:
    return _within(a, "length", len(ctx.content), None, _bound(a.params, "max", "length", "value", "max_length"))


def sentence_count(a: AssertionSpec, ctx: AssertionContext) -> AssertionResult:
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", ctx.content.strip()) if s.strip()]
    return _within(a, "sentence count", len(sentences), _bound(a.params, "min"), _bound(a.params, "max"))


def max_latency(a: AssertionSpec, ctx: AssertionContext) -> AssertionResult:
    return _within(a, "latency ms", round(ctx.latency_ms, 3), None, _bound(a.params, "max_ms", "max", "value"))


def max_cost(a: AssertionSpec, ctx: AssertionContext) -> AssertionResult:
    return _within(a, "cost USD", round(ctx.cost_usd, 8), None, _bound(a.params, "max_usd", "max", "value"))
