"""Tool evals over every tool call of the transcript so far: which were called, how often, with which
arguments, what they returned, in which order. Arguments compare as upstream does: as Go `%v` strings."""

from __future__ import annotations

import json
import re
from typing import Any

from ..goregex import compile_go
from .base import EvalContext, Score, ToolCallRecord, flag, go_str, integer, mapping, ratio, scored, str_list, text


def result_text(result: Any) -> str:
    """A tool result as upstream's assertions read it: text as is, content parts flattened, else JSON."""
    if isinstance(result, str):
        return result
    if result is None:
        return ""
    if isinstance(result, list) and all(isinstance(p, dict) and "type" in p for p in result):
        out = []
        for part in result:
            if isinstance(part.get("text"), str):
                out.append(part["text"])
            elif isinstance(part.get("media"), dict):
                out.append(f"[{part['type']}:{part['media'].get('mime_type', '')}]")
        return "".join(out)
    return json.dumps(result, separators=(",", ":"))


def _names(params: dict[str, Any]) -> list[str]:
    return str_list(params, "tool_names") or str_list(params, "tools")


def _counted(call: ToolCallRecord, ignore_validation: bool, require_args: bool) -> bool:
    if call.error and not (ignore_validation and call.error_type == "validation"):
        return False
    return not (require_args and not call.args)


def tools_called(params: dict, ctx: EvalContext) -> Score:
    wanted = _names(params)
    if not wanted:
        return scored(False, "no tool_names specified")
    low, high = integer(params, "min_calls", 1), integer(params, "max_calls", -1)
    ignore, require = flag(params, "ignore_validation"), flag(params, "require_args")
    counts: dict[str, int] = {}
    for call in ctx.tool_calls:
        if _counted(call, ignore, require):
            counts[call.name] = counts.get(call.name, 0) + 1
    missing = [f"{n} (called {counts.get(n, 0)}, need {low})" for n in wanted if counts.get(n, 0) < low]  # type: ignore[operator]
    over = [f"{n} (called {counts[n]}, max {high})" for n in wanted if high >= 0 and counts.get(n, 0) > high]  # type: ignore[operator]
    parts = ([f"not called enough: {', '.join(missing)}"] if missing else []) + (
        [f"called too many times: {', '.join(over)}"] if over else [])
    explanation = "tools " + "; ".join(parts) if parts else "all expected tools were called within bounds"
    score = 0.0 if over else ratio(len(wanted) - len(missing), len(wanted))
    return Score(score, explanation, {"called": counts})


def tools_not_called(params: dict, ctx: EvalContext) -> Score:
    banned = _names(params)
    if not banned:
        return scored(False, "no tool_names specified")
    called = list(dict.fromkeys(c.name for c in ctx.tool_calls if c.name in banned))
    if called:
        return scored(False, f"forbidden tools were called: {', '.join(called)}", forbidden_called=called)
    return scored(True, "none of the forbidden tools were called")


def tools_called_session(params: dict, ctx: EvalContext) -> Score:
    wanted = _names(params)
    low = integer(params, "min_calls", 1) or 1
    low = low if low > 0 else 1
    counts: dict[str, int] = {}
    for call in ctx.tool_calls:
        counts[call.name] = counts.get(call.name, 0) + 1
    missing = [f"{n} (got {counts.get(n, 0)}, need {low})" for n in wanted if counts.get(n, 0) < low]
    score = ratio(len(wanted) - len(missing), len(wanted))
    if missing:
        return Score(score, f"missing required tools: {'; '.join(missing)}")
    return Score(score, "all required tools were called")


def tools_not_called_session(params: dict, ctx: EvalContext) -> Score:
    banned = set(_names(params))
    found = [f"{c.name} at turn {c.index}" for c in ctx.tool_calls if c.name in banned]
    if found:
        return scored(False, f"forbidden tools were called: {'; '.join(found)}")
    return scored(True, "no forbidden tools called")


def args_match(actual: dict[str, Any], expected: dict[str, Any]) -> bool:
    return all(k in actual and go_str(actual[k]) == go_str(v) for k, v in expected.items())


def tool_args(params: dict, ctx: EvalContext) -> Score:
    name, expected, warnings = text(params, "tool_name"), mapping(params, "expected_args"), []
    if not name and text(params, "tool"):  # arena-operator's spelling before upstream parity
        name, expected = text(params, "tool"), mapping(params, "args") or expected
        warnings.append("upstream reads params.tool_name and params.expected_args (it would fail this assertion)")
    result = _tool_args(name, expected, ctx)
    result.warnings.extend(warnings)
    return result


def _tool_args(name: str, expected: dict[str, Any], ctx: EvalContext) -> Score:
    if not name:
        return scored(False, "no tool_name specified")
    if not expected:
        return scored(False, "no expected_args specified")
    calls = [c for c in ctx.tool_calls if c.name == name]
    if not calls:
        return scored(False, f"tool {name!r} was not called")
    if any(args_match(c.args, expected) for c in calls):
        return scored(True, f"tool {name!r} called with expected args")
    last = calls[-1].args
    violations = [f"missing arg {k!r}" if k not in last else f"arg {k!r}: got {go_str(last[k])}, want {go_str(v)}"
                  for k, v in expected.items() if k not in last or go_str(last[k]) != go_str(v)]
    return scored(False, f"tool {name!r} args mismatch: {'; '.join(violations)}", calls=[c.args for c in calls])


def tool_args_session(params: dict, ctx: EvalContext) -> Score:
    name, expected = text(params, "tool_name"), mapping(params, "expected_args")
    if not name:
        return scored(False, "tool_name parameter is required")
    if not expected:
        return scored(True, "no expected_args to check")
    calls = [c for c in ctx.tool_calls if c.name == name]
    if any(args_match(c.args, expected) for c in calls):
        return scored(True, f"{name} was called with expected args")
    if not calls:
        return scored(False, f"tool {name!r} was never called")
    seen = "; ".join(f"turn {c.index}: args={go_str(c.args)}" for c in calls)
    return scored(False, f"{name} called but args did not match: {seen}")


def _forbidden_args(params: dict[str, Any]) -> dict[str, set[str]]:
    excluded = mapping(params, "excluded_args")
    if excluded:
        return {k: {go_str(v)} for k, v in excluded.items()}
    forbidden = mapping(params, "forbidden_args")
    return {k: ({go_str(x) for x in v} if isinstance(v, list) else {go_str(v)}) for k, v in forbidden.items()}


def tool_args_excluded_session(params: dict, ctx: EvalContext) -> Score:
    name, forbidden = text(params, "tool_name"), _forbidden_args(params)
    if not name:
        return scored(False, "tool_name parameter is required")
    if not forbidden:
        return scored(True, "no excluded_args to check")
    found = [f"turn {c.index}: {k}={go_str(c.args[k])}" for c in ctx.tool_calls if c.name == name
             for k, values in forbidden.items() if k in c.args and go_str(c.args[k]) in values]
    if found:
        return scored(False, f"excluded args found: {'; '.join(found)}")
    return scored(True, "no excluded args detected")


def no_tool_errors(params: dict, ctx: EvalContext) -> Score:
    scope = set(str_list(params, "tools"))
    calls = ctx.tool_calls
    errors = [f"{c.name}: {c.error}" for c in calls if c.error and (not scope or c.name in scope)]
    if errors:
        return Score(max(0.0, 1.0 - len(errors) / len(calls)), f"tool errors found: {'; '.join(errors)}",
                     {"errors": errors})
    return scored(True, "no tool errors found")


def tool_call_count(params: dict, ctx: EvalContext) -> Score:
    name = text(params, "tool")
    low, high = integer(params, "min", -1), integer(params, "max", -1)
    count = sum(1 for c in ctx.tool_calls if not name or c.name == name)
    if low is not None and low != -1 and count < low:
        return scored(False, f"expected at least {low} call(s), got {count}", count=count)
    if high is not None and high != -1 and count > high:
        return scored(False, f"expected at most {high} call(s), got {count}", count=count)
    return scored(True, f"tool call count {count} is within bounds", count=count)


def _matching(ctx: EvalContext, tool: str) -> list[ToolCallRecord]:
    return [c for c in ctx.tool_calls if not tool or c.name == tool]


def tool_result_includes(params: dict, ctx: EvalContext) -> Score:
    patterns, need = str_list(params, "patterns"), integer(params, "occurrence", 1) or 0
    if not patterns:
        return scored(False, "no patterns specified")
    matches = sum(1 for c in _matching(ctx, text(params, "tool"))
                  if all(p.lower() in result_text(c.result).lower() for p in patterns))
    verb = "" if matches >= need else "only "
    return scored(matches >= need, f"{verb}{matches} call(s) matched all patterns (required: {need})")


def tool_result_matches(params: dict, ctx: EvalContext) -> Score:
    pattern, need = text(params, "pattern"), integer(params, "occurrence", 1) or 0
    if not pattern:
        return scored(False, "no pattern specified")
    try:
        compiled = compile_go(pattern)
    except re.error as exc:
        return scored(False, f"invalid regex: {exc}")
    matches = sum(1 for c in _matching(ctx, text(params, "tool")) if compiled.search(result_text(c.result)))
    verb = "" if matches >= need else "only "
    return scored(matches >= need, f"{verb}{matches} call(s) matched pattern (required: {need})")


def subsequence(names: list[str], sequence: list[str]) -> int:
    """How many steps of `sequence` appear, in order, in `names` (other calls may come between)."""
    matched = 0
    for name in names:
        if matched < len(sequence) and name == sequence[matched]:
            matched += 1
    return matched


def tool_call_sequence(params: dict, ctx: EvalContext) -> Score:
    sequence = str_list(params, "sequence")
    if not sequence:
        return scored(True, "empty sequence always passes")
    called = [c.name for c in ctx.tool_calls]
    matched = subsequence(called, sequence)
    if matched < len(sequence):
        return Score(ratio(matched, len(sequence)), f"sequence incomplete: matched {matched}/{len(sequence)}, "
                     f"missing {sequence[matched]!r}; calls were {called}", {"actual_tools": called})
    return scored(True, f"sequence [{' → '.join(sequence)}] fully matched")
