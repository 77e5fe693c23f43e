"""JSON evals on the last reply: valid JSON, a JSON schema, JMESPath queries (upstream's extraction rules)."""

from __future__ import annotations

import json
import re
from typing import Any

import jmespath
import jsonschema

from ..schemas import first_error
from .base import EvalContext, Score, flag, integer, is_number, number, scored, text

_FENCE = re.compile(r"```(?:json)?\s*\n([\s\S]*?)\n```")
_LEGACY_SPAN = (("{", "}"), ("[", "]"))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON literal {name}")


def parse_json(value: str) -> Any:
    """json.loads as strict as Go's encoding/json (no NaN/Infinity)."""
    return json.loads(value, parse_constant=_reject_constant)


def _balanced(content: str, opener: str, closer: str) -> str:
    depth, in_string, escaped = 0, False, False
    for i, ch in enumerate(content):
        if escaped:
            escaped = False
        elif ch == "\\" and in_string:
            escaped = True
        elif ch == '"':
            in_string = not in_string
        elif ch == opener and not in_string:
            depth += 1
        elif ch == closer and not in_string:
            depth -= 1
        if depth == 0 and not in_string and i > 0:
            return content[: i + 1]
    return ""


def extract_json(content: str, allow_wrapped: bool, extract: bool) -> str:
    """Upstream: `allow_wrapped` unwraps a ``` fence, `extract_json` takes the first balanced {…} then […]."""
    if allow_wrapped and (fenced := _FENCE.search(content)):
        return fenced.group(1).strip()
    if extract:
        for opener, closer in _LEGACY_SPAN:
            start = content.find(opener)
            if start >= 0 and (found := _balanced(content[start:], opener, closer)):
                return found
    return ""


def _legacy_span(content: str) -> Any:
    """arena-operator before upstream parity also read `allow_wrapped` as "the first {…} or […] span"."""
    for opener, closer in _LEGACY_SPAN:
        start, end = content.find(opener), content.rfind(closer)
        if 0 <= start < end:
            try:
                return parse_json(content[start : end + 1])
            except ValueError:
                continue
    raise ValueError("no JSON found")


_NOT_JSON = object()


def load_reply(params: dict[str, Any], ctx: EvalContext) -> tuple[Any, str, list[str]]:
    """(value or _NOT_JSON, parse error, warnings) of the last reply as the handler's params say to read it."""
    wrapped, extract = flag(params, "allow_wrapped"), flag(params, "extract_json")
    content = ctx.current_output
    if wrapped or extract:
        content = extract_json(content, wrapped, extract) or content
    try:
        return parse_json(content), "", []
    except ValueError as exc:
        error = str(exc)
    if wrapped and not extract:
        try:
            value = _legacy_span(ctx.current_output)
        except ValueError:
            return _NOT_JSON, error, []
        return value, "", ["upstream's allow_wrapped only unwraps a ``` fence and would fail this reply; "
                           "add extract_json: true to read JSON embedded in text"]
    return _NOT_JSON, error, []


def json_valid(params: dict, ctx: EvalContext) -> Score:
    value, error, warnings = load_reply(params, ctx)
    result = scored(False, f"invalid JSON: {error}") if value is _NOT_JSON else scored(True, "output is valid JSON")
    result.warnings.extend(warnings)
    return result


def json_schema(params: dict, ctx: EvalContext) -> Score:
    schema = params.get("schema")
    if not isinstance(schema, dict) or not schema:
        return scored(False, "no schema provided")
    value, error, warnings = load_reply(params, ctx)
    if value is _NOT_JSON:
        return scored(False, f"output is not valid JSON: {error}")
    try:
        invalid = first_error(schema, value)
    except jsonschema.SchemaError as exc:
        # As upstream: a schema that cannot be compiled yields no score, which the assertion wrapper passes.
        return Score(None, f"schema validation error: {exc.message}", error=f"schema validation error: {exc.message}",
                     warnings=[*warnings, "the schema is invalid; upstream passes such an assertion"])
    if invalid is not None:
        where = "/".join(str(p) for p in invalid.absolute_path) or "(root)"
        return Score(0.0, f"schema violations: {where}: {invalid.message}", warnings=warnings)
    return Score(1.0, "output matches JSON schema", warnings=warnings)


def json_equal(a: Any, b: Any) -> bool:
    """Go's jsonCompareValues: numbers by value, lists and maps element-wise, anything else by ==."""
    if a is None or b is None:
        return a is None and b is None
    if is_number(a) and is_number(b):
        return float(a) == float(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return len(a) == len(b) and all(json_equal(v, b.get(k)) for k, v in a.items())
    return type(a) is type(b) and a == b


def json_path(params: dict, ctx: EvalContext) -> Score:
    expression = text(params, "expression") or text(params, "jmespath_expression")
    if not expression:
        return scored(False, "no expression specified")
    value, error, warnings = load_reply(params, ctx)
    if value is _NOT_JSON:
        return scored(False, f"invalid JSON: {error}")
    try:
        found = jmespath.search(expression, value)
    except jmespath.exceptions.JMESPathError as exc:
        return scored(False, f"JMESPath error: {exc}", expression=expression)
    result = _check_path(params, found)
    result.details.setdefault("result", found)
    result.warnings.extend(warnings)
    return result


def _check_path(params: dict[str, Any], found: Any) -> Score:
    if "expected" in params and not json_equal(found, params["expected"]):
        return scored(False, "result does not match expected value", expected=params["expected"], actual=found)
    if "contains" in params:
        wanted = params["contains"]
        if not isinstance(found, list):
            return scored(False, "result is not an array, cannot check contains")
        if not isinstance(wanted, list):
            return scored(False, "contains parameter must be an array")
        missing = next((w for w in wanted if not any(json_equal(item, w) for item in found)), _NOT_JSON)
        if missing is not _NOT_JSON:
            return scored(False, f"expected item {missing!r} not found in result")
    low, high = number(params, "min"), number(params, "max")
    if low is not None or high is not None:
        if not is_number(found):
            return scored(False, "result is not a number for range check")
        if low is not None and found < low:
            return scored(False, f"value {found:.2f} is below minimum {low:.2f}")
        if high is not None and found > high:
            return scored(False, f"value {found:.2f} exceeds maximum {high:.2f}")
    fewest, most = integer(params, "min_results", 0) or 0, integer(params, "max_results", 0) or 0
    if fewest or most:
        if not isinstance(found, list):
            return scored(False, "result is not an array for count check")
        if fewest > 0 and len(found) < fewest:
            return scored(False, f"array has {len(found)} items, minimum is {fewest}")
        if most > 0 and len(found) > most:
            return scored(False, f"array has {len(found)} items, maximum is {most}")
    return scored(True, "JSON path validation passed")
