"""One report pipeline: `arena run` writes units into its --out directory and aggregates them exactly as a
distributed job's worker aggregates its sink, so the same unit results give the same report bytes."""

from __future__ import annotations

import asyncio
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from arena_operator.engine.plan import RunFilters
from arena_operator.local.run import LocalRunOptions, report_meta, run_local
from arena_operator.results import aggregate as aggregate_module
from arena_operator.results.formats import CONTENT_TYPES, DEFAULT_FORMATS, FILE_NAMES, SUMMARY
from arena_operator.results.sinks import DirSink
from arena_operator.results.spool import ExternalSort, sort_key
from arena_operator.worker import run as worker_run

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart"
REPORTS = [*FILE_NAMES.values(), SUMMARY.file]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("local") / "out"
    outcome = asyncio.run(run_local(LocalRunOptions(bundle=QUICKSTART, out_dir=out, filters=RunFilters(trials=3))))
    assert outcome.planned == outcome.executed == 18
    return out, outcome.summary


def units_of(out: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_bytes()) for path in sorted((out / "units").glob("*.json"))]


async def worker_aggregate(root: Path, units: list[dict[str, Any]], **kwargs: Any) -> DirSink:
    """The distributed path: workers put the units (any order, concurrently) into a PVC sink, and the aggregating
    worker calls the aggregate that worker/run.py uses, with the formats it uses when the job names none."""
    root.mkdir()  # the mounted claim
    sink = DirSink(root, "results-pvc", "evals", "team-a", "nightly")
    await sink.check()
    shuffled = random.Random(7).sample(units, len(units))
    await asyncio.gather(*(sink.put_unit(run["RunID"], run) for run in shuffled))
    await worker_run.aggregate(sink, worker_run.DEFAULT_FORMATS, meta=report_meta(QUICKSTART, len(units)),
                               **kwargs)
    return sink


async def test_local_and_worker_reports_are_byte_identical(local_run: tuple[Path, dict[str, Any]],
                                                           tmp_path: Path) -> None:
    out, summary = local_run
    assert worker_run.aggregate is aggregate_module.aggregate  # the worker path is this very function
    units = units_of(out)
    assert len(units) == 18 and sum(r["Status"] != "passed" for r in units) == 3
    sink = await worker_aggregate(tmp_path / "pvc", units)
    for name in REPORTS:  # every format is a default one: all six files exist on both sides
        assert (out / name).read_bytes() == (sink.dir / name).read_bytes(), name
    assert json.loads((out / SUMMARY.file).read_text()) == summary
    # a second aggregation of the same units (another worker taking over the lease) changes nothing
    again = await worker_aggregate(tmp_path / "pvc2", list(reversed(units)), batch_size=4)
    for name in REPORTS:
        assert (again.dir / name).read_bytes() == (out / name).read_bytes(), name


def test_report_times_come_from_the_results(local_run: tuple[Path, dict[str, Any]]) -> None:
    out, _ = local_run
    units = units_of(out)
    html = (out / "report.html").read_text()
    started = min(units, key=lambda r: r["StartTime"])["StartTime"]
    finished = max(units, key=lambda r: r["EndTime"])["EndTime"]
    assert f"<dt>Started</dt><dd>{started}</dd>" in html and f"<dt>Finished</dt><dd>{finished}</dd>" in html
    junit = (out / "junit.xml").read_text()
    for scenario in {r["ScenarioID"] for r in units}:
        first = min(r["StartTime"] for r in units if r["ScenarioID"] == scenario)[:19]
        assert re.search(rf'<testsuite name="{scenario}" [^>]*timestamp="{first}"', junit), scenario
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert lines == json.loads((out / "results.json").read_text())
    assert [sort_key(r) for r in lines] == sorted(sort_key(r) for r in units)


def test_one_default_format_list() -> None:
    assert set(DEFAULT_FORMATS) == set(FILE_NAMES) and set(CONTENT_TYPES) == {*REPORTS, "comparison.json"}


def test_external_sort_spills_and_merges_in_order(tmp_path: Path) -> None:
    rng = random.Random(3)
    runs = [{"ScenarioID": f"s{rng.randrange(5)}", "ProviderID": f"p{rng.randrange(3)}", "Region": "default",
             "Trial": rng.randrange(50), "RunID": f"r{i:05d}"} for i in range(3000)]
    spool = ExternalSort(tmp_path, batch=40)
    for run in runs:
        if spool.add(sort_key(run), json.dumps(run).encode() + b"\n"):
            spool.spill()
    assert len(list(tmp_path.iterdir())) <= 65  # 75 spills, merged down to at most MERGE_FANIN + 1 chunks
    merged = [json.loads(line) for _key, line in spool.merged()]
    assert merged == sorted(runs, key=sort_key)
