"""An ArenaJob with ``schedule`` or ``trigger.onSourceChange`` is a template, as a CronJob is: it never runs
itself; each due time (or each new source revision) creates a child ArenaJob with the template's spec minus
the template fields, owned by and labelled with the template. Steps: children → suspended → schedule →
trigger. No kopf here."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..api import conditions as c
from ..api.arenajob import ArenaJobSpec
from ..api.common import (
    ANNOTATION_PINNED_DIGEST,
    ANNOTATION_PINNED_REVISION,
    ANNOTATION_SCHEDULED_AT,
    API_VERSION,
    LABEL_PARENT,
    LABEL_REVISION_HASH,
    LABEL_RUN_CAUSE,
    parse_duration,
    parse_rfc3339,
    rfc3339,
)
from .outcome import ObjectIdentity, Outcome, ReadyRule, Step, run_steps
from .schedule import child_name, due
from .worker_job import arenajob_label_value

TEMPLATE_FIELDS = ("schedule", "trigger", "successfulJobsHistoryLimit", "failedJobsHistoryLimit")
FINISHED = frozenset({"Succeeded", "Failed", "Cancelled"})
READY_RULE = ReadyRule(positive=(c.SCHEDULED_CONDITION,))
MAX_NAME = 63


def is_template(spec: ArenaJobSpec) -> bool:
    return spec.schedule is not None or bool(spec.trigger and spec.trigger.on_source_change)


@dataclass(frozen=True)
class Child:
    """What a template needs to know of one of its children (from the operator's index of ArenaJobs)."""

    name: str
    phase: str | None
    created: datetime
    completion_time: datetime | None = None
    revision: str | None = None
    summary: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED


@dataclass
class TemplateContext(ObjectIdentity):
    spec: ArenaJobSpec
    raw_spec: dict[str, Any]  # as written, so a child carries exactly what the user wrote
    status: dict[str, Any]
    children: list[Child]
    source_artifact: dict[str, Any] | None  # status.artifact of the job's ArenaSource (sourceRef or the config's)
    create_child: Callable[[dict[str, Any]], Awaitable[bool]]
    cancel_child: Callable[[str], Awaitable[None]]
    delete_child: Callable[[str], Awaitable[None]]
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


async def step_children(ctx: TemplateContext, out: Outcome) -> None:
    """Report the children (active, last finished, last success) and prune finished ones past the history
    limits, oldest first."""
    finished = sorted((ch for ch in ctx.children if ch.finished),
                      key=lambda ch: ch.completion_time or ch.created, reverse=True)
    out.status["active"] = sorted(ch.name for ch in ctx.children if not ch.finished)
    if finished:
        last = finished[0]
        out.status["lastRun"] = {"name": last.name, "phase": last.phase, "revision": last.revision,
                                 "summary": last.summary,
                                 "completionTime": rfc3339(last.completion_time) if last.completion_time else None}
    succeeded = [ch for ch in finished if ch.phase == "Succeeded"]
    if succeeded and succeeded[0].completion_time:
        out.status["lastSuccessfulTime"] = rfc3339(succeeded[0].completion_time)
    limits = {True: ctx.spec.successful_jobs_history_limit, False: ctx.spec.failed_jobs_history_limit}
    kept = {True: 0, False: 0}
    for child in finished:
        ok = child.phase == "Succeeded"
        kept[ok] += 1
        if kept[ok] > limits[ok]:
            await ctx.delete_child(child.name)
            out.event("Normal", c.PRUNED, f"deleted {child.phase} run {child.name} (history limit {limits[ok]})")


async def step_suspended(ctx: TemplateContext, out: Outcome) -> None:
    out.status["phase"] = "Scheduled"
    if ctx.spec.cancel_requested:
        field = "suspend" if ctx.spec.suspend else "cancelled"
        out.condition(c.SCHEDULED_CONDITION, False, c.SUSPENDED, f"spec.{field}: no new runs are created")
        out.stop()


async def step_schedule(ctx: TemplateContext, out: Outcome) -> None:
    """At most one run per pass: the latest due time within the starting deadline."""
    schedule = ctx.spec.schedule
    if schedule is None:
        return
    last = parse_rfc3339(ctx.status.get("lastScheduleTime"))
    when = due(schedule.cron, schedule.timezone, last, ctx.created, ctx.now, schedule.starting_deadline_seconds)
    out.status["nextScheduleTime"] = rfc3339(when.next_at)
    if when.missed and when.run_at is None:
        out.event("Warning", c.MISSED_SCHEDULE, f"{when.missed} due run(s) passed their starting deadline "
                  f"({schedule.starting_deadline_seconds}s) without starting")
    if when.run_at is not None:
        out.status["lastScheduleTime"] = rfc3339(when.run_at)
        await _start(ctx, out, child_name(ctx.name, when.run_at), "schedule", schedule.concurrency_policy,
                     {ANNOTATION_SCHEDULED_AT: rfc3339(when.run_at)}, {})
    out.condition(c.SCHEDULED_CONDITION, True, c.SCHEDULED,
                  f"{schedule.cron} ({schedule.timezone}); next run at {rfc3339(when.next_at)}")


async def step_trigger(ctx: TemplateContext, out: Outcome) -> None:
    """One run per new source revision, once it has been current for the debounce time; it is pinned to that
    revision and artifact."""
    trigger = ctx.spec.trigger
    if not trigger or not trigger.on_source_change:
        return
    artifact = ctx.source_artifact or {}
    revision, digest = artifact.get("revision"), artifact.get("digest")
    if not revision or not digest:
        if ctx.spec.schedule is None:
            out.condition(c.SCHEDULED_CONDITION, False, c.WAITING_FOR_SOURCE,
                          "the job's ArenaSource has no artifact yet")
        return
    if ctx.spec.schedule is None:
        out.condition(c.SCHEDULED_CONDITION, True, c.TRIGGERED,
                      f"runs on each new revision of the source; last {ctx.status.get('lastTriggeredRevision')}")
    if revision == ctx.status.get("lastTriggeredRevision"):
        return
    if revision != ctx.status.get("seenRevision"):
        out.status.update(seenRevision=revision, seenTime=rfc3339(ctx.now))
        seen = ctx.now
    else:
        seen = parse_rfc3339(ctx.status.get("seenTime")) or ctx.now
    if ctx.now < seen + timedelta(seconds=parse_duration(trigger.debounce).total_seconds()):
        return
    key = hashlib.sha256(revision.encode()).hexdigest()[:10]
    out.status["lastTriggeredRevision"] = revision
    await _start(ctx, out, f"{_room(ctx.name, 12)}-r{key}", "source-change", "Allow",
                 {ANNOTATION_PINNED_REVISION: revision, ANNOTATION_PINNED_DIGEST: digest},
                 {LABEL_REVISION_HASH: key})


def _room(name: str, suffix: int) -> str:
    """The template name shortened so that name + suffix fits a label value (63)."""
    if len(name) + suffix <= MAX_NAME:
        return name
    return f"{name[:MAX_NAME - suffix - 9]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


async def _start(ctx: TemplateContext, out: Outcome, name: str, cause: str, policy: str,
                 annotations: dict[str, str], labels: dict[str, str]) -> None:
    active = [ch.name for ch in ctx.children if not ch.finished and ch.name != name]
    if active and policy == "Forbid":
        out.event("Normal", c.SKIPPED, f"run {name} skipped: {', '.join(active)} still running "
                  "(concurrencyPolicy Forbid)")
        return
    if active and policy == "Replace":
        for old in active:
            await ctx.cancel_child(old)
        out.event("Normal", c.REPLACED, f"cancelled {', '.join(active)} for {name} (concurrencyPolicy Replace)")
    if await ctx.create_child(child_manifest(ctx, name, cause, annotations, labels)):
        out.event("Normal", c.TRIGGERED, f"created run {name} ({cause})")


def child_manifest(ctx: TemplateContext, name: str, cause: str, annotations: dict[str, str],
                   labels: dict[str, str]) -> dict[str, Any]:
    spec = {k: v for k, v in ctx.raw_spec.items() if k not in TEMPLATE_FIELDS}
    spec["suspend"] = False
    return {
        "apiVersion": API_VERSION, "kind": "ArenaJob",
        "metadata": {
            "name": name, "namespace": ctx.namespace,
            "labels": {LABEL_PARENT: arenajob_label_value(ctx.name), LABEL_RUN_CAUSE: cause, **labels},
            "annotations": annotations,
            "ownerReferences": [{"apiVersion": API_VERSION, "kind": "ArenaJob", "name": ctx.name, "uid": ctx.uid,
                                 "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": spec,
    }


STEPS: tuple[Step[TemplateContext], ...] = (
    Step(step_children),
    Step(step_suspended, owns=(c.SCHEDULED_CONDITION,)),
    Step(step_schedule, owns=(c.SCHEDULED_CONDITION,)),
    Step(step_trigger, owns=(c.SCHEDULED_CONDITION,)),
)


async def reconcile_template(ctx: TemplateContext) -> Outcome:
    out = Outcome(status={"observedGeneration": ctx.generation})
    return await run_steps(ctx, STEPS, out, ctx.status.get("conditions") or [], READY_RULE)
