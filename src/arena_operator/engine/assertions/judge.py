"""LLM-judge assertions: a judge provider scores the reply (or the whole conversation) against criteria."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ..spec import AssertionSpec
from .base import AssertionContext, AssertionResult
from .structured import extract_json

DEFAULT_JUDGE_PROMPT = (
    "You are an impartial evaluator. Judge whether the assistant's output meets the criteria. "
    'Answer with JSON only: {"passed": true|false, "score": <0.0-1.0>, "reasoning": "<one sentence>"}.'
)
_VERDICT_WORD = re.compile(r"\b(PASS(?:ED)?|FAIL(?:ED)?)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Verdict:
    score: float
    passed: bool | None  # the judge's own pass/fail, when it gave one
    reasoning: str


def parse_verdict(text: str) -> Verdict:
    """A judge's reply → Verdict. JSON (`passed`, `score`, `reasoning`) first, then a PASS/FAIL word."""
    try:
        data = extract_json(text, allow_wrapped=True)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        reasoning = str(data.get("reasoning") or data.get("explanation") or "")
        passed = data.get("passed") if isinstance(data.get("passed"), bool) else None
        score: float | None = None
        if data.get("score") is not None:
            try:
                score = max(0.0, min(1.0, float(data["score"])))
            except (TypeError, ValueError):
                score = None
        if score is not None or passed is not None:
            return Verdict(score if score is not None else float(bool(passed)), passed, reasoning)
    word = _VERDICT_WORD.search(text)
    if word:
        passed = word.group(1).upper().startswith("PASS")
        return Verdict(float(passed), passed, text.strip()[:300])
    raise ValueError(f"judge reply has no verdict: {text[:120]!r}")


def _transcript(ctx: AssertionContext) -> str:
    lines = []
    for message in ctx.transcript:
        if message.role in ("user", "assistant") and message.content:
            lines.append(f"{message.role.upper()}: {message.content}")
    return "\n".join(lines)


async def llm_judge(a: AssertionSpec, ctx: AssertionContext) -> AssertionResult:
    if ctx.judge is None:
        return AssertionResult(a.type, False, "no judge configured (add spec.judges to the arena file)")
    criteria = str(a.params.get("criteria") or "")
    session = a.type in ("llm_judge_session", "llm_judge_conversation") or ctx.scope == "conversation"
    subject = _transcript(ctx) if session else ctx.content
    what = "conversation" if session else "response"
    task = f"Criteria:\n{criteria}\n\nThe {what} to judge:\n{subject}"
    try:
        verdict = await ctx.judge(str(a.params.get("judge") or ""), task, a.params.get("prompt"))
    except ValueError as exc:
        return AssertionResult(a.type, False, str(exc))
    # As upstream: the score decides, against min_score (default 1.0); the judge's own `passed` is a detail.
    threshold = a.min_score if a.min_score is not None else a.params.get("min_score")
    threshold = 1.0 if threshold is None else float(threshold)
    passed = verdict.score >= threshold
    word = "passed" if passed else "failed"
    return AssertionResult(a.type, passed,
                           f"judge {word} (score {verdict.score:g}, needs {threshold:g}): {verdict.reasoning}",
                           {"criteria": criteria, "reasoning": verdict.reasoning, "judge_passed": verdict.passed},
                           score=verdict.score)
