"""The generation loop of one shard: exactly `shard.size` accepted items, in item order.

Up to `window` items are generated at once (each its own conversation through the engine). A try is rejected
when it errored (a failed generation: retried with the next seed), when it fails the bundle's assertions (the
quality filter: `Passed` false) or when its content hash is already owned by another try (a duplicate, checked
through `Dedupe` — across all workers in a distributed job). A rejected item is tried again with its next seed;
an item rejected MAX_TRIES_PER_ITEM times in a row fails the shard (`ShardFailed`), as does an error that no
retry can fix (FINAL_KINDS: bad request, authentication). Accepted items are emitted in item order, so the same
seeds give the same shard file; memory holds at most the window's items and those finished ahead of a slower one."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..engine.plan import RunCombination
from .dedupe import Dedupe
from .items import content_hash, conversation, item_record, tokens_of
from .plan import MAX_TRIES_PER_ITEM, DataGenPlan, Shard

Generate = Callable[[RunCombination, int], Awaitable[dict[str, Any]]]  # (template, seed) → RunResult dict
DUPLICATE, FILTERED, FAILED = "duplicate", "filtered", "failed"
# Errors no retry can fix (a bad key, a request the provider refuses, a provider type this version cannot run, a
# bug): they fail the shard at once. Every other failed generation (rate limits, 5xx, timeouts, ...) is retried.
FINAL_KINDS = frozenset({"auth_error", "bad_request", "unsupported", "internal"})
HINTS = {DUPLICATE: "the provider repeats itself: a mock provider needs {{seed}} in its replies to vary, a model "
                    "a temperature above 0",
         FILTERED: "the bundle's assertions reject what the provider generates",
         FAILED: "the provider keeps failing"}


class ShardFailed(Exception):
    """The shard cannot be completed on this attempt; `retryable` when a later attempt may succeed."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class ShardAbandoned(Exception):
    """This worker no longer holds the shard (it was handed to another worker): stop without recording."""


@dataclass
class ShardStats:
    items: int = 0
    generations: int = 0
    duplicates: int = 0
    filtered: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def count(self, run: dict[str, Any]) -> None:
        self.generations += 1
        input_tokens, output_tokens, cost = tokens_of(run)
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cost_usd += cost

    def to_dict(self) -> dict[str, Any]:
        """The shard's record (in Redis and units/<shard>.json): flat numbers only."""
        return {"items": self.items, "generations": self.generations, "duplicatesDropped": self.duplicates,
                "filtered": self.filtered, "retries": self.retries, "inputTokens": self.input_tokens,
                "outputTokens": self.output_tokens, "costUSD": round(self.cost_usd, 8)}


@dataclass
class _Slot:
    item: int
    attempt: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    last_error: str = ""


async def generate_shard(plan: DataGenPlan, shard: Shard, generate: Generate, dedupe: Dedupe,
                         emit: Callable[[dict[str, Any]], None], *, window: int = 4, revision: str = "",
                         alive: Callable[[], bool] | None = None,
                         on_progress: Callable[[int], Awaitable[None]] | None = None) -> ShardStats:
    """Generate the shard's items, calling `emit(item)` for each in item order; returns the shard's stats."""
    stats = ShardStats()
    open_slots: list[_Slot] = []
    finished: dict[int, dict[str, Any]] = {}
    next_item, emitted, end = shard.start, shard.start, shard.start + shard.size
    while emitted < end:
        if alive is not None and not alive():
            raise ShardAbandoned(shard.id)
        while len(open_slots) < max(1, window) and next_item < end:
            open_slots.append(_Slot(next_item))
            next_item += 1
        seeds = [plan.seed_of(slot.item, slot.attempt) for slot in open_slots]
        runs = await asyncio.gather(*(generate(plan.template(slot.item), seed)
                                      for slot, seed in zip(open_slots, seeds, strict=True)))
        candidates: list[tuple[_Slot, int, dict[str, Any]]] = []
        for slot, seed, run in zip(open_slots, seeds, runs, strict=True):
            stats.count(run)
            if run.get("Error"):
                stats.retries += 1
                _reject(slot, FAILED, f"{run.get('ErrorKind') or 'error'}: {run.get('Error')}")
                if run.get("ErrorKind") in FINAL_KINDS:
                    raise ShardFailed(f"item {slot.item}: generation failed ({slot.last_error})",
                                      retryable=False)
            elif not run.get("Passed"):
                stats.filtered += 1
                _reject(slot, FILTERED)
            else:
                messages = conversation(run)
                digest = content_hash(messages)
                candidates.append((slot, seed, item_record(run, messages, index=slot.item, seed=seed, digest=digest,
                                                           shard=shard.id, revision=revision)))
        owned = await dedupe.claim([(item["hash"], str(seed)) for _, seed, item in candidates])
        for (slot, _, item), mine in zip(candidates, owned, strict=True):
            if mine:
                finished[slot.item] = item
            else:
                stats.duplicates += 1
                _reject(slot, DUPLICATE)
        open_slots = [slot for slot in open_slots if slot.item not in finished]
        for slot in open_slots:
            slot.attempt += 1
            if slot.attempt >= MAX_TRIES_PER_ITEM:
                raise _exhausted(slot)
        while emitted in finished:
            emit(finished.pop(emitted))
            emitted += 1
        if on_progress is not None:
            await on_progress(emitted - shard.start)
    stats.items = shard.size
    return stats


def _reject(slot: _Slot, reason: str, error: str = "") -> None:
    slot.reasons[reason] += 1
    if error:
        slot.last_error = error


def _exhausted(slot: _Slot) -> ShardFailed:
    tally = ", ".join(f"{n} {reason}" for reason, n in slot.reasons.most_common())
    worst = slot.reasons.most_common(1)[0][0]
    detail = f"; last error {slot.last_error}" if slot.last_error else ""
    return ShardFailed(f"item {slot.item} was rejected {slot.attempt} times in a row ({tally}){detail}: "
                       f"{HINTS[worst]}", retryable=worst == FAILED)
