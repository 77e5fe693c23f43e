"""JSON assertions: valid JSON, JSON schema, JMESPath queries over the reply."""

from __future__ import annotations

import json
import re
from typing import Any

import jmespath
import jsonschema

from ..schemas import first_error
from ..spec import AssertionSpec
from .base import AssertionContext, AssertionResult

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)
_NOT_FOUND = object()


def extract_json(text: str, allow_wrapped: bool) -> Any:
    """Parse the reply as JSON; with `allow_wrapped`, also from a code fence or the first {...}/[...] span."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        if not allow_wrapped:
            raise
    fenced = _FENCE.search(text)
    candidates = [fenced.group(1)] if fenced else []
    for opener, closer in (("{", "}"), ("[", "]")):
        start, end = text.find(opener), text.rfind(closer)
        if 0 <= start < end:
            candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    raise json.JSONDecodeError("no JSON found in the response", text, 0)


def _parse(a: AssertionSpec, ctx: AssertionContext) -> tuple[Any, AssertionResult | None]:
    wrapped = bool(a.params.get("allow_wrapped") or a.params.get("extract_json"))
    try:
        return extract_json(ctx.content, wrapped), None
    except json.JSONDecodeError as exc:
        return _NOT_FOUND, AssertionResult(a.type, False, f"response is not valid JSON: {exc.msg}")


def json_valid(a: AssertionSpec, ctx: AssertionContext) -> AssertionResult:
    _, failure = _parse(a, ctx)
    return failure or AssertionResult(a.type, True, "response is valid JSON")


def json_schema(a: AssertionSpec, ctx: AssertionContext) -> AssertionResult:
    value, failure = _parse(a, ctx)
    if failure:
        return failure
    try:
        invalid = first_error(a.params["schema"], value)
    except jsonschema.SchemaError as exc:
        return AssertionResult(a.type, False, f"invalid schema in assertion: {exc.message}")
    if invalid is not None:
        where = "/".join(str(p) for p in invalid.absolute_path) or "(root)"
        return AssertionResult(a.type, False, f"JSON does not match schema at {where}: {invalid.message}")
    return AssertionResult(a.type, True, "JSON matches schema")


def json_path(a: AssertionSpec, ctx: AssertionContext) -> AssertionResult:
    value, failure = _parse(a, ctx)
    if failure:
        return failure
    expression = str(a.params.get("jmespath_expression") or a.params.get("expression"))
    try:
        found = jmespath.search(expression, value)
    except jmespath.exceptions.JMESPathError as exc:
        return AssertionResult(a.type, False, f"invalid JMESPath {expression!r}: {exc}")
    details = {"expression": expression, "value": found}
    params = a.params
    if "expected" in params and found != params["expected"]:
        return AssertionResult(a.type, False, f"{expression} is {found!r}, expected {params['expected']!r}", details)
    if "contains" in params and (found is None or params["contains"] not in found):
        return AssertionResult(a.type, False, f"{expression} ({found!r}) does not contain {params['contains']!r}",
                               details)
    for key, test in (("min", lambda v, b: v >= b), ("max", lambda v, b: v <= b)):
        if key in params:
            if not isinstance(found, int | float):
                return AssertionResult(a.type, False, f"{expression} is {found!r}, not a number", details)
            if not test(found, params[key]):
                return AssertionResult(a.type, False, f"{expression} is {found}, {key} {params[key]}", details)
    if not any(k in params for k in ("expected", "contains", "min", "max")) and found is None:
        return AssertionResult(a.type, False, f"{expression} matched nothing", details)
    return AssertionResult(a.type, True, f"{expression} = {found!r}", details)
