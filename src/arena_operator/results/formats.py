"""Writers for results.json, results.jsonl, junit.xml and results.csv, fed one run dict at a time."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable
from typing import IO, Any
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

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
    failed = run["failures"] if "failures" in run else failures(run)
    if failed:
        text = "\n".join(f"{f.get('type')}: {f.get('message')}" for f in failed)
        first = str(failed[0].get("message", "assertion failed"))
        return (f"{head}>\n      <failure message={quoteattr(first)} type=\"AssertionFailed\">"
                f"{xml_escape(text)}</failure>\n    </testcase>\n")
    return f"{head}/>\n"


def _suite_timestamp(runs: list[dict[str, Any]]) -> str:
    """JUnit wants a local-style timestamp without zone: the earliest start of the suite's runs (UTC)."""
    starts = sorted(str(r.get("StartTime") or "") for r in runs if r.get("StartTime"))
    return starts[0][:19] if starts else "1970-01-01T00:00:00"


def write_junit(runs: Iterable[dict[str, Any]], out: IO[str], name: str = "arena") -> None:
    """One <testsuite> per scenario, one <testcase> per run, valid against the Ant JUnit schema.

    Runs are grouped by scenario in memory first; each holds only what its test case needs."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        grouped[str(run.get("ScenarioID"))].append({
            "ScenarioID": run.get("ScenarioID"), "ProviderID": run.get("ProviderID"), "Region": run.get("Region"),
            "Trial": run.get("Trial"), "Duration": run.get("Duration"), "Error": run.get("Error"),
            "ErrorKind": run.get("ErrorKind"), "StartTime": run.get("StartTime"), "failures": failures(run),
        })
    totals = [0, 0, 0, 0.0]
    suites = []
    for index, scenario in enumerate(sorted(grouped)):
        cases = grouped[scenario]
        errors = sum(1 for c in cases if c["Error"])
        failed = sum(1 for c in cases if not c["Error"] and c["failures"])
        seconds = sum(float(c["Duration"] or 0) for c in cases) / 1000
        totals = [totals[0] + len(cases), totals[1] + errors, totals[2] + failed, totals[3] + seconds]
        suites.append(
            f"  <testsuite name={quoteattr(scenario)} package=\"arena\" id=\"{index}\" "
            f"timestamp=\"{_suite_timestamp(cases)}\" hostname=\"localhost\" tests=\"{len(cases)}\" "
            f"failures=\"{failed}\" errors=\"{errors}\" skipped=\"0\" time=\"{seconds:.3f}\">\n"
            "    <properties/>\n" + "".join(_testcase(c) for c in cases) +
            "    <system-out/>\n    <system-err/>\n  </testsuite>\n"
        )
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(f"<testsuites name={quoteattr(name)} tests=\"{totals[0]}\" errors=\"{totals[1]}\" "
              f"failures=\"{totals[2]}\" time=\"{totals[3]:.3f}\">\n")
    out.writelines(suites)
    out.write("</testsuites>\n")
