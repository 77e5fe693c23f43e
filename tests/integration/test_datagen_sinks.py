"""A datagen job's outputs in both sinks (S3 on moto_server, a PVC directory): shard files stored whole under
`shards/`, the merged `data.<format>` and summary.json; a shard that failed is left out and named."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from arena_operator.api.arenajob import DataGenSettings
from arena_operator.datagen.dedupe import LocalDedupe
from arena_operator.datagen.outputs import produce_shard, write_outputs
from arena_operator.datagen.plan import make_plan
from arena_operator.engine.plan import RunCombination
from arena_operator.results.dirsink import DirSink
from arena_operator.results.sinkbase import ResultSink, SinkError
from tests.fakes.services import S3Server
from tests.integration.test_sinks import JOB, NAMESPACE, s3_sink
from tests.integration.test_sinks import aws_env as aws_env  # fixtures, re-exported for pytest
from tests.integration.test_sinks import bucket as bucket

TEMPLATES = (RunCombination("default", "s", "p"),)


async def generate(template: RunCombination, seed: int) -> dict[str, Any]:
    return {"ScenarioID": "s", "ProviderID": "p", "Region": "default", "Passed": True, "Error": "",
            "Messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": f"a {seed}"}],
            "Cost": {"input_tokens": 1, "output_tokens": 2, "total_cost_usd": 0.001}}


async def outputs(sink: ResultSink, tmp_path: Path, fmt: str) -> dict[str, Any]:
    plan = make_plan(DataGenSettings(count=10, format=fmt), 0, 1, TEMPLATES)  # shards of 3, 3, 3, 1
    records: dict[str, dict[str, Any]] = {}
    for shard in plan.shards():
        if shard.index == 2:
            records[shard.id] = {"outcome": "failed", "error": "item 6 was rejected 10 times in a row"}
            continue
        stats = await produce_shard(plan, shard, generate, LocalDedupe(), sink, tmp_path, window=2, revision="r")
        records[shard.id] = {"outcome": "passed", "result": stats.to_dict()}
    return await write_outputs(sink, plan, records, tmp_path, {"revision": "r"})


def check(summary: dict[str, Any], data: bytes, shards: list[bytes], fmt: str) -> None:
    assert (summary["items"], summary["count"], summary["complete"], summary["failedShards"]) == (7, 10, False, 1)
    assert summary["failures"] == [{"shard": "shard-00002", "error": "item 6 was rejected 10 times in a row"}]
    assert summary["generations"] == 7 and summary["outputTokens"] == 14
    text = data.decode()
    items = json.loads(text) if fmt == "json" else list(csv.DictReader(io.StringIO(text, newline="")))
    assert [int(item["index"]) for item in items] == [0, 1, 2, 3, 4, 5, 9]
    assert sorted(len(s.decode().splitlines()) for s in shards) == [1, 3, 3]  # whole shards, the failed one absent


@pytest.mark.parametrize("fmt", ["json", "csv"])
async def test_outputs_in_s3(s3_server: S3Server, bucket: str, tmp_path: Path, fmt: str) -> None:
    sink = s3_sink(s3_server, bucket)
    summary = await outputs(sink, tmp_path, fmt)
    client = s3_server.client()
    prefix = f"evals/nightly/{NAMESPACE}/{JOB}/"
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"])
    assert keys == [prefix + name for name in (f"data.{fmt}", "shards/shard-00000.jsonl", "shards/shard-00001.jsonl",
                                               "shards/shard-00003.jsonl", "summary.json")]
    head = client.head_object(Bucket=bucket, Key=f"{prefix}data.{fmt}")
    assert head["ContentType"].startswith("application/json" if fmt == "json" else "text/csv")
    shards = [client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys if "/shards/" in k]
    check(summary, client.get_object(Bucket=bucket, Key=f"{prefix}data.{fmt}")["Body"].read(), shards, fmt)
    assert json.loads(client.get_object(Bucket=bucket, Key=f"{prefix}summary.json")["Body"].read()) == summary
    with pytest.raises(SinkError, match="read"):
        await sink.get_object("shards/shard-00002.jsonl", tmp_path / "x")


async def test_outputs_on_a_claim(tmp_path: Path) -> None:
    (tmp_path / "claim").mkdir()
    sink = DirSink(tmp_path / "claim", "data", "batch-001/", NAMESPACE, JOB)
    work = tmp_path / "work"
    work.mkdir()
    summary = await outputs(sink, work, "csv")
    root = tmp_path / "claim" / "batch-001" / NAMESPACE / JOB
    shards = sorted((root / "shards").iterdir())
    assert [p.name for p in shards] == ["shard-00000.jsonl", "shard-00001.jsonl", "shard-00003.jsonl"]
    check(summary, (root / "data.csv").read_bytes(), [p.read_bytes() for p in shards], "csv")
    assert not list(work.iterdir())  # nothing left in the work directory
    with pytest.raises(ValueError, match="plain file name"):
        await sink.put_object("shards/../escape.jsonl", work / "x", "text/plain")
