"""The ArenaJob controller's part for `type: datagen` (reconcile.arenajob dispatches here on the job type): the
plan (shards instead of scenario × provider × trial units), live progress in items, and the verdict.

Progress is items, not shards: `status.progress {total: count, completed: items written, failed: items of shards
that failed for good, pending}` and `progressText` `written/count`, read from the job's DataGenLedger every tick
(a shard's count restarts when it is generated again after its worker died, so nothing counts twice)."""

from __future__ import annotations

from typing import Any

from ..api import conditions as c
from ..api.arenajob import ArenaJobSpec
from ..datagen.plan import DEFAULT_COUNT, DataGenPlan, make_plan, templates_of
from ..engine.bundle import Bundle
from ..engine.plan import iter_plan
from ..runplan.selection import ResolutionError
from ..runplan.units import PlanInputs
from ..workqueue.datagen import DataGenLedger
from ..workqueue.queue import Counters, WorkQueue


def plan_datagen(spec: ArenaJobSpec, bundle: Bundle, inputs: PlanInputs, total: int,
                 workers: int) -> tuple[DataGenPlan | None, int]:
    """(the datagen plan, the progress total: its count) for a datagen job; (None, `total`) for any other."""
    if spec.type != "datagen":
        return None, total
    if spec.output is None:
        raise ResolutionError(c.INVALID_SPEC, "type datagen writes its items to spec.output: set it (s3 or pvc)")
    try:
        plan = make_plan(spec.data_gen, bundle.arena.defaults.seed, workers,
                         templates_of(iter_plan(bundle, inputs.filters())))
    except ValueError as exc:
        raise ResolutionError(c.EMPTY_PLAN, str(exc)) from None
    return plan, plan.count


async def datagen_progress(queue: WorkQueue, spec: ArenaJobSpec) -> dict[str, Any]:
    """The status fields of the job's progress in items."""
    count = spec.data_gen.count if spec.data_gen else DEFAULT_COUNT
    written, lost = await DataGenLedger(queue).totals()
    written = min(written, count)
    return {"progress": {"total": count, "completed": written, "failed": lost,
                         "pending": max(0, count - written - lost)},
            "progressText": f"{written}/{count}"}


def datagen_verdict(counters: Counters, aggregated: dict[str, Any]) -> tuple[str, str, str]:
    """(phase, reason, message) once the workers merged the shards: Succeeded with exactly `count` items."""
    summary = aggregated.get("summary") or {}
    url = aggregated.get("url") or ""
    items, count = summary.get("items", 0), summary.get("count", 0)
    tally = (f"{summary.get('duplicatesDropped', 0)} duplicates dropped, {summary.get('filtered', 0)} filtered, "
             f"{summary.get('retries', 0)} retries; {summary.get('inputTokens', 0) + summary.get('outputTokens', 0)} "
             f"tokens, ${summary.get('costUSD', 0):.4f}")
    if summary.get("complete") and items == count:
        return "Succeeded", c.COMPLETED, f"{items} items in {url}{summary.get('file', '')} ({tally})"
    failures = "; ".join(f"{f.get('shard')}: {f.get('error')}" for f in summary.get("failures") or [])
    return "Failed", c.DATA_INCOMPLETE, (f"{items} of {count} items generated: {counters.failed} of "
                                         f"{counters.total} shards failed ({failures}); partial data in {url} "
                                         f"({tally})")
