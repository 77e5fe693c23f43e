"""ArenaJob: a timer runs the ordered reconcile steps of reconcile.arenajob (a run) or reconcile.template (a job
with a schedule or a source-change trigger); the finalizer removes a run's Redis keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NoReturn

import kopf
from redis.exceptions import RedisError

from ..api import conditions as c
from ..api.arenajob import ArenaJobSpec
from ..api.common import (
    ANNOTATION_PINNED_DIGEST,
    ANNOTATION_PINNED_REVISION,
    GROUP,
    LABEL_PARENT,
    VERSION,
    parse_rfc3339,
)
from ..reconcile.arenajob import READY_RULE, JobContext, reconcile_job
from ..reconcile.jobspec import job_source
from ..reconcile.outcome import Outcome
from ..reconcile.template import Child, TemplateContext, is_template, reconcile_template
from ..reconcile.worker_job import arenajob_label_value
from ..workqueue.queue import WorkQueue, job_key
from .config import JOB_TICK_SECONDS
from .indexes import one
from .status import apply_outcome, parse_or_reject, report_refusal

REDIS_RETRY_SECONDS = 10
PLURAL = "arenajobs"


def _queue(memo: kopf.Memo, namespace: str, name: str, uid: str) -> WorkQueue:
    return WorkQueue(memo.redis, job_key(namespace, name, uid))


def _created(meta: kopf.Meta) -> datetime:
    return datetime.fromisoformat(str(meta.get("creationTimestamp")).replace("Z", "+00:00"))


@kopf.timer(GROUP, VERSION, PLURAL, interval=JOB_TICK_SECONDS, id="arenajob_reconcile")
async def arenajob_reconcile(body: kopf.Body, spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta,
                             namespace: str, name: str, uid: str, patch: kopf.Patch, memo: kopf.Memo,
                             **indexes: Any) -> None:
    generation = int(meta.get("generation") or 1)
    current = dict(status)
    job = parse_or_reject(ArenaJobSpec, body, spec, patch, current, generation, "Failed", READY_RULE)
    if job is None:
        return
    config = one(indexes["arena_configs"], (namespace, job.config_ref.name)) if job.config_ref else None
    source = one(indexes["arena_sources"], (namespace, job_source(job, config)))
    if is_template(job):
        ctx = _template(memo, namespace, name, uid, generation, meta, job, dict(spec), current, source,
                        list(indexes["arena_jobs"].get(namespace, [])))
        try:
            outcome = await reconcile_template(ctx)
        except Exception as exc:
            report_refusal(body, patch, current, exc, generation)
            raise
        apply_outcome(body, patch, current, outcome, generation)
        return
    run = _run(memo, namespace, name, uid, generation, meta, job, current, config, source, indexes)
    try:
        outcome = await reconcile_job(run)
    except RedisError as exc:
        memo.metrics.reconcile_errors.labels(kind=c.REDIS_UNAVAILABLE).inc()
        _redis_unavailable(body, patch, current, exc, generation)
    except Exception as exc:
        memo.metrics.reconcile_errors.labels(kind=type(exc).__name__).inc()
        report_refusal(body, patch, current, exc, generation)
        raise
    memo.metrics.job_phase(uid, outcome.status.get("phase") or status.get("phase"))
    if "progress" in outcome.status:
        memo.metrics.job_units(namespace, name, outcome.status["progress"], outcome.retried)
    apply_outcome(body, patch, current, outcome, generation)


def _run(memo: kopf.Memo, namespace: str, name: str, uid: str, generation: int, meta: kopf.Meta, job: ArenaJobSpec,
         status: dict[str, Any], config: Any, source: Any, indexes: dict[str, Any]) -> JobContext:
    async def delete_self() -> None:
        await memo.workloads.delete_custom(GROUP, VERSION, PLURAL, namespace, name)

    annotations = dict(meta.get("annotations") or {})
    pinned = (annotations[ANNOTATION_PINNED_REVISION], annotations[ANNOTATION_PINNED_DIGEST]) \
        if ANNOTATION_PINNED_DIGEST in annotations and ANNOTATION_PINNED_REVISION in annotations else None
    return JobContext(
        namespace=namespace, name=name, uid=uid, generation=generation, created=_created(meta), spec=job,
        status=status, config=config, source=source,
        providers=list(indexes["providers_by_namespace"].get(namespace, [])),
        registries=list(indexes["tool_registries_by_namespace"].get(namespace, [])),
        worker_job=one(indexes["worker_jobs"], (namespace, name)), queue=_queue(memo, namespace, name, uid),
        store=memo.store, workloads=memo.workloads, settings=memo.job_settings,
        max_bytes=memo.config.max_artifact_bytes, delete_self=delete_self, kube=memo.kube,
        rates=memo.setdefault("job_rates", {}).setdefault(uid, {}), pinned=pinned,
        artifact_base_url=memo.artifact_base_url, parent=(meta.get("labels") or {}).get(LABEL_PARENT),
        jobs=list(indexes["arena_jobs"].get(namespace, [])),
        pods=list(indexes["worker_pods"].get((namespace, name), [])),
    )


def _template(memo: kopf.Memo, namespace: str, name: str, uid: str, generation: int, meta: kopf.Meta,
              job: ArenaJobSpec, raw_spec: dict[str, Any], status: dict[str, Any], source: Any,
              jobs: list[dict[str, Any]]) -> TemplateContext:
    workloads = memo.workloads
    label = arenajob_label_value(name)
    children = [Child(j["name"], j.get("phase"), parse_rfc3339(j.get("created")) or _created(meta),
                      parse_rfc3339(j.get("completionTime")), j.get("revision"), (j.get("result") or {}).get("summary"))
                for j in jobs if j.get("parent") == label]

    async def create(body: dict[str, Any]) -> bool:
        return await workloads.create_custom(GROUP, VERSION, PLURAL, namespace, body)

    async def cancel(child: str) -> None:
        await workloads.patch_custom(GROUP, VERSION, PLURAL, namespace, child, {"spec": {"suspend": True}})

    async def delete(child: str) -> None:
        await workloads.delete_custom(GROUP, VERSION, PLURAL, namespace, child)

    return TemplateContext(namespace=namespace, name=name, uid=uid, generation=generation, created=_created(meta),
                           spec=job, raw_spec=raw_spec, status=status, children=children,
                           source_artifact=((source or {}).get("status") or {}).get("artifact"),
                           create_child=create, cancel_child=cancel, delete_child=delete)


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


@kopf.on.delete(GROUP, VERSION, PLURAL, id="arenajob_delete")
async def arenajob_delete(namespace: str, name: str, uid: str, memo: kopf.Memo, **_: Any) -> None:
    """Workers stop (cancel flag), then every Redis key of the job goes; the worker Job and a template's
    children are garbage-collected through their ownerReferences."""
    queue = _queue(memo, namespace, name, uid)
    await queue.cancel()
    await queue.delete()
    memo.get("job_rates", {}).pop(uid, None)
    memo.metrics.forget_job(namespace, name, uid)
