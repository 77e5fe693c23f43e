"""How the workers of one load test share it: in Redis for a distributed job, in memory for ``arena run``.

Redis keys (suffixes of the job key, ``arena:{<ns>/<job>/<uid>}``, so the queue's delete/TTL cover them):

    :lt:start      test start (ms, Redis clock): the first worker's join + START_DELAY, so workers started together
                   are all in the first roster
    :lt:alive      ZSET worker → last heartbeat (ms)    :lt:roster  LIST "<ms> <worker,…>", the last 16 (roster.py)
    :lt:seen       HASH worker → first heartbeat (ms)   :lt:left    HASH worker → "<ms> finished|stopped|lost"
    :lt:w:<worker> HASH totals (encoded tally, cumulative), ended (test s), final (1 once it pushed its last)
    :lt:b:<worker> HASH second → encoded tally of that 1 s bucket (written once the second is over)
    :lt:spend      spend over all workers (INCRBYFLOAT of each push's delta)
    :lt:stop       why the test stopped early ({"reason", "message", "at"}); the first one wins
    :lt:iter       iterations claimed (closed model with a fixed amount of work)

Every push is an overwrite of cumulative values (HSET), so a retried push counts nothing twice; only the spend is
an increment, of the delta since the last push that succeeded.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis.asyncio as aioredis

from .metrics import Recorder
from .roster import Roster

REFRESH_S = 0.25  # heartbeat and roster refresh
PUSH_S = 1.0  # metrics to Redis
LIVENESS_S = 2.0  # a worker silent this long is gone: the others take its share
LEAD_S = 1.0  # a roster change takes effect this long after it was seen (> REFRESH_S, so all see it first)
START_DELAY_S = 2.0

ROSTER = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function ms(x) return string.format('%d', x) end
local start = tonumber(redis.call('GET', KEYS[5]) or '-1')
if ARGV[2] == '' then
  if start < 0 then start = now + tonumber(ARGV[5]); redis.call('SET', KEYS[5], ms(start)) end
  redis.call('ZADD', KEYS[1], now, ARGV[1])
  redis.call('HSETNX', KEYS[3], ARGV[1], ms(now))
elseif redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[4], ARGV[1], ms(now) .. ' ' .. ARGV[2])
end
local cutoff = '(' .. ms(now - tonumber(ARGV[3]))
for _, w in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff)) do
  redis.call('HSET', KEYS[4], w, ms(now) .. ' lost')
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
table.sort(members)
local joined = table.concat(members, ',')
local last = redis.call('LINDEX', KEYS[2], -1)
local last_at, last_workers = -1, nil
if last then
  local space = string.find(last, ' ', 1, true)
  last_at, last_workers = tonumber(string.sub(last, 1, space - 1)), string.sub(last, space + 1)
end
if last_workers ~= joined and start >= 0 then
  local at = math.max(now + tonumber(ARGV[4]), last_at + 1)
  if not last then at = start end
  redis.call('RPUSH', KEYS[2], ms(at) .. ' ' .. joined)
  redis.call('LTRIM', KEYS[2], -16, -1)
end
return {ms(now), ms(start), redis.call('LRANGE', KEYS[2], 0, -1)}
"""


def lt_keys(job_key: str) -> dict[str, str]:
    return {name: f"{job_key}:lt:{name}" for name in ("start", "alive", "roster", "seen", "left", "spend", "stop",
                                                      "iter")}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Coordinator(Protocol):
    worker: str

    async def join(self) -> float:
        """Register; returns the test start as a time of this process's event loop clock."""

    async def refresh(self) -> Roster:
        """Heartbeat; the roster in effect (and the one before it)."""

    async def push(self, recorder: Recorder, final: bool = False) -> float:
        """Send what was measured; returns the spend over all workers."""

    async def stopped(self) -> dict[str, Any] | None:
        """Why the test was stopped early (budget, cancel), if it was."""

    async def stop(self, reason: str, message: str) -> None:
        """Stop the test for every worker (the first reason wins)."""

    async def claim_iteration(self, limit: int) -> int | None:
        """The next iteration of a fixed amount of work, or None when all are taken."""

    async def leave(self, how: str) -> None:
        """This worker is done (finished) or going away (stopped): the others take its share."""


@dataclass
class LocalCoordinator:
    """One process, one worker (``arena run``): nothing is shared, buckets are kept for the reports."""

    worker: str = "local"
    buckets: dict[str, str] = field(default_factory=dict)
    totals: str = ""
    ended: float = 0.0
    reason: dict[str, Any] | None = None
    claimed: int = 0
    started_at: float = 0.0

    async def join(self) -> float:
        self.started_at = asyncio.get_running_loop().time()
        return self.started_at

    async def refresh(self) -> Roster:
        return Roster.of((0.0, (self.worker,)))

    async def push(self, recorder: Recorder, final: bool = False) -> float:
        self.buckets.update(recorder.take_closed(final))
        self.totals = recorder.totals()
        return recorder.total.cost_usd

    async def stopped(self) -> dict[str, Any] | None:
        return self.reason

    async def stop(self, reason: str, message: str) -> None:
        if self.reason is None:
            now = asyncio.get_running_loop().time() - self.started_at
            self.reason = {"reason": reason, "message": message, "at": round(now, 3)}

    async def claim_iteration(self, limit: int) -> int | None:
        self.claimed += 1
        return self.claimed - 1 if self.claimed <= limit else None

    async def leave(self, how: str) -> None:
        return None


class RedisCoordinator:
    """The coordinator of one worker pod of a distributed load test."""

    def __init__(self, redis: aioredis.Redis, job_key: str, worker: str, cancel_key: str) -> None:
        self.redis, self.worker, self.cancel_key = redis, worker, cancel_key
        self.keys = lt_keys(job_key)
        self.worker_key, self.bucket_key = f"{job_key}:lt:w:{worker}", f"{job_key}:lt:b:{worker}"
        self._roster = redis.register_script(ROSTER)
        self._start_ms = 0
        self._pushed_cost = 0.0
        self._spend = 0.0

    async def _call(self, how: str = "") -> tuple[list[Any], float]:
        keys = [self.keys[k] for k in ("alive", "roster", "seen", "left", "start")]
        sent = asyncio.get_running_loop().time()
        reply = await self._roster(keys=keys, args=[self.worker, how, int(LIVENESS_S * 1000), int(LEAD_S * 1000),
                                                    int(START_DELAY_S * 1000)])
        received = asyncio.get_running_loop().time()
        return [_text(reply[0]), _text(reply[1]), reply[2]], (sent + received) / 2

    async def join(self) -> float:
        best: tuple[float, float] | None = None  # (round trip, loop time of the start): keep the tightest sample
        for _ in range(3):
            sent = time.perf_counter()
            reply, mid = await self._call()
            trip = time.perf_counter() - sent
            now_ms, start_ms = int(reply[0]), int(reply[1])
            self._start_ms = start_ms
            sample = (trip, mid - (now_ms - start_ms) / 1000)
            best = sample if best is None or sample[0] < best[0] else best
        assert best is not None
        return best[1]

    def _roster_of(self, reply: list[Any]) -> Roster:
        entries = []
        for entry in reply[2]:
            at, _, workers = _text(entry).partition(" ")
            entries.append(((int(at) - self._start_ms) / 1000, tuple(w for w in workers.split(",") if w)))
        return Roster(tuple(entries))

    async def refresh(self) -> Roster:
        reply, _ = await self._call()
        return self._roster_of(reply)

    async def push(self, recorder: Recorder, final: bool = False) -> float:
        closed = recorder.take_closed(final)
        cost = recorder.total.cost_usd
        fields = {"totals": recorder.totals(), "ended": recorder.ended, **({"final": 1} if final else {})}
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(self.worker_key, mapping=fields)
            if closed:
                pipe.hset(self.bucket_key, mapping=closed)
            pipe.incrbyfloat(self.keys["spend"], cost - self._pushed_cost)
            results = await pipe.execute()
        self._pushed_cost = cost
        self._spend = float(results[-1])
        return self._spend

    async def stopped(self) -> dict[str, Any] | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self.keys["stop"])
            pipe.exists(self.cancel_key)
            stop, cancelled = await pipe.execute()
        if stop is not None:
            return json.loads(stop)
        return {"reason": "Cancelled", "message": "the job was cancelled"} if cancelled else None

    async def stop(self, reason: str, message: str) -> None:
        now_ms = int(time.time() * 1000)
        record = {"reason": reason, "message": message, "at": round((now_ms - self._start_ms) / 1000, 3)}
        await self.redis.set(self.keys["stop"], json.dumps(record), nx=True)

    async def claim_iteration(self, limit: int) -> int | None:
        claimed = int(await self.redis.incr(self.keys["iter"]))
        return claimed - 1 if claimed <= limit else None

    async def leave(self, how: str) -> None:
        await self._call(how)
