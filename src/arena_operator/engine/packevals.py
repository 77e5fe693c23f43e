"""Pack evals (`spec.pack_evals[]` of the arena file), run as upstream's EvalOrchestrator runs them: turn-triggered
evals (`every_turn`, `sample_turns`) after each turn, session-triggered ones (`on_session_complete`,
`sample_sessions`) when the conversation ends. Each is a raw eval (no assertion wrapper) whose result is an
upstream EvalResult in RunResult `eval_results`; they are observations, not gates: a failing pack eval does not
fail its run (upstream's conversation executor: "non-gating observations"). Reports show them apart from
assertions, typed `pack_eval:<type>` (upstream's PackEvalTypePrefix; results/packeval_rows.py).

`arena run --skip-pack-evals` turns them off, `--eval-types a,b` keeps only those types (upstream's flags)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from . import spec as s
from .assertions.base import EvalContext, EvalServices
from .assertions.registry import passes, run_eval, when_skip_reason
from .evalctx import eval_metadata
from .packeval_spec import SESSION_TRIGGERS, TURN_TRIGGERS, PackEvalDef
from .types import Message

DEFAULT_SAMPLE_PERCENTAGE = 5.0  # upstream's DefaultSamplePercentage for the sample_* triggers
EVAL_TIMEOUT_S = 30.0  # upstream's DefaultEvalTimeout, per eval
_SAMPLE_MODULUS = 10_000
_FNV_OFFSET, _FNV_PRIME, _MASK = 0xCBF29CE484222325, 0x100000001B3, (1 << 64) - 1


def _fnv1a64(data: bytes) -> int:
    value = _FNV_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV_PRIME) & _MASK
    return value


def sampled(session_id: str, turn_index: int, percentage: float) -> bool:
    """Upstream's sampleHit: deterministic per session (and turn), so a re-run samples the same turns."""
    digest = _fnv1a64(session_id.encode() + str(turn_index).encode())
    return digest % _SAMPLE_MODULUS < int(percentage * 100)


def _due(definition: PackEvalDef, session_id: str, turn_index: int) -> bool:
    pct = definition.sample_percentage if definition.sample_percentage is not None else DEFAULT_SAMPLE_PERCENTAGE
    if definition.trigger == "sample_turns":
        return sampled(session_id, turn_index, pct)
    if definition.trigger == "sample_sessions":
        return sampled(session_id, 0, pct)
    return True


def passed(result: dict[str, Any]) -> bool:
    """Upstream's ConvertEvalResults: no error and a score of 1.0 — or within the eval's threshold, when set."""
    if result.get("skipped"):
        return True
    if result.get("error") or result.get("score") is None:
        return False
    threshold = result.get("threshold") or {}
    low, high = threshold.get("min_score"), threshold.get("max_score")
    return passes(result["score"], low, high) if low is not None or high is not None else result["score"] >= 1.0


class PackEvals:
    """The selected pack evals of one bundle; shared by concurrent runs (no state of its own)."""

    def __init__(self, defs: list[PackEvalDef]) -> None:
        self.defs = [d for d in defs if d.enabled]

    async def after_turn(self, messages: list[Message], turn_messages: list[Message], session_id: str,
                         services: EvalServices) -> list[dict[str, Any]]:
        """RunTurnEvals: the turn-triggered evals, on the transcript so far; the turn is the n-th user turn."""
        turn_index = max(0, sum(1 for m in messages if m.role == "user") - 1)
        ctx = EvalContext("turn", list(messages), list(turn_messages), services, eval_metadata(messages))
        return await self._run(TURN_TRIGGERS, ctx, session_id, turn_index)

    async def at_end(self, messages: list[Message], session_id: str, services: EvalServices) -> list[dict[str, Any]]:
        """RunSessionEvals: the session-triggered evals on the whole conversation."""
        ctx = EvalContext("conversation", list(messages), list(messages), services, eval_metadata(messages))
        return await self._run(SESSION_TRIGGERS, ctx, session_id, max(0, len(messages) - 1))

    async def _run(self, triggers: tuple[str, ...], ctx: EvalContext, session_id: str,
                   turn_index: int) -> list[dict[str, Any]]:
        results = []
        for definition in self.defs:
            if definition.trigger in triggers and _due(definition, session_id, turn_index):
                result = await self._one(definition, ctx)
                result.update(session_id=session_id, turn_index=turn_index)
                result["passed"] = passed(result)
                results.append(result)
        return results

    @staticmethod
    async def _one(definition: PackEvalDef, ctx: EvalContext) -> dict[str, Any]:
        result: dict[str, Any] = {"eval_id": definition.id, "type": definition.type, "trigger": definition.trigger}
        if definition.threshold is not None:
            result["threshold"] = definition.threshold.model_dump(exclude_none=True)
        if definition.when is not None:
            reason = when_skip_reason(s.AssertionSpec(type=definition.type, when=definition.when), ctx)
            if reason:
                return {**result, "skipped": True, "skip_reason": reason, "duration_ms": 0}
        started = time.perf_counter()
        try:
            score = await asyncio.wait_for(run_eval(definition.type, dict(definition.params), ctx), EVAL_TIMEOUT_S)
        except TimeoutError:
            result["error"] = f"eval timed out after {EVAL_TIMEOUT_S:g}s"
            score = None
        except Exception as exc:  # an eval's failure is its result, never the run's
            result["error"] = f"{type(exc).__name__}: {exc}"
            score = None
        result["duration_ms"] = int((time.perf_counter() - started) * 1000)
        if score is not None:
            if score.score is not None:
                result["score"] = score.score
            if score.explanation:
                result["explanation"] = score.explanation
            if score.error:
                result["error"] = score.error
            if score.details:
                result["details"] = score.details
            if score.skipped:
                result["skipped"] = True
        if definition.message:
            result["message"] = definition.message
        return result
