"""The Redis state a datagen job keeps beside its work queue (keys under the same job prefix, so `WorkQueue.delete`
and `set_ttl` cover them):

    :datagen:hashes   HASH normalised content hash → owner (the seed of the try that produced it): global dedupe
    :datagen:written  HASH shard id → items accepted so far by the shard's current run (live progress)
    :datagen:lost     HASH shard id → items of a shard that failed for good

Dedupe is one Lua script per batch of candidates: HSETNX, and a candidate whose hash exists is still its owner's
if the owner is the same (a shard run again after its worker died replays the same seeds and gets its items
back); no other try can ever own it. Progress is HSET (not incremented), so a shard run again counts once.
The scripts do nothing once the job's stream is gone, so a straggler after delete leaves no keys behind."""

from __future__ import annotations

from . import scripts
from .queue import WorkQueue


class DataGenLedger:
    def __init__(self, queue: WorkQueue) -> None:
        self.redis = queue.redis
        self.keys = {name: f"{queue.key}:datagen:{name}" for name in ("hashes", "written", "lost")}
        self.stream = queue.keys["stream"]
        self._claim = queue.redis.register_script(scripts.DATAGEN_CLAIM)
        self._set = queue.redis.register_script(scripts.DATAGEN_SET)

    async def claim(self, candidates: list[tuple[str, str]]) -> list[bool]:
        """For each (content hash, owner), in order: True if `owner` owns the hash (see the module docstring)."""
        if not candidates:
            return []
        args = [value for pair in candidates for value in pair]
        reply = await self._claim(keys=[self.keys["hashes"], self.stream], args=args)
        return [bool(int(owned)) for owned in reply]

    async def written(self, shard_id: str, items: int) -> None:
        await self._set(keys=[self.keys["written"], self.stream], args=[shard_id, items])

    async def lost(self, shard_id: str, items: int) -> None:
        await self._set(keys=[self.keys["lost"], self.stream], args=[shard_id, items])

    async def totals(self) -> tuple[int, int]:
        """(items written so far, items of shards that failed for good)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hvals(self.keys["written"])
            pipe.hvals(self.keys["lost"])
            written, lost = await pipe.execute()
        return sum(int(v) for v in written), sum(int(v) for v in lost)
