"""ArenaJob: a timer runs the ordered reconcile steps of jobs.py; the finalizer removes the job's Redis keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import kopf
from pydantic import ValidationError
from redis.exceptions import RedisError

from ..api.arenajob import ArenaJobSpec
from ..api.conditions import set_condition
from ..api.kinds import spec_problems
from ..reconcile.arenajob import JobContext, reconcile_job
from ..workqueue.queue import WorkQueue, job_key
from .config import GROUP, JOB_TICK_SECONDS, VERSION
from .indexes import one

REDIS_RETRY_SECONDS = 10


def _condition_reason(conditions: list[dict[str, Any]], kind: str) -> str | None:
    return next((c.get("reason") for c in conditions if c.get("type") == kind), None)


def _queue(memo: kopf.Memo, namespace: str, name: str, uid: str) -> WorkQueue:
    return WorkQueue(memo.redis, job_key(namespace, name, uid))


@kopf.timer(GROUP, VERSION, "arenajobs", interval=JOB_TICK_SECONDS, id="arenajob_reconcile")
async def arenajob_reconcile(body: kopf.Body, spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta,
                             namespace: str, name: str, uid: str, patch: kopf.Patch, memo: kopf.Memo,
                             arena_configs: kopf.Index, arena_sources: kopf.Index,
                             providers_by_namespace: kopf.Index, tool_registries_by_namespace: kopf.Index,
                             worker_jobs: kopf.Index, **_: Any) -> None:
    generation = int(meta.get("generation") or 1)
    conditions = list(status.get("conditions") or [])
    try:
        job = ArenaJobSpec.model_validate(dict(spec))
    except ValidationError as error:
        if status.get("phase") != "Failed":
            problem = spec_problems(error)
            patch.status.update(phase="Failed", message=problem, observedGeneration=generation,
                                conditions=set_condition(conditions, "Ready", False, "InvalidSpec", problem,
                                                         generation))
            kopf.warn(body, reason="InvalidSpec", message=problem)
        return
    config = one(arena_configs, (namespace, job.config_ref.name))
    source_name = ((config or {}).get("spec") or {}).get("sourceRef", {}).get("name")
    created = datetime.fromisoformat(str(meta.get("creationTimestamp")).replace("Z", "+00:00"))

    async def delete_self() -> None:
        await memo.workloads.delete_custom(GROUP, VERSION, "arenajobs", namespace, name)

    ctx = JobContext(
        namespace=namespace, name=name, uid=uid, generation=generation, created=created, spec=job,
        status=dict(status), config=config, source=one(arena_sources, (namespace, source_name)),
        providers=list(providers_by_namespace.get(namespace, [])),
        registries=list(tool_registries_by_namespace.get(namespace, [])),
        worker_job=one(worker_jobs, (namespace, name)), queue=_queue(memo, namespace, name, uid),
        store=memo.store, workloads=memo.workloads, settings=memo.job_settings,
        max_bytes=memo.config.max_artifact_bytes, delete_self=delete_self, kube=memo.kube,
    )
    rates: dict[str, Any] = memo.setdefault("job_rates", {}).setdefault(uid, {})
    try:
        outcome = await reconcile_job(ctx, rates)
    except RedisError as exc:
        memo.metrics.reconcile_errors.labels(kind="RedisUnavailable").inc()
        message = f"Redis unavailable ({type(exc).__name__}); retrying"
        if _condition_reason(conditions, "Ready") != "RedisUnavailable":
            patch.status["conditions"] = set_condition(conditions, "Ready", False, "RedisUnavailable", message,
                                                       generation)
            kopf.warn(body, reason="RedisUnavailable", message=message)
        raise kopf.TemporaryError(message, delay=REDIS_RETRY_SECONDS) from None
    except Exception as exc:
        memo.metrics.reconcile_errors.labels(kind=type(exc).__name__).inc()
        raise
    memo.metrics.job_phase(uid, outcome.status.get("phase") or status.get("phase"))
    if "progress" in outcome.status:
        memo.metrics.job_units(namespace, name, outcome.status["progress"], outcome.retried)
    patch.status.update(outcome.status)
    for kind, ok, reason, message in outcome.conditions:
        conditions = set_condition(conditions, kind, ok, reason, message, generation)
    if outcome.conditions:
        patch.status["conditions"] = conditions
    for kind, reason, message in outcome.events:
        kopf.event(body, type=kind, reason=reason, message=message)


@kopf.on.delete(GROUP, VERSION, "arenajobs", id="arenajob_delete")
async def arenajob_delete(namespace: str, name: str, uid: str, memo: kopf.Memo, **_: Any) -> None:
    """Workers stop (cancel flag), then every Redis key of the job goes; the worker Job is garbage-collected
    through its ownerReference."""
    queue = _queue(memo, namespace, name, uid)
    await queue.cancel()
    await queue.delete()
    memo.get("job_rates", {}).pop(uid, None)
    memo.metrics.forget_job(namespace, name, uid)
