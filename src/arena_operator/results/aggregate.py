"""The one report pipeline: every unit result of a sink, read once, into the report files. A distributed job's
aggregating worker and `arena run` (whose `--out` directory is a DirSink) both end with `aggregate()`, so the same
units give byte-identical reports either way.

Memory is bounded by the sort batch, whatever the number of units:
1. Units are streamed from the sink once (unordered where the sink allows) into an external merge sort
   (spool.py): batches of `batch_size` runs are sorted and spilled to chunk files. A count of failed/errored
   runs per scenario × provider cell is kept (for the HTML report's fair share of failures).
2. The chunks are merged into one stream in order — ScenarioID, ProviderID, Region, Trial, RunID — and each run
   is handed to every writer (results.jsonl, results.json, results.csv, junit.xml: each streams), to the Summary
   (constant memory per provider and cell) and to the bounded DetailSelection for the HTML report.
3. report.html shows the summary, the matrix and at most `html_failure_limit` failed/errored runs (a fair share
   per scenario × provider cell when there are more) plus `html_detail_limit` passed runs per cell (and
   `MAX_PASSED_DETAIL` passed runs in all); its header says how many runs are shown when that is not all of them.
   The header's Started/Finished are the earliest StartTime and latest EndTime of the runs, not the clock.
Temporary files go to the system temp dir (TMPDIR): give it room for about twice the units' size.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .formats import (
    COMPARISON,
    CONTENT_TYPES,
    DEFAULT_FORMATS,
    FILE_NAMES,
    FORMATS,
    SUMMARY,
    CsvWriter,
    JsonArrayWriter,
    JsonlWriter,
    ReportWriter,
    jsonl_line,
    wanted_formats,
)
from .junit import JunitWriter
from .markdown import MarkdownWriter
from .report import write_html
from .selection import HTML_FAILURE_LIMIT, DetailSelection, cell_of
from .sinkbase import ResultSink
from .spool import SORT_BATCH, ExternalSort, Item, sort_key
from .summary import Summary

HTML_DETAIL_PER_CELL = 20


class _Span:
    """The earliest StartTime and the latest EndTime seen (as written in the runs)."""

    def __init__(self) -> None:
        self.first: tuple[datetime, str] | None = None
        self.last: tuple[datetime, str] | None = None

    def add(self, run: dict[str, Any]) -> None:
        start, end = _moment(run.get("StartTime")), _moment(run.get("EndTime") or run.get("StartTime"))
        if start and (self.first is None or start < self.first):
            self.first = start
        if end and (self.last is None or end > self.last):
            self.last = end

    def meta(self) -> dict[str, str]:
        return {**({"started": self.first[1]} if self.first else {}),
                **({"finished": self.last[1]} if self.last else {})}


def _moment(value: Any) -> tuple[datetime, str] | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)), str(value)


def _writers(out: Path, work: Path, wanted: set[str]) -> list[ReportWriter]:
    writers: list[ReportWriter] = []
    if "jsonl" in wanted:
        writers.append(JsonlWriter(out / FILE_NAMES["jsonl"]))
    if "json" in wanted:
        writers.append(JsonArrayWriter(out / FILE_NAMES["json"]))
    if "csv" in wanted:
        writers.append(CsvWriter(out / FILE_NAMES["csv"]))
    if "junit" in wanted:
        writers.append(JunitWriter(out / FILE_NAMES["junit"], work / "junit-cases"))
    if "markdown" in wanted:
        writers.append(MarkdownWriter(out / FILE_NAMES["markdown"]))
    return writers


def _write_files(items: Iterator[Item], out: Path, work: Path, wanted: set[str], selection: DetailSelection,
                 meta: dict[str, Any] | None,
                 comparison: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """Blocking: every report file into `out` in one pass over the sorted runs; returns the summary dict and the
    file names to store."""
    summary = Summary()
    span = _Span()
    writers = _writers(out, work, wanted)
    try:
        for _key, line in items:
            run = json.loads(line)
            summary.add(run)
            span.add(run)
            selection.offer(run, line)
            for writer in writers:
                writer.add(run, line)
    finally:
        for writer in writers:
            writer.close()
    data = summary.to_dict()
    note = selection.note("units/" + (" and results.json" if "json" in wanted else ""))
    html_meta = {**span.meta(), **(meta or {}), **({"runs_shown": note} if note else {})}
    with (out / FILE_NAMES["html"]).open("w", encoding="utf-8") as handle:
        write_html(selection.runs, data, handle, meta=html_meta, comparison=comparison)
    (out / SUMMARY.file).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    names = [FILE_NAMES[fmt] for fmt in FORMATS if fmt in wanted]
    if comparison is not None:
        (out / COMPARISON.file).write_text(json.dumps(comparison, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        names.append(COMPARISON.file)
    return data, [*names, SUMMARY.file]


async def _sort_units(sink: ResultSink, spool: ExternalSort) -> Counter[tuple[str, str]]:
    """Read every unit once into the external sort; returns the failed/errored runs per cell."""
    failures: Counter[tuple[str, str]] = Counter()
    async for run in sink.iter_units(ordered=False):
        if spool.add(sort_key(run), jsonl_line(run).encode()):
            await asyncio.to_thread(spool.spill)
        if run.get("Status") != "passed":
            failures[cell_of(run)] += 1
    return failures


async def aggregate(
    sink: ResultSink,
    formats: Iterable[str] | None = DEFAULT_FORMATS,
    meta: dict[str, Any] | None = None,
    html_detail_limit: int = HTML_DETAIL_PER_CELL,
    *,
    html_failure_limit: int = HTML_FAILURE_LIMIT,
    batch_size: int = SORT_BATCH,
    comparison: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Read all units from `sink` once, write and store the report files; returns the summary dict.

    summary.json and report.html are always written; `formats` (None: DEFAULT_FORMATS) picks among json, jsonl,
    junit, csv, html. Asking for json also gives results.jsonl, its streaming twin. `meta` adds header facts to
    report.html (the run's first start and last end are added from the results). `comparison` (a
    Comparison.to_dict()) is written as comparison.json and heads report.html as "Changes since …".
    """
    wanted = wanted_formats(formats)
    with tempfile.TemporaryDirectory(prefix="arena-aggregate-") as tmp:
        work = Path(tmp)
        out = work / "out"
        out.mkdir()
        spool = ExternalSort(work, batch_size)
        failures = await _sort_units(sink, spool)
        selection = DetailSelection(html_detail_limit, html_failure_limit, failures)
        summary, names = await asyncio.to_thread(_write_files, spool.merged(), out, work, wanted, selection, meta,
                                                 comparison)
        for name in names:
            await sink.put_file(name, out / name, CONTENT_TYPES[name])
    return summary
