"""Operator start-up and shutdown: kopf settings, the API client, the artifact store and its HTTP server."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from ..api.common import ANNOTATION_PREFIX, FINALIZER
from ..kube import Kube, Workloads
from ..reconcile.jobcontext import JobSettings
from ..sources.server import ArtifactServer
from ..sources.store import ArtifactStore
from ..workqueue.connect import OPERATOR_RETRIES, connect
from .config import OperatorConfig
from .metrics import OperatorMetrics


@kopf.on.startup(id="operator_startup")
async def operator_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: logging.Logger,
                           **_: Any) -> None:
    # One replica (Deployment strategy Recreate): no peering, no leader election to wait for.
    settings.peering.standalone = True
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration")
    # Watches are re-established every few minutes: a silently dead connection costs at most that long.
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.watching.connect_timeout = 30
    settings.posting.level = logging.INFO
    # A timer busy in a reconcile when its object is deleted (e.g. the TTL step deleting its own ArenaJob) is
    # re-checked every second, so the finalizer goes promptly rather than after kopf's default minute.
    settings.background.instant_exit_timeout = 0.5
    settings.background.cancellation_polling = 1.0
    settings.networking.request_timeout = 60

    config = OperatorConfig.from_env()
    memo.config = config
    if getattr(memo, "kube", None) is None:
        memo.kube = Kube()
    memo.store = ArtifactStore(config.artifact_dir, keep=config.artifacts_to_keep)
    memo.workloads = Workloads(memo.kube)
    memo.redis = connect(config.redis_url, retries=OPERATOR_RETRIES)
    memo.job_settings = JobSettings(image=config.worker_image, worker_redis_url=config.worker_redis_url,
                                    max_units=config.max_units, config_wait=config.config_wait_seconds,
                                    visibility_timeout=config.visibility_timeout,
                                    aggregation_lease=config.aggregation_lease,
                                    pod_defaults=config.worker_pod_defaults,
                                    worker_start_timeout=config.worker_start_timeout,
                                    finished_key_ttl=config.finished_key_ttl, egress=config.egress)
    memo.metrics = OperatorMetrics()
    memo.artifact_server = ArtifactServer(memo.store, config.artifact_host, config.artifact_port,
                                          memo.metrics.registry)
    port = await memo.artifact_server.start()
    memo.artifact_base_url = config.base_url(port)
    logger.info("serving artifacts from %s at %s", config.artifact_dir, memo.artifact_base_url)


@kopf.on.cleanup(id="operator_cleanup")
async def operator_cleanup(memo: kopf.Memo, **_: Any) -> None:
    server = getattr(memo, "artifact_server", None)
    if server is not None:
        await server.stop()
    client = getattr(memo, "redis", None)
    if client is not None:
        await client.aclose()
