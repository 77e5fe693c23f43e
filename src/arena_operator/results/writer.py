"""Write the report files of a finished run into a directory from its results.jsonl."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .formats import write_csv, write_json, write_junit
from .report import write_html
from .selection import HTML_FAILURE_LIMIT, DetailSelection, cell_of
from .summary import Summary

FILE_NAMES = {"json": "results.json", "junit": "junit.xml", "csv": "results.csv", "html": "report.html"}
JSONL = "results.jsonl"
HTML_DETAIL_PER_CELL = 20
SUMMARY = "summary.json"


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Runs from a results.jsonl; a torn last line (a crash mid-write) is skipped, not fatal."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def write_reports(
    out_dir: Path, runs: Iterable[dict[str, Any]], formats: Iterable[str], meta: dict[str, Any] | None = None
) -> Summary:
    """Write every requested format (html always) plus summary.json; returns the summary."""
    runs = list(runs)
    summary = Summary()
    failures = Counter(cell_of(run) for run in runs if run.get("Status") != "passed")
    # The same bounded selection as a distributed job: report.html stays readable at 100k runs.
    selection = DetailSelection(HTML_DETAIL_PER_CELL, HTML_FAILURE_LIMIT, failures)
    for run in runs:
        summary.add(run)
        selection.offer(run)
    wanted = set(formats) | {"html"}
    writers = {"json": write_json, "junit": write_junit, "csv": write_csv}
    for fmt, writer in writers.items():
        if fmt in wanted:
            with (out_dir / FILE_NAMES[fmt]).open("w", encoding="utf-8", newline="") as handle:
                writer(runs, handle)
    note = selection.note("results.jsonl")
    with (out_dir / FILE_NAMES["html"]).open("w", encoding="utf-8") as handle:
        write_html(selection.runs, summary.to_dict(), handle, meta={**(meta or {}), **({"runs_shown": note}
                                                                                      if note else {})})
    (out_dir / SUMMARY).write_text(json.dumps(summary.to_dict(), indent=2, sort_keys=True) + "\n")
    return summary
