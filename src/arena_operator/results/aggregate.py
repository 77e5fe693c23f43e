"""Aggregate a distributed job's unit results, read once from its sink, into the report files of the job.

Memory stays bounded whatever the number of units:
1. Units are streamed from the sink once into a local spool file (one compact JSON line each); only a small sort
   key per unit (scenario, provider, region, trial, run id, offset, length) stays in memory.
2. The spool is read back in sorted order: results.jsonl and results.json are written line by line, the Summary
   (constant memory per provider and cell) is fed run by run, and a bounded set of runs is kept for the HTML report.
3. results.csv and junit.xml are written by the shared writers from the sorted results.jsonl (junit.xml keeps a
   compact record per test case, as it does for a local run).
4. report.html shows the summary, the matrix and at most `html_failure_limit` failed/errored runs (a fair share
   per scenario × provider cell when there are more) plus `html_detail_limit` passed runs per cell (and
   `MAX_PASSED_DETAIL` passed runs in all); its header says how many runs are shown when that is not all of them.
Temporary files go to the system temp dir (TMPDIR): give the aggregating pod room for about twice the units' size.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from .formats import FORMATS, jsonl_line, write_csv, write_junit
from .report import write_html
from .selection import HTML_FAILURE_LIMIT, DetailSelection, cell_of
from .sinks import ResultSink
from .summary import Summary
from .writer import FILE_NAMES, JSONL, SUMMARY, read_jsonl

DEFAULT_FORMATS = ("json", "jsonl", "junit", "csv")
CONTENT_TYPES = {
    FILE_NAMES["json"]: "application/json",
    JSONL: "application/x-ndjson",
    FILE_NAMES["junit"]: "application/xml",
    FILE_NAMES["csv"]: "text/csv; charset=utf-8",
    FILE_NAMES["html"]: "text/html; charset=utf-8",
    SUMMARY: "application/json",
}

# (ScenarioID, ProviderID, Region, Trial, RunID, spool offset, line length)
_Key = tuple[str, str, str, int, str, int, int]


def _trial(run: dict[str, Any]) -> int:
    try:
        return int(run.get("Trial") or 0)
    except (TypeError, ValueError):
        return 0


def _key(run: dict[str, Any], offset: int, length: int) -> _Key:
    return (str(run.get("ScenarioID", "")), str(run.get("ProviderID", "")), str(run.get("Region", "")),
            _trial(run), str(run.get("RunID", "")), offset, length)


async def _spool(sink: ResultSink, path: Path) -> tuple[list[_Key], Counter[tuple[str, str]]]:
    """Read every unit from the sink once, appending it to `path`; returns the sorted keys and the number of
    failed/errored runs per scenario × provider cell."""
    keys: list[_Key] = []
    failures: Counter[tuple[str, str]] = Counter()
    offset = 0
    with path.open("wb") as spool:
        async for run in sink.iter_units():
            line = jsonl_line(run).encode()
            spool.write(line)
            keys.append(_key(run, offset, len(line)))
            offset += len(line)
            if run.get("Status") != "passed":
                failures[cell_of(run)] += 1
    keys.sort()
    return keys, failures


def _sorted_lines(spool: Path, keys: list[_Key]) -> Iterator[bytes]:
    with spool.open("rb") as handle:
        for key in keys:
            handle.seek(key[5])
            yield handle.read(key[6])


def _write_files(spool: Path, keys: list[_Key], out: Path, wanted: set[str], selection: DetailSelection,
                 meta: dict[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    """Blocking: every report file into `out`; returns the summary dict and the file names to upload."""
    summary = Summary()
    jsonl_path = out / JSONL
    with ExitStack() as files:
        jsonl = files.enter_context(jsonl_path.open("wb"))
        # results.json from the same compact lines: a JSON array streamed item by item.
        array = files.enter_context((out / FILE_NAMES["json"]).open("wb")) if "json" in wanted else None
        if array:
            array.write(b"[")
        for index, line in enumerate(_sorted_lines(spool, keys)):
            run = json.loads(line)
            summary.add(run)
            selection.offer(run)
            jsonl.write(line)
            if array:
                array.write(b",\n" if index else b"\n")
                array.write(line.rstrip(b"\n"))
        if array:
            array.write(b"\n]\n")
    names = [name for fmt, name in (("jsonl", JSONL), ("json", FILE_NAMES["json"])) if fmt in wanted]
    for fmt, writer in (("csv", write_csv), ("junit", write_junit)):
        if fmt in wanted:
            with (out / FILE_NAMES[fmt]).open("w", encoding="utf-8", newline="") as handle:
                writer(read_jsonl(jsonl_path), handle)
            names.append(FILE_NAMES[fmt])
    data = summary.to_dict()
    note = selection.note("units/" + (" and results.json" if "json" in wanted else ""))
    html_meta = {**(meta or {}), **({"runs_shown": note} if note else {})}
    with (out / FILE_NAMES["html"]).open("w", encoding="utf-8") as handle:
        write_html(selection.runs, data, handle, meta=html_meta)
    (out / SUMMARY).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return data, [*names, FILE_NAMES["html"], SUMMARY]


async def aggregate(
    sink: ResultSink,
    formats: Iterable[str] | None = DEFAULT_FORMATS,
    meta: dict[str, Any] | None = None,
    html_detail_limit: int = 20,
    *,
    html_failure_limit: int = HTML_FAILURE_LIMIT,
) -> dict[str, Any]:
    """Read all units from `sink` once, write and upload the report files; returns the summary dict.

    summary.json and report.html are always written; `formats` picks among json, jsonl, junit, csv (html is
    implied). Asking for json also gives results.jsonl, its streaming twin. Runs are ordered by ScenarioID,
    ProviderID, Region, Trial (then RunID).
    """
    wanted = set(DEFAULT_FORMATS if formats is None else formats)
    unknown = wanted - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown output format(s) {sorted(unknown)}; choose from {', '.join(FORMATS)}")
    if "json" in wanted:
        wanted.add("jsonl")
    with tempfile.TemporaryDirectory(prefix="arena-aggregate-") as tmp:
        work = Path(tmp)
        out = work / "out"
        out.mkdir()
        spool = work / "units.jsonl"
        keys, failures = await _spool(sink, spool)
        selection = DetailSelection(html_detail_limit, html_failure_limit, failures)
        summary, names = await asyncio.to_thread(_write_files, spool, keys, out, wanted, selection, meta)
        spool.unlink()
        for name in names:
            await sink.put_file(name, out / name, CONTENT_TYPES[name])
    return summary
