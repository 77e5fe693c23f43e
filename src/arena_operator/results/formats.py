"""Writers for results.json, results.jsonl, junit.xml and results.csv, fed one run dict at a time."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable
from typing import IO, Any
from xml.sax.saxutils import quoteattr
from xml.sax.saxutils import escape as xml_escape

FORMATS = ("json", "jsonl", "junit", "csv", "html")
CSV_COLUMNS = ("RunID", "ScenarioID", "ProviderID", "Region", "Trial", "Status", "Error", "ErrorKind",
               "Duration", "TTFT", "input_tokens", "output_tokens", "total_cost_usd", "assertions_total",
               "assertions_failed", "failed_assertions")


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


def write_json(runs: Iterable[dict[str, Any]], out: IO[str]) -> None:
    """A JSON array written item by item, so a large run never needs to fit in memory twice."""
    out.write("[")
    for index, run in enumerate(runs):
        out.write(",\n" if index else "\n")
        out.write(json.dumps(run, sort_keys=True))
    out.write("\n]\n")


def jsonl_line(run: dict[str, Any]) -> str:
    return json.dumps(run, sort_keys=True, separators=(",", ":")) + "\n"


def write_csv(runs: Iterable[dict[str, Any]], out: IO[str]) -> None:
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for run in runs:
        cost = run.get("Cost") or {}
        failed = failures(run)
        writer.writerow([
            run.get("RunID"), run.get("ScenarioID"), run.get("ProviderID"), run.get("Region"), run.get("Trial"),
            run.get("Status"), run.get("Error"), run.get("ErrorKind"), run.get("Duration"), run.get("TTFT"),
            cost.get("input_tokens", 0), cost.get("output_tokens", 0), cost.get("total_cost_usd", 0),
            assertion_count(run), len(failed), "; ".join(str(f.get("message", "")) for f in failed),
        ])


def _testcase(run: dict[str, Any]) -> str:
    name = f"{run.get('ProviderID')}"
    if run.get("Region") not in (None, "", "default"):
        name += f" [{run.get('Region')}]"
    name += f" trial {run.get('Trial', 0)}"
    seconds = float(run.get("Duration") or 0) / 1000
    head = (f"    <testcase classname={quoteattr(str(run.get('ScenarioID')))} name={quoteattr(name)} "
            f'time="{seconds:.3f}"')
    if run.get("Error"):
        message = str(run["Error"])
        kind = str(run.get("ErrorKind") or "error")
        return f"{head}>\n      <error message={quoteattr(message)} type={quoteattr(kind)}/>\n    </testcase>\n"
    failed = failures(run)
    if failed:
        text = "\n".join(f"{f.get('type')}: {f.get('message')}" for f in failed)
        first = str(failed[0].get("message", "assertion failed"))
        return (f"{head}>\n      <failure message={quoteattr(first)} type=\"AssertionFailed\">"
                f"{xml_escape(text)}</failure>\n    </testcase>\n")
    return f"{head}/>\n"


def write_junit(runs: Iterable[dict[str, Any]], out: IO[str], name: str = "arena") -> None:
    """One <testsuite> per scenario, one <testcase> per run. Holds one suite's cases at a time per scenario."""
    suites: dict[str, list[str]] = defaultdict(list)
    counts: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0, 0.0])
    for run in runs:
        scenario = str(run.get("ScenarioID"))
        suites[scenario].append(_testcase(run))
        tally = counts[scenario]
        tally[0] += 1
        tally[1] += 1 if run.get("Error") else 0
        tally[2] += 1 if not run.get("Error") and failures(run) else 0
        tally[3] += float(run.get("Duration") or 0) / 1000
    total = [sum(c[i] for c in counts.values()) for i in range(4)]
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(f"<testsuites name={quoteattr(name)} tests=\"{int(total[0])}\" errors=\"{int(total[1])}\" "
              f"failures=\"{int(total[2])}\" time=\"{total[3]:.3f}\">\n")
    for scenario in sorted(suites):
        tests, errors, failed, seconds = counts[scenario]
        out.write(f"  <testsuite name={quoteattr(scenario)} tests=\"{int(tests)}\" errors=\"{int(errors)}\" "
                  f"failures=\"{int(failed)}\" skipped=\"0\" time=\"{seconds:.3f}\">\n")
        out.writelines(suites[scenario])
        out.write("  </testsuite>\n")
    out.write("</testsuites>\n")
