"""What one reconcile pass of an ArenaJob run sees (JobContext), the operator-wide settings for its worker Jobs,
and how a pass ends the run (finish)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..api.arenajob import ArenaJobSpec
from ..api.common import rfc3339
from ..kube import Kube, Workloads
from ..sources.store import ArtifactStore
from ..workqueue.queue import DEFAULT_AGGREGATION_LEASE_SECONDS, DEFAULT_VISIBILITY_TIMEOUT_SECONDS, WorkQueue
from .outcome import ObjectIdentity, Outcome

TERMINAL = frozenset({"Succeeded", "Failed", "Cancelled"})
DEFAULT_WORKER_START_TIMEOUT_SECONDS = 300.0  # image pulls and scheduling get this long before the job fails
DEFAULT_FINISHED_KEY_TTL_SECONDS = 3600.0  # results are in the sink and status; Redis keeps the rest this long


@dataclass
class JobSettings:
    """Operator-wide settings for worker Jobs (from the environment; the chart sets them)."""

    image: str
    worker_redis_url: str
    max_units: int
    config_wait: float  # seconds a job waits for its ArenaConfig to become Ready before failing
    visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT_SECONDS
    aggregation_lease: float = DEFAULT_AGGREGATION_LEASE_SECONDS
    pod_defaults: dict[str, Any] = field(default_factory=dict)  # the chart's worker defaults (podOverrides form)
    worker_start_timeout: float = DEFAULT_WORKER_START_TIMEOUT_SECONDS
    finished_key_ttl: float = DEFAULT_FINISHED_KEY_TTL_SECONDS
    egress: dict[str, str] = field(default_factory=dict)  # the egress settings every worker pod gets


@dataclass
class JobContext(ObjectIdentity):
    spec: ArenaJobSpec
    status: dict[str, Any]
    config: dict[str, Any] | None  # the ArenaConfig, from the index: {spec, status}; None with sourceRef
    source: dict[str, Any] | None  # its (or the job's sourceRef's) ArenaSource, from the index: {status}
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
    rates: dict[str, Any] = field(default_factory=dict)  # autoscaling's memory between passes
    pinned: tuple[str, str] | None = None  # (revision, digest) a child created by a source change must run
    artifact_base_url: str = ""  # where the operator's artifact server is reached by workers
    parent: str | None = None  # the template that created this run (its parent label), if any
    jobs: list[dict[str, Any]] = field(default_factory=list)  # outlines of the namespace's ArenaJobs (baselines)
    pods: list[dict[str, Any]] = field(default_factory=list)  # outlines of its worker pods (reconcile.workers)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


def finish(ctx: JobContext, out: Outcome, phase: str, reason: str, message: str) -> None:
    """A terminal phase: the pass stops; workers are no longer counted."""
    out.status.update(phase=phase, completionTime=rfc3339(ctx.now), message=message, activeWorkers=0)
    out.event("Normal" if phase == "Succeeded" else "Warning", reason, message)
    out.stop()


