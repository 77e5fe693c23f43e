"""The report formats — the one place that says which exist, which are written by default, their file names and
content types — and the streaming writers for results.jsonl, results.json and results.csv (junit.xml: junit.py).

Every writer is fed one run at a time (`add(run, line)`, `line` being the run's compact JSON line) and holds
nothing but its open file, so a report of a million runs needs no more memory than one of ten."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol


@dataclass(frozen=True)
class OutputFormat:
    name: str
    file: str
    content_type: str


OUTPUTS = {
    "json": OutputFormat("json", "results.json", "application/json"),
    "jsonl": OutputFormat("jsonl", "results.jsonl", "application/x-ndjson"),
    "junit": OutputFormat("junit", "junit.xml", "application/xml"),
    "csv": OutputFormat("csv", "results.csv", "text/csv; charset=utf-8"),
    "html": OutputFormat("html", "report.html", "text/html; charset=utf-8"),
    "markdown": OutputFormat("markdown", "report.md", "text/markdown; charset=utf-8"),
}
FORMATS = tuple(OUTPUTS)
# What `arena run` and an ArenaJob write when no formats are given (CLI --formats, the arena file's
# defaults.output.formats, spec.evaluation.outputFormats): every format.
DEFAULT_FORMATS: tuple[str, ...] = FORMATS
# Always written, whatever the formats.
SUMMARY = OutputFormat("summary", "summary.json", "application/json")
COMPARISON = OutputFormat("comparison", "comparison.json", "application/json")  # only with a baseline
FILE_NAMES = {fmt.name: fmt.file for fmt in OUTPUTS.values()}
CONTENT_TYPES = {fmt.file: fmt.content_type for fmt in (*OUTPUTS.values(), SUMMARY, COMPARISON)}

CSV_COLUMNS = ("RunID", "ScenarioID", "ProviderID", "Region", "Trial", "Status", "Error", "ErrorKind",
               "Duration", "TTFT", "input_tokens", "output_tokens", "total_cost_usd", "assertions_total",
               "assertions_failed", "failed_assertions")


def wanted_formats(formats: Iterable[str] | None) -> set[str]:
    """The formats to write: `formats` (None: DEFAULT_FORMATS) checked, plus html (always) and jsonl when json is
    asked for (its streaming twin). An unknown name raises ValueError listing the known ones."""
    wanted = set(DEFAULT_FORMATS if formats is None else formats)
    unknown = wanted - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown output format(s) {sorted(unknown)}; choose from {', '.join(FORMATS)}")
    wanted.add("html")
    if "json" in wanted:
        wanted.add("jsonl")
    return wanted


def failures(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Every failed assertion of a run, turn-level then conversation-level."""
    out = []
    for message in run.get("Messages", []):
        for result in (message.get("meta") or {}).get("assertions", {}).get("results", []):
            if not result.get("passed"):
                out.append(result)
    out.extend(r for r in run.get("conversation_assertions", {}).get("results", []) if not r.get("passed"))
    return out


def assertion_count(run: dict[str, Any]) -> int:
    turn = sum(len((m.get("meta") or {}).get("assertions", {}).get("results", [])) for m in run.get("Messages", []))
    return turn + len(run.get("conversation_assertions", {}).get("results", []))


def jsonl_line(run: dict[str, Any]) -> str:
    """A run as one compact line, keys sorted: the same bytes as its unit file, plus the newline."""
    return json.dumps(run, sort_keys=True, separators=(",", ":")) + "\n"


class ReportWriter(Protocol):
    def add(self, run: dict[str, Any], line: bytes) -> None: ...

    def close(self) -> None: ...


class JsonlWriter:
    def __init__(self, path: Path) -> None:
        self._out = path.open("wb")

    def add(self, run: dict[str, Any], line: bytes) -> None:
        self._out.write(line)

    def close(self) -> None:
        self._out.close()


class JsonArrayWriter:
    """results.json: a JSON array of the same compact lines, written item by item."""

    def __init__(self, path: Path) -> None:
        self._out = path.open("wb")
        self._out.write(b"[")
        self._first = True

    def add(self, run: dict[str, Any], line: bytes) -> None:
        self._out.write(b"\n" if self._first else b",\n")
        self._out.write(line.rstrip(b"\n"))
        self._first = False

    def close(self) -> None:
        self._out.write(b"\n]\n")
        self._out.close()


class CsvWriter:
    def __init__(self, path: Path) -> None:
        self._out: IO[str] = path.open("w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._out)
        self._csv.writerow(CSV_COLUMNS)

    def add(self, run: dict[str, Any], line: bytes) -> None:
        cost = run.get("Cost") or {}
        failed = failures(run)
        self._csv.writerow([
            run.get("RunID"), run.get("ScenarioID"), run.get("ProviderID"), run.get("Region"), run.get("Trial"),
            run.get("Status"), run.get("Error"), run.get("ErrorKind"), run.get("Duration"), run.get("TTFT"),
            cost.get("input_tokens", 0), cost.get("output_tokens", 0), cost.get("total_cost_usd", 0),
            assertion_count(run), len(failed), "; ".join(str(f.get("message", "")) for f in failed),
        ])

    def close(self) -> None:
        self._out.close()
