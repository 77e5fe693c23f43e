"""What a datagen job leaves in its sink (an S3 prefix, a PVC directory, `arena run --out`):

    shards/<shard-id>.jsonl   the items of one shard, one JSON record per line, in item order (written by the
                              worker that generated it, once the shard is complete: a shard file is never partial)
    units/<shard-id>.json     the shard's counts (items, generations, duplicates dropped, filtered, retries, tokens,
                              cost)
    data.<format>             every item of every completed shard, in item order (formats.py), merged once all
                              shards are done, streamed a line at a time
    summary.json              the totals (also the job's status.result.summary)

Both the worker and the local run go through `produce_shard` and `write_outputs`."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ..results.formats import SUMMARY
from ..results.sinkbase import ResultSink
from .dedupe import Dedupe
from .formats import CONTENT_TYPES, SHARD_CONTENT_TYPE, ItemWriter, data_file, open_writer
from .generate import Generate, ShardAbandoned, ShardStats, generate_shard
from .items import item_line
from .plan import DataGenPlan, Shard

SHARDS = "shards/"
SUMMED = ("generations", "duplicatesDropped", "filtered", "retries", "inputTokens", "outputTokens", "costUSD")
FAILURES_SHOWN = 5


def shard_name(shard_id: str) -> str:
    return f"{SHARDS}{shard_id}.jsonl"


async def produce_shard(plan: DataGenPlan, shard: Shard, generate: Generate, dedupe: Dedupe, sink: ResultSink,
                        workdir: Path, *, window: int, revision: str, alive: Callable[[], bool] | None = None,
                        on_progress: Callable[[int], Awaitable[None]] | None = None) -> ShardStats:
    """Generate the shard into a local file, then store it as `shards/<id>.jsonl` (whole, or not at all)."""
    path = workdir / f"{shard.id}.jsonl.part"
    try:
        with path.open("w", encoding="utf-8", newline="\n") as out:
            stats = await generate_shard(plan, shard, generate, dedupe, lambda item: out.write(item_line(item) + "\n"),
                                         window=window, revision=revision, alive=alive, on_progress=on_progress)
        if alive is not None and not alive():
            raise ShardAbandoned(shard.id)
        await sink.put_object(shard_name(shard.id), path, SHARD_CONTENT_TYPE)
    finally:
        path.unlink(missing_ok=True)
    return stats


def _append(path: Path, writer: ItemWriter) -> int:
    added = 0
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            line = line.rstrip("\n")
            if line:
                writer.add(json.loads(line), line)
                added += 1
    return added


async def write_outputs(sink: ResultSink, plan: DataGenPlan, records: dict[str, dict[str, Any]], workdir: Path,
                        meta: dict[str, Any]) -> dict[str, Any]:
    """Merge the completed shards' files into `data.<format>` and write summary.json; returns the summary.
    `records` maps shard id → {"outcome", "result": the shard's counts} or {"outcome": "failed", "error"}."""
    work = Path(tempfile.mkdtemp(prefix="arena-datagen-", dir=workdir))
    try:
        merged = work / data_file(plan.format)
        totals: Counter[str] = Counter()
        failures: list[dict[str, str]] = []
        items = 0
        writer = open_writer(plan.format, merged)
        try:
            for shard in plan.shards():
                record = records.get(shard.id) or {"outcome": "failed", "error": "never completed"}
                if record.get("outcome") == "failed":
                    failures.append({"shard": shard.id, "error": str(record.get("error") or "failed")})
                    continue
                counts = record.get("result") or {}
                totals.update({key: counts.get(key) or 0 for key in SUMMED})
                local = work / "shard.jsonl"
                await sink.get_object(shard_name(shard.id), local)
                items += await asyncio.to_thread(_append, local, writer)
        finally:
            writer.close()
        await sink.put_file(data_file(plan.format), merged, CONTENT_TYPES[plan.format])
        summary = {
            "type": "datagen", "count": plan.count, "items": items, "complete": items == plan.count,
            "format": plan.format, "file": data_file(plan.format), "dedupe": plan.dedupe, "seed": plan.seed,
            "shards": plan.shard_count, "failedShards": len(failures), "failures": failures[:FAILURES_SHOWN],
            **{key: round(totals[key], 8) if key == "costUSD" else int(totals[key]) for key in SUMMED}, **meta,
        }
        path = work / SUMMARY.file
        path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        await sink.put_file(SUMMARY.file, path, SUMMARY.content_type)
        return summary
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)
