"""`arena run --type datagen` and `arena run job.yaml` of a datagen ArenaJob: exactly `count` unique items in
`data.<format>` (parsed back with json and the csv module), the quality filter of the bundle counted, the same
seeds giving the same file, and a provider that only repeats itself failing plainly."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from arena_operator import cli

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "tests" / "fixtures" / "bundles" / "datagen"
API = "omnia.altairalabs.ai/v1alpha1"


def items_of(out: Path, fmt: str) -> list[dict[str, Any]]:
    text = (out / f"data.{fmt}").read_text(encoding="utf-8")
    if fmt == "jsonl":
        return [json.loads(line) for line in text.splitlines()]
    if fmt == "json":
        return json.loads(text)
    with (out / "data.csv").open(newline="", encoding="utf-8") as rows:
        return list(csv.DictReader(rows))


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_exactly_count_items_in_each_format(tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = cli.main(["run", str(BUNDLE), "--type", "datagen", "--count", "25", "--format", fmt, "--out", str(out),
                     "-q"])
    assert code == 0, capsys.readouterr()
    items = items_of(out, fmt)
    assert len(items) == 25 and len({item["hash"] for item in items}) == 25
    assert [int(item["index"]) for item in items] == list(range(25))
    assert {item["scenario"] for item in items} == {"refund-question", "shopper-chat"}
    summary = json.loads((out / "summary.json").read_text())
    # the bundle's regex filters the first try of items 10-19 (seed 1000 + 10 × item): the refund ones among them
    assert (summary["items"], summary["complete"], summary["filtered"], summary["generations"]) == (25, True, 5, 30)
    assert summary["duplicatesDropped"] == 0 and summary["inputTokens"] > 0 and summary["costUSD"] > 0
    assert len(list((out / "shards").glob("*.jsonl"))) == summary["shards"] == 4
    assert "25/25 items" in capsys.readouterr().out
    if fmt == "csv":
        assert items[0]["conversation"].splitlines()[0] == "user: How do I return a bike I bought last week?"
        assert items[1]["persona"] == "curious-customer" and items[1]["seed"] == "1010"
    else:
        assert items[1]["persona"] == "curious-customer" and items[1]["messages"][0]["role"] == "user"
        assert items[0]["revision"].startswith("sha256:")


def test_same_seed_same_file_and_the_seed_flag(tmp_path: Path) -> None:
    runs = []
    for name, extra in (("a", []), ("b", []), ("c", ["--seed", "5000"])):
        assert cli.main(["run", str(BUNDLE), "--type", "datagen", "--count", "12", "--out", str(tmp_path / name),
                         "-q", "-j", "3", *extra]) == 0
        runs.append((tmp_path / name / "data.jsonl").read_text())
    assert runs[0] == runs[1] != runs[2]
    assert json.loads(runs[2].splitlines()[0])["seed"] == 5000


def test_a_provider_that_repeats_itself_fails_plainly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(BUNDLE, bundle)
    for mock in ("mock-assistant.yaml", "mock-customer.yaml"):
        (bundle / mock).write_text((bundle / mock).read_text().replace("{{seed}}", "420"))  # passes the filter
    code = cli.main(["run", str(bundle), "--type", "datagen", "--count", "6", "--out", str(tmp_path / "o"), "-q"])
    printed = capsys.readouterr().out
    assert code == 1 and "rejected 10 times in a row (10 duplicate)" in printed and "{{seed}}" in printed
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["complete"] is False and summary["items"] < 6 and summary["failedShards"] >= 1
    # without dedupe, the same provider fills the count (with repeated content)
    assert cli.main(["run", str(bundle), "--type", "datagen", "--count", "6", "--no-dedupe", "--out",
                     str(tmp_path / "o2"), "-q"]) == 0
    assert len(items_of(tmp_path / "o2", "jsonl")) == 6


def test_job_file_honours_the_datagen_block(tmp_path: Path) -> None:
    shutil.copytree(BUNDLE, tmp_path / "prompts")
    docs = [
        {"apiVersion": API, "kind": "ArenaSource", "metadata": {"name": "prompts"},
         "spec": {"type": "workspace", "workspace": {"path": "prompts"}}},
        {"apiVersion": API, "kind": "ArenaConfig", "metadata": {"name": "datagen-config"},
         "spec": {"sourceRef": {"name": "prompts"}, "scenarios": {"include": ["shopper-*"]}}},
        {"apiVersion": API, "kind": "ArenaJob", "metadata": {"name": "synthetic-data"},
         "spec": {"configRef": {"name": "datagen-config"}, "type": "datagen",
                  "dataGen": {"count": 12, "format": "csv", "seed": 7}, "workers": {"replicas": 4},
                  "output": {"type": "pvc", "pvc": {"claimName": "generated-data"}}}},
    ]
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump_all(docs))
    assert cli.main(["run", str(job), "--out", str(tmp_path / "out"), "-q"]) == 0
    items = items_of(tmp_path / "out", "csv")
    assert len(items) == 12 and {row["scenario"] for row in items} == {"shopper-chat"}
    assert items[0]["seed"] == "7"
    assert cli.main(["run", str(job), "--count", "3", "--format", "json", "--out", str(tmp_path / "o2"), "-q"]) == 0
    assert len(items_of(tmp_path / "o2", "json")) == 3  # the flags win over the block
