"""ArenaJob: a timer runs the ordered reconcile steps of reconcile.arenajob; the finalizer removes the job's
Redis keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NoReturn

import kopf
from redis.exceptions import RedisError

from ..api import conditions as c
from ..api.arenajob import ArenaJobSpec
from ..api.common import GROUP, VERSION
from ..reconcile.arenajob import READY_RULE, JobContext, reconcile_job
from ..reconcile.outcome import Outcome
from ..workqueue.queue import WorkQueue, job_key
from .config import JOB_TICK_SECONDS
from .indexes import one
from .status import apply_outcome, parse_or_reject

REDIS_RETRY_SECONDS = 10


def _queue(memo: kopf.Memo, namespace: str, name: str, uid: str) -> WorkQueue:
    return WorkQueue(memo.redis, job_key(namespace, name, uid))


@kopf.timer(GROUP, VERSION, "arenajobs", interval=JOB_TICK_SECONDS, id="arenajob_reconcile")
async def arenajob_reconcile(body: kopf.Body, spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta,
                             namespace: str, name: str, uid: str, patch: kopf.Patch, memo: kopf.Memo,
                             arena_configs: kopf.Index, arena_sources: kopf.Index,
                             providers_by_namespace: kopf.Index, tool_registries_by_namespace: kopf.Index,
                             worker_jobs: kopf.Index, **_: Any) -> None:
    generation = int(meta.get("generation") or 1)
    current = dict(status)
    job = parse_or_reject(ArenaJobSpec, body, spec, patch, current, generation, "Failed", READY_RULE)
    if job is None:
        return
    config = one(arena_configs, (namespace, job.config_ref.name))
    source_name = ((config or {}).get("spec") or {}).get("sourceRef", {}).get("name")

    async def delete_self() -> None:
        await memo.workloads.delete_custom(GROUP, VERSION, "arenajobs", namespace, name)

    ctx = JobContext(
        namespace=namespace, name=name, uid=uid, generation=generation,
        created=datetime.fromisoformat(str(meta.get("creationTimestamp")).replace("Z", "+00:00")), spec=job,
        status=current, config=config, source=one(arena_sources, (namespace, source_name)),
        providers=list(providers_by_namespace.get(namespace, [])),
        registries=list(tool_registries_by_namespace.get(namespace, [])),
        worker_job=one(worker_jobs, (namespace, name)), queue=_queue(memo, namespace, name, uid),
        store=memo.store, workloads=memo.workloads, settings=memo.job_settings,
        max_bytes=memo.config.max_artifact_bytes, delete_self=delete_self, kube=memo.kube,
        rates=memo.setdefault("job_rates", {}).setdefault(uid, {}),
    )
    try:
        outcome = await reconcile_job(ctx)
    except RedisError as exc:
        memo.metrics.reconcile_errors.labels(kind=c.REDIS_UNAVAILABLE).inc()
        _redis_unavailable(body, patch, current, exc, generation)
    except Exception as exc:
        memo.metrics.reconcile_errors.labels(kind=type(exc).__name__).inc()
        raise
    memo.metrics.job_phase(uid, outcome.status.get("phase") or status.get("phase"))
    if "progress" in outcome.status:
        memo.metrics.job_units(namespace, name, outcome.status["progress"], outcome.retried)
    apply_outcome(body, patch, current, outcome, generation)


def _redis_unavailable(body: kopf.Body, patch: kopf.Patch, status: dict[str, Any], exc: RedisError,
                       generation: int) -> NoReturn:
    """Say so once (condition + event), then let kopf retry the timer soon."""
    message = f"Redis unavailable ({type(exc).__name__}); retrying"
    if (c.get_condition(status.get("conditions"), c.READY) or {}).get("reason") != c.REDIS_UNAVAILABLE:
        out = Outcome()
        out.condition(c.READY, False, c.REDIS_UNAVAILABLE, message)
        out.event("Warning", c.REDIS_UNAVAILABLE, message)
        apply_outcome(body, patch, status, out, generation)
    raise kopf.TemporaryError(message, delay=REDIS_RETRY_SECONDS) from None


@kopf.on.delete(GROUP, VERSION, "arenajobs", id="arenajob_delete")
async def arenajob_delete(namespace: str, name: str, uid: str, memo: kopf.Memo, **_: Any) -> None:
    """Workers stop (cancel flag), then every Redis key of the job goes; the worker Job is garbage-collected
    through its ownerReference."""
    queue = _queue(memo, namespace, name, uid)
    await queue.cancel()
    await queue.delete()
    memo.get("job_rates", {}).pop(uid, None)
    memo.metrics.forget_job(namespace, name, uid)
