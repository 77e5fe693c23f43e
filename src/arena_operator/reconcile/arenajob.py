"""One reconcile pass of an ArenaJob (type evaluation), as ordered steps with one signature:
finished → cancel → plan → launch → observe. The first step that decides the pass returns; the kopf handler
turns the outcome into a status patch and events. No kopf here."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..api.arenaconfig import ArenaConfigSpec
from ..api.arenajob import ArenaJobSpec
from ..api.common import parse_duration, parse_rfc3339, rfc3339
from ..engine.errors import BundleInvalid
from ..kube import Kube, NotFound, Workloads
from ..runplan.resolution import (
    ResolutionError,
    ResolvedProviders,
    SecretEnv,
    apply_to_bundle,
    bundle_groups,
    resolve_providers,
    resolve_tools,
    resolved_tool_records,
)
from ..runplan.units import PlanTooLarge, batches, count_units, iter_units, plan_inputs
from ..sources.store import ArtifactStore
from ..workqueue.queue import WorkQueue
from .arenaconfig import load_config_bundle, source_info
from .worker_job import WorkerJobParams, build_worker_job, worker_job_name

TERMINAL = frozenset({"Succeeded", "Failed", "Cancelled"})
UNITS_PER_WORKER_SLOT = 5  # autoscaling aims for about this many pending units per concurrent run


@dataclass
class JobSettings:
    """Operator-wide settings for worker Jobs (from the environment; the chart sets them)."""

    image: str
    worker_redis_url: str
    max_units: int
    config_wait: float  # seconds a job waits for its ArenaConfig to become Ready before failing
    visibility_timeout: float = 120.0
    aggregation_lease: float = 30.0


@dataclass
class JobContext:
    namespace: str
    name: str
    uid: str
    generation: int
    created: datetime
    spec: ArenaJobSpec
    status: dict[str, Any]
    config: dict[str, Any] | None  # the ArenaConfig, from the index: {spec, status}
    source: dict[str, Any] | None  # its ArenaSource, from the index: {status}
    providers: list[dict[str, Any]]
    registries: list[dict[str, Any]]
    worker_job: dict[str, Any] | None  # the worker batch/v1 Job, from the index: {name, spec, status}
    queue: WorkQueue
    store: ArtifactStore
    workloads: Workloads
    settings: JobSettings
    max_bytes: int
    delete_self: Callable[[], Awaitable[None]]
    kube: Kube
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class JobOutcome:
    status: dict[str, Any] = field(default_factory=dict)
    conditions: list[tuple[str, bool, str, str]] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    retried: int = 0

    def event(self, kind: str, reason: str, message: str) -> None:
        self.events.append((kind, reason, message))


def _condition(conditions: list[dict[str, Any]] | None, kind: str) -> dict[str, Any]:
    return next((c for c in conditions or [] if c.get("type") == kind), {})


def _finish(ctx: JobContext, out: JobOutcome, phase: str, reason: str, message: str) -> JobOutcome:
    ok = phase == "Succeeded"
    out.status.update(phase=phase, completionTime=rfc3339(ctx.now), message=message)
    out.conditions += [("Ready", ok, reason, message), ("Progressing", False, reason, message)]
    out.event("Normal" if ok else "Warning", reason, message)
    return out


async def step_finished(ctx: JobContext, out: JobOutcome) -> JobOutcome | None:
    """A finished job only waits for its TTL."""
    if ctx.status.get("phase") not in TERMINAL:
        return None
    ttl = ctx.spec.ttl_seconds_after_finished
    done = parse_rfc3339(ctx.status.get("completionTime"))
    if ttl is not None and done is not None and ctx.now >= done + timedelta(seconds=ttl):
        await ctx.delete_self()
    return out


async def step_cancel(ctx: JobContext, out: JobOutcome) -> JobOutcome | None:
    """`spec.suspend: true` cancels: workers stop claiming, the worker Job goes, partial results stay."""
    if not ctx.spec.suspend:
        return None
    await ctx.queue.cancel()
    await ctx.workloads.delete_job(ctx.namespace, worker_job_name(ctx.name))
    counters = await ctx.queue.counters()
    return _finish(ctx, out, "Cancelled", "Cancelled",
                   f"cancelled (spec.suspend) after {counters.completed + counters.failed}/{counters.total} units")


def _wait_for_config(ctx: JobContext, out: JobOutcome, reason: str, message: str) -> JobOutcome:
    waited = (ctx.now - ctx.created).total_seconds()
    if waited > ctx.settings.config_wait:
        out.conditions.append(("ConfigValid", False, reason, message))
        return _finish(ctx, out, "Failed", reason, f"{message} (gave up after {waited:.0f}s)")
    out.status["phase"] = "Pending"
    out.conditions += [("ConfigValid", False, reason, message), ("Ready", False, reason, message)]
    return out


async def step_plan(ctx: JobContext, out: JobOutcome) -> JobOutcome | None:
    """Once: check the config, resolve providers and tools, plan, and stream the units into Redis."""
    if (ctx.status.get("progress") or {}).get("total") is not None:
        return None
    unsupported = unsupported_reason(ctx.spec)
    if unsupported:
        return _finish(ctx, out, "Failed", "Unsupported", unsupported)
    config_name = ctx.spec.config_ref.name
    if ctx.config is None:
        return _wait_for_config(ctx, out, "ConfigNotFound", f"ArenaConfig {ctx.namespace}/{config_name} not found")
    config_status = ctx.config.get("status") or {}
    if config_status.get("phase") != "Ready":
        why = _condition(config_status.get("conditions"), "Ready").get("message", "not validated yet")
        return _wait_for_config(ctx, out, "ConfigNotReady", f"ArenaConfig {config_name} is not Ready: {why}")
    config = ArenaConfigSpec.model_validate(ctx.config["spec"])
    info = source_info(ctx.source)
    if info is None or not info.digest:
        return _wait_for_config(ctx, out, "SourceNotReady", f"ArenaSource {config.source_ref.name} has no artifact")
    out.conditions.append(("ConfigValid", True, "ConfigReady", f"ArenaConfig {config_name} at {info.revision}"))
    try:
        bundle = load_config_bundle(ctx.store, ctx.namespace, config.source_ref.name, info, config, ctx.max_bytes)
        resolved = resolve_providers(bundle_groups(bundle), config, ctx.spec, ctx.providers)
        tools = resolve_tools(ctx.spec, ctx.registries)
        apply_to_bundle(bundle, resolved, tools)
        inputs = plan_inputs(config, ctx.spec)
        total = count_units(bundle, inputs, ctx.settings.max_units)
    except ResolutionError as exc:
        return _finish(ctx, out, "Failed", exc.reason, exc.message)
    except PlanTooLarge as exc:
        return _finish(ctx, out, "Failed", "PlanTooLarge", str(exc))
    except (BundleInvalid, FileNotFoundError) as exc:
        return _finish(ctx, out, "Failed", "InvalidBundle", str(exc))
    if total == 0:
        return _finish(ctx, out, "Failed", "EmptyPlan", "the scenario selection and providers give no work units")
    problem = await _preflight(ctx, resolved.secrets)
    if problem is not None:
        return _finish(ctx, out, "Failed", problem[0], problem[1])
    await ctx.queue.put_config({
        "namespace": ctx.namespace, "job": ctx.name, "type": ctx.spec.type, "revision": info.revision,
        "arenaFile": config.arena_file, "providers": resolved.to_config(), "tools": tools,
        "unitTimeout": _seconds(config.timeout), "visibilityTimeout": ctx.settings.visibility_timeout,
        "maxAttempts": ctx.spec.max_attempts, "formats": _formats(ctx.spec), "concurrency": config.concurrency,
        "aggregationLease": ctx.settings.aggregation_lease,
    })
    for batch in batches(iter_units(bundle, inputs)):
        await ctx.queue.enqueue(batch)
    await ctx.queue.seal()
    out.status.update(phase="Running", startTime=rfc3339(ctx.now), revision=info.revision,
                      progress={"total": total, "completed": 0, "failed": 0, "pending": total},
                      progressText=f"0/{total}", resolvedProviders=resolved.groups,
                      resolvedTools=resolved_tool_records(ctx.spec, ctx.registries))
    out.event("Normal", "Planned", f"planned {total} work units from {config_name} at {info.revision}")
    return None


async def _preflight(ctx: JobContext, secrets: list[SecretEnv]) -> tuple[str, str] | None:
    """What a worker pod would need but cannot get: fail now, naming the object (never a value), instead of
    leaving pods stuck in CreateContainerConfigError or FailedMount."""
    needed = [(s.secret_name, s.key, f"Provider credential {s.env}") for s in secrets]
    output = ctx.spec.output
    if output and output.s3 and output.s3.secret_ref:
        needed += [(output.s3.secret_ref.name, key, "spec.output.s3.secretRef")
                   for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")]
    for name, key, what in needed:
        try:
            keys = await ctx.kube.secret_keys(ctx.namespace, name)
        except NotFound:
            return "SecretNotFound", f"Secret {ctx.namespace}/{name} ({what}) not found"
        if key not in keys:
            return "SecretKeyNotFound", f"Secret {ctx.namespace}/{name} has no key {key!r} ({what})"
    if output and output.pvc and not await ctx.kube.has_pvc(ctx.namespace, output.pvc.claim_name):
        return "ClaimNotFound", f"PersistentVolumeClaim {ctx.namespace}/{output.pvc.claim_name} (spec.output.pvc) " \
                                "not found"
    return None


async def step_launch(ctx: JobContext, out: JobOutcome) -> JobOutcome | None:
    """Create the worker Job if it does not exist yet (idempotent by name)."""
    if ctx.worker_job is not None or _condition(ctx.status.get("conditions"), "JobCreated").get("status") == "True":
        return None
    config = ArenaConfigSpec.model_validate((ctx.config or {})["spec"])
    info = source_info(ctx.source)
    assert info is not None and info.url and info.digest
    resolved = ResolvedProviders.from_config((await ctx.queue.get_config() or {}).get("providers", {}))
    replicas = _initial_replicas(ctx.spec, config)
    params = WorkerJobParams(
        namespace=ctx.namespace, job_name=ctx.name, job_uid=ctx.uid, image=ctx.settings.image, replicas=replicas,
        artifact_url=info.url, artifact_digest=info.digest, redis_url=ctx.settings.worker_redis_url,
        job_key=ctx.queue.key, output=ctx.spec.output.model_dump(by_alias=True, exclude_none=True)
        if ctx.spec.output else {}, secrets=resolved.secrets, concurrency=config.concurrency,
    )
    created = await ctx.workloads.create_job(ctx.namespace, build_worker_job(params))
    name = worker_job_name(ctx.name)
    out.status.setdefault("phase", "Running")
    out.conditions.append(("JobCreated", True, "Created", f"worker Job {name} with {replicas} replicas"))
    if created:
        out.event("Normal", "JobCreated", f"created worker Job {name} ({replicas} replicas)")
    return None


async def step_observe(ctx: JobContext, out: JobOutcome, last: dict[str, Any]) -> JobOutcome:
    """Copy counters to status; finish on aggregation, a fatal worker error or a failed worker Job; autoscale."""
    counters = await ctx.queue.counters()
    out.retried = counters.retried
    job_status = (ctx.worker_job or {}).get("status") or {}
    out.status.update(progress={"total": counters.total, "completed": counters.completed, "failed": counters.failed,
                                "pending": counters.pending},
                      progressText=f"{counters.completed + counters.failed}/{counters.total}",
                      activeWorkers=int(job_status.get("active") or 0))
    fatal = await ctx.queue.fatal()
    if fatal:
        await ctx.workloads.delete_job(ctx.namespace, worker_job_name(ctx.name))
        return _finish(ctx, out, "Failed", "WorkerFailed", fatal)
    aggregated = await ctx.queue.aggregated()
    if aggregated is not None:
        out.status["result"] = {"summary": aggregated.get("summary")}
        if aggregated.get("url"):
            out.status["result"]["url"] = aggregated["url"]
        summary = aggregated.get("summary") or {}
        if counters.completed == 0:
            return _finish(ctx, out, "Failed", "NoUnitRan",
                           f"none of the {counters.total} units could run (see errorKinds in the summary: "
                           f"{summary.get('errorKinds', {})}); results at {aggregated.get('url')}")
        return _finish(ctx, out, "Succeeded", "Completed",
                       f"{counters.completed} units completed, {counters.failed} failed; pass rate "
                       f"{summary.get('passRate', 0):.0%}; "
                       + (f"results at {aggregated['url']}" if aggregated.get("url") else
                          "no spec.output: summary only, in status.result.summary"))
    complete = _condition(job_status.get("conditions"), "Complete")
    if complete.get("status") == "True" and await ctx.queue.aggregated() is None:
        return _finish(ctx, out, "Failed", "NoReports",
                       f"the worker Job completed without writing reports; {counters.completed + counters.failed}/"
                       f"{counters.total} units done, partial results kept")
    failed = _condition(job_status.get("conditions"), "Failed")
    if failed.get("status") == "True":
        return _finish(ctx, out, "Failed", "WorkerJobFailed",
                       f"worker Job failed ({failed.get('reason')}: {failed.get('message', '')}); "
                       f"{counters.completed + counters.failed}/{counters.total} units done, partial results kept")
    out.conditions.append(("Progressing", True, "Running",
                           f"{counters.completed + counters.failed}/{counters.total} units, "
                           f"{job_status.get('active') or 0} workers active"))
    await _autoscale(ctx, out, counters, last)
    return out


async def _autoscale(ctx: JobContext, out: JobOutcome, counters: Any, last: dict[str, Any]) -> None:
    workers = ctx.spec.workers
    if workers is None or (workers.min_replicas is None and workers.max_replicas is None) or not ctx.worker_job:
        return
    low = workers.min_replicas or 1
    high = max(low, workers.max_replicas or low)
    concurrency = int(((await ctx.queue.get_config()) or {}).get("concurrency") or 4)
    wanted = math.ceil(counters.pending / (concurrency * UNITS_PER_WORKER_SLOT)) if counters.pending else low
    desired = min(high, max(low, wanted))
    current = int((ctx.worker_job.get("spec") or {}).get("parallelism") or 0)
    done = counters.completed + counters.failed
    rate = (done - last.get("done", done)) / max(1e-6, (ctx.now - last.get("at", ctx.now)).total_seconds() or 1)
    last.update(done=done, at=ctx.now)
    if desired != current and counters.pending:
        await ctx.workloads.scale_job(ctx.namespace, worker_job_name(ctx.name), desired)
        out.event("Normal", "Scaled", f"scaled workers {current} → {desired} ({counters.pending} units pending, "
                  f"{rate:.1f} units/s, bounds {low}..{high})")


async def reconcile_job(ctx: JobContext, last: dict[str, Any]) -> JobOutcome:
    out = JobOutcome(status={"observedGeneration": ctx.generation})
    for step in (step_finished, step_cancel, step_plan, step_launch):
        decided = await step(ctx, out)
        if decided is not None:
            return decided
    return await step_observe(ctx, out, last)


def unsupported_reason(spec: ArenaJobSpec) -> str | None:
    """Say so plainly rather than run something other than what the manifest asks for."""
    if spec.type != "evaluation":
        return f"spec.type {spec.type!r} is not implemented by this operator version yet (evaluation is)"
    if spec.schedule is not None:
        return "spec.schedule (recurring runs) is not implemented by this operator version yet"
    return None


def _formats(spec: ArenaJobSpec) -> list[str]:
    chosen = spec.evaluation.output_formats if spec.evaluation else None
    return list(chosen) if chosen else ["json", "junit", "csv"]


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

