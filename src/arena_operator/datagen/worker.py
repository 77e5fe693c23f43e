"""`arena worker` for a datagen job: the evaluation worker's claim loop, heartbeat, cancel flag, SIGTERM hand-back
and aggregation lease (worker.run.Worker), with a shard as the work unit and the merged file as the report.

A worker runs one shard at a time, `concurrency` of its items at once. While it runs a shard it keeps the shard's
queue entry claimed (`extend`); if the entry was handed to another worker meanwhile (this one stalled past the
visibility timeout), it stops without writing anything. A worker killed mid-shard leaves no shard file (files
are stored whole, once complete): another worker reclaims the shard after the visibility timeout and generates
it again from the same seeds; the global dedupe gives it back the items the dead worker had claimed."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

from ..engine.bundle import Bundle
from ..results.sinks import ResultSink
from ..worker.metrics import WorkerMetrics
from ..worker.run import Worker, WorkerError, WorkerSettings
from ..workqueue.datagen import DataGenLedger
from ..workqueue.queue import Claimed, WorkQueue
from .dedupe import Dedupe, NoDedupe
from .generate import ShardAbandoned, ShardFailed
from .outputs import produce_shard, write_outputs
from .plan import DataGenPlan, Shard
from .seeded import engine_generator, seeded

log = logging.getLogger("arena.worker.datagen")


class DataGenWorker(Worker):
    def __init__(self, settings: WorkerSettings, queue: WorkQueue, bundle: Bundle, config: dict[str, Any],
                 sink: ResultSink | None, metrics: WorkerMetrics) -> None:
        if sink is None:
            raise WorkerError("a datagen job needs spec.output: its items are written there")
        super().__init__(replace(settings, concurrency=1), queue, bundle, config, sink, metrics)
        self.out: ResultSink = sink
        self.window = max(1, settings.concurrency)
        self.plan = DataGenPlan.from_config(config)
        self.executor.providers = seeded(self.executor.providers)
        self.ledger = DataGenLedger(queue)
        self.dedupe: Dedupe = self.ledger if self.plan.dedupe else NoDedupe()
        self.generate = engine_generator(self.executor, metrics.observe)

    async def run_unit(self, claimed: Claimed) -> None:
        shard = Shard.from_json(claimed.unit)
        held = [True]
        keeper = asyncio.create_task(self._hold(claimed, held))

        async def progress(items: int) -> None:
            await self.ledger.written(shard.id, items)

        try:
            stats = await produce_shard(self.plan, shard, self.generate, self.dedupe, self.out, self.settings.workdir,
                                        window=self.window, revision=str(self.config.get("revision") or ""),
                                        alive=lambda: held[0], on_progress=progress)
        except ShardAbandoned:
            log.warning("shard %s was handed to another worker; dropping this run of it", shard.id)
            return
        except ShardFailed as exc:
            await self.ledger.written(shard.id, 0)
            if await self.queue.fail(claimed, exc.message, retryable=exc.retryable):
                await self.ledger.lost(shard.id, shard.size)
            log.warning("shard %s failed (attempt %d): %s", shard.id, claimed.attempt, exc.message)
            return
        finally:
            keeper.cancel()
        record = stats.to_dict()
        await self.out.put_unit(shard.id, record)
        await self.queue.complete(claimed, record, "passed")
        log.info("shard %s: %d items", shard.id, shard.size,
                 extra={"job": self.settings.job, "namespace": self.settings.namespace, "unit": shard.id,
                        "attempt": claimed.attempt, "revision": self.config.get("revision", ""), **record})

    async def _hold(self, claimed: Claimed, held: list[bool]) -> None:
        """Keep the shard claimed; note it when another worker has it now."""
        while True:
            await asyncio.sleep(max(0.1, self.queue.visibility_timeout / 3))
            if not await self.queue.extend(claimed, self.settings.consumer):
                held[0] = False
                return

    async def _aggregate(self) -> None:
        records = {unit_id: record async for unit_id, record in self.queue.done_results()}
        meta = {"job": f"{self.settings.namespace}/{self.settings.job}", "revision": self.config.get("revision", "")}
        summary = await write_outputs(self.out, self.plan, records, self.settings.workdir, meta)
        await self.queue.mark_aggregated(self.out.url, summary)
