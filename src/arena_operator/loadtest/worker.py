"""A worker pod of a load test: run this pod's share, then — once every worker has pushed its last measurements
or is gone — one worker (holding the queue's aggregation lease) merges everything and writes the reports.

The operator planned no work units for a load test and sealed the queue empty, so the queue's aggregation lease
and ``mark_aggregated`` record serve it unchanged: the record's summary is summary.json's content.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path
from typing import Any

from ..engine.bundle import Bundle
from ..results.sinkbase import ResultSink
from ..workqueue.queue import DEFAULT_AGGREGATION_LEASE_SECONDS, WorkQueue
from .coord import RedisCoordinator
from .profile import LoadProfile
from .reports import FILES, timeseries, write_reports
from .run import mix_from_config, prepare, run_share
from .store import LoadStore
from .summary import build_summary, test_end

log = logging.getLogger("arena.loadtest")
POLL_S = 0.5


async def run_load_test_worker(queue: WorkQueue, bundle: Bundle, config: dict[str, Any], sink: ResultSink | None,
                               consumer: str, meta: dict[str, Any]) -> None:
    """The whole life of one worker pod of a load test (SIGTERM cancels it: it leaves, the others take over)."""
    if await queue.aggregated() is not None:
        return  # a replacement pod started after the end
    settings = config["loadTest"]
    profile, mix = LoadProfile.from_config(settings), mix_from_config(settings["mix"])
    prepared = prepare(bundle, profile, mix, run_timeout=config.get("unitTimeout"))
    coordinator = RedisCoordinator(queue.redis, queue.key, consumer, queue.keys["cancel"])
    store = LoadStore(queue.redis, queue.key)
    if (await store.state()).over:
        log.info("the load test is over; %s only helps write the reports", consumer)
    else:
        runner = await run_share(prepared, profile, mix, coordinator)
        log.info("load test share done: %d runs started, %d dropped", runner.recorder.total.counts["started"],
                 runner.recorder.total.counts["dropped"])
    lease = float(config.get("aggregationLease") or DEFAULT_AGGREGATION_LEASE_SECONDS)
    await aggregate_when_over(queue, store, profile, sink, consumer, lease, meta, prepared.unpriced)


class LoadTestWorker:
    """A load test behind worker.run's Worker interface (constructor and ``run()``), so that the worker pod's
    start-up (artifact, sink check, SIGTERM) is the same for every job type."""

    def __init__(self, settings: Any, queue: WorkQueue, bundle: Bundle, config: dict[str, Any],
                 sink: ResultSink | None, metrics: Any) -> None:
        self.settings, self.queue, self.bundle, self.config, self.sink = settings, queue, bundle, config, sink

    async def run(self) -> None:
        meta = {"job": f"{self.settings.namespace}/{self.settings.job}", "revision": self.config.get("revision", "")}
        await run_load_test_worker(self.queue, self.bundle, self.config, self.sink, self.settings.consumer, meta)


async def aggregate_when_over(queue: WorkQueue, store: LoadStore, profile: LoadProfile, sink: ResultSink | None,
                              consumer: str, lease: float, meta: dict[str, Any], unpriced: list[str]) -> None:
    """Wait until the test is over everywhere; one worker writes the reports, the others wait until they are."""
    while await queue.aggregated() is None:
        state = await store.state()
        if (state.stop or {}).get("reason") == "Cancelled":
            return
        if state.over and await queue.claim_aggregation(consumer, lease=lease):
            renew = asyncio.create_task(_renew(queue, consumer, lease))
            try:
                await _write(queue, store, profile, sink, meta, unpriced)
            finally:
                renew.cancel()
            return
        await asyncio.sleep(POLL_S)


async def _renew(queue: WorkQueue, consumer: str, lease: float) -> None:
    while True:
        await asyncio.sleep(lease / 3)
        await queue.claim_aggregation(consumer, lease=lease)


async def _write(queue: WorkQueue, store: LoadStore, profile: LoadProfile, sink: ResultSink | None,
                 meta: dict[str, Any], unpriced: list[str]) -> None:
    state = await store.state()
    elapsed = test_end(profile, state.stop, state.ended)
    summary = build_summary(profile, state.merged(), elapsed=elapsed, workers=state.workers, stop=state.stop,
                            unpriced=unpriced)
    if sink is not None:
        buckets = await store.buckets([w.name for w in state.workers])
        directory = Path(tempfile.mkdtemp(prefix="arena-loadtest-"))
        for path in write_reports(directory, summary, timeseries(buckets, profile, elapsed), meta):
            await sink.put_file(path.name, path, FILES[path.name])
    await queue.mark_aggregated(sink.url if sink is not None else "", summary)
