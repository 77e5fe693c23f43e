"""One reconcile pass of an ArenaJob, ordered steps of one signature: forms → finished → cancel → deadline →
config | source → plan → launch → observe → workers (reconcile.jobspec reads both forms as one; reconcile.jobtypes
has what the type changes; reconcile.workers keeps a run from hanging). The first step that decides the pass stops
it; `Ready` follows from the conditions (reconcile.outcome). No kopf."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from ..api import conditions as c
from ..api.arenaconfig import ArenaConfigSpec
from ..api.arenajob import ArenaJobSpec
from ..api.common import parse_duration, parse_rfc3339, rfc3339
from ..engine.errors import BundleInvalid
from ..results.formats import DEFAULT_FORMATS
from ..results.summary import errors_line
from ..runplan.apply import apply_to_bundle, refuse_unresolved_endpoints
from ..runplan.forms import unsupported_fields
from ..runplan.providers import ResolvedProviders, bundle_groups, resolve_providers
from ..runplan.selection import ResolutionError
from ..runplan.tools import resolve_tools, resolved_tool_records
from ..runplan.units import PlanTooLarge, batches, count_units, iter_units, plan_inputs
from .arenaconfig import SourceInfo, load_config_bundle, source_info
from .autoscale import decide_scale
from .baseline import choose_baseline
from .datagen import datagen_progress, datagen_verdict
from .jobcontext import TERMINAL, JobContext, finish
from .jobspec import (
    exec_tools_of,
    job_config,
    job_source,
    output_of,
    pod_overrides_of,
    stdio_commands_of,
    step_forms,
    unsupported_reason,
)
from .jobtypes import observe_for_type, plan_for_type
from .outcome import Outcome, ReadyRule, Step, run_steps
from .preflight import preflight
from .worker_job import (
    REDIS_URL_KEY,
    SecretKeyRef,
    WorkerJobParams,
    build_worker_job,
    build_worker_secret,
    pod_override_problems,
    worker_job_name,
)
from .workers import step_deadline, step_workers

READY_RULE = ReadyRule(positive=(c.CONFIG_VALID, c.PLANNED, c.JOB_CREATED, c.COMPLETE))
SOURCE_READY_RULE = ReadyRule(positive=(c.SOURCE_VALID, *READY_RULE.positive[1:]), abnormal=READY_RULE.abnormal)
MAX_PROBLEMS_SHOWN = 5


def _fail_plan(ctx: JobContext, out: Outcome, reason: str, message: str, condition: str = c.PLANNED) -> None:
    out.condition(condition, False, reason, message)
    finish(ctx, out, "Failed", reason, message)


def _planned(ctx: JobContext) -> bool:
    return (ctx.status.get("progress") or {}).get("total") is not None


def artifact_of(ctx: JobContext) -> SourceInfo | None:
    """The artifact this job runs: once planned, the one it was planned from; before, the pinned one (a
    source-change run) or the source's current one."""
    planned = (ctx.status.get("revision"), ctx.status.get("artifactDigest"))
    wanted = planned if planned[1] else ctx.pinned
    if wanted is None:
        return source_info(ctx.source)
    revision, digest = wanted
    source = job_source(ctx.spec, ctx.config)
    if not source or not ctx.store.has(ctx.namespace, source, digest):
        return SourceInfo(False, revision, None, None,
                          f"artifact {digest} of revision {revision} is no longer kept by the operator")
    return SourceInfo(True, revision, digest, ctx.store.url(ctx.artifact_base_url, ctx.namespace, source, digest))


async def step_finished(ctx: JobContext, out: Outcome) -> None:
    """A finished job only waits for its TTL."""
    if ctx.status.get("phase") not in TERMINAL:
        return
    ttl = ctx.spec.ttl_seconds_after_finished
    done = parse_rfc3339(ctx.status.get("completionTime"))
    if ttl is not None and done is not None and ctx.now >= done + timedelta(seconds=ttl):
        await ctx.delete_self()
    out.stop()


async def step_cancel(ctx: JobContext, out: Outcome) -> None:
    """`spec.suspend: true` (or `cancelled: true`) cancels: workers stop claiming, the worker Job goes, partial
    results stay."""
    if not ctx.spec.cancel_requested:
        return
    await ctx.queue.cancel()
    await ctx.workloads.delete_job(ctx.namespace, worker_job_name(ctx.name))
    counters = await ctx.queue.counters()
    field = "suspend" if ctx.spec.suspend else "cancelled"
    message = f"cancelled (spec.{field}) after {counters.completed + counters.failed}/{counters.total} units"
    out.condition(c.COMPLETE, False, c.CANCELLED, message)
    out.condition(c.PROGRESSING, False, c.CANCELLED, message)
    finish(ctx, out, "Cancelled", c.CANCELLED, message)


async def step_config(ctx: JobContext, out: Outcome) -> None:
    """Before planning: the ArenaConfig exists and is Ready and its source serves an artifact; else wait (a
    while) for it."""
    if _planned(ctx) or ctx.spec.config_ref is None:
        return
    config_name = ctx.spec.config_ref.name
    if ctx.config is None:
        return _wait_for_config(ctx, out, c.CONFIG_NOT_FOUND, f"ArenaConfig {ctx.namespace}/{config_name} not found")
    config_status = ctx.config.get("status") or {}
    if config_status.get("phase") != "Ready":
        why = (c.get_condition(config_status.get("conditions"), c.READY) or {}).get("message", "not validated yet")
        return _wait_for_config(ctx, out, c.CONFIG_NOT_READY, f"ArenaConfig {config_name} is not Ready: {why}")
    info = artifact_of(ctx)
    if info is None or not info.digest:
        if ctx.pinned:
            return _fail_plan(ctx, out, c.ARTIFACT_GONE, info.message if info else "no artifact")
        source = (ctx.config.get("spec") or {}).get("sourceRef", {}).get("name")
        return _wait_for_config(ctx, out, c.SOURCE_NOT_READY, f"ArenaSource {source} has no artifact")
    out.condition(c.CONFIG_VALID, True, c.CONFIG_READY, f"ArenaConfig {config_name} at {info.revision}")
    return None


async def step_source(ctx: JobContext, out: Outcome) -> None:
    """A job with sourceRef does what an ArenaConfig does: it waits (a while) for the ArenaSource's artifact and
    checks that the bundle (arenaFile) loads at that revision."""
    if _planned(ctx) or ctx.spec.source_ref is None:
        return None
    name, info, config = ctx.spec.source_ref.name, artifact_of(ctx), job_config(ctx.spec, ctx.config)
    if unsupported_fields(ctx.spec):  # e.g. a glob arenaFile: say so rather than "file not found"
        return _fail_plan(ctx, out, c.UNSUPPORTED, str(unsupported_fields(ctx.spec)), c.SOURCE_VALID)
    if info is None or not info.digest:
        if ctx.pinned:
            return _fail_plan(ctx, out, c.ARTIFACT_GONE, info.message if info else "no artifact", c.SOURCE_VALID)
        if ctx.source is None:
            message = f"ArenaSource {ctx.namespace}/{name} (spec.sourceRef) not found"
            return _wait_for_config(ctx, out, c.SOURCE_NOT_FOUND, message, c.SOURCE_VALID)
        return _wait_for_config(ctx, out, c.SOURCE_NOT_READY, f"ArenaSource {name} has no artifact yet: "
                                f"{info.message if info else ''}".strip(), c.SOURCE_VALID)
    try:
        await asyncio.to_thread(load_config_bundle, ctx.store, ctx.namespace, name, info, config, ctx.max_bytes)
    except BundleInvalid as exc:
        shown = "; ".join(str(p) for p in exc.problems[:MAX_PROBLEMS_SHOWN])
        problem = f"bundle {config.arena_file} at {info.revision}: {shown}"
        return _fail_plan(ctx, out, c.INVALID_BUNDLE, problem, c.SOURCE_VALID)
    except FileNotFoundError as exc:
        return _fail_plan(ctx, out, c.ARTIFACT_MISSING, str(exc), c.SOURCE_VALID)
    out.condition(c.SOURCE_VALID, True, c.VALIDATED, f"ArenaSource {name} at {info.revision}: {config.arena_file} "
                                                   "is a valid bundle")
    return None


def _wait_for_config(ctx: JobContext, out: Outcome, reason: str, message: str,
                     condition: str = c.CONFIG_VALID) -> None:
    waited = (ctx.now - ctx.created).total_seconds()
    out.condition(condition, False, reason, message)
    if waited > ctx.settings.config_wait:
        return finish(ctx, out, "Failed", reason, f"{message} (gave up after {waited:.0f}s)")
    out.status["phase"] = "Pending"
    return out.stop(blocked=True)


async def step_plan(ctx: JobContext, out: Outcome) -> None:
    """Once: resolve providers and tools, plan, and stream the units into Redis. Again if Redis lost the queue of
    a running job (restarted without persistence): every unit runs again and is counted once, from zero."""
    if _planned(ctx):
        if await ctx.queue.get_config() is not None:
            return None
        message = (f"Redis lost this job's queue ({ctx.status.get('progressText', '?')} units were done; restarted "
                   "without persistence?): planning again, every unit runs again")
        out.event("Warning", c.QUEUE_LOST, message)
    unsupported = unsupported_reason(ctx.spec)
    if unsupported:
        return _fail_plan(ctx, out, c.UNSUPPORTED, unsupported)
    config = job_config(ctx.spec, ctx.config)
    info = artifact_of(ctx)
    assert info is not None and info.digest
    try:
        bundle = await asyncio.to_thread(load_config_bundle, ctx.store, ctx.namespace, config.source_ref.name, info,
                                         config, ctx.max_bytes)
        resolved = resolve_providers(bundle_groups(bundle), config, ctx.spec, ctx.providers, ctx.namespace)
        tools = resolve_tools(ctx.spec, ctx.registries)
        apply_to_bundle(bundle, resolved, tools)
        refuse_unresolved_endpoints(bundle, resolved)
        inputs = plan_inputs(config, ctx.spec)
        total = count_units(bundle, inputs, ctx.settings.max_units)
        shards, total = plan_for_type(ctx.spec, bundle, inputs, total, _initial_replicas(ctx.spec, config))
    except ResolutionError as exc:
        return _fail_plan(ctx, out, exc.reason, exc.message)
    except PlanTooLarge as exc:
        return _fail_plan(ctx, out, c.PLAN_TOO_LARGE, str(exc))
    except (BundleInvalid, FileNotFoundError) as exc:
        return _fail_plan(ctx, out, c.INVALID_BUNDLE, str(exc))
    if total == 0:
        return _fail_plan(ctx, out, c.EMPTY_PLAN, "the scenario selection and providers give no work units")
    clashes = pod_override_problems(pod_overrides_of(ctx.spec), output_of(ctx.spec), resolved.secrets)
    if clashes:
        return _fail_plan(ctx, out, c.INVALID_SPEC, "; ".join(clashes))
    problem = await preflight(ctx.kube, ctx.namespace, resolved.secrets, ctx.spec.output)
    if problem is not None:
        return _fail_plan(ctx, out, *problem)
    await ctx.queue.put_config({
        "namespace": ctx.namespace, "job": ctx.name, "type": ctx.spec.type, "revision": info.revision,
        "arenaFile": config.arena_file, "providers": resolved.to_config(), "tools": tools,
        "unitTimeout": _seconds(config.timeout), "visibilityTimeout": ctx.settings.visibility_timeout,
        "maxAttempts": ctx.spec.max_attempts, "formats": _formats(ctx.spec), "concurrency": config.concurrency,
        "aggregationLease": ctx.settings.aggregation_lease, **(shards.to_config() if shards else {}),
        "baseline": choose_baseline(ctx.spec, ctx.name, ctx.parent, ctx.jobs),
        "maxPassRateDrop": ctx.spec.compare.max_pass_rate_drop if ctx.spec.compare else 0.0,
    })
    for batch in (shards.batches() if shards else batches(iter_units(bundle, inputs))):
        await ctx.queue.enqueue(batch)
    await ctx.queue.seal()
    out.status.update(phase="Running", startTime=rfc3339(ctx.now), revision=info.revision, artifactDigest=info.digest,
                      progress={"total": total, "completed": 0, "failed": 0, "pending": total},
                      progressText=f"0/{total}", resolvedProviders=resolved.provider_names(),
                      resolvedTools=resolved_tool_records(ctx.spec, ctx.registries))
    ref = ctx.spec.config_ref
    origin = f"ArenaConfig {ref.name}" if ref else f"ArenaSource {config.source_ref.name}"
    message = f"planned {shards.describe() if shards else f'{total} work units'} from {origin} at {info.revision}"
    out.condition(c.PLANNED, True, c.PLANNED_REASON, message)
    out.event("Normal", c.PLANNED_REASON, message)
    return None


async def step_launch(ctx: JobContext, out: Outcome) -> None:
    """Create the worker Job if it does not exist yet (idempotent by name)."""
    if ctx.worker_job is not None or c.is_true(ctx.status.get("conditions"), c.JOB_CREATED):
        return
    config = job_config(ctx.spec, ctx.config)
    info = artifact_of(ctx)
    assert info is not None and info.url and info.digest
    resolved = ResolvedProviders.from_config((await ctx.queue.get_config() or {}).get("providers", {}))
    replicas = _initial_replicas(ctx.spec, config)
    secret = build_worker_secret(ctx.namespace, ctx.name, ctx.uid, {REDIS_URL_KEY: ctx.settings.worker_redis_url})
    await ctx.workloads.create_secret(ctx.namespace, secret)  # the Redis URL (and password): a secretKeyRef
    params = WorkerJobParams(
        namespace=ctx.namespace, job_name=ctx.name, job_uid=ctx.uid, image=ctx.settings.image, replicas=replicas,
        artifact_url=info.url, artifact_digest=info.digest,
        redis_secret=SecretKeyRef(secret["metadata"]["name"], REDIS_URL_KEY), egress=ctx.settings.egress,
        job_key=ctx.queue.key, output=output_of(ctx.spec), secrets=resolved.secrets, concurrency=config.concurrency,
        pod_defaults=ctx.settings.pod_defaults, pod_overrides=pod_overrides_of(ctx.spec),
        verbose=bool(ctx.spec.verbose), mcp_stdio_commands=stdio_commands_of(ctx.spec),
        exec_tools=exec_tools_of(ctx.spec),
    )
    created = await ctx.workloads.create_job(ctx.namespace, build_worker_job(params))
    name = worker_job_name(ctx.name)
    out.status.setdefault("phase", "Running")
    out.condition(c.JOB_CREATED, True, c.CREATED, f"worker Job {name} with {replicas} replicas")
    if created:
        out.event("Normal", c.JOB_CREATED_REASON, f"created worker Job {name} ({replicas} replicas)")


async def step_observe(ctx: JobContext, out: Outcome) -> None:
    """Copy counters to status; finish on aggregation, a fatal worker error or a failed worker Job; autoscale.
    The aggregation record is read before the counters: it is written only after the drain, so counters read after
    it are final (read before, a unit finished in between would be missing from the verdict)."""
    aggregated = await ctx.queue.aggregated()
    counters = await ctx.queue.counters()
    out.retried = counters.retried
    job_status = (ctx.worker_job or {}).get("status") or {}
    done = f"{counters.completed + counters.failed}/{counters.total}"
    out.status.update(progress={"total": counters.total, "completed": counters.completed, "failed": counters.failed,
                                "pending": counters.pending},
                      progressText=done, activeWorkers=int(job_status.get("active") or 0))
    out.status.update(await datagen_progress(ctx.queue, ctx.spec) if ctx.spec.type == "datagen" else {})
    verdict = await _verdict(ctx, counters, aggregated, job_status, out)
    if verdict is not None:
        phase, reason, message = verdict
        out.condition(c.COMPLETE, phase == "Succeeded", reason, message)
        out.condition(c.PROGRESSING, False, reason, message)
        return finish(ctx, out, phase, reason, message)
    running = f"{done} units, {job_status.get('active') or 0} workers active"
    out.condition(c.COMPLETE, c.UNKNOWN, c.RUNNING, running)
    out.condition(c.PROGRESSING, True, c.RUNNING, running)
    return await _autoscale(ctx, out, counters)


async def _verdict(ctx: JobContext, counters: Any, aggregated: dict[str, Any] | None, job_status: dict[str, Any],
                   out: Outcome) -> tuple[str, str, str] | None:
    """(phase, reason, message) once the job has ended, else None."""
    partial = f"{counters.completed + counters.failed}/{counters.total} units done, partial results kept"
    fatal = await ctx.queue.fatal()
    if fatal:
        await ctx.workloads.delete_job(ctx.namespace, worker_job_name(ctx.name))
        return "Failed", c.WORKER_FAILED, fatal
    if aggregated is not None:
        url = aggregated.get("url")
        out.status["result"] = {"summary": aggregated.get("summary"), **({"url": url} if url else {})}
        _record_comparison(out, aggregated.get("comparison"))
        if ctx.spec.type == "datagen":
            return datagen_verdict(counters, aggregated)
        summary = aggregated.get("summary") or {}
        where = f"results at {url}" if url else "no spec.output: summary only, in status.result.summary"
        if counters.passed + counters.assertion_failed == 0:  # every unit errored: nothing was evaluated
            return "Failed", c.NO_UNIT_RAN, (f"none of the {counters.total} units could run: "
                                             f"{errors_line(summary) or 'no error recorded'}; {where}")
        errors = f"; errors: {errors_line(summary)}" if summary.get("errorKinds") else ""
        return "Succeeded", c.COMPLETED, (f"{counters.completed} units completed, {counters.failed} failed; pass "
                                          f"rate {summary.get('passRate', 0):.0%}{errors}; {where}")
    if (c.get_condition(job_status.get("conditions"), "Complete") or {}).get("status") == c.TRUE:
        return "Failed", c.NO_REPORTS, f"the worker Job completed without writing reports; {partial}"
    failed = c.get_condition(job_status.get("conditions"), "Failed") or {}
    if failed.get("status") == c.TRUE:
        return "Failed", c.WORKER_JOB_FAILED, (f"worker Job failed ({failed.get('reason')}: "
                                               f"{failed.get('message', '')}); {partial}")
    return None


def _record_comparison(out: Outcome, comparison: dict[str, Any] | None) -> None:
    """The workers' verdict against the baseline: status.result.comparison and the Regressed condition."""
    if not comparison:
        return
    if comparison.get("error"):
        out.condition(c.REGRESSED, c.UNKNOWN, c.NO_BASELINE, str(comparison["error"]))
        return
    out.status["result"]["comparison"] = {k: v for k, v in comparison.items() if k != "message"}
    regressed = bool(comparison.get("regressed"))
    out.condition(c.REGRESSED, regressed, c.REGRESSED if regressed else c.NO_REGRESSION,
                  str(comparison.get("message", "")))
    if regressed:
        out.event("Warning", c.REGRESSED, str(comparison.get("message", "")))


async def _autoscale(ctx: JobContext, out: Outcome, counters: Any) -> None:
    if not ctx.worker_job:
        return
    concurrency = int(((await ctx.queue.get_config()) or {}).get("concurrency") or 4)
    current = int((ctx.worker_job.get("spec") or {}).get("parallelism") or 0)
    decision = decide_scale(ctx.spec.workers, current, counters.pending, counters.completed + counters.failed,
                            concurrency, ctx.now, ctx.rates)
    if decision is not None and decision.changes and counters.pending:
        await ctx.workloads.scale_job(ctx.namespace, worker_job_name(ctx.name), decision.desired)
        out.event("Normal", c.SCALED, decision.message(counters.pending))


STEPS: tuple[Step[JobContext], ...] = (
    Step(step_forms, owns=(c.SPEC_WARNING,)),
    Step(step_finished),
    Step(step_cancel, owns=(c.COMPLETE, c.PROGRESSING)),
    Step(step_deadline, owns=(c.COMPLETE, c.PROGRESSING)),
    Step(step_config, owns=(c.CONFIG_VALID,)),
    Step(step_source, owns=(c.SOURCE_VALID,)),
    Step(step_plan, owns=(c.PLANNED,)),
    Step(step_launch, owns=(c.JOB_CREATED,)),
    Step(observe_for_type(step_observe), owns=(c.COMPLETE, c.PROGRESSING, c.REGRESSED, c.THRESHOLDS)),
    Step(step_workers, owns=(c.COMPLETE, c.PROGRESSING)),
)


async def reconcile_job(ctx: JobContext) -> Outcome:
    out = Outcome(status={"observedGeneration": ctx.generation})
    out = await run_steps(ctx, STEPS, out, ctx.status.get("conditions") or [], ready_rule(ctx.spec))
    if out.status.get("phase") in TERMINAL and ctx.status.get("phase") not in TERMINAL:
        await ctx.queue.set_ttl(int(ctx.settings.finished_key_ttl))  # status and the sink hold what is kept
    return out


def ready_rule(spec: ArenaJobSpec) -> ReadyRule:
    """Ready follows ConfigValid for a job with configRef, SourceValid for one with sourceRef."""
    return SOURCE_READY_RULE if spec.source_ref is not None else READY_RULE


def _formats(spec: ArenaJobSpec) -> list[str]:
    chosen = spec.evaluation.output_formats if spec.evaluation else None
    return list(chosen) if chosen else list(DEFAULT_FORMATS)


def _seconds(duration: str | None) -> float | None:
    return parse_duration(duration).total_seconds() if duration else None


def _initial_replicas(spec: ArenaJobSpec, config: ArenaConfigSpec) -> int:
    workers = spec.workers
    explicit = workers is not None and "replicas" in workers.model_fields_set
    replicas = workers.replicas if workers and explicit else (config.workers or 1)
    if workers and workers.min_replicas is not None:
        replicas = max(replicas, workers.min_replicas)
    if workers and workers.max_replicas is not None:
        replicas = min(replicas, workers.max_replicas)
    return replicas

