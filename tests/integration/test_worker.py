"""Worker pieces against real servers: the artifact download through the operator's own HTTP server (digest
checked) and the worker's Prometheus endpoint."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from arena_operator.engine.bundle import load_bundle
from arena_operator.sources.artifact import build_artifact
from arena_operator.sources.download import fetch_bundle
from arena_operator.sources.errors import SourceError
from arena_operator.sources.server import ArtifactServer
from arena_operator.sources.store import ArtifactStore
from arena_operator.worker.metrics import WorkerMetrics
from arena_operator.worker.run import WorkerError, WorkerSettings, aggregate_or_wait, run_worker
from arena_operator.workqueue.queue import WorkQueue, job_key

REPO = Path(__file__).resolve().parents[2]


async def test_fetch_bundle_checks_the_digest(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    info = build_artifact(REPO / "examples" / "quickstart", tmp_path / "a.tar.gz")
    stored = store.put("arena", "src", info.digest, tmp_path / "a.tar.gz")
    server = ArtifactServer(store, "127.0.0.1", 0)
    port = await server.start()
    try:
        url = f"http://127.0.0.1:{port}/artifacts/{stored.relative_url}"
        bundle = await fetch_bundle(url, info.digest, tmp_path / "ok")
        assert len(load_bundle(bundle).scenarios) == 6
        with pytest.raises(SourceError, match="refusing to run it"):
            await fetch_bundle(url, "sha256:" + "0" * 64, tmp_path / "bad")
        with pytest.raises(SourceError, match="HTTP 404"):
            await fetch_bundle(url.replace(info.digest[7:17], "f" * 10), info.digest, tmp_path / "missing")
        with pytest.raises(SourceError, match="larger than 100 bytes"):
            await fetch_bundle(url, info.digest, tmp_path / "big", max_bytes=100)
    finally:
        await server.stop()


def test_worker_metrics_endpoint() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    metrics = WorkerMetrics(port)
    try:
        metrics.observe({"Status": "passed", "Duration": 120.0})
        metrics.observe({"Status": "error", "Duration": 5.0, "Error": "HTTP 429", "ErrorKind": "rate_limited"})
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        # a second worker on the same port (tests run workers side by side) starts without metrics, not a crash
        WorkerMetrics(port).close()
    finally:
        metrics.close()
    assert 'arena_worker_runs_total{status="passed"} 1.0' in text
    assert 'arena_worker_provider_errors_total{kind="rate_limited"} 1.0' in text
    assert "arena_worker_run_duration_seconds_count 2.0" in text


def test_worker_settings_require_every_reference() -> None:
    with pytest.raises(WorkerError, match="ARENA_REDIS_URL"):
        WorkerSettings.from_env({"ARENA_ARTIFACT_URL": "http://x", "ARENA_ARTIFACT_DIGEST": "sha256:0"})


async def test_worker_without_redis_or_config_exits_1_without_leaking_the_url(
        redis_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    settings = WorkerSettings(artifact_url="http://127.0.0.1:1/a", artifact_digest="sha256:0",
                              redis_url="redis://:s3cret-pass@127.0.0.1:1/0", job_key="arena:{ns/j/u}", output={},
                              namespace="ns", job="j", queue_wait=1.0, redis_retries=1)
    assert await run_worker(settings) == 1
    assert "s3cret-pass" not in caplog.text and "cannot reach Redis" in caplog.text
    settings.redis_url = redis_server.url
    assert await run_worker(settings) == 1
    assert "no job config in Redis under arena:{ns/j/u}" in caplog.text


async def test_a_dead_aggregator_is_replaced_once_its_lease_expires(redis_server: Any) -> None:
    client = aioredis.from_url(redis_server.url)
    queue = WorkQueue(client, job_key("ns", "j", "u1"), visibility_timeout=5)
    try:
        await queue.enqueue([{"id": "a"}])
        await queue.seal()
        [claimed] = await queue.claim("w1")
        await queue.complete(claimed, {"Status": "passed"}, "passed")
        assert await queue.claim_aggregation("dead-worker", lease=0.5)  # claims, then never writes or renews
        written: list[str] = []

        async def write_reports() -> None:
            written.append("w2")
            await queue.mark_aggregated("s3://b/p/", {"runs": 1})

        await asyncio.wait_for(aggregate_or_wait(queue, "w2", 0.5, write_reports), timeout=10)
        assert written == ["w2"] and (await queue.aggregated() or {})["url"] == "s3://b/p/"
        # a late worker finds the reports written and leaves at once
        await asyncio.wait_for(aggregate_or_wait(queue, "w3", 0.5, write_reports), timeout=2)
        assert written == ["w2"]
    finally:
        await queue.delete()
        await client.aclose()
