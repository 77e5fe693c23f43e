"""Prometheus metrics of a worker: runs by status, run latency, provider errors by class."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

log = logging.getLogger("arena.worker")

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class WorkerMetrics:
    """Own registry (not the process default) so tests can run several workers in one process."""

    def __init__(self, port: int | None) -> None:
        self.registry = CollectorRegistry()
        self.runs = Counter("arena_worker_runs_total", "Work units run, by status (passed, failed, error)",
                            ["status"], registry=self.registry)
        self.latency = Histogram("arena_worker_run_duration_seconds", "Duration of one run (scenario × provider)",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.provider_errors = Counter("arena_worker_provider_errors_total",
                                       "Runs that ended in a provider/infrastructure error, by kind", ["kind"],
                                       registry=self.registry)
        self._server = None
        if port is not None:
            try:
                self._server, _thread = start_http_server(port, registry=self.registry)
            except OSError as exc:  # metrics are worth a warning, never a failed unit
                log.warning("metrics endpoint not started on port %s: %s", port, exc)

    def observe(self, run: dict[str, Any]) -> None:
        self.runs.labels(status=str(run.get("Status", "error"))).inc()
        self.latency.observe(float(run.get("Duration") or 0) / 1000)
        if run.get("Error"):
            self.provider_errors.labels(kind=str(run.get("ErrorKind") or "unknown")).inc()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
