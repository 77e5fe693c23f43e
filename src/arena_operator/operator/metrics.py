"""Prometheus metrics of the operator, served at /metrics by the operator's HTTP server (beside /artifacts)."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class OperatorMetrics:
    """One registry per operator (tests run several in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Gauge("arena_operator_jobs", "ArenaJobs by phase", ["phase"], registry=self.registry)
        self.units = Gauge("arena_operator_job_units", "Work units of a job by state (completed, failed, pending, "
                           "retried)", ["namespace", "job", "state"], registry=self.registry)
        self.queue_depth = Gauge("arena_operator_queue_depth", "Units waiting in a job's queue",
                                 ["namespace", "job"], registry=self.registry)
        self.reconcile_errors = Counter("arena_operator_reconcile_errors_total",
                                        "Reconcile passes that raised, by kind", ["kind"], registry=self.registry)
        self.fetch_seconds = Histogram("arena_operator_source_fetch_seconds",
                                       "Duration of ArenaSource reconcile passes that checked the remote",
                                       ["type"], buckets=FETCH_BUCKETS, registry=self.registry)
        self.fetch_failures = Counter("arena_operator_source_fetch_failures_total",
                                      "ArenaSource passes that failed, by reason", ["type", "reason"],
                                      registry=self.registry)
        self._phases: dict[str, str] = {}

    def job_phase(self, uid: str, phase: str | None) -> None:
        if phase:
            self._phases[uid] = phase
        else:
            self._phases.pop(uid, None)
        for known in ("Pending", "Running", "Succeeded", "Failed", "Cancelled"):
            self.jobs.labels(phase=known).set(sum(1 for p in self._phases.values() if p == known))

    def job_units(self, namespace: str, job: str, progress: dict[str, int], retried: int) -> None:
        for state in ("completed", "failed", "pending"):
            self.units.labels(namespace=namespace, job=job, state=state).set(progress.get(state, 0))
        self.units.labels(namespace=namespace, job=job, state="retried").set(retried)
        self.queue_depth.labels(namespace=namespace, job=job).set(progress.get("pending", 0))

    def forget_job(self, namespace: str, job: str, uid: str) -> None:
        """A deleted job leaves no series behind."""
        self.job_phase(uid, None)
        for state in ("completed", "failed", "pending", "retried"):
            with contextlib.suppress(KeyError):
                self.units.remove(namespace, job, state)
        with contextlib.suppress(KeyError):
            self.queue_depth.remove(namespace, job)
