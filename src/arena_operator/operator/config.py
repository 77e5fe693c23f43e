"""Operator settings from the environment (the Helm chart sets them), with defaults for a laptop."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.egress import SETTING_VARIABLES as EGRESS_SETTINGS
from ..engine.egress import EgressPolicy
from ..reconcile.jobcontext import DEFAULT_FINISHED_KEY_TTL_SECONDS, DEFAULT_WORKER_START_TIMEOUT_SECONDS
from ..runplan.units import DEFAULT_MAX_UNITS
from ..sources.artifact import DEFAULT_MAX_BYTES
from ..sources.bounded import DEFAULT_MEMORY_BYTES, DEFAULT_TIMEOUT_SECONDS, Budget
from ..sources.store import DEFAULT_KEEP
from ..workqueue.queue import DEFAULT_AGGREGATION_LEASE_SECONDS, DEFAULT_VISIBILITY_TIMEOUT_SECONDS


def _json(env: Mapping[str, str], name: str, kind: type) -> Any:
    """A JSON setting of the chart; a malformed one stops start-up naming the variable (never a silent default)."""
    try:
        value = json.loads(env[name])
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(value, kind):
        raise ValueError(f"{name} must be a JSON {kind.__name__}, got {type(value).__name__}")
    return value


def worker_pod_defaults(env: Mapping[str, str]) -> dict[str, Any]:
    """The chart's worker defaults (service account, resources, nodeSelector, tolerations, podOverrides) as one
    podOverrides-shaped dict; a job's own spec.workers.podOverrides is applied over it."""
    defaults: dict[str, Any] = {}
    if env.get("ARENA_WORKER_POD_OVERRIDES"):
        defaults.update(_json(env, "ARENA_WORKER_POD_OVERRIDES", dict))
    for name, key, kind in (("ARENA_WORKER_RESOURCES", "resources", dict),
                            ("ARENA_WORKER_NODE_SELECTOR", "nodeSelector", dict),
                            ("ARENA_WORKER_TOLERATIONS", "tolerations", list)):
        if env.get(name):
            defaults[key] = _json(env, name, kind)
    if env.get("ARENA_WORKER_SERVICE_ACCOUNT"):
        defaults["serviceAccountName"] = env["ARENA_WORKER_SERVICE_ACCOUNT"]
    return defaults


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass(frozen=True)
class OperatorConfig:
    artifact_dir: Path
    artifact_host: str
    artifact_port: int
    artifact_base_url: str | None  # e.g. http://arena-operator.arena-system.svc:8080
    artifacts_to_keep: int
    max_artifact_bytes: int
    redis_url: str
    worker_redis_url: str
    worker_image: str
    max_units: int
    config_wait_seconds: float
    visibility_timeout: float
    aggregation_lease: float
    workspace_dir: Path | None = None  # the workspace volume for type workspace sources and contentPath
    worker_pod_defaults: dict[str, Any] = field(default_factory=dict)  # podOverrides every worker pod starts from
    validation_budget: Budget = field(default_factory=Budget)  # one bundle's validation: seconds and bytes
    worker_start_timeout: float = DEFAULT_WORKER_START_TIMEOUT_SECONDS  # no worker started by then: the job fails
    finished_key_ttl: float = DEFAULT_FINISHED_KEY_TTL_SECONDS  # a finished job's Redis keys expire after this
    egress: dict[str, str] = field(default_factory=dict)  # ARENA_EGRESS_*: the operator's policy, copied to workers

    @classmethod
    def from_env(cls) -> OperatorConfig:
        EgressPolicy.cluster(os.environ)  # a malformed egress setting stops start-up, naming the variable
        return cls(
            artifact_dir=Path(os.environ.get("ARENA_ARTIFACT_DIR", "/tmp/arena-artifacts")),
            artifact_host=os.environ.get("ARENA_ARTIFACT_HOST", "0.0.0.0"),
            artifact_port=int(os.environ.get("ARENA_ARTIFACT_PORT", "8080")),
            artifact_base_url=os.environ.get("ARENA_ARTIFACT_BASE_URL"),
            artifacts_to_keep=int(os.environ.get("ARENA_ARTIFACTS_TO_KEEP", DEFAULT_KEEP)),
            max_artifact_bytes=int(os.environ.get("ARENA_MAX_ARTIFACT_BYTES", DEFAULT_MAX_BYTES)),
            redis_url=os.environ.get("ARENA_REDIS_URL", "redis://localhost:6379/0"),
            worker_redis_url=os.environ.get("ARENA_WORKER_REDIS_URL")
            or os.environ.get("ARENA_REDIS_URL", "redis://localhost:6379/0"),
            worker_image=os.environ.get("ARENA_WORKER_IMAGE", "ghcr.io/arena-operator/arena-operator:0.1.0"),
            max_units=int(os.environ.get("ARENA_MAX_UNITS", DEFAULT_MAX_UNITS)),
            config_wait_seconds=float(os.environ.get("ARENA_CONFIG_WAIT_SECONDS", "600")),
            visibility_timeout=_float("ARENA_VISIBILITY_TIMEOUT_SECONDS", DEFAULT_VISIBILITY_TIMEOUT_SECONDS),
            aggregation_lease=_float("ARENA_AGGREGATION_LEASE_SECONDS", DEFAULT_AGGREGATION_LEASE_SECONDS),
            workspace_dir=Path(os.environ["ARENA_WORKSPACE_DIR"]) if os.environ.get("ARENA_WORKSPACE_DIR") else None,
            worker_pod_defaults=worker_pod_defaults(os.environ),
            validation_budget=Budget(_float("ARENA_VALIDATION_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS),
                                     int(_float("ARENA_VALIDATION_MEMORY_MB", DEFAULT_MEMORY_BYTES / 2**20) * 2**20)),
            worker_start_timeout=_float("ARENA_WORKER_START_TIMEOUT_SECONDS", DEFAULT_WORKER_START_TIMEOUT_SECONDS),
            finished_key_ttl=_float("ARENA_FINISHED_KEY_TTL_SECONDS", DEFAULT_FINISHED_KEY_TTL_SECONDS),
            egress={name: os.environ[name] for name in EGRESS_SETTINGS if name in os.environ},
        )

    def base_url(self, port: int) -> str:
        """How workers reach the artifact server: the configured URL (the chart's Service), else this pod's IP
        (downward API POD_IP; artifact URLs follow when it changes), else this host."""
        if self.artifact_base_url:
            return self.artifact_base_url
        if self.artifact_host in ("127.0.0.1", "localhost"):
            return f"http://127.0.0.1:{port}"
        return f"http://{os.environ.get('POD_IP') or socket.getfqdn()}:{port}"


# How often each job's timer wakes to copy progress, launch, scale or finish.
JOB_TICK_SECONDS = _float("ARENA_JOB_TICK_SECONDS", 3.0)

# How often each source's timer wakes to check whether it is due (a cheap, in-memory decision).
SOURCE_TICK_SECONDS = _float("ARENA_SOURCE_TICK_SECONDS", 5.0)
