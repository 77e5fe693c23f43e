"""Every assertion type by name (upstream's types and aliases), the `assertion`/`guardrail` wrappers, how an
assertion turns a score into pass/fail, and the load-time checks of types and params.

As upstream, every scenario assertion is wrapped: `params.min_score`/`params.max_score` (or the wrapper's)
decide; with neither, a score of 1.0 is needed; an eval that could not score passes. Params reach the eval as
written (aliases such as `banned_words` or `max_sentences` get no param translation in scenarios, as upstream).
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..spec import AssertionSpec, Validator
from .base import AssertionResult, EvalContext, Score, number, tool_call_records
from .catalog import ALIASES, EVAL_TYPES, EXTENSION_ALIASES, EXTENSIONS, PASS_WITHOUT_TOOL, TOOL_PARAMS, EvalType
from .content import content_excludes_partial, max_length_partial
from .guardrails import Guardrail, compile_guardrail

WRAPPERS = ("assertion", "guardrail")
THRESHOLDS = ("min_score", "max_score")
BY_NAME: dict[str, EvalType] = {e.name: e for e in (*EVAL_TYPES, *EXTENSIONS)}
ALL_ALIASES = {**ALIASES, **EXTENSION_ALIASES}
EVAL_NAMES = frozenset([*BY_NAME, *ALL_ALIASES])
KNOWN_TYPES = frozenset([*EVAL_NAMES, *WRAPPERS])
STREAMABLE = {"content_excludes": content_excludes_partial, "max_length": max_length_partial}


def resolve(name: str) -> EvalType:
    return BY_NAME[ALL_ALIASES.get(name, name)]


def suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass
class Resolved:
    """What an assertion evaluates: the eval, its params, the thresholds, and notes about legacy spellings."""

    type: str
    params: dict[str, Any]
    low: float | None
    high: float | None
    warnings: list[str] = field(default_factory=list)


def unwrap(a: AssertionSpec) -> Resolved:
    params = dict(a.params)
    low, high = number(params, "min_score"), number(params, "max_score")
    inner = {k: v for k, v in params.items() if k not in THRESHOLDS}
    kind = a.type
    while kind in WRAPPERS:  # a wrapper's eval_params are the inner eval's params
        kind = str(inner.get("eval_type") or "")
        inner = dict(inner["eval_params"]) if isinstance(inner.get("eval_params"), dict) else {}
    warnings = []
    for attr, key in ((a.min_score, "min_score"), (a.max_score, "max_score")):
        if attr is not None and number(params, key) is None:
            warnings.append(f"{key} next to `type` is not upstream's schema (put it under params)")
            low, high = (float(attr), high) if key == "min_score" else (low, float(attr))
    return Resolved(kind, inner, low, high, warnings)


def passes(score: float | None, low: float | None, high: float | None) -> bool:
    if score is None:
        return True
    if low is None and high is None:
        low = 1.0
    return (low is None or score >= low) and (high is None or score <= high)


def when_skip_reason(a: AssertionSpec, ctx: EvalContext) -> str:
    """Why `when` does not hold ("" when it does), on this turn's tool calls (the whole run's for conversations)."""
    when = a.when
    if when is None:
        return ""
    scope = ctx.turn_messages if ctx.scope == "turn" and ctx.turn_messages else ctx.messages
    names = [c.name for c in tool_call_records(scope)]
    if when.any_tool_called and not names:
        return "no tool calls in turn"
    if when.tool_called and when.tool_called not in names:
        return f"tool {when.tool_called!r} not called"
    if when.tool_called_pattern:
        try:
            if not any(re.search(when.tool_called_pattern, n) for n in names):
                return f"no tool matching pattern {when.tool_called_pattern!r}"
        except re.error as exc:
            return f"invalid tool_called_pattern: {exc}"
    if when.min_tool_calls and len(names) < when.min_tool_calls:
        return f"only {len(names)} tool call(s), need {when.min_tool_calls}"
    return ""


async def evaluate(a: AssertionSpec, ctx: EvalContext) -> AssertionResult:
    """Run one assertion. A `when` that does not hold skips it (passed, marked skipped)."""
    label = f"assertion:{unwrap(a).type}" if a.type in WRAPPERS else a.type
    reason = when_skip_reason(a, ctx)
    if reason:
        return AssertionResult(label, True, f"skipped: {reason}", skipped=True)
    target = unwrap(a)
    try:
        score = await run_eval(target.type, target.params, ctx)
    except Exception as exc:
        score = Score(0.0, f"eval error: {type(exc).__name__}: {exc}", error=str(exc))
    passed = passes(score.score, target.low, target.high)
    if score.score is None and score.error:
        target.warnings.append(f"the eval could not score ({score.error}); upstream passes it")
    message = score.explanation or ("passed" if passed else "failed")
    if a.message and not passed:
        message = f"{a.message}: {message}"
    warnings = [*target.warnings, *score.warnings]
    if warnings:
        message += "".join(f" [upstream-compat: {w}]" for w in warnings)
    details = dict(score.details)
    if score.error:
        details["error"] = score.error
    return AssertionResult(label, passed, message, details, score.score, score.skipped, warnings)


async def run_eval(kind: str, params: dict[str, Any], ctx: EvalContext) -> Score:
    result = resolve(kind).run(params, ctx)
    return await result if inspect.isawaitable(result) else result  # type: ignore[return-value]


def guardrail_for(validator: Validator) -> Guardrail:
    """A prompt validator compiled into a guardrail (the loader has checked its type)."""
    eval_type = resolve(validator.type)
    return compile_guardrail(validator.type, dict(validator.params), validator.message or "", eval_type.run,
                             STREAMABLE.get(eval_type.name))


# ---------------------------------------------------------------------------------------------------------
# Load-time checks


def type_problem(kind: str) -> str | None:
    if kind in KNOWN_TYPES:
        return None
    return f"unknown assertion {kind!r}{suggest(kind, KNOWN_TYPES)}"


def param_problems(a: AssertionSpec) -> tuple[list[str], list[str]]:
    """(errors, warnings) about an assertion's params. Errors: a wrapper without a known eval_type. Warnings
    (upstream loads the bundle, and the eval fails or ignores the param at run time): a missing required param,
    an unknown param (with a suggestion), a scalar where upstream reads a list."""
    errors: list[str] = []
    warnings: list[str] = []
    if a.type in WRAPPERS:
        inner = a.params.get("eval_type")
        if not inner:
            return [f"assertion {a.type!r} needs params.eval_type"], []
        if str(inner) not in EVAL_NAMES:
            return [f"params.eval_type: unknown assertion {inner!r}{suggest(str(inner), EVAL_NAMES)}"], []
        kind, params = str(inner), a.params.get("eval_params") or {}
        if not isinstance(params, dict):
            return ["params.eval_params must be a mapping"], []
        where = "params.eval_params"
    else:
        kind, params, where = a.type, a.params, "params"
    spec = resolve(kind)
    for alternatives in spec.required:
        if not any(params.get(name) is not None for name in alternatives):
            warnings.append(f"assertion {kind!r} needs {where}.{' or '.join(alternatives)} "
                            "(without it upstream scores 0: the assertion fails)")
    known = set(spec.params) | set(THRESHOLDS) | {"message"}  # upstream examples often put it here
    for name, value in params.items():
        if name in _LEGACY.get(spec.name, {}) and _LEGACY[spec.name][name] not in params:
            warnings.append(f"{where}.{name}: upstream reads {_LEGACY[spec.name][name]} (arena-operator accepts "
                            f"{name}; upstream would fail this assertion)")
        elif name not in known:
            warnings.append(f"{where}.{name}: {kind!r} does not read this param{suggest(str(name), spec.params)}")
        elif isinstance(value, str) and name in _LIST_PARAMS:
            warnings.append(f"{where}.{name}: upstream reads a list here; a single string counts as none")
    return errors, warnings


# arena-operator's spellings before upstream parity, still read (with a warning) where upstream reads another.
_LEGACY: dict[str, dict[str, str]] = {"tool_args": {"tool": "tool_name", "args": "expected_args"}}
_LIST_PARAMS = frozenset({"patterns", "tools", "tool_names", "fields", "sequence", "agents", "formats",
                          "skill_names", "contexts", "presets", "expected_tools", "baseline_tools"})


@dataclass(frozen=True)
class ToolReference:
    path: list[str | int]  # under the assertion
    tool: str
    effect: str  # what an unknown tool does to the assertion: "never passes", "always passes", "always skipped"


def tool_references(a: AssertionSpec) -> Iterator[ToolReference]:
    """Every tool an assertion names: its params (inside a wrapper's eval_params) by TOOL_PARAMS, and
    `when.tool_called`. Values of the wrong shape are the param checks' business."""
    if a.when is not None and isinstance(a.when.tool_called, str) and a.when.tool_called:
        yield ToolReference(["when", "tool_called"], a.when.tool_called, "always skipped")
    target = unwrap(a)
    if target.type not in EVAL_NAMES:
        return
    name = resolve(target.type).name
    effect = "always passes" if name in PASS_WITHOUT_TOOL else "never passes"
    for where, tool in _named_tools(name, target.params):
        yield ToolReference([*(["params", "eval_params"] if a.type in WRAPPERS else ["params"]), *where], tool, effect)


def _named_tools(kind: str, params: dict[str, Any]) -> Iterator[tuple[list[str | int], str]]:
    for param, shape in TOOL_PARAMS.get(kind, ()):
        value = params.get(param)
        if shape == "name" and isinstance(value, str) and value:
            yield [param], value
        elif isinstance(value, list):
            for index, item in enumerate(value):
                where: list[str | int] = [param, index]
                if shape == "names" and isinstance(item, str):
                    yield where, item
                elif shape == "steps" and isinstance(item, dict) and isinstance(item.get("tool"), str):
                    yield [*where, "tool"], item["tool"]
                elif shape == "patterns" and isinstance(item, dict) and isinstance(item.get("sequence"), list):
                    yield from (([*where, "sequence", i], name) for i, name in enumerate(item["sequence"])
                                if isinstance(name, str))


def validator_problem(kind: str) -> str | None:
    if kind in EVAL_NAMES:
        return None
    return f"unknown validator {kind!r} (any eval type is a validator){suggest(kind, EVAL_NAMES)}"


def vocabulary_markdown() -> str:
    """The README's table of every type, generated from the catalog (tests keep the README in sync)."""
    aliases: dict[str, list[str]] = {}
    for alias, target in ALIASES.items():
        aliases.setdefault(target, []).append(alias)
    rows = ["| group | type (upstream aliases) | params | checks |", "|---|---|---|---|"]
    for spec in EVAL_TYPES:
        names = f"`{spec.name}`" + (f" ({', '.join(f'`{a}`' for a in aliases[spec.name])})"
                                    if spec.name in aliases else "")
        params = ", ".join(f"`{p}`" for p in spec.params) or "—"
        needs = f" *(needs {spec.needs}: next release)*" if spec.needs else ""
        rows.append(f"| {spec.group} | {names} | {params} | {spec.summary}{needs} |")
    ours = ", ".join(f"`{e.name}`" for e in EXTENSIONS) + ", " + ", ".join(
        f"`{a}` → `{t}`" for a, t in EXTENSION_ALIASES.items())
    rows.append(f"| extensions | {ours} | | arena-operator's older names, not upstream types |")
    return "\n".join(rows)
