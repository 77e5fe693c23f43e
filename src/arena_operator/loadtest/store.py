"""Reading a distributed load test back from Redis (coord.py writes it): for the operator's live status and the
aggregating worker's reports. Histograms are merged here, centrally, from every worker's encoded ones."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from .coord import LIVENESS_S, lt_keys
from .metrics import Tally, merge
from .profile import LoadProfile
from .summary import WorkerInfo, build_summary

CURRENT_WINDOW_S = 3  # "current RPS": the runs started in the last few finished seconds
LIVE_KEYS = ("current_rps", "current_dropped", "active_workers", "current_lag_p99_ms", "current_capped")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class LoadState:
    """Where a distributed load test stands."""

    start_ms: int | None
    now_ms: int
    workers: list[WorkerInfo]
    alive: set[str]
    finals: set[str]
    stop: dict[str, Any] | None
    ended: float  # the latest test time a worker stopped starting runs at

    @property
    def elapsed(self) -> float:
        return max(0.0, (self.now_ms - self.start_ms) / 1000) if self.start_ms is not None else 0.0

    @property
    def over(self) -> bool:
        """Every worker that ever joined has pushed its last measurements or is gone (finished or lost)."""
        return bool(self.workers) and all(w.name in self.finals or w.name not in self.alive for w in self.workers)

    def merged(self) -> Tally:
        total = Tally()
        for worker in self.workers:
            total.add_encoded(worker.totals.encode())
        return total


class LoadStore:
    def __init__(self, redis: aioredis.Redis, job_key: str) -> None:
        self.redis, self.job_key, self.keys = redis, job_key, lt_keys(job_key)

    async def state(self) -> LoadState:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.get(self.keys["start"])
            pipe.hgetall(self.keys["seen"])
            pipe.hgetall(self.keys["left"])
            pipe.zrange(self.keys["alive"], 0, -1, withscores=True)
            pipe.get(self.keys["stop"])
            (seconds, micros), start, seen, left, alive, stop = await pipe.execute()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        start_ms = int(start) if start is not None else None
        seen = {_text(k): _text(v) for k, v in seen.items()}
        names = sorted(seen)
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(f"{self.job_key}:lt:w:{name}")
            states = await pipe.execute() if names else []
        lefts = {_text(k): _text(v).split(" ", 1) for k, v in left.items()}
        live = {_text(member) for member, score in alive if now_ms - float(score) <= LIVENESS_S * 1000}
        origin = start_ms or now_ms
        workers, finals, ended = [], set(), 0.0
        for name, fields in zip(names, states, strict=True):
            fields = {_text(k): _text(v) for k, v in fields.items()}
            out = lefts.get(name)
            info = WorkerInfo(name, (int(seen[name]) - origin) / 1000,
                              (int(out[0]) - origin) / 1000 if out and name not in live else None,
                              out[1] if out and name not in live else None,
                              Tally.decode(json.loads(fields["totals"])) if fields.get("totals") else Tally())
            workers.append(info)
            if fields.get("final"):
                finals.add(name)
            ended = max(ended, float(fields.get("ended") or 0.0))
        return LoadState(start_ms, now_ms, workers, live, finals, json.loads(stop) if stop else None, ended)

    async def buckets(self, workers: list[str], seconds: list[int] | None = None) -> dict[int, list[str]]:
        """second → the encoded buckets of that second of every worker (all seconds, or only ``seconds``)."""
        found: dict[int, list[str]] = defaultdict(list)
        if seconds == []:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in workers:
                key = f"{self.job_key}:lt:b:{name}"
                pipe.hgetall(key) if seconds is None else pipe.hmget(key, [str(s) for s in seconds])
            replies = await pipe.execute() if workers else []
        for reply in replies:
            items = reply.items() if isinstance(reply, dict) else zip(seconds or [], reply, strict=True)
            for second, encoded in items:
                if encoded is not None:
                    found[int(_text(second))].append(_text(encoded))
        return dict(found)


async def live_summary(store: LoadStore, profile: LoadProfile) -> tuple[LoadState, dict[str, Any]]:
    """The status.result.summary of a running load test: the summary so far (no verdict yet), the current rate
    over the last finished seconds and the workers active now."""
    state = await store.state()
    elapsed = min(state.elapsed, profile.duration)
    last = int(elapsed) - 1
    seconds = [s for s in range(last - CURRENT_WINDOW_S + 1, last + 1) if s >= 0]
    recent = await store.buckets([w.name for w in state.workers], seconds)
    per_second = [merge(recent.get(s, [])) for s in seconds]
    summary = build_summary(profile, state.merged(), elapsed=elapsed, workers=state.workers, stop=state.stop,
                            final=False)
    current = merge(b for s in seconds for b in recent.get(s, []))
    summary.update(current_rps=round(current.counts["started"] / len(seconds), 3) if seconds else 0.0,
                   current_dropped=int(current.counts["dropped"]), active_workers=len(state.alive),
                   current_lag_p99_ms=round(current.hists["lag"].get_value_at_percentile(99) / 1000, 3),
                   current_capped=max((t.capped for t in per_second), default=0))
    return state, summary
