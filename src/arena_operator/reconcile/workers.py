"""A run's lifetime and its workers' health, seen from the operator: the steps that guarantee a job ends.

- `step_deadline`: past `spec.activeDeadlineSeconds` (counted from the job's creation, so waiting for a config or
  for workers counts too) the run is cancelled and fails DeadlineExceeded; partial results stay.
- `step_workers`: the units held by a worker whose pod failed, or whose heartbeat stopped, are handed back at once
  (workqueue.reclaim), not after the visibility timeout; and a run none of whose workers ever started (an image
  that cannot be pulled, an unschedulable pod, a missing Secret, no pod created at all) says why while it waits and
  fails WorkersNotStarted with the pod's reason after the operator's worker start timeout.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..api import conditions as c
from ..api.common import parse_rfc3339
from ..workqueue.queue import HEARTBEAT_RETENTION_S
from ..workqueue.reclaim import release
from .jobcontext import finish
from .outcome import Outcome
from .worker_job import worker_job_name

if TYPE_CHECKING:
    from .jobcontext import JobContext

# Waiting reasons that do not clear up by waiting a few seconds (kubelet and scheduler spellings).
STUCK_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
                           "CreateContainerConfigError", "CreateContainerError", "Unschedulable", "FailedMount",
                           "RunContainerError"})
MAX_MESSAGE = 300
NO_POD_GRACE_SECONDS = 15.0  # the Job controller creates pods within seconds; after this, say none came


def pod_outline(pod: dict[str, Any]) -> dict[str, Any]:
    """What the operator keeps of a worker pod: its phase, and why it is not running (scheduler or kubelet)."""
    status, meta = pod.get("status") or {}, pod.get("metadata") or {}
    container = (status.get("containerStatuses") or [{}])[0]
    waiting = (container.get("state") or {}).get("waiting") or {}
    scheduled = c.get_condition(status.get("conditions"), "PodScheduled") or {}
    reason, message = waiting.get("reason"), waiting.get("message")
    if scheduled.get("status") == c.FALSE:
        reason, message = scheduled.get("reason") or "Unschedulable", scheduled.get("message")
    return {"name": meta.get("name"), "phase": status.get("phase") or "Pending", "reason": reason,
            "message": str(message or "")[:MAX_MESSAGE]}


async def step_deadline(ctx: JobContext, out: Outcome) -> None:
    deadline = ctx.spec.active_deadline_seconds
    if deadline is None or ctx.now < ctx.created + timedelta(seconds=deadline):
        return
    await ctx.queue.cancel()
    await ctx.workloads.delete_job(ctx.namespace, worker_job_name(ctx.name))
    counters = await ctx.queue.counters()
    done = f"{counters.completed + counters.failed}/{counters.total}"
    out.status.update(progress={"total": counters.total, "completed": counters.completed, "failed": counters.failed,
                                "pending": counters.pending}, progressText=done)
    message = f"exceeded spec.activeDeadlineSeconds ({deadline}s) with {done} units done; workers stopped, partial " \
              "results kept"
    out.condition(c.COMPLETE, False, c.DEADLINE_EXCEEDED, message)
    out.condition(c.PROGRESSING, False, c.DEADLINE_EXCEEDED, message)
    finish(ctx, out, "Failed", c.DEADLINE_EXCEEDED, message)


async def step_workers(ctx: JobContext, out: Outcome) -> None:
    if ctx.worker_job is None:
        return
    failed = sorted(pod["name"] for pod in ctx.pods if pod["phase"] == "Failed")
    released = await release(ctx.queue, failed)
    if released:
        who = f"failed pods {', '.join(failed)}" if failed else "workers whose heartbeat stopped"
        out.event("Normal", c.UNITS_RELEASED, f"{released} units of {who} handed back to the other workers")
    if any(pod["phase"] != "Pending" for pod in ctx.pods) or \
            await ctx.queue.active_consumers(within=HEARTBEAT_RETENTION_S):
        return  # a worker has started: from here on, failures are the worker Job's and the units'
    launched = parse_rfc3339((c.get_condition(ctx.status.get("conditions"), c.JOB_CREATED) or {})
                             .get("lastTransitionTime")) or ctx.now
    waited = (ctx.now - launched).total_seconds()
    why = _why_not_started(ctx, waited)
    if why is None:
        return
    if waited <= ctx.settings.worker_start_timeout:
        out.condition(c.PROGRESSING, True, c.WAITING_FOR_WORKERS, f"waiting for workers to start: {why}")
        return
    await ctx.workloads.delete_job(ctx.namespace, worker_job_name(ctx.name))
    message = f"no worker started within {ctx.settings.worker_start_timeout:.0f}s: {why}"
    out.condition(c.COMPLETE, False, c.WORKERS_NOT_STARTED, message)
    out.condition(c.PROGRESSING, False, c.WORKERS_NOT_STARTED, message)
    finish(ctx, out, "Failed", c.WORKERS_NOT_STARTED, message)


def _why_not_started(ctx: JobContext, waited: float) -> str | None:
    """The first stuck pod's reason, or that no pod exists a while after launch; None while pods are starting."""
    if not ctx.pods:
        if waited < NO_POD_GRACE_SECONDS:
            return None
        return f"the worker Job {worker_job_name(ctx.name)} has created no pod (quota, admission? see its events)"
    stuck = [pod for pod in ctx.pods if pod["reason"] in STUCK_REASONS]
    if not stuck:
        return None
    pod = stuck[0]
    return f"pod {pod['name']}: {pod['reason']}" + (f": {pod['message']}" if pod["message"] else "")
