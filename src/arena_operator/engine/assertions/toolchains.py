"""Tool-pattern evals: dependency chains with per-step checks, per-call argument/result rules, anti-patterns,
repeats, efficiency and fields a tool's arguments must keep across calls."""

from __future__ import annotations

import itertools
import re
from typing import Any

from ..goregex import compile_go
from .base import (
    EvalContext,
    Score,
    ToolCallRecord,
    flag,
    go_str,
    integer,
    mapping,
    number,
    ratio,
    scored,
    str_list,
    text,
)
from .tools import result_text, subsequence


def _regex_fails(pattern: str, value: str) -> str | None:
    """None when `pattern` matches `value`; else why not."""
    try:
        return None if compile_go(pattern).search(value) else "does not match pattern"
    except re.error as exc:
        return f"invalid regex {pattern!r}: {exc}"


def _step_failure(call: ToolCallRecord, step: dict[str, Any]) -> str | None:
    if flag(step, "no_error") and call.error:
        return f"unexpected error: {call.error}"
    result = result_text(call.result)
    missing = next((p for p in str_list(step, "result_includes") if p.lower() not in result.lower()), None)
    if missing is not None:
        return f"result missing pattern {missing!r}"
    if text(step, "result_matches") and (why := _regex_fails(text(step, "result_matches"), result)):
        return f"result {why}"
    for arg, pattern in mapping(step, "args_match").items():
        if not isinstance(pattern, str):
            continue
        if arg not in call.args:
            return f"missing argument {arg!r}"
        if why := _regex_fails(pattern, go_str(call.args[arg])):
            return f"argument {arg!r} {why}"
    return None


def tool_call_chain(params: dict, ctx: EvalContext) -> Score:
    """The `steps` happen in order (other calls may come between); each matched call must pass its step."""
    raw = params.get("steps")
    steps = [s for s in raw if isinstance(s, dict)] if isinstance(raw, list) else []
    if not steps:
        return scored(True, "empty chain always passes")
    done = 0
    for call in ctx.tool_calls:
        if done >= len(steps):
            break
        if call.name != text(steps[done], "tool"):
            continue
        if failure := _step_failure(call, steps[done]):
            return Score(ratio(done, len(steps)), f"step {done} ({call.name}): {failure}")
        done += 1
    if done < len(steps):
        return Score(ratio(done, len(steps)), f"chain incomplete: satisfied {done}/{len(steps)} steps, "
                     f"missing {text(steps[done], 'tool')!r}")
    return scored(True, "chain fully satisfied")


def tool_calls_with_args(params: dict, ctx: EvalContext) -> Score:
    """Every call of `tool_name` (every call when unset) must satisfy all of the given constraints."""
    name = text(params, "tool_name")
    calls = [c for c in ctx.tool_calls if not name or c.name == name]
    if name and not calls:
        return scored(False, f"tool {name!r} was not called")
    violations: list[str] = []
    for call in calls:
        for arg, want in mapping(params, "expected_args").items():
            if arg not in call.args:
                violations.append(f"{call.name}: missing argument {arg!r}")
            elif want is not None and go_str(call.args[arg]) != go_str(want):
                violations.append(f"{call.name}: {arg}={go_str(call.args[arg])}, expected {go_str(want)}")
        for arg, pattern in mapping(params, "args_match").items():
            if not isinstance(pattern, str):
                continue
            if arg not in call.args:
                violations.append(f"{call.name}: missing argument {arg!r} for pattern")
            elif why := _regex_fails(pattern, go_str(call.args[arg])):
                violations.append(f"{call.name}: argument {arg!r} {why}")
        violations.extend(f"{call.name}: {v}" for v in _result_violations(params, call))
    explanation = f"{len(calls)} matching call(s), {len(violations)} violation(s)"
    if violations:
        explanation += ": " + "; ".join(violations)
    return scored(not violations, explanation, violations=violations)


def _result_violations(params: dict[str, Any], call: ToolCallRecord) -> list[str]:
    out = []
    if flag(params, "no_error") and call.error:
        out.append(f"tool error {call.error}")
    result = result_text(call.result)
    out.extend(f"result missing {p!r}" for p in str_list(params, "result_includes") if p.lower() not in result.lower())
    if text(params, "result_matches") and (why := _regex_fails(text(params, "result_matches"), result)):
        out.append(f"result {why}")
    return out


def tool_anti_pattern(params: dict, ctx: EvalContext) -> Score:
    raw = params.get("patterns")
    patterns = [p for p in raw if isinstance(p, dict) and str_list(p, "sequence")] if isinstance(raw, list) else []
    if not patterns:
        return scored(True, "no anti-patterns specified")
    called = [c.name for c in ctx.tool_calls]
    hits = []
    for pattern in patterns:
        sequence = str_list(pattern, "sequence")
        if subsequence(called, sequence) >= len(sequence):
            message = text(pattern, "message")
            hits.append(f"[{' → '.join(sequence)}]" + (f": {message}" if message else ""))
    if hits:
        return scored(False, f"found {len(hits)} anti-pattern(s): {'; '.join(hits)}")
    return scored(True, f"none of {len(patterns)} anti-patterns detected")


def tool_no_repeat(params: dict, ctx: EvalContext) -> Score:
    """No tool called more than `max_repeats` (default 1) times in a row; `tools` limits which are checked."""
    scope = set(str_list(params, "tools"))
    limit = integer(params, "max_repeats", 1)
    calls, streak, hits = ctx.tool_calls, 1, []
    for previous, call in itertools.pairwise(calls):
        streak = streak + 1 if call.name == previous.name else 1
        if streak > limit and (not scope or call.name in scope):  # type: ignore[operator]
            hits.append(f"{call.name}({streak}x)")
    if hits:
        return scored(False, f"repeated tool calls detected (max {limit}): {', '.join(hits)}")
    return scored(True, f"no tool called more than {limit} time(s) consecutively")


def tool_efficiency(params: dict, ctx: EvalContext) -> Score:
    most_calls, most_errors = integer(params, "max_calls"), integer(params, "max_errors")
    worst_rate = number(params, "max_error_rate")
    if most_calls is None and most_errors is None and worst_rate is None:
        return scored(False, "no efficiency thresholds specified (need max_calls, max_errors, or max_error_rate)")
    calls = ctx.tool_calls
    total, errors = len(calls), sum(1 for c in calls if c.error)
    rate = errors / total if total else 0.0
    failures = []
    if most_calls is not None and total > most_calls:
        failures.append(f"too many calls: {total} (max {most_calls})")
    if most_errors is not None and errors > most_errors:
        failures.append(f"too many errors: {errors} (max {most_errors})")
    if worst_rate is not None and total and rate > worst_rate:
        failures.append(f"error rate {rate * 100:.1f}% exceeds max {worst_rate * 100:.1f}%")
    details = {"total_calls": total, "errors": errors}
    if failures:
        return Score(0.0, f"efficiency check failed: {failures}", details)
    score = max(0.0, 1.0 - total / most_calls) if most_calls else 1.0
    return Score(score, f"{total} calls, {errors} errors — within limits", details)


def invariant_fields_preserved(params: dict, ctx: EvalContext) -> Score:
    """Once a call of `tool` carries a field, every later call of it must carry it too."""
    tool, fields = text(params, "tool"), str_list(params, "fields")
    if not tool or not fields:
        return scored(False, "both 'tool' and 'fields' params are required")
    calls = [c.args for c in ctx.tool_calls if c.name == tool]
    if len(calls) < 2:
        return scored(True, f"fewer than 2 calls to {tool!r} — nothing to compare")
    lost = []
    for field in fields:
        seen = False
        for i, args in enumerate(calls):
            if field in args:
                seen = True
            elif seen:
                lost.append(f"field {field!r} lost at call {i}")
                break
    score = ratio(len(fields) - len(lost), len(fields))
    if lost:
        return Score(score, f"{len(lost)} field(s) lost: {'; '.join(lost)}")
    return Score(score, f"all {len(fields)} tracked field(s) preserved across {len(calls)} calls to {tool!r}")
