"""Every assertion type by name (with upstream aliases), its required params, and how to run one."""

from __future__ import annotations

import inspect
import re
from typing import Any

from ..spec import AssertionSpec
from . import content, guardrails, judge, structured, tools
from .base import AssertionContext, AssertionResult, Check

ASSERTION_TYPES: dict[str, Check] = {
    "contains": content.contains,
    "content_includes": content.contains,
    "contains_any": content.contains_any,
    "content_excludes": content.excludes,
    "content_not_includes": content.excludes,
    "not_contains": content.excludes,
    "regex": content.regex,
    "content_matches": content.regex,
    "min_length": content.min_length,
    "max_length": content.max_length,
    "sentence_count": content.sentence_count,
    "max_latency": content.max_latency,
    "latency": content.max_latency,
    "max_cost": content.max_cost,
    "cost": content.max_cost,
    "json_valid": structured.json_valid,
    "is_valid_json": structured.json_valid,
    "json_schema": structured.json_schema,
    "json_path": structured.json_path,
    "tools_called": tools.tools_called,
    "tool_called": tools.tools_called,
    "tools_not_called": tools.tools_not_called,
    "tool_args": tools.tool_args,
    "tool_call_count": tools.tool_call_count,
    "tool_call_sequence": tools.tool_call_sequence,
    "no_tool_errors": tools.no_tool_errors,
    "tool_result_includes": tools.tool_result_includes,
    "llm_judge": judge.llm_judge,
    "llm_judge_session": judge.llm_judge,
    "llm_judge_conversation": judge.llm_judge,
    "guardrail_triggered": guardrails.guardrail_triggered,
}
WRAPPER = "assertion"
KNOWN_TYPES = frozenset([*ASSERTION_TYPES, WRAPPER])

_ONE_OF: dict[str, tuple[str, ...]] = {
    "contains": content.PATTERN_KEYS,
    "contains_any": content.PATTERN_KEYS,
    "content_excludes": content.PATTERN_KEYS,
    "regex": ("pattern", "regex"),
    "min_length": ("min", "length", "value", "min_length"),
    "max_length": ("max", "length", "value", "max_length"),
    "max_latency": ("max_ms", "max", "value"),
    "max_cost": ("max_usd", "max", "value"),
    "json_schema": ("schema",),
    "json_path": ("jmespath_expression", "expression"),
    "tools_called": ("tools", "tool_names", "tool", "name", "min_calls"),
    "tools_not_called": ("tools", "tool_names", "tool", "name"),
    "tool_call_sequence": ("sequence", "tools"),
    "llm_judge": ("criteria", "prompt"),
    "assertion": ("eval_type",),
}
# Aliases share their canonical type's required params: map each alias to the name _ONE_OF uses.
_CANONICAL = {alias: name for name in _ONE_OF if name in ASSERTION_TYPES
              for alias, check in ASSERTION_TYPES.items() if check is ASSERTION_TYPES[name]}


def required_params(kind: str, params: dict[str, Any]) -> list[str]:
    """Names of params the assertion lacks (one of several accepted names is enough)."""
    if kind == WRAPPER:
        inner = params.get("eval_type")
        if not inner:
            return ["eval_type"]
        if inner not in ASSERTION_TYPES:
            return [f"eval_type (unknown assertion {inner!r})"]
        return required_params(str(inner), params.get("eval_params") or {})
    accepted = _ONE_OF.get(_CANONICAL.get(kind, kind))
    if accepted and not any(params.get(name) is not None for name in accepted):
        return [accepted[0]]
    return []


def _when_holds(a: AssertionSpec, ctx: AssertionContext) -> bool:
    when = a.when
    if when is None:
        return True
    names = [c.name for c in ctx.tool_calls]
    if when.tool_called and when.tool_called not in names:
        return False
    if when.tool_called_pattern and not any(re.search(when.tool_called_pattern, n) for n in names):
        return False
    if when.any_tool_called and not names:
        return False
    return not (when.min_tool_calls is not None and len(names) < when.min_tool_calls)


def _unwrap(a: AssertionSpec) -> AssertionSpec:
    """`type: assertion` wraps another type: {eval_type, eval_params, min_score}."""
    params = a.params
    return AssertionSpec(type=str(params["eval_type"]), params=dict(params.get("eval_params") or {}),
                         message=a.message, when=a.when,
                         min_score=params.get("min_score", a.min_score))


async def evaluate(a: AssertionSpec, ctx: AssertionContext) -> AssertionResult:
    """Run one assertion. A `when` that does not hold skips it (counted as passed, marked skipped)."""
    if not _when_holds(a, ctx):
        return AssertionResult(a.type, True, "skipped: `when` condition not met", skipped=True)
    target = _unwrap(a) if a.type == WRAPPER else a
    result = ASSERTION_TYPES[target.type](target, ctx)
    if inspect.isawaitable(result):
        result = await result
    if a.message and not result.passed:
        result.message = f"{a.message}: {result.message}"
    if a.type == WRAPPER:
        result.type = f"{WRAPPER}:{target.type}"
    return result
