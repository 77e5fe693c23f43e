"""Data generation, pure parts: the shard plan and seeds, the normalised content hash, the generation loop with
injected duplicates, failing and filtered generations (exact count), replay after a crash, and the merged-file
formats parsed back with json and the csv module."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from arena_operator.api.arenajob import DataGenSettings
from arena_operator.datagen.dedupe import LocalDedupe, NoDedupe
from arena_operator.datagen.formats import CSV_COLUMNS, open_writer
from arena_operator.datagen.generate import ShardFailed, generate_shard
from arena_operator.datagen.items import content_hash, conversation, item_line
from arena_operator.datagen.plan import MAX_SHARD_ITEMS, MAX_TRIES_PER_ITEM, DataGenPlan, make_plan, shard_size
from arena_operator.engine.plan import RunCombination

TEMPLATES = (RunCombination("default", "greeting", "mock-a"), RunCombination("default", "refund", "mock-a"))


def plan(count: int, workers: int = 1, dedupe: bool = True) -> DataGenPlan:
    return make_plan(DataGenSettings(count=count, dedupe=dedupe), 42, workers, TEMPLATES)


@pytest.mark.parametrize(("count", "workers"), [(1, 1), (25, 1), (10_000, 4), (100_000, 4), (7, 3)])
def test_shards_cover_exactly_count_items(count: int, workers: int) -> None:
    p = plan(count, workers)
    shards = list(p.shards())
    assert sum(s.size for s in shards) == count == shards[-1].start + shards[-1].size
    assert [s.start for s in shards] == [i * p.shard_size for i in range(len(shards))]
    assert len({s.id for s in shards}) == len(shards) == p.shard_count
    assert max(s.size for s in shards) <= MAX_SHARD_ITEMS
    assert len(shards) >= min(count, 4 * workers)  # several shards per worker: a killed worker loses little


def test_shard_size_and_seeds() -> None:
    assert (shard_size(10_000, 4), shard_size(25, 1), shard_size(100_000, 4)) == (250, 7, 250)
    p = plan(100)
    seeds = {p.seed_of(item, attempt) for item in range(100) for attempt in range(MAX_TRIES_PER_ITEM)}
    assert len(seeds) == 100 * MAX_TRIES_PER_ITEM  # every try of every item has its own seed
    assert [p.template(i).scenario_id for i in range(4)] == ["greeting", "refund", "greeting", "refund"]
    assert DataGenPlan.from_config(p.to_config()) == p


def msg(role: str, content: str, **extra: Any) -> dict[str, Any]:
    return {"role": role, "content": content, **extra}


def test_the_hash_is_of_the_normalised_conversation() -> None:
    base = conversation({"Messages": [msg("system", "be nice"), msg("user", "Hi"), msg("assistant", "Hello there!")]})
    same = conversation({"Messages": [msg("user", "  HI "), msg("assistant", "hello\n\tthere!", latency_ms=3)]})
    other = conversation({"Messages": [msg("user", "Hi"), msg("assistant", "Hello there?")]})
    called = conversation({"Messages": [msg("user", "Hi"), msg("assistant", "Hello there!", tool_calls=[
        {"id": "c1", "name": "lookup", "args": {"id": 1}}])]})
    assert base == [msg("user", "Hi"), msg("assistant", "Hello there!")]  # no system prompt, no latency
    assert content_hash(base) == content_hash(same)
    assert len({content_hash(base), content_hash(other), content_hash(called)}) == 3


def fake_run(template: RunCombination, text: str, *, error: str = "", kind: str = "", passed: bool = True,
             tokens: int = 10) -> dict[str, Any]:
    return {"ScenarioID": template.scenario_id, "ProviderID": template.provider_id, "Region": template.region,
            "PersonaID": "", "Messages": [msg("user", "ask"), msg("assistant", text)],
            "Cost": {"input_tokens": tokens, "output_tokens": tokens, "total_cost_usd": 0.001},
            "Error": error, "ErrorKind": kind, "Passed": passed and not error}


class Injected:
    """A generator that, by seed, returns a duplicate of an earlier item, a failed generation (5xx) or a reply
    the quality filter rejects; otherwise a reply unique to the seed."""

    def __init__(self, duplicates: set[int] = frozenset(), failing: set[int] = frozenset(),  # type: ignore
                 filtered: set[int] = frozenset(), final: set[int] = frozenset()) -> None:  # type: ignore
        self.duplicates, self.failing, self.filtered, self.final = duplicates, failing, filtered, final
        self.seen: list[int] = []

    async def __call__(self, template: RunCombination, seed: int) -> dict[str, Any]:
        self.seen.append(seed)
        if seed in self.failing:
            return fake_run(template, "", error="HTTP 503", kind="server_error")
        if seed in self.final:
            return fake_run(template, "", error="HTTP 401", kind="auth_error")
        if seed in self.duplicates:
            return fake_run(template, "the one answer everyone repeats")
        return fake_run(template, f"answer {seed}", passed=seed not in self.filtered)


async def run_all(p: DataGenPlan, generate: Injected, dedupe: Any = None, window: int = 4) -> tuple[list, list]:
    dedupe = dedupe or LocalDedupe()
    items: list[dict[str, Any]] = []
    stats = [await generate_shard(p, shard, generate, dedupe, items.append, window=window, revision="r1")
             for shard in p.shards()]
    return items, stats


async def test_exactly_count_unique_items_despite_duplicates_failures_and_filters() -> None:
    p = plan(60, workers=2)
    # seed = 42 + 10 × item + try: the first tries of a few items, and a second try too
    first = {p.seed_of(i, 0) for i in range(60)}
    duplicates = {p.seed_of(i, 0) for i in (3, 4, 17, 40)} | {p.seed_of(4, 1)}
    failing = {p.seed_of(i, 0) for i in (5, 33)}
    filtered = {p.seed_of(i, 0) for i in (8, 9, 59)}
    generate = Injected(duplicates, failing, filtered)
    items, stats = await run_all(p, generate)
    assert len(items) == 60 and [item["index"] for item in items] == list(range(60))
    assert len({item["hash"] for item in items}) == 60  # unique
    assert sum(s.duplicates for s in stats) == 4  # item 3's first try owns the repeated answer; 4 is dropped twice
    assert sum(s.retries for s in stats) == 2 and sum(s.filtered for s in stats) == 3
    assert sum(s.generations for s in stats) == 60 + 4 + 2 + 3 == len(generate.seen)
    assert sum(s.input_tokens for s in stats) == 10 * len(generate.seen)
    assert items[3]["messages"][1]["content"] == "the one answer everyone repeats"
    assert items[4]["seed"] == p.seed_of(4, 2) and items[5]["seed"] == p.seed_of(5, 1)
    assert first - set(generate.seen) == set()
    assert {item["revision"] for item in items} == {"r1"} and items[1]["scenario"] == "refund"


async def test_without_dedupe_duplicates_are_kept() -> None:
    p = plan(10, dedupe=False)
    items, stats = await run_all(p, Injected(duplicates={p.seed_of(i, 0) for i in range(10)}), NoDedupe())
    assert len(items) == 10 and len({i["hash"] for i in items}) == 1 and sum(s.duplicates for s in stats) == 0


async def test_a_shard_run_again_after_a_crash_gets_back_its_own_items() -> None:
    """The same seeds in the same order against the dedupe state the dead run left: the same items."""
    p = plan(30)
    shard = next(p.shards())
    dedupe = LocalDedupe()
    first: list[dict[str, Any]] = []
    await generate_shard(p, shard, Injected(), dedupe, first.append)
    again: list[dict[str, Any]] = []
    await generate_shard(p, shard, Injected(), dedupe, again.append)
    assert again == first
    other = list(p.shards())[1]  # another shard that produces one of those contents is refused it
    stolen = Injected(duplicates=set())
    stolen_items: list[dict[str, Any]] = []

    async def copycat(template: RunCombination, seed: int) -> dict[str, Any]:
        if seed == p.seed_of(other.start, 0):
            return fake_run(template, f"answer {p.seed_of(0, 0)}")  # item 0's content
        return await stolen(template, seed)

    stats = await generate_shard(p, other, copycat, dedupe, stolen_items.append)
    assert stats.duplicates == 1 and stolen_items[0]["seed"] == p.seed_of(other.start, 1)


@pytest.mark.parametrize(("case", "retryable", "words"), [
    ("duplicates", False, "10 duplicate"),
    ("filtered", False, "10 filtered"),
    ("failing", True, "10 failed"),
    ("final", False, "auth_error: HTTP 401"),
])
async def test_a_hopeless_item_fails_its_shard_saying_why(case: str, retryable: bool, words: str) -> None:
    p = plan(5)
    seeds = {p.seed_of(1, t) for t in range(MAX_TRIES_PER_ITEM)}
    generate = Injected(**{case: seeds}) if case != "duplicates" else Injected(
        duplicates=seeds | {p.seed_of(0, 0)})
    with pytest.raises(ShardFailed) as caught:
        await generate_shard(p, next(p.shards()), generate, LocalDedupe(), lambda item: None)
    assert caught.value.retryable is retryable and words in caught.value.message
    assert "item 1" in caught.value.message
    if case == "duplicates":
        assert "{{seed}}" in caught.value.message  # the hint for a deterministic mock


ITEMS = [{"index": i, "scenario": "s", "provider": "p", "region": "default", "persona": None if i else "bob",
          "seed": 42 + i, "messages": [msg("user", f"q{i}, with \"quotes\""), msg("assistant", f"line one\nline {i}",
                                       tool_calls=[{"name": "look", "args": {"id": i}}]),
                                       msg("tool", "found", name="look"), msg("assistant", f"done {i}")],
          "tokens": {"input": 3, "output": 4}, "costUSD": 0.5, "revision": "r", "shard": "shard-00000",
          "hash": f"h{i}"} for i in range(3)]


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_each_format_parses(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"data.{fmt}"
    writer = open_writer(fmt, path)
    for item in ITEMS:
        writer.add(item, item_line(item))
    writer.close()
    text = path.read_text(encoding="utf-8")
    if fmt == "jsonl":
        assert [json.loads(line) for line in text.splitlines()] == ITEMS
    elif fmt == "json":
        assert json.loads(text) == ITEMS
    else:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 3
        assert rows[0]["persona"] == "bob" and rows[1]["persona"] == ""
        assert rows[2]["prompt"] == 'q2, with "quotes"' and rows[2]["response"] == "done 2"
        assert rows[2]["conversation"].splitlines() == [
            'user: q2, with "quotes"', "assistant: line one", 'line 2 [tool look {"id": 2}]', "tool look: found",
            "assistant: done 2"]
        assert (rows[1]["turns"], rows[1]["input_tokens"], rows[1]["cost_usd"]) == ("4", "3", "0.5")


def test_an_empty_json_file_is_an_empty_array(tmp_path: Path) -> None:
    open_writer("json", tmp_path / "d.json").close()
    assert json.loads((tmp_path / "d.json").read_text()) == []
