"""An ArenaJob of type loadtest: its planning (the profile and the mix in the job config, no work units) and its
observe step — live status from the workers' merged measurements, autoscaling on saturation, and the verdict on
the thresholds (or the budget) once the reports are written."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..api import conditions as c
from ..api.arenajob import ArenaJobSpec
from ..api.common import rfc3339
from ..engine.bundle import Bundle
from ..loadtest.profile import LoadProfile, profile_from_spec
from ..loadtest.run import load_config, mix_of
from ..loadtest.scheduler import MixEntry
from ..loadtest.store import CURRENT_WINDOW_S, LIVE_KEYS, LoadStore, live_summary
from ..loadtest.summary import verdict
from ..loadtest.thresholds import describe
from ..runplan.selection import ResolutionError
from ..runplan.units import PlanInputs
from .outcome import Outcome
from .worker_job import worker_job_name

if TYPE_CHECKING:
    from .jobcontext import JobContext

LAG_SATURATED_MS = 50.0  # a worker whose arrivals start this late is out of CPU: add workers
SCALE_COOLDOWN_S = 10.0  # new workers need time to join before saturation is judged again


def _unpriced(bundle: Bundle, ids: set[str]) -> list[str]:
    return sorted(i for i in ids if bundle.providers[i].type != "mock" and bundle.providers[i].pricing is None)


@dataclass(frozen=True)
class LoadTestPlan:
    """What planning puts in the job config for a load test: the profile and the mix; no work units."""

    profile: LoadProfile
    mix: list[MixEntry]
    what: str

    def to_config(self) -> dict[str, Any]:
        return {"loadTest": load_config(self.profile, self.mix)}

    def batches(self) -> Iterator[list[dict[str, Any]]]:
        return iter(())  # workers generate the load themselves: the queue is sealed empty

    def describe(self) -> str:
        return self.what


def plan_load_test(spec: ArenaJobSpec, bundle: Bundle, inputs: PlanInputs) -> tuple[LoadTestPlan, int]:
    """(the plan, the progress total: the test's seconds); ResolutionError when it cannot run as asked."""
    assert spec.load_test is not None  # the model requires it for type loadtest
    mix = mix_of(bundle, inputs.filters())
    if not mix:
        raise ResolutionError(c.EMPTY_PLAN, "the scenario selection and providers give nothing to run")
    try:
        profile = profile_from_spec(spec.load_test, spec.trials, len(mix))
    except ValueError as exc:
        raise ResolutionError(c.INVALID_SPEC, str(exc)) from None
    unpriced = _unpriced(bundle, {m.provider for m in mix})
    if profile.budget_limit is not None and unpriced:
        raise ResolutionError(c.INVALID_SPEC, f"loadTest.budgetLimit needs the cost of every request, but "
                                              f"provider(s) {', '.join(unpriced)} have no pricing")
    seconds = math.ceil(profile.duration)
    target = (f"{profile.target_rps:g} runs/s" if profile.model == "open" else
              f"{profile.concurrency or profile.vus_per_worker} virtual users"
              f"{'' if profile.concurrency else ' per worker'}")
    article = "an" if profile.model == "open" else "a"
    what = (f"{article} {profile.model}-model load test ({target} for {seconds}s over {len(mix)} scenario × "
            "provider combination(s))")
    return LoadTestPlan(profile, mix, what), seconds


def _finish(ctx: JobContext, out: Outcome, phase: str, reason: str, message: str) -> None:
    out.condition(c.COMPLETE, phase == "Succeeded", reason, message)
    out.condition(c.PROGRESSING, False, reason, message)
    out.status.update(phase=phase, completionTime=rfc3339(ctx.now), message=message, activeWorkers=0)
    out.event("Normal" if phase == "Succeeded" else "Warning", reason, message)
    out.stop()


async def observe_load_test(ctx: JobContext, out: Outcome) -> None:
    """Live status while the test runs (progress in seconds, the merged summary so far); the verdict at the end."""
    profile = LoadProfile.from_config(((await ctx.queue.get_config()) or {})["loadTest"])
    state, live = await live_summary(LoadStore(ctx.queue.redis, ctx.queue.key), profile)
    total, elapsed = math.ceil(profile.duration), min(math.ceil(profile.duration), int(state.elapsed))
    out.status.update(progress={"total": total, "completed": elapsed, "failed": 0, "pending": total - elapsed},
                      progressText=f"{elapsed}s/{total}s", activeWorkers=live["active_workers"])
    job_status = (ctx.worker_job or {}).get("status") or {}
    fatal = await ctx.queue.fatal()
    if fatal:
        await ctx.workloads.delete_job(ctx.namespace, worker_job_name(ctx.name))
        return _finish(ctx, out, "Failed", c.WORKER_FAILED, fatal)
    aggregated = await ctx.queue.aggregated()
    if aggregated is not None:
        return _final(ctx, out, aggregated)
    for kind, reason, why in (("Complete", c.NO_REPORTS, "completed without writing reports"),
                              ("Failed", c.WORKER_JOB_FAILED, "failed")):
        condition = c.get_condition(job_status.get("conditions"), kind) or {}
        if condition.get("status") == c.TRUE:
            detail = f" ({condition.get('reason')}: {condition.get('message', '')})" if kind == "Failed" else ""
            return _finish(ctx, out, "Failed", reason, f"the worker Job {why}{detail} after {elapsed}s of {total}s")
    out.status["result"] = {"summary": live}
    running = (f"{elapsed}s/{total}s, {live['current_rps']:g} runs/s, {live['active_workers']} workers active, "
               f"p95 {live['latency_ms']['p95']:g} ms, {live['dropped']} dropped")
    out.condition(c.COMPLETE, c.UNKNOWN, c.RUNNING, running)
    out.condition(c.PROGRESSING, True, c.RUNNING, running)
    return await _autoscale(ctx, out, live, state.elapsed < profile.duration)


def _final(ctx: JobContext, out: Outcome, aggregated: dict[str, Any]) -> None:
    summary, url = aggregated.get("summary") or {}, aggregated.get("url")
    # status is merge-patched: the live-only keys go (null), so the final summary is summary.json's content
    out.status["result"] = {"summary": {**summary, **dict.fromkeys(LIVE_KEYS)}, **({"url": url} if url else {})}
    where = f"results at {url}" if url else "no spec.output: summary only, in status.result.summary"
    held, failed = verdict(summary)
    count = len(summary.get("thresholds") or [])
    if not count:
        out.condition(c.THRESHOLDS, True, c.NO_THRESHOLDS, "no thresholds set")
    elif held:
        out.condition(c.THRESHOLDS, True, c.THRESHOLDS_PASSED, "; ".join(describe(t) for t in summary["thresholds"]))
    else:
        out.condition(c.THRESHOLDS, False, c.THRESHOLDS_FAILED, "; ".join(describe(t) for t in failed))
    stopped = summary.get("stopped") or {}
    if stopped.get("reason") == c.BUDGET_EXCEEDED:
        return _finish(ctx, out, "Failed", c.BUDGET_EXCEEDED, f"{stopped.get('message')}; {where}")
    runs = summary.get("runs") or {}
    if not summary.get("successful_requests"):
        return _finish(ctx, out, "Failed", c.NO_UNIT_RAN, f"no provider request succeeded ({runs.get('started', 0)} "
                                                          f"runs started, errors {summary.get('errors')}); {where}")
    target = f" (target {summary['target_rps']:g}/s)" if summary.get("target_rps") else ""
    facts = (f"{runs.get('started', 0)} runs at {summary.get('achieved_rps', 0):g}/s{target}, "
             f"p95 {summary['latency_ms']['p95']:g} ms, error rate {summary.get('error_rate', 0):.2%}, "
             f"{summary.get('dropped', 0)} dropped")
    if not held:
        return _finish(ctx, out, "Failed", c.THRESHOLDS_FAILED, f"{len(failed)} of {count} thresholds failed: "
                                                                f"{'; '.join(describe(t) for t in failed)}; {facts}; "
                                                                f"{where}")
    verdict_text = f"all {count} thresholds held" if count else "no thresholds set"
    return _finish(ctx, out, "Succeeded", c.COMPLETED, f"load test done: {facts}; {verdict_text}; {where}")


async def _autoscale(ctx: JobContext, out: Outcome, live: dict[str, Any], running: bool) -> None:
    """More workers (within min/maxReplicas) while workers are saturated: arrivals dropped, scheduling lag high,
    or virtual users capped by vusPerWorker."""
    workers = ctx.spec.workers
    if not ctx.worker_job or not running or workers is None or (workers.min_replicas is None and
                                                               workers.max_replicas is None):
        return
    low = workers.min_replicas or 1
    high = max(low, workers.max_replicas or low)
    current = int((ctx.worker_job.get("spec") or {}).get("parallelism") or 0)
    dropped, lag, capped = live["current_dropped"], live["current_lag_p99_ms"], live["current_capped"]
    last = ctx.rates.get("loadtest_scaled")
    if current >= high or (last is not None and (ctx.now - last).total_seconds() < SCALE_COOLDOWN_S):
        return
    if not (dropped or capped or lag > LAG_SATURATED_MS):
        return
    started = max(1.0, live["current_rps"] * CURRENT_WINDOW_S)
    desired = min(high, max(low, current + max(1, math.ceil(current * dropped / (started + dropped)))))
    await ctx.workloads.scale_job(ctx.namespace, worker_job_name(ctx.name), desired)
    ctx.rates["loadtest_scaled"] = ctx.now
    out.event("Normal", c.SCALED, f"scaled workers {current} → {desired}: saturated ({dropped} arrivals dropped, "
                                  f"scheduling lag p99 {lag:g} ms, {capped} virtual users capped in the last 3s; "
                                  f"bounds {low}..{high})")
