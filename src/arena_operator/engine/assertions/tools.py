"""Tool assertions: which tools were called, how often, with which arguments, in which order."""

from __future__ import annotations

import json
from typing import Any

from ..spec import AssertionSpec
from .base import AssertionContext, AssertionResult, patterns_of


def _names(a: AssertionSpec) -> list[str]:
    return patterns_of(a.params, "tools", "tool_names", "tool", "name")


def tools_called(a: AssertionSpec, ctx: AssertionContext) -> AssertionResult:
    called = [c.name for c in ctx.tool_calls]
    wanted = _names(a)
    missing = [t for t in wanted if t not in called]
    if missing:
        return AssertionResult(a.type, False, f"expected tool(s) {missing} to be called; called {called}",
                               {"called": called})
    low, high = a.params.get("min_calls"), a.params.get("max_calls")
    counted = sum(1 for c in called if not wanted or c in wanted)
    if low is not None and counted < int(low):
        return AssertionResult(a.type, False, f"{counted} tool call(s), expected at least {low}", {"called": called})
    if high is not None and counted > int(high):
        return AssertionResult(a.type, False, f"{counted} tool call(s), expected at most {high}", {"called": called})
    return AssertionResult(a.type, True, f"tools called: {called}", {"called": called})


def tools_not_called(a: AssertionSpec, ctx: AssertionContext) -> AssertionResult:
    called = [c.name for c in ctx.tool_calls]
    banned = [t for t in _names(a) if t in called]
    if banned:
        return AssertionResult(a.type, False, f"tool(s) {banned} were called but must not be", {"called": called})
    return AssertionResult(a.type, True, f"none of {_names(a)} called")


def _matches(actual: Any, expected: Any) -> bool:
    """Expected args are a subset: every expected key present with an equal (or, for strings, equal
    case-insensitively) value."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _matches(actual[k], v) for k, v in expected.items())
    if isinstance(expected, str) and isinstance(actual, str):
        return actual.lower() == expected.lower()
    return actual == expected


def tool_args(a: AssertionSpec, ctx: AssertionContext) -> AssertionResult:
    name = a.params.get("tool") or a.params.get("tool_name") or a.params.get("name")
    expected = a.params.get("args") or a.params.get("expected_args") or a.params.get("arguments") or {}
    calls = [c for c in ctx.tool_calls if name is None or c.name == name]
    if not calls:
        return AssertionResult(a.type, False, f"tool {name!r} was not called")
    if any(_matches(c.args, expected) for c in calls):
        return AssertionResult(a.type, True, f"{name} called with {json.dumps(expected, sort_keys=True)}")
    seen = [c.args for c in calls]
    return AssertionResult(a.type, False, f"{name} never called with {expected}; calls had {seen}", {"calls": seen})


def tool_call_count(a: AssertionSpec, ctx: AssertionContext) -> AssertionResult:
    name = a.params.get("tool") or a.params.get("name")
    count = sum(1 for c in ctx.tool_calls if name is None or c.name == name)
    low = a.params.get("min", a.params.get("count"))
    high = a.params.get("max", a.params.get("count"))
    label = f"{name} call count" if name else "tool call count"
    if low is not None and count < int(low):
        return AssertionResult(a.type, False, f"{label} {count} is below {low}", {"count": count})
    if high is not None and count > int(high):
        return AssertionResult(a.type, False, f"{label} {count} exceeds {high}", {"count": count})
    return AssertionResult(a.type, True, f"{label} {count}", {"count": count})


def tool_call_sequence(a: AssertionSpec, ctx: AssertionContext) -> AssertionResult:
    """The expected tools appear in this order (other calls may come between them)."""
    wanted = patterns_of(a.params, "sequence", "tools")
    called = [c.name for c in ctx.tool_calls]
    position = 0
    for name in called:
        if position < len(wanted) and name == wanted[position]:
            position += 1
    if position == len(wanted):
        return AssertionResult(a.type, True, f"tools called in order {wanted}")
    return AssertionResult(a.type, False, f"expected order {wanted}, calls were {called}", {"called": called})


def no_tool_errors(a: AssertionSpec, ctx: AssertionContext) -> AssertionResult:
    errors = [f"{r.name}: {r.error}" for r in ctx.tool_results if r.error]
    if errors:
        return AssertionResult(a.type, False, f"tool errors: {errors}", {"errors": errors})
    return AssertionResult(a.type, True, "no tool errors")


def tool_result_includes(a: AssertionSpec, ctx: AssertionContext) -> AssertionResult:
    name = a.params.get("tool") or a.params.get("name")
    results = [r.content.lower() for r in ctx.tool_results if name is None or r.name == name]
    wanted = patterns_of(a.params, "patterns", "pattern", "contains", "value")
    missing = [p for p in wanted if not any(p.lower() in text for text in results)]
    if not results:
        return AssertionResult(a.type, False, f"no result from tool {name or '(any)'}")
    if missing:
        return AssertionResult(a.type, False, f"tool results do not include {missing}")
    return AssertionResult(a.type, True, f"tool results include {wanted}")
