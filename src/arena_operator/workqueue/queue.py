"""The Redis work queue of one ArenaJob: at-least-once execution, exactly-once accounting.

Every key of a job starts with `job_key(namespace, job, uid)` = `arena:{<ns>/<job>/<uid>}`; the braces are a Redis
Cluster hash tag, so all keys of a job share one slot and the Lua scripts below may touch several of them. The uid
makes a re-created job of the same name start from nothing. Keys (suffixes of the job key):

    :stream      the units, one stream entry each (fields `id`, `u` = unit JSON); consumer group `workers`
    :planned     SET of unit ids ever enqueued — what makes enqueueing idempotent
    :done        HASH unit id → compact outcome summary JSON — the single record of a unit's outcome
    :attempts    HASH unit id → deliveries so far          :errors   HASH unit id → last error text
    :counters    HASH total, completed, failed, retried, passed, assertion_failed, errors
    :sealed      planning finished (total is final)       :cancel   the run was cancelled
    :aggregator  the consumer holding the aggregation lease   :aggregated  {url, summary} once aggregated
    :heartbeats  ZSET consumer → last seen (Redis server clock)   :config  the resolved job config JSON
    :fatal       the first error that stops workers from running at all (bad artifact, unreachable sink)
    :datagen:*   a datagen job's content hashes and per-shard item counts (workqueue.datagen.DataGenLedger)

Why each step is safe when any process dies at any moment:

- enqueue: one Lua script per batch adds each id to `:planned` and XADDs it only if the id was new, and adds the
  number of new ids to `total`. A planner that crashes and re-plans from the start adds nothing twice; a batch is
  all or nothing. After `seal()`, ids that were never planned are refused, so a sealed `total` stays final.
- claim: XAUTOCLAIM first takes over entries idle longer than the visibility timeout (their worker died or
  stalled), then XREADGROUP takes new ones, in one script; at most 10 idle ones per claim, so that the scan of the
  pending entries (≤ 10× COUNT, resumed from the previous claim's cursor) stays short. Each delivery increments
  the unit's attempt counter; a unit already in `:done` is acked and skipped, and a unit delivered more than
  `max_attempts` times without an outcome (a unit that kills its worker) is recorded failed instead of circling
  forever. Only when nothing is ready does the caller block in a plain XREADGROUP (scripts cannot block); those
  entries then go through the same delivery script. A worker dying between that read and the script leaves the
  entries pending: they are reclaimed after the timeout, so `attempt` may undercount but a unit is never lost.
- extend: a worker on a long unit resets the entry's idle time (XCLAIM JUSTID) — only if it still holds the entry,
  so a worker whose unit was already reclaimed learns that (False) instead of stealing it back.
- complete / fail: one script records the outcome only if `:done` has no entry for the unit (per batch: one
  HMGET, then one HSET of the new entries — HSETNX per unit, as the script is atomic) and bumps the counters
  only for the entries it created, then acks and deletes the entries. `complete_and_claim` does that and the
  next claim in one script. The first outcome written wins; a slow worker finishing after
  its unit was reclaimed (or a duplicate delivery) only acks. A crash before the script leaves the entry pending
  (redelivered, at-least-once); a crash after it changes nothing. So execution may repeat, accounting never does.
- fail, retryable, attempts left: the entry is acked and replaced by a fresh copy in the same script, so the retry
  is delivered at once instead of after the visibility timeout; only a caller that still finds the entry pending
  makes the copy, so a late duplicate failure cannot fork a second one.
- drain and aggregation: `completed + failed == total` after `seal()` means every planned unit has its one record.
  `claim_aggregation` grants one consumer a lease (SET NX PX) only once drained and not yet aggregated; if that
  consumer dies, the lease expires and another may aggregate (aggregation is deterministic and idempotent).
- cancel is a flag that workers check between units; delete/set_ttl act on every key under the job's prefix.

A unit's record holds a compact summary, not the full result: its top-level scalars (strings cut to 300 characters)
and flat numeric maps such as token counts and cost; conversations belong in the results sink.

Nothing secret is stored: `put_config` refuses literal string values under secret-like keys (API keys, passwords,
tokens); configs carry references (secret names, env var names, `${ENV}`), and workers read the credentials
themselves.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from . import scripts
from .codec import (  # noqa: F401 (Claimed, Counters and OUTCOMES are part of this module's API)
    OUTCOMES,
    Claimed,
    Counters,
    _check_no_secrets,
    _claimed,
    _dumps,
    _outcome_args,
    _stream_entries,
    _text,
)

GROUP = "workers"
MAX_ERROR_CHARS = 4000
HEARTBEAT_RETENTION_S = 3600
DEFAULT_VISIBILITY_TIMEOUT_SECONDS = 120.0  # a claimed unit whose worker went silent this long is reclaimed
RECLAIM_PER_CLAIM = 10  # idle entries one claim takes over at most; XAUTOCLAIM then scans ≤ 10× that many
DEFAULT_AGGREGATION_LEASE_SECONDS = 30.0  # the aggregating worker renews this lease; others take over when it lapses
_GLOB_SPECIALS = str.maketrans({c: "\\" + c for c in "*?[]\\"})


class QueueSealedError(RuntimeError):
    """Units that were never planned were enqueued after `seal()`."""


def job_key(namespace: str, job: str, uid: str) -> str:
    """The prefix of every Redis key of one ArenaJob run: `arena:{<ns>/<job>/<uid>}` (one Cluster slot)."""
    for name, value in (("namespace", namespace), ("job", job), ("uid", uid)):
        if not value or any(c in value for c in "{}/"):
            raise ValueError(f"{name} must be non-empty without '{{', '}}' or '/': {value!r}")
    return f"arena:{{{namespace}/{job}/{uid}}}"


def _group_pending(groups: list[dict]) -> int:
    """The `workers` group's pending-entry count in an XINFO GROUPS reply (str or bytes keys, RESP2 or RESP3)."""
    for group in groups:
        fields = {_text(k): v for k, v in group.items()}
        if _text(fields.get("name", "")) == GROUP:
            return int(fields.get("pending") or 0)
    return 0


class WorkQueue:
    """The work queue of one job run, over a `redis.asyncio.Redis` client (bytes or decoded responses)."""

    def __init__(self, redis: aioredis.Redis, key: str, *,
                 visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT_SECONDS,
                 max_attempts: int = 3) -> None:
        if visibility_timeout <= 0 or max_attempts < 1:
            raise ValueError("visibility_timeout must be > 0 and max_attempts >= 1")
        self.redis, self.key = redis, key
        self.visibility_timeout, self.max_attempts = visibility_timeout, max_attempts
        self.keys = {name: f"{key}:{name}" for name in (
            "stream", "planned", "done", "attempts", "errors", "counters", "sealed", "cancel", "aggregator",
            "aggregated", "heartbeats", "config", "fatal")}
        self._unit_keys = [self.keys[name] for name in ("stream", "done", "attempts", "errors", "counters")]
        self._group_ready = False
        # A blocking read must end before the client's socket timeout (redis-py 8 defaults to 5 s) would fail it.
        pool = getattr(redis, "connection_pool", None)
        socket_timeout = pool.connection_kwargs.get("socket_timeout") if pool is not None else None
        self._max_block_ms = max(1, int(socket_timeout * 800)) if socket_timeout else 60_000
        self._cursor = "0-0"  # where this instance's next XAUTOCLAIM scan of the pending entries starts
        register = redis.register_script
        self._enqueue, self._claim, self._deliver = (register(s) for s in (scripts.ENQUEUE, scripts.CLAIM,
                                                                            scripts.DELIVER))
        self._complete, self._fail, self._extend = (register(s) for s in (scripts.COMPLETE, scripts.FAIL,
                                                                           scripts.EXTEND))
        self._complete_claim = register(scripts.COMPLETE_CLAIM)
        self._claim_aggregation, self._heartbeat, self._active = (
            register(s) for s in (scripts.CLAIM_AGGREGATION, scripts.HEARTBEAT, scripts.ACTIVE))

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:  # from id 0: a group created after the first XADDs still sees every unit
            await self.redis.xgroup_create(self.keys["stream"], GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    # --- planning -----------------------------------------------------------------------------------------------

    async def enqueue(self, units: Iterable[dict] | AsyncIterable[dict], batch: int = 500) -> int:
        """Add units (each with a deterministic string "id"); ids already planned are skipped. Returns how many
        were new. May be called in several calls while workers already consume; raises `QueueSealedError` for an
        id that was never planned once the queue is sealed."""
        await self._ensure_group()
        keys = [self.keys[k] for k in ("planned", "stream", "counters", "sealed")]
        added, ids, payloads = 0, [], []

        async def flush() -> int:
            try:  # two arguments per batch: the ids as one JSON array, the unit JSON texts joined by newlines
                count = await self._enqueue(keys=keys, args=[_dumps(ids), "\n".join(payloads)])
            except ResponseError as exc:
                if str(exc).startswith("SEALED"):
                    raise QueueSealedError(str(exc)) from None
                raise
            ids.clear()
            payloads.clear()
            return int(count)

        def add(unit: dict) -> bool:
            unit_id = unit.get("id")
            if not isinstance(unit_id, str) or not unit_id:
                raise ValueError(f"a unit needs a non-empty string 'id': {unit!r:.200}")
            ids.append(unit_id)
            payloads.append(_dumps(unit))
            return len(ids) >= batch

        if isinstance(units, AsyncIterable):
            async for unit in units:
                if add(unit):
                    added += await flush()
        else:
            for unit in units:
                if add(unit):
                    added += await flush()
        if ids:
            added += await flush()
        return added

    async def seal(self) -> None:
        """Planning is finished: `total` is final, and workers may declare the queue drained."""
        await self.redis.set(self.keys["sealed"], 1, keepttl=True)

    # --- workers ------------------------------------------------------------------------------------------------

    async def claim(self, consumer: str, count: int = 1, block_ms: int = 1000) -> list[Claimed]:
        """Up to `count` units for `consumer`: first units idle longer than the visibility timeout (a crashed or
        stalled worker's), then new ones. Waits up to `block_ms` for new units when none is ready (`block_ms <= 0`
        returns at once; the wait is capped at 80 % of the client's socket timeout). Units already recorded are
        acked and skipped."""
        await self._ensure_group()
        reply = await self._claim(keys=self._unit_keys, args=[GROUP, *self._claim_args(consumer, count)])
        self._cursor = _text(reply[0])
        claimed = _claimed(reply)
        if claimed or block_ms <= 0:
            return claimed
        return await self._wait_for_units(consumer, count, block_ms)

    def _claim_args(self, consumer: str, count: int) -> list[Any]:
        return [consumer, int(self.visibility_timeout * 1000), self._cursor, count, self.max_attempts,
                f"{self.visibility_timeout:g}", min(count, RECLAIM_PER_CLAIM)]

    async def _wait_for_units(self, consumer: str, count: int, block_ms: int) -> list[Claimed]:
        timeout = f"{self.visibility_timeout:g}"
        # Nothing ready: wait for new entries outside Lua (scripts cannot block), then deliver them the same way.
        response = await self.redis.xreadgroup(GROUP, consumer, {self.keys["stream"]: ">"}, count=count,
                                               block=min(block_ms, self._max_block_ms))
        entries = [(_text(msgid), {_text(k): v for k, v in fields.items()})
                   for msgid, fields in _stream_entries(response)]
        if not entries:
            return []
        args: list[Any] = [GROUP, self.max_attempts, timeout]
        for msgid, fields in entries:
            args += [msgid, _text(fields.get("id", ""))]
        attempts = await self._deliver(keys=self._unit_keys, args=args)
        return [Claimed(json.loads(fields["u"]), _text(fields["id"]), msgid, int(attempt))
                for (msgid, fields), attempt in zip(entries, attempts, strict=True) if int(attempt) > 0]

    async def extend(self, claimed: Claimed, consumer: str) -> bool:
        """Reset the unit's idle time so it is not reclaimed; call well within the visibility timeout. False when
        `consumer` no longer holds it (it was reclaimed or settled): the worker may stop working on it."""
        held = await self._extend(keys=[self.keys["stream"]], args=[GROUP, consumer, claimed.message_id])
        return bool(held)

    async def complete(self, claimed: Claimed, result: dict, outcome: str) -> bool:
        """Record the unit's outcome (passed, assertion_failed or error) with a compact summary of `result` (its
        top-level scalars and flat numeric maps) and ack it. True if this call recorded it; False if another
        delivery of the unit had already recorded an outcome."""
        return (await self.complete_many([(claimed, result, outcome)]))[0]

    async def complete_many(self, items: Iterable[tuple[Claimed, dict, str]]) -> list[bool]:
        """`complete` for several units in one round trip and one script run (each unit still first-writer-wins)."""
        args = _outcome_args(items)
        if args is None:
            return []
        return [flag == "1" for flag in _text(await self._complete(keys=self._unit_keys, args=[GROUP, *args]))]

    async def complete_and_claim(self, items: Iterable[tuple[Claimed, dict, str]], consumer: str,
                                 count: int = 1) -> tuple[list[bool], list[Claimed]]:
        """`complete_many(items)` then `claim(consumer, count, block_ms=0)` in one round trip and one script run —
        what a worker running a batch at a time calls between batches. The outcomes are recorded before the claim
        (exactly as the two calls in turn). Returns (recorded per item, the units claimed)."""
        await self._ensure_group()
        args = _outcome_args(items) or ["", "[]", "", ""]
        reply = await self._complete_claim(keys=self._unit_keys,
                                           args=[GROUP, *args, *self._claim_args(consumer, count)])
        self._cursor = _text(reply[1])
        return [flag == "1" for flag in _text(reply[0])], _claimed(reply[1:])

    async def fail(self, claimed: Claimed, error: str, retryable: bool = True) -> bool:
        """An attempt that produced no result. Records the unit failed with `error` (True) when not retryable or
        after `max_attempts` deliveries; otherwise puts it back for prompt redelivery and returns False."""
        recorded = await self._fail(keys=self._unit_keys, args=[
            GROUP, claimed.message_id, claimed.unit_id, error[:MAX_ERROR_CHARS], int(retryable), self.max_attempts])
        return bool(recorded)

    async def heartbeat(self, consumer: str) -> None:
        """Record that `consumer` is alive (a no-op while the job has no stream: before planning, after delete)."""
        keys = [self.keys["heartbeats"], self.keys["stream"]]
        await self._heartbeat(keys=keys, args=[consumer, HEARTBEAT_RETENTION_S])

    async def active_consumers(self, within: float = 30.0) -> int:
        """Consumers whose last heartbeat is at most `within` seconds old (by the Redis server's clock)."""
        return int(await self._active(keys=[self.keys["heartbeats"]], args=[within]))

    # --- progress, drain, aggregation ---------------------------------------------------------------------------

    async def counters(self) -> Counters:
        """Progress; `in_flight` is the number of delivered, unsettled entries: the consumer group's pending count
        from XINFO GROUPS, O(1) — XPENDING's summary form lists every consumer, which costs Redis ~0.8 ms a call
        with 1,000 workers (bench/scale.py), on every operator tick."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys["counters"])
            pipe.xinfo_groups(self.keys["stream"])
            raw, groups = await pipe.execute(raise_on_error=False)
        if isinstance(raw, Exception):
            raise raw
        if isinstance(groups, Exception) and "no such key" not in str(groups):  # no stream: nothing enqueued yet
            raise groups
        values = {_text(k): int(v) for k, v in raw.items()}
        in_flight = 0 if isinstance(groups, Exception) else _group_pending(groups)
        total, completed, failed = (values.get(k, 0) for k in ("total", "completed", "failed"))
        return Counters(total=total, completed=completed, failed=failed, pending=total - completed - failed,
                        in_flight=in_flight, retried=values.get("retried", 0), passed=values.get("passed", 0),
                        assertion_failed=values.get("assertion_failed", 0), errors=values.get("errors", 0))

    async def is_drained(self) -> bool:
        """Sealed, and every planned unit has its one outcome record."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(self.keys["sealed"])
            pipe.hmget(self.keys["counters"], "total", "completed", "failed")
            sealed, (total, completed, failed) = await pipe.execute()
        return bool(sealed) and int(completed or 0) + int(failed or 0) == int(total or 0)

    async def claim_aggregation(self, consumer: str, lease: float = 600.0) -> bool:
        """True for exactly one consumer once the queue is drained: it aggregates, then calls `mark_aggregated`.
        If it dies first, the lease (seconds) expires and another consumer may claim it."""
        keys = [self.keys[k] for k in ("sealed", "counters", "aggregator", "aggregated")]
        return bool(await self._claim_aggregation(keys=keys, args=[consumer, int(lease * 1000)]))

    async def mark_aggregated(self, url: str, summary: dict, comparison: dict | None = None) -> None:
        record = {"url": url, "summary": summary, **({"comparison": comparison} if comparison else {})}
        await self.redis.set(self.keys["aggregated"], _dumps(record), keepttl=True)

    async def aggregated(self) -> dict | None:
        raw = await self.redis.get(self.keys["aggregated"])
        return None if raw is None else json.loads(raw)

    async def done_results(self) -> AsyncIterator[tuple[str, dict]]:
        """Every recorded unit: (unit id, {"outcome", "attempt", "result" | "error"}), in no particular order."""
        async for unit_id, summary in self.redis.hscan_iter(self.keys["done"], count=1000):
            yield _text(unit_id), json.loads(summary)

    # --- control ------------------------------------------------------------------------------------------------

    async def cancel(self) -> None:
        await self.redis.set(self.keys["cancel"], 1, keepttl=True)

    async def is_cancelled(self) -> bool:
        return bool(await self.redis.exists(self.keys["cancel"]))

    async def report_fatal(self, message: str) -> None:
        """A worker cannot run this job at all (bad artifact, unreachable sink); the first report is kept."""
        await self.redis.set(self.keys["fatal"], message[:MAX_ERROR_CHARS], nx=True, keepttl=True)

    async def fatal(self) -> str | None:
        raw = await self.redis.get(self.keys["fatal"])
        return None if raw is None else _text(raw)

    async def put_config(self, config: dict) -> None:
        """Store the resolved job config for workers; refuses literal secrets (store references instead)."""
        _check_no_secrets(config)
        await self.redis.set(self.keys["config"], _dumps(config), keepttl=True)

    async def get_config(self) -> dict | None:
        raw = await self.redis.get(self.keys["config"])
        return None if raw is None else json.loads(raw)

    async def _all_keys(self) -> list[Any]:
        pattern = self.key.translate(_GLOB_SPECIALS) + ":*"
        return [key async for key in self.redis.scan_iter(match=pattern, count=1000)]

    async def delete(self) -> int:
        """Remove every key of the job (found by SCAN on its prefix); returns how many were removed."""
        keys, removed = await self._all_keys(), 0
        for start in range(0, len(keys), 500):
            removed += await self.redis.unlink(*keys[start:start + 500])
        self._group_ready, self._cursor = False, "0-0"
        return removed

    async def set_ttl(self, seconds: int) -> None:
        """Expire every key of the job after `seconds` (a safety net for runs nobody deletes)."""
        keys = await self._all_keys()
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.expire(key, seconds)
            await pipe.execute()
