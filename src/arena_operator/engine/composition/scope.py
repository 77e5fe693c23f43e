"""What steps see of each other, as upstream's composition engine: `${input...}` and `${<step>.output...}`
references resolved against a scope, the predicate language of branch steps, and the reducers of parallel
steps. Values are decoded JSON with numbers as floats (Go's float64), and text is what Go would write, so that
outputs, interpolated inputs and comparisons come out as upstream's."""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

from ..assertions.base import go_str
from .model import ORDERED_OPS, Predicate, Reducer

Scope = dict[str, Any]  # "input" → the composition input; a step id → {"output": its decoded output}

REF_ANY = re.compile(r"\$\{\s*([a-zA-Z_][a-zA-Z0-9_]*)[^}]*\}")  # upstream's refRe: any ${…}, its root token
REF_WHOLE = re.compile(r"^\$\{\s*([a-zA-Z_][a-zA-Z0-9_.]*?)\s*\}$")
REF_EMBEDDED = re.compile(r"\$\{\s*[a-zA-Z_][a-zA-Z0-9_.]*?\s*\}")
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_GO_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


class ScopeError(Exception):
    """A reference that does not resolve, or a comparison between values that cannot be compared."""


def ref_roots(value: Any) -> set[str]:
    """The root token (`input` or a step id) of every `${…}` in a string, mapping or list, at any depth."""
    if isinstance(value, str):
        return {m.group(1) for m in REF_ANY.finditer(value)}
    if isinstance(value, dict):
        return set().union(*(ref_roots(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(ref_roots(v) for v in value)) if value else set()
    return set()


def is_whole_ref(value: str) -> bool:
    return REF_WHOLE.match(value) is not None


def _go_float(value: float) -> str:
    """strconv's shortest form as encoding/json picks it: exponent below 1e-6 and from 1e21 (`1e-7`, `1e+21`)."""
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if value != 0 and (abs(value) < 1e-6 or abs(value) >= 1e21):
        return re.sub(r"e-0(\d)$", r"e-\1", repr(value))
    return format(Decimal(repr(value)), "f")


def _go_encode(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"json: unsupported value: {value!r}")
        return _go_float(value)
    if isinstance(value, str):
        return _GO_ESCAPE_RE.sub(lambda m: _GO_ESCAPES[m.group(0)], json.dumps(value, ensure_ascii=False))
    if isinstance(value, dict):
        items = sorted((str(k), v) for k, v in value.items())
        return "{" + ",".join(f"{_go_encode(k)}:{_go_encode(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_go_encode(v) for v in value) + "]"
    return _go_encode(str(value))


def go_json(value: Any) -> str:
    """`json.Marshal` of a decoded value, as Go writes it: compact, map keys sorted, `<`, `>`, `&`, U+2028 and
    U+2029 escaped, floats in Go's shortest form."""
    return _go_encode(value)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_json(text: str) -> tuple[bool, Any]:
    """(True, value) when `text` is one JSON value by Go's rules (no NaN/Infinity), numbers as floats."""
    try:
        return True, json.loads(text, parse_int=float, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return False, None


def composition_input(text: str) -> Any:
    """The composition's input from the user's message (upstream's compositionInput): a JSON object or array is
    used as a value, any other text (a bare `42` too) as a string."""
    stripped = text.strip()
    if stripped[:1] in ("{", "[") and (found := decode_json(stripped))[0]:
        return found[1]
    return text


def step_text(resolved: Any) -> str:
    """A step's user message from its resolved input: a string as it is, nothing for null, else compact JSON."""
    if resolved is None:
        return ""
    return resolved if isinstance(resolved, str) else go_json(resolved)


def resolve_path(ref: str, scope: Scope) -> tuple[bool, Any]:
    """(found, value) of a whole-string `${a.b.c}` reference, walking mappings only."""
    match = REF_WHOLE.match(ref)
    if match is None:
        return False, None
    current: Any = scope
    for segment in match.group(1).split("."):
        if not isinstance(current, dict) or segment not in current:
            return False, None
        current = current[segment]
    return True, current


def _resolve_string(value: str, scope: Scope) -> Any:
    if is_whole_ref(value):
        found, resolved = resolve_path(value, scope)
        if not found:
            raise ScopeError(f"unresolved reference {value!r}")
        return resolved
    missing: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        found, resolved = resolve_path(match.group(0), scope)
        if not found:
            missing.append(match.group(0))
            return match.group(0)
        return go_str(resolved)

    out = REF_EMBEDDED.sub(substitute, value)
    if missing:
        raise ScopeError("; ".join(f"unresolved reference {ref!r}" for ref in missing))
    return out


def resolve_input(value: Any, scope: Scope) -> Any:
    """A step's input or args with references resolved: a whole `${…}` keeps the value's type, references inside
    longer text are interpolated as Go prints them, mappings and lists are resolved item by item."""
    if isinstance(value, str):
        return _resolve_string(value, scope)
    if isinstance(value, dict):
        return {str(k): resolve_input(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_input(v, scope) for v in value]
    return value


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def json_equal(left: Any, right: Any) -> bool:
    """Upstream's jsonEqual: numbers compare numerically, everything else deeply (a bool is never a number; in Go
    both sides of a nested comparison are float64 too)."""
    a, b = _number(left), _number(right)
    if a is not None and b is not None:
        return a == b
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(json_equal(x, y) for x, y in zip(left, right, strict=True))
    return type(left) is type(right) and left == right


def evaluate(predicate: Predicate, scope: Scope) -> bool:
    """Whether a branch predicate holds; raises ScopeError for an ordered comparison of non-numbers."""
    if predicate.all_of is not None:
        return all(evaluate(p, scope) for p in predicate.all_of)
    if predicate.any_of is not None:
        return any(evaluate(p, scope) for p in predicate.any_of)
    if predicate.not_ is not None:
        return not evaluate(predicate.not_, scope)
    found, actual = resolve_path(predicate.path, scope)
    if predicate.exists is not None:
        return found == predicate.exists
    op, wanted = predicate.op, predicate.value
    if op in ("equals", "not_equals"):
        return json_equal(actual, wanted) == (op == "equals")
    if op in ("in", "not_in"):
        if not isinstance(wanted, list):
            raise ScopeError(f"{op} requires a list value")
        return any(json_equal(actual, item) for item in wanted) == (op == "in")
    if op in ORDERED_OPS:
        a, b = _number(actual), _number(wanted)
        if a is None or b is None:
            raise ScopeError(f"ordered comparison {op!r} of {predicate.path} requires numbers, got "
                             f"{go_str(actual)!r} and {go_str(wanted)!r}")
        return {"less_than": a < b, "less_than_or_equals": a <= b, "greater_than": a > b,
                "greater_than_or_equals": a >= b}[op]
    raise ScopeError(f"unknown predicate op {op!r}")


def reduce(reducer: Reducer, outputs: list[tuple[str, Any]]) -> Any:
    """Parallel branch outputs (id, output) in branch order merged: barrier → {id: output}, append → [outputs],
    replace → the last branch's output."""
    if reducer.strategy == "barrier":
        return dict(outputs)
    if reducer.strategy == "append":
        return [output for _, output in outputs]
    return outputs[-1][1] if outputs else None
