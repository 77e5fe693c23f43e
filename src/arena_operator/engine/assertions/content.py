"""Content evals: substrings, regex, length, sentences, fields, similarity, and the latency/cost budgets.

Scope as upstream: `contains`, `regex`, the length checks and `field_presence` look at the last reply;
`contains_any` and `content_excludes` scan every assistant reply so far ("was this ever said").
"""

from __future__ import annotations

import math
import re

from ..goregex import compile_go
from .base import EvalContext, Score, contains_fold, integer, is_number, number, ratio, scored, str_list, text

CHARS_PER_TOKEN = 4
_SENTENCE_SPLIT = re.compile(r"[.!?]+")


def contains(params: dict, ctx: EvalContext) -> Score:
    patterns = str_list(params, "patterns")
    if not patterns:
        return scored(False, "no patterns specified")
    output = ctx.current_output.lower()
    missing = [p for p in patterns if p.lower() not in output]
    explanation = f"missing patterns: {', '.join(missing)}" if missing else "all patterns found in output"
    return Score(ratio(len(patterns) - len(missing), len(patterns)), explanation, {"missing": missing})


def contains_any(params: dict, ctx: EvalContext) -> Score:
    patterns = str_list(params, "patterns")
    if not patterns:
        return scored(False, "no patterns specified")
    matched = [p for _, content in ctx.scan_targets() for p in patterns if contains_fold(content, p)]
    if matched:
        return scored(True, f"matched patterns: {', '.join(matched)}", matched=matched)
    return scored(False, f"no assistant message contained any of: {', '.join(patterns)}")


def word_matcher(pattern: str) -> re.Pattern[str]:
    return re.compile(r"\b" + re.escape(pattern) + r"\b", re.IGNORECASE)


def content_excludes(params: dict, ctx: EvalContext) -> Score:
    patterns = str_list(params, "patterns")
    if not patterns:
        return scored(True, "no patterns to check")
    word_mode = text(params, "match_mode") == "word_boundary"
    found = []
    for turn, content in ctx.scan_targets():
        for p in patterns:
            if word_matcher(p).search(content) if word_mode else contains_fold(content, p):
                found.append(f"turn {turn} contains {p!r}")
    if found:
        return scored(False, f"forbidden content found: {'; '.join(found)}", violations=found)
    return scored(True, "no forbidden content detected")


def content_excludes_partial(params: dict, content: str) -> Score:
    """The streaming check upstream runs on each chunk: plain substrings, whatever the match_mode."""
    hit = next((p for p in str_list(params, "patterns") if contains_fold(content, p)), None)
    return scored(hit is None, f"forbidden content found in stream: {hit!r}" if hit else "")


def regex(params: dict, ctx: EvalContext) -> Score:
    pattern = text(params, "pattern")
    if not pattern:
        return scored(False, "no pattern specified")
    try:
        matched = compile_go(pattern).search(ctx.current_output) is not None
    except re.error as exc:
        return Score(0.0, f"invalid regex: {exc}", error=f"invalid regex: {exc}")
    expect = params.get("expect_match") if isinstance(params.get("expect_match"), bool) else True
    return Score(1.0 if matched == expect else 0.0,
                 f"pattern {pattern!r} matched: {str(matched).lower()} (expect_match: {str(expect).lower()})",
                 {"matched": matched})


def _first_positive(params: dict, *names: str) -> int:
    for name in names:
        value = integer(params, name, 0) or 0
        if value != 0:
            return value
    return 0


def min_length(params: dict, ctx: EvalContext) -> Score:
    low = _first_positive(params, "min", "min_characters", "min_chars")
    actual = len(ctx.current_output.encode())
    score = min(1.0, actual / low) if low > 0 else 1.0
    return Score(score, f"length {actual}, min {low}", {"length": actual, "min": low})


def max_length(params: dict, ctx: EvalContext) -> Score:
    return _max_length(params, ctx.current_output)


def _max_length(params: dict, content: str, partial: bool = False) -> Score:
    high = _first_positive(params, "max", "max_characters", "max_chars")
    if high == 0:
        return Score(1.0 if partial else 0.0, "missing or zero 'max'/'max_characters' param")
    actual = len(content.encode())  # Go's len() counts bytes
    score = min(1.0, high / actual) if actual > 0 else 1.0
    explanation = f"length {actual}, max {high}"
    max_tokens = integer(params, "max_tokens", 0) or 0
    if max_tokens > 0:
        tokens = actual // CHARS_PER_TOKEN
        if tokens > max_tokens:
            score = min(score, max_tokens / tokens)
            explanation += f"; tokens ~{tokens}, max_tokens {max_tokens}"
    return Score(score, explanation, {"length": actual, "max": high})


def max_length_partial(params: dict, content: str) -> Score:
    return _max_length(params, content, partial=True)


def sentence_count(params: dict, ctx: EvalContext) -> Score:
    """Upstream counts sentences but always scores 1.0: as an assertion (or `max_sentences`) it never fails."""
    count = count_sentences(ctx.current_output)
    result = Score(1.0, f"{count} sentence(s)", {"count": count})
    bounds = {k: params[k] for k in ("min", "max", "max_sentences") if k in params}
    if bounds:
        result.warnings.append(f"upstream's sentence_count ignores {sorted(bounds)} and always passes; "
                               f"the reply has {count} sentence(s)")
    return result


def count_sentences(value: str) -> int:
    value = value.strip()
    if not value:
        return 0
    count = sum(1 for part in _SENTENCE_SPLIT.split(value) if part.strip())
    return count or 1


def field_presence(params: dict, ctx: EvalContext) -> Score:
    fields = str_list(params, "fields")
    if not fields:
        result = scored(True, "no fields to check")
        if "required_fields" in params:
            result.warnings.append("upstream reads params.fields here, not required_fields: nothing is checked")
        return result
    found = [f for f in fields if contains_fold(ctx.current_output, f)]
    missing = [f for f in fields if f not in found]
    explanation = f"found {len(found)}/{len(fields)} fields" + (f": missing {', '.join(missing)}" if missing else "")
    return Score(len(found) / len(fields), explanation, {"found": found, "missing": missing})


def _vector(value: object) -> list[float] | None:
    if not isinstance(value, list) or not all(is_number(v) for v in value):
        return None
    return [float(v) for v in value]  # type: ignore[arg-type]


def cosine_similarity(params: dict, ctx: EvalContext) -> Score:
    reference = _vector(params.get("reference"))
    if not reference:
        return scored(False, "no reference embedding specified")
    threshold = number(params, "min_similarity")
    if threshold is None:
        return scored(False, "no min_similarity specified")
    target = _vector(ctx.metadata.get("embedding"))
    if not target:
        return scored(False, "no embedding found in metadata")
    if len(target) != len(reference):
        return scored(False, f"dimension mismatch: reference={len(reference)}, target={len(target)}")
    dot = sum(a * b for a, b in zip(reference, target, strict=True))
    norm = math.sqrt(sum(a * a for a in reference)) * math.sqrt(sum(b * b for b in target))
    similarity = dot / norm if norm else 0.0
    return Score(similarity, f"cosine similarity {similarity:.4f} vs threshold {threshold:.4f}")


def latency_budget(params: dict, ctx: EvalContext) -> Score:
    """The latest reply's latency (whole milliseconds, as upstream) against `max_ms`; score = max_ms / latency."""
    budget = number(params, "max_ms")
    if budget is None:
        return scored(False, "no max_ms specified")
    latency = ctx.metadata.get("latency_ms")
    if latency is None:
        return scored(False, "latency_ms not found in metadata")
    score = min(1.0, budget / latency) if latency > 0 else 1.0
    return Score(score, f"latency {latency:.1f}ms vs budget {budget:.1f}ms", {"latency_ms": latency})


def cost_budget(params: dict, ctx: EvalContext) -> Score:
    """Upstream's arena passes no spend to assertions (cost and tokens read as 0), so within a scenario this
    budget always holds. Kept for identical outcomes; a warning says when the real spend would exceed it."""
    limits = {k: number(params, k) for k in ("max_cost_usd", "max_input_tokens", "max_output_tokens",
                                             "max_total_tokens")}
    if all(v is None for v in limits.values()):
        return scored(False, "no budget thresholds specified")
    spend = ctx.metadata.get("budget", {"total_cost": 0.0, "input_tokens": 0, "output_tokens": 0})
    real = ctx.metadata.get("actual_spend")
    result = _budget_score(limits, spend)
    if real is not None and spend is not real and _budget_score(limits, real).score != 1.0 and result.score == 1.0:
        result.warnings.append(
            f"upstream evaluates cost_budget with zero spend, so it passes; the real spend "
            f"(${real['total_cost']:.4f}, {real['input_tokens'] + real['output_tokens']} tokens) exceeds it")
    return result


def _budget_score(limits: dict[str, float | None], spend: dict) -> Score:
    cost, tokens_in, tokens_out = float(spend["total_cost"]), int(spend["input_tokens"]), int(spend["output_tokens"])
    checks = (("max_cost_usd", cost, f"cost ${cost:.4f}"), ("max_input_tokens", tokens_in, f"input tokens {tokens_in}"),
              ("max_output_tokens", tokens_out, f"output tokens {tokens_out}"),
              ("max_total_tokens", tokens_in + tokens_out, f"total tokens {tokens_in + tokens_out}"))
    failures = [f"{label} exceeds {limits[key]:g}" for key, value, label in checks
                if limits[key] is not None and value > limits[key]]  # type: ignore[operator]
    details = {"total_cost_usd": cost, "input_tokens": tokens_in, "output_tokens": tokens_out}
    if failures:
        return Score(0.0, f"budget exceeded: {'; '.join(failures)}", details)
    top = limits["max_cost_usd"]
    score = max(0.0, 1.0 - cost / top) if top and top > 0 else 1.0
    return Score(score, f"within budget: ${cost:.4f}, {tokens_in + tokens_out} tokens", details)


# arena-operator's own bounds (not upstream types): the reply's latency and cost against a plain maximum.

def max_latency(params: dict, ctx: EvalContext) -> Score:
    high = next((number(params, k) for k in ("max_ms", "max", "value") if number(params, k) is not None), None)
    value = round(sum(m.latency_ms or 0.0 for m in ctx.turn_scope()), 3)
    return _at_most("latency ms", value, high)


def max_cost(params: dict, ctx: EvalContext) -> Score:
    high = next((number(params, k) for k in ("max_usd", "max", "value") if number(params, k) is not None), None)
    value = round(sum(m.cost_info.total_cost_usd for m in ctx.turn_scope() if m.cost_info), 8)
    return _at_most("cost USD", value, high)


def _at_most(what: str, value: float, high: float | None) -> Score:
    if high is None:
        return scored(False, f"no maximum for {what}")
    if value > high:
        return scored(False, f"{what} {value:g} exceeds the maximum {high:g}", value=value)
    return scored(True, f"{what} {value:g} within bounds", value=value)
