"""Datagen across workers against a real Redis: the DataGenLedger's dedupe semantics, and three `arena worker`
processes on one job, one of them SIGKILLed in the middle of a shard — the merged file still has exactly `count`
unique items, the killed worker's shard generated again by another worker."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from arena_operator.api.arenajob import DataGenSettings
from arena_operator.datagen.plan import make_plan, templates_of
from arena_operator.engine.bundle import load_bundle
from arena_operator.engine.plan import iter_plan
from arena_operator.sources.artifact import build_artifact
from arena_operator.sources.server import ArtifactServer
from arena_operator.sources.store import ArtifactStore
from arena_operator.workqueue.datagen import DataGenLedger
from arena_operator.workqueue.queue import GROUP, WorkQueue, job_key

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "tests" / "fixtures" / "bundles" / "datagen"
COUNT = 60


async def test_the_ledger_gives_each_hash_one_owner_for_good(redis_server: Any) -> None:
    client = aioredis.from_url(redis_server.url)
    queue = WorkQueue(client, job_key("ns", "gen", "u0"))
    try:
        await queue.enqueue([{"id": "shard-00000"}])  # the job's stream exists
        ledger = DataGenLedger(queue)
        assert await ledger.claim([("h1", "42"), ("h2", "52"), ("h1", "62")]) == [True, True, False]
        assert await ledger.claim([("h1", "42"), ("h2", "72")]) == [True, False]  # the same owner again: still its
        await ledger.written("shard-00000", 5)
        await ledger.written("shard-00001", 3)
        await ledger.written("shard-00000", 7)  # a count is set, not added: a shard run again counts once
        await ledger.lost("shard-00002", 4)
        assert await ledger.totals() == (10, 4)
        await queue.delete()
        assert await ledger.claim([("h3", "1")]) == [False]  # a straggler after delete leaves nothing behind
        await ledger.written("shard-00000", 1)
        assert not await client.keys("arena:{ns/gen/u0}*")
    finally:
        await client.aclose()


def _slow_bundle(dest: Path) -> Path:
    shutil.copytree(BUNDLE, dest)
    for mock in ("mock-assistant.yaml", "mock-customer.yaml"):
        (dest / mock).write_text("latency_ms: 40\n" + (dest / mock).read_text())
    return dest


def _worker(env: dict[str, str], name: str, logs: Path) -> subprocess.Popen[bytes]:
    out = (logs / f"{name}.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "arena_operator.cli", "worker"], env={**env, "POD_NAME": name},
                            stdout=out, stderr=subprocess.STDOUT)


async def _holder(client: aioredis.Redis, queue: WorkQueue, ledger: DataGenLedger, timeout: float = 30) -> str:
    """The consumer of a shard that is part generated (items written, not finished)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = await client.xpending_range(queue.keys["stream"], GROUP, min="-", max="+", count=20)
        written = {k.decode(): int(v) for k, v in (await client.hgetall(ledger.keys["written"])).items()}
        entries = {e["message_id"]: e["consumer"].decode() for e in pending}
        for message_id, consumer in entries.items():
            fields = (await client.xrange(queue.keys["stream"], message_id, message_id))[0][1]
            shard = json.loads(fields[b"u"])
            if 0 < written.get(shard["id"], 0) < shard["size"]:
                return consumer
        await asyncio.sleep(0.02)
    raise AssertionError("no worker was seen in the middle of a shard")


async def test_three_workers_one_killed_mid_shard_exactly_count_unique_items(redis_server: Any,
                                                                              tmp_path: Path) -> None:
    bundle = load_bundle(_slow_bundle(tmp_path / "bundle"))
    plan = make_plan(DataGenSettings(count=COUNT), bundle.arena.defaults.seed, 3, templates_of(iter_plan(bundle)))
    store = ArtifactStore(tmp_path / "store")
    info = build_artifact(tmp_path / "bundle", tmp_path / "a.tar.gz")
    stored = store.put("ns", "src", info.digest, tmp_path / "a.tar.gz")
    server = ArtifactServer(store, "127.0.0.1", 0)
    port = await server.start()
    client = aioredis.from_url(redis_server.url)
    key = job_key("ns", "gen", "u1")
    queue = WorkQueue(client, key, visibility_timeout=1)
    ledger = DataGenLedger(queue)
    results, logs = tmp_path / "pvc", tmp_path / "logs"
    results.mkdir()
    logs.mkdir()
    workers: dict[str, subprocess.Popen[bytes]] = {}
    try:
        await queue.put_config({"namespace": "ns", "job": "gen", "type": "datagen", "revision": "main@sha1:abc",
                                "arenaFile": "config.arena.yaml", "providers": {}, "tools": {},
                                "visibilityTimeout": 1, "maxAttempts": 3, "aggregationLease": 2,
                                **plan.to_config()})
        for batch in plan.batches():
            await queue.enqueue(batch)
        await queue.seal()
        env = {**os.environ, "ARENA_ARTIFACT_URL": f"http://127.0.0.1:{port}/artifacts/{stored.relative_url}",
               "ARENA_ARTIFACT_DIGEST": info.digest, "ARENA_REDIS_URL": redis_server.url, "ARENA_JOB_KEY": key,
               "ARENA_OUTPUT": json.dumps({"type": "pvc", "pvc": {"claimName": "data"}}), "ARENA_NAMESPACE": "ns",
               "ARENA_JOB_NAME": "gen", "ARENA_RESULTS_DIR": str(results), "ARENA_CONCURRENCY": "2",
               "TMPDIR": str(tmp_path)}
        workers = {name: _worker(env, name, logs) for name in ("w1", "w2", "w3")}
        victim = await _holder(client, queue, ledger)
        workers[victim].send_signal(signal.SIGKILL)
        for name, proc in workers.items():
            code = await asyncio.to_thread(proc.wait, 60)
            assert code == (-signal.SIGKILL if name == victim else 0), (logs / f"{name}.log").read_text()
        root = results / "ns" / "gen"
        items = [json.loads(line) for line in (root / "data.jsonl").read_text().splitlines()]
        assert len(items) == COUNT and len({item["hash"] for item in items}) == COUNT
        assert [item["index"] for item in items] == list(range(COUNT))
        summary = json.loads((root / "summary.json").read_text())
        assert (summary["items"], summary["complete"], summary["failedShards"]) == (COUNT, True, 0)
        assert summary["revision"] == "main@sha1:abc" and {item["revision"] for item in items} == {"main@sha1:abc"}
        attempts = {uid: record["attempt"] async for uid, record in queue.done_results()}
        assert len(attempts) == plan.shard_count and max(attempts.values()) == 2  # the killed shard, run again
        assert await ledger.totals() == (COUNT, 0)
        assert len(list((root / "shards").iterdir())) == plan.shard_count
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        await queue.delete()
        await client.aclose()
        await server.stop()
