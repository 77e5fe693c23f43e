"""A datagen job's plan: `count` items split into shards, the work units of the job's Redis queue.

Item `i` (0-based, its place in the merged file) belongs to the shard whose range holds it and is generated from
template `i % len(templates)` — a scenario × provider × region of the bundle's plan, so items spread evenly over
the selected scenarios. Try `t` of item `i` uses seed `seed + i * MAX_TRIES_PER_ITEM + t`: every try of every item
has its own seed, and a shard run again after a crash replays the same seeds in the same order.

Shards are small enough that a killed worker loses little (at most MAX_SHARD_ITEMS items of work) and numerous
enough that every worker gets several (SHARDS_PER_WORKER), whatever the count."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..engine.plan import RunCombination
from ..runplan.units import batches

MAX_SHARD_ITEMS = 250
SHARDS_PER_WORKER = 4
MAX_TRIES_PER_ITEM = 10  # an item rejected (duplicate, filtered, failed) this many times in a row fails its shard
DEFAULT_COUNT = 100
DEFAULT_FORMAT = "jsonl"
DEFAULT_SEED = 42  # when neither dataGen.seed nor the arena file's defaults.seed is set


@dataclass(frozen=True)
class Shard:
    """Items `start .. start + size - 1` of the merged file."""

    index: int
    start: int
    size: int

    @property
    def id(self) -> str:
        return f"shard-{self.index:05d}"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "shard": self.index, "start": self.start, "size": self.size}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Shard:
        missing = [k for k in ("shard", "start", "size") if k not in data]
        if missing:
            raise ValueError(f"datagen shard without {', '.join(missing)}: {sorted(data)}")
        return cls(int(data["shard"]), int(data["start"]), int(data["size"]))


def shard_size(count: int, workers: int) -> int:
    """Items per shard: at least SHARDS_PER_WORKER shards per worker, at most MAX_SHARD_ITEMS items each."""
    target = max(max(1, workers) * SHARDS_PER_WORKER, math.ceil(count / MAX_SHARD_ITEMS))
    return max(1, math.ceil(count / target))


@dataclass(frozen=True)
class DataGenPlan:
    count: int
    format: str
    dedupe: bool
    seed: int
    shard_size: int
    templates: tuple[RunCombination, ...]

    def shards(self) -> Iterator[Shard]:
        for index, start in enumerate(range(0, self.count, self.shard_size)):
            yield Shard(index, start, min(self.shard_size, self.count - start))

    @property
    def shard_count(self) -> int:
        return math.ceil(self.count / self.shard_size)

    def template(self, item: int) -> RunCombination:
        return self.templates[item % len(self.templates)]

    def seed_of(self, item: int, attempt: int) -> int:
        return self.seed + item * MAX_TRIES_PER_ITEM + attempt

    def batches(self, size: int = 500) -> Iterator[list[dict[str, Any]]]:
        """The shards in queue form, a batch at a time (the planner's enqueue loop)."""
        return batches(self.shards(), size)  # type: ignore[arg-type]  # a Shard is queued as a WorkUnit is

    def describe(self) -> str:
        return (f"{self.count} items ({self.format}) in {self.shard_count} shards over {len(self.templates)} "
                f"scenario × provider templates")

    def to_config(self) -> dict[str, Any]:
        """The `dataGen` entry of the job config in Redis (what the workers read)."""
        return {"dataGen": {
            "count": self.count, "format": self.format, "dedupe": self.dedupe, "seed": self.seed,
            "shardSize": self.shard_size,
            "templates": [[t.region, t.scenario_id, t.provider_id] for t in self.templates]}}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DataGenPlan:
        data = config.get("dataGen")
        if not isinstance(data, dict) or not data.get("templates"):
            raise ValueError("the job config has no dataGen plan (was it planned by an older operator?)")
        templates = tuple(RunCombination(str(r), str(s), str(p)) for r, s, p in data["templates"])
        return cls(int(data["count"]), str(data["format"]), bool(data["dedupe"]), int(data["seed"]),
                   int(data["shardSize"]), templates)


def templates_of(plan: Iterable[RunCombination]) -> tuple[RunCombination, ...]:
    """The distinct scenario × provider × region combinations of a run plan (trials do not apply to datagen)."""
    return tuple(dict.fromkeys(RunCombination(c.region, c.scenario_id, c.provider_id) for c in plan))


def make_plan(settings: Any, default_seed: int | None, workers: int,
              templates: tuple[RunCombination, ...]) -> DataGenPlan:
    """The plan of `spec.dataGen` (an api DataGenSettings, or None for its defaults)."""
    if not templates:
        raise ValueError("the scenario selection and providers give nothing to generate from")
    count = settings.count if settings is not None else DEFAULT_COUNT
    seed = settings.seed if settings is not None and settings.seed is not None else default_seed
    seed = DEFAULT_SEED if seed is None else seed
    return DataGenPlan(count=count, format=settings.format if settings is not None else DEFAULT_FORMAT,
                       dedupe=settings.dedupe if settings is not None else True, seed=seed,
                       shard_size=shard_size(count, workers), templates=templates)
