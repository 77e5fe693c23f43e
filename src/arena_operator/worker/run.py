"""`arena worker`: one pod of an ArenaJob. Fetch and verify the bundle, then claim → run → record → ack until
the queue is drained (or the job cancelled); the worker that finishes last writes the reports.

Everything arrives by reference in the environment: the artifact URL and digest, the Redis URL, the job key and
the output config. Provider keys arrive as env vars from Secrets; the resolved job config (providers, tools,
limits) is read from Redis, where the operator put it."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError, ResponseError

from ..engine.bundle import Bundle, load_bundle
from ..engine.dispatch import RunExecutor
from ..engine.providers.circuit import UNAVAILABLE
from ..engine.providers.registry import build_providers
from ..engine.recording import RECORDING_CONTENT_TYPE, SessionRecorder, recording_settings
from ..logs import setup_logging
from ..results.aggregate import aggregate
from ..results.compare import judge_against
from ..results.formats import DEFAULT_FORMATS
from ..results.sinks import ResultSink, SinkError, sink_for
from ..results.summary import Summary
from ..runplan.apply import apply_resolved_config
from ..runplan.units import WorkUnit
from ..sources.download import fetch_bundle
from ..sources.errors import SourceError
from ..workqueue.connect import WORKER_RETRIES, connect
from ..workqueue.queue import (
    DEFAULT_AGGREGATION_LEASE_SECONDS,
    DEFAULT_VISIBILITY_TIMEOUT_SECONDS,
    Claimed,
    WorkQueue,
)
from ..workqueue.reclaim import HEARTBEAT_SECONDS
from .metrics import WorkerMetrics

log = logging.getLogger("arena.worker")

# Errors worth another attempt on another worker: the provider may recover. Others are final for the unit.
RETRYABLE_KINDS = frozenset({"rate_limited", "server_error", "timeout", "connection", "overloaded", "bad_response"})
# Exit code after SIGTERM: non-zero, so Kubernetes does not count a stopped worker as a finished one (a
# work-queue Job completes on its first successful pod).
EXIT_TERMINATED = 143
QUEUE_WAIT_SECONDS = 60.0  # how long a worker waits for its job's queue to be (re)planned before it gives up


class WorkerError(Exception):
    """A problem that stops this worker (bad artifact, unreachable sink); reported to the operator via Redis."""


@dataclass
class WorkerSettings:
    artifact_url: str
    artifact_digest: str
    redis_url: str
    job_key: str
    output: dict[str, Any]
    namespace: str
    job: str
    concurrency: int = 4
    consumer: str = field(default_factory=lambda: os.environ.get("POD_NAME") or os.environ.get("HOSTNAME", "worker"))
    results_dir: Path | None = None
    metrics_port: int | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    queue_wait: float = QUEUE_WAIT_SECONDS  # how long to wait for the job's (re)planned queue
    redis_retries: int = WORKER_RETRIES  # per command, across a Redis restart (workqueue.connect)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> WorkerSettings:
        env = dict(os.environ if env is None else env)
        missing = [k for k in ("ARENA_ARTIFACT_URL", "ARENA_ARTIFACT_DIGEST", "ARENA_REDIS_URL", "ARENA_JOB_KEY",
                               "ARENA_OUTPUT", "ARENA_NAMESPACE", "ARENA_JOB_NAME") if not env.get(k)]
        if missing:
            raise WorkerError(f"missing environment: {', '.join(missing)}")
        return cls(
            artifact_url=env["ARENA_ARTIFACT_URL"], artifact_digest=env["ARENA_ARTIFACT_DIGEST"],
            redis_url=env["ARENA_REDIS_URL"], job_key=env["ARENA_JOB_KEY"], output=json.loads(env["ARENA_OUTPUT"]),
            namespace=env["ARENA_NAMESPACE"], job=env["ARENA_JOB_NAME"],
            concurrency=int(env.get("ARENA_CONCURRENCY", "4")),
            results_dir=Path(env["ARENA_RESULTS_DIR"]) if env.get("ARENA_RESULTS_DIR") else None,
            metrics_port=int(env["ARENA_METRICS_PORT"]) if env.get("ARENA_METRICS_PORT") else None,
        )


async def aggregate_or_wait(queue: WorkQueue, consumer: str, lease: float,
                            write_reports: Callable[[], Awaitable[None]]) -> None:
    """After the drain, exactly one worker writes the reports under a short lease it keeps renewing; the others
    wait until it is done, so that if it dies (its lease expires) one of them — or a replacement pod — takes over."""
    while await queue.is_drained() and await queue.aggregated() is None:
        if await queue.claim_aggregation(consumer, lease=lease):
            renew = asyncio.create_task(_renew_lease(queue, consumer, lease))
            try:
                await write_reports()
            finally:
                renew.cancel()
            return
        await asyncio.sleep(min(1.0, lease / 3))


async def _renew_lease(queue: WorkQueue, consumer: str, lease: float) -> None:
    while True:
        await asyncio.sleep(lease / 3)
        await queue.claim_aggregation(consumer, lease=lease)


async def summary_from_queue(queue: WorkQueue) -> dict[str, Any]:
    """A job without `spec.output` keeps no files: its summary comes from the compact records in Redis."""
    summary = Summary()
    async for _unit_id, record in queue.done_results():
        summary.add(record.get("result") or failed_record(str(record.get("error") or "")))
    return summary.to_dict()


def failed_record(error: str) -> dict[str, Any]:
    """A unit recorded failed, as a result: its kind is the prefix the worker wrote (`connection: …`), if any."""
    kind, _, rest = error.partition(": ")
    known = kind.isidentifier() and kind.islower() and bool(rest)
    return {"Status": "error", "ErrorKind": kind, "Error": rest} if known else \
        {"Status": "error", "ErrorKind": "failed", "Error": error}


async def wait_for_queue(get_config: Callable[[], Awaitable[dict[str, Any] | None]],
                         wait: float = QUEUE_WAIT_SECONDS) -> dict[str, Any] | None:
    """The job's config, waiting up to `wait` seconds for it: a pod may start, or a queue be lost, just before
    the operator (re)plans the job."""
    deadline = time.monotonic() + wait
    while (config := await get_config()) is None and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
    return config


def unit_outcome(run: dict[str, Any]) -> str:
    if run.get("Error"):
        return "error"
    return "passed" if run.get("Passed") else "assertion_failed"


class Worker:
    """Runs units of one job with bounded concurrency; safe to crash at any point (the queue reclaims)."""

    def __init__(self, settings: WorkerSettings, queue: WorkQueue, bundle: Bundle, config: dict[str, Any],
                 sink: ResultSink | None, metrics: WorkerMetrics) -> None:
        self.settings = settings
        self.queue = queue
        self.config = config
        self.sink = sink
        self.metrics = metrics
        providers = build_providers(bundle.providers, bundle.root)
        enabled, self.recording_dir = recording_settings(bundle.arena.defaults.output.model_extra)
        recorder = SessionRecorder(Path(tempfile.mkdtemp(dir=settings.workdir, prefix="recordings-"))) \
            if enabled else None
        self.executor = RunExecutor(bundle, providers, recorder)
        self.unit_timeout = float(config.get("unitTimeout") or self.executor.run_timeout)
        self.executor.run_timeout = self.unit_timeout

    async def _keep_claimed(self, claimed: Claimed) -> None:
        """A unit running longer than the visibility timeout must not be handed to another worker meanwhile."""
        while True:
            await asyncio.sleep(max(0.1, self.queue.visibility_timeout / 3))
            await self.queue.extend(claimed, self.settings.consumer)

    async def run_unit(self, claimed: Claimed) -> None:
        unit = WorkUnit.from_json(claimed.unit)
        combo = unit.combination()
        keeper = asyncio.create_task(self._keep_claimed(claimed))
        try:
            result = await self._publish_recording((await self.executor.execute(combo)).to_dict())
        finally:
            keeper.cancel()
        self.metrics.observe(result)
        kind = result.get("ErrorKind") or ""
        if result.get("Error") and kind == UNAVAILABLE:
            # The provider's circuit is open: another attempt now would be refused the same way, so the unit is
            # recorded failed with that reason and the job ends instead of circling its units through the queue.
            if self.sink is not None:
                await self.sink.put_unit(claimed.unit_id, result)
            await self.queue.fail(claimed, f"{kind}: {result['Error']}", retryable=False)
            return
        if result.get("Error") and kind in RETRYABLE_KINDS:
            recorded = await self.queue.fail(claimed, f"{kind}: {result['Error']}", retryable=True)
            if recorded and self.sink is not None:
                await self.sink.put_unit(claimed.unit_id, result)
            return
        if self.sink is not None:
            await self.sink.put_unit(claimed.unit_id, result)
        await self.queue.complete(claimed, result, unit_outcome(result))
        log.info("unit %s %s", claimed.unit_id, result.get("Status"),
                 extra={"job": self.settings.job, "namespace": self.settings.namespace, "unit": claimed.unit_id,
                        "scenario": unit.scenario, "provider": unit.provider, "attempt": claimed.attempt,
                        "revision": self.config.get("revision", ""), "status": result.get("Status")})

    async def _publish_recording(self, result: dict[str, Any]) -> dict[str, Any]:
        """A run's session recording goes to the job's sink beside the units (`<recording dir>/<RunID>.jsonl`) and
        RecordingPath names it there; without a sink (no spec.output) nothing keeps it, so it is dropped."""
        local = result.pop("RecordingPath", None)
        if not local:
            return result
        path = Path(local)
        try:
            if self.sink is not None:
                name = f"{self.recording_dir.strip('/')}/{path.name}"
                await self.sink.put_object(name, path, RECORDING_CONTENT_TYPE)
                result["RecordingPath"] = self.sink.url + name
        finally:
            path.unlink(missing_ok=True)
        return result

    async def _claim(self) -> list[Claimed]:
        try:
            return await self.queue.claim(self.settings.consumer, count=1, block_ms=500)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
        # Redis lost the queue (restarted without persistence): the operator plans the job again.
        if await wait_for_queue(self.queue.get_config, self.settings.queue_wait) is None:
            raise WorkerError(f"the job's queue vanished from Redis and was not planned again within "
                              f"{self.settings.queue_wait:.0f}s")
        return []

    async def _slot(self) -> None:
        while not await self.queue.is_cancelled():
            claimed = await self._claim()
            if not claimed:
                if await self.queue.is_drained():
                    return
                continue
            for item in claimed:
                try:
                    await self.run_unit(item)
                except asyncio.CancelledError:
                    # Stopped (SIGTERM: scale-down, cancel): hand the unit back now rather than after the
                    # visibility timeout.
                    await asyncio.shield(self.queue.fail(item, "worker stopped before finishing", retryable=True))
                    raise
                except SinkError:
                    raise
                except Exception as exc:  # one bad unit must not stop the worker: it is retried or recorded
                    log.exception("unit %s failed", item.unit_id)
                    await self.queue.fail(item, f"{type(exc).__name__}: {exc}", retryable=True)

    async def _heartbeat(self) -> None:
        while True:
            await self.queue.heartbeat(self.settings.consumer)
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def run(self) -> None:
        beat = asyncio.create_task(self._heartbeat())
        try:
            await asyncio.gather(*(self._slot() for _ in range(max(1, self.settings.concurrency))))
        finally:
            beat.cancel()
            await self.executor.aclose()
        lease = float(self.config.get("aggregationLease") or DEFAULT_AGGREGATION_LEASE_SECONDS)
        await aggregate_or_wait(self.queue, self.settings.consumer, lease, self._aggregate)

    async def _aggregate(self) -> None:
        if self.sink is None:
            await self.queue.mark_aggregated("", await summary_from_queue(self.queue))
            return
        formats = self.config.get("formats") or DEFAULT_FORMATS
        meta = {"job": f"{self.settings.namespace}/{self.settings.job}", "revision": self.config.get("revision", "")}
        verdict = None
        if self.config.get("baseline"):
            verdict = await judge_against(self.config["baseline"], self.sink, revision=self.config.get("revision"),
                                          max_pass_rate_drop=float(self.config.get("maxPassRateDrop") or 0.0),
                                          output=self.settings.output, results_dir=self.settings.results_dir)
        summary = await aggregate(self.sink, formats, meta=meta, comparison=verdict.full if verdict else None)
        await self.queue.mark_aggregated(self.sink.url, summary, verdict.short if verdict else None)


def worker_class(config: dict[str, Any]) -> type[Worker]:
    """The Worker of the job's type (datagen's builds on this module's, hence the import here)."""
    if config.get("type") == "datagen":
        from ..datagen.worker import DataGenWorker

        return DataGenWorker
    if config.get("type") == "loadtest":
        from ..loadtest.worker import LoadTestWorker

        return LoadTestWorker  # type: ignore[return-value]  # the same constructor and run(), not a subclass
    return Worker


async def run_worker(settings: WorkerSettings, on_ready: Callable[[], Awaitable[None]] | None = None) -> int:
    """The worker's whole life; returns the process exit code (0 drained or cancelled, 1 fatal)."""
    client = connect(settings.redis_url, retries=settings.redis_retries)
    metrics = WorkerMetrics(settings.metrics_port)
    try:
        queue = WorkQueue(client, settings.job_key)
        try:
            config = await wait_for_queue(queue.get_config, settings.queue_wait)
        except RedisError as exc:  # redis-py names host and port, never the password; the URL is not logged
            log.error("cannot reach Redis: %s: %s", type(exc).__name__, exc)
            return 1
        if config is None:
            log.error("no job config in Redis under %s after %.0fs (was the job deleted?)", settings.job_key,
                      settings.queue_wait)
            return 1
        visibility = float(config.get("visibilityTimeout") or DEFAULT_VISIBILITY_TIMEOUT_SECONDS)
        queue = WorkQueue(client, settings.job_key, visibility_timeout=visibility,
                          max_attempts=int(config.get("maxAttempts", 3)))
        try:
            directory = await fetch_bundle(settings.artifact_url, settings.artifact_digest,
                                           Path(tempfile.mkdtemp(dir=settings.workdir)) / "bundle")
            bundle = load_bundle(directory / config["arenaFile"] if config.get("arenaFile") else directory)
            apply_resolved_config(bundle, config)
            sink = sink_for(settings.output, settings.namespace, settings.job, settings.results_dir) \
                if settings.output else None
            if sink is not None:
                await sink.check()
        except (WorkerError, SourceError, SinkError, OSError, ValueError) as exc:
            await queue.report_fatal(str(exc))
            log.error("worker cannot start: %s", exc)
            return 1
        if on_ready:
            await on_ready()
        work = asyncio.create_task(worker_class(config)(settings, queue, bundle, config, sink, metrics).run())
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, work.cancel)
        try:
            await work
        except asyncio.CancelledError:
            log.info("stopped by SIGTERM; in-flight units handed back to the queue")
            return EXIT_TERMINATED
        except SinkError as exc:
            await queue.report_fatal(str(exc))
            log.error("results sink failed: %s", exc)
            return 1
        return 0
    finally:
        metrics.close()
        await client.aclose()


def main() -> int:
    setup_logging(os.environ.get("ARENA_LOG_FORMAT", "text"), os.environ.get("ARENA_LOG_LEVEL", "INFO"))
    try:
        settings = WorkerSettings.from_env()
    except WorkerError as exc:
        log.error("%s", exc)
        return 2
    return asyncio.run(run_worker(settings))
