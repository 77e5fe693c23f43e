"""A load test's reports, the same from a cluster and from ``arena run``: summary.json, timeseries.csv (one row a
second), report.html (self-contained: inline SVG charts, no script, no network) and junit.xml (one testcase a
threshold, and the budget when one is set)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template

from ..results.report import _ms, _num, _pct, _usd  # the evaluation report's number formats
from .charts import line_chart
from .metrics import ERROR_CLASSES, merge
from .profile import LoadProfile
from .thresholds import describe, measured_text

FILES = {"summary.json": "application/json", "timeseries.csv": "text/csv", "report.html": "text/html",
         "junit.xml": "application/xml"}
COLUMNS = ("second", "active_workers", "target", "arrivals", "started", "dropped", "completed", "passed", "failed",
           "errored", "interrupted", "requests", "errors", *(f"err_{c}" for c in ERROR_CLASSES), "latency_p50_ms",
           "latency_p95_ms", "latency_p99_ms", "ttft_p50_ms", "ttft_p95_ms", "ttft_p99_ms", "lag_p99_ms", "vus",
           "cost_usd")


def _p(histogram: Any, pct: float) -> float | None:
    return round(histogram.get_value_at_percentile(pct) / 1000, 3) if histogram.get_total_count() else None


def timeseries(buckets: dict[int, list[str]], profile: LoadProfile, last: float) -> list[dict[str, Any]]:
    """One row per second of test time, merged over the workers that sent a bucket for it."""
    curve = profile.curve()
    rows = []
    for second in range(max(math.ceil(last), *(s + 1 for s in buckets))):
        encoded = buckets.get(second, [])
        tally = merge(encoded)
        c = tally.counts
        lat, ttft = tally.hists["lat"], tally.hists["ttft"]
        rows.append({
            "second": second, "active_workers": len(encoded),
            "target": round(curve.integral(second + 1) - curve.integral(second), 3),
            **{k: int(c[k]) for k in ("arrivals", "started", "dropped", "completed", "passed", "failed", "errored",
                                      "interrupted", "requests")},
            "errors": int(sum(c[f"err_{k}"] for k in ERROR_CLASSES)),
            **{f"err_{k}": int(c[f"err_{k}"]) for k in ERROR_CLASSES},
            "latency_p50_ms": _p(lat, 50), "latency_p95_ms": _p(lat, 95), "latency_p99_ms": _p(lat, 99),
            "ttft_p50_ms": _p(ttft, 50), "ttft_p95_ms": _p(ttft, 95), "ttft_p99_ms": _p(ttft, 99),
            "lag_p99_ms": _p(tally.hists["lag"], 99), "vus": tally.vus, "cost_usd": round(tally.cost_usd, 6),
        })
    return rows


def junit_xml(summary: dict[str, Any], name: str, started: str | None = None) -> str:
    """The Ant JUnit schema's document: one testcase per threshold (failing with the measured value or why it
    could not be computed), plus the budget when one is set."""
    cases = []
    for result in summary.get("thresholds") or []:
        case = quoteattr(f"{result['metric']} {result['operator']} {result['value']}")
        head = f'    <testcase classname="thresholds" name={case} time="0"'
        cases.append(f"{head}/>" if result.get("passed") else
                     f'{head}>\n      <failure message={quoteattr(describe(result))} type="ThresholdFailed"/>\n'
                     "    </testcase>")
    budget = summary.get("budget")
    if budget:
        case = quoteattr(f"spend < {budget['limit']:g} {budget['currency']}")
        head = f'    <testcase classname="budget" name={case} time="0"'
        stop = summary.get("stopped") or {}
        cases.append(f"{head}>\n      <failure message={quoteattr(str(stop.get('message')))} type=\"BudgetExceeded\"/>"
                     "\n    </testcase>" if stop.get("reason") == "BudgetExceeded" else f"{head}/>")
    failures = sum(1 for case in cases if "<failure" in case)
    properties = "".join(f"\n      <property name={quoteattr(k)} value={quoteattr(str(summary.get(k)))}/>"
                         for k in ("model", "target_rps", "achieved_rps", "requests", "dropped", "error_rate"))
    counts = f'tests="{len(cases)}" failures="{failures}" errors="0"'
    seconds = f'time="{float(summary.get("elapsed_s") or 0):.3f}"'
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name={quoteattr(name)} {counts} {seconds}>\n'
            f'  <testsuite name={quoteattr(name)} package="arena.loadtest" id="0" '
            f'timestamp="{started or "1970-01-01T00:00:00"}" hostname="localhost" {counts} skipped="0" {seconds}>\n'
            f"    <properties>{properties}\n    </properties>\n"
            + "".join(f"{case}\n" for case in cases)
            + "    <system-out/>\n    <system-err/>\n  </testsuite>\n</testsuites>\n")


@lru_cache(maxsize=1)
def _template() -> Template:
    env = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=_num, ms=_ms, usd=_usd, pct=_pct)
    env.globals.update(measured_text=measured_text)
    return env.get_template("report.html.j2")


def charts(rows: list[dict[str, Any]]) -> list[str]:
    xs = [row["second"] for row in rows]

    def col(name: str) -> list[float | None]:
        return [row[name] for row in rows]

    errors = [(c.replace("_", " "), col(f"err_{c}")) for c in ERROR_CLASSES if any(r[f"err_{c}"] for r in rows)]
    return [
        line_chart("Latency percentiles per second", xs, [("p50", col("latency_p50_ms")),
                                                          ("p95", col("latency_p95_ms")),
                                                          ("p99", col("latency_p99_ms"))], "ms"),
        line_chart("Runs per second", xs, [("target", col("target")), ("started", col("started")),
                                           ("completed", col("completed")), ("dropped", col("dropped"))], "runs/s"),
        line_chart("Errors per second", xs, errors or [("errors", col("errors"))], "requests/s"),
    ]


def worker_notes(summary: dict[str, Any]) -> list[str]:
    """What the report says about workers that left early: who took over their share, and from when."""
    notes = []
    workers = summary.get("workers") or []
    for worker in workers:
        if worker.get("how") in ("lost", "stopped") and worker.get("left_s") is not None and \
                worker["left_s"] < summary.get("elapsed_s", 0) - 1:
            others = [w["name"] for w in workers if w["name"] != worker["name"] and
                      (w.get("left_s") is None or w["left_s"] > worker["left_s"])]
            why = "stopped answering (killed?)" if worker["how"] == "lost" else "was stopped (SIGTERM)"
            notes.append(f"worker {worker['name']} {why} at {worker['left_s']:.1f}s; from then on its share went to "
                         f"the {len(others)} remaining worker(s) ({', '.join(others) or 'none'})")
    missed = (summary.get("expected_arrivals") or 0) - summary.get("arrivals", 0)
    if summary.get("model") == "open" and missed > 0:
        notes.append(f"{missed} of {summary['expected_arrivals']} arrivals were never due on any worker (a worker "
                     "had left and the others had not taken over its share yet, or the test stopped early)")
    return notes


def write_reports(directory: Path, summary: dict[str, Any], rows: list[dict[str, Any]],
                  meta: dict[str, Any]) -> list[Path]:
    """Write the four files into ``directory``; returns their paths in FILES order."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    with (directory / "timeseries.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    html = _template().render(summary=summary, meta=meta, charts=charts(rows), notes=worker_notes(summary),
                              error_classes=ERROR_CLASSES)
    (directory / "report.html").write_text(html)
    (directory / "junit.xml").write_text(junit_xml(summary, f"loadtest {meta.get('job', '')}".strip(),
                                                   meta.get("started")))
    return [directory / name for name in FILES]


def verdict_lines(summary: dict[str, Any]) -> Iterable[str]:
    for result in summary.get("thresholds") or []:
        yield f"{'PASS' if result['passed'] else 'FAIL'} {describe(result)}"
