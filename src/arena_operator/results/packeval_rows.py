"""Pack eval results (RunResult `eval_results`) as reports show them: assertion-like rows typed `pack_eval:<type>`
(upstream's PackEvalTypePrefix: "report renderers use this prefix to distinguish pack eval results from scenario
assertions"), a tally per eval for the markdown report, lines for junit's system-out."""

from __future__ import annotations

from typing import Any

PACK_EVAL_TYPE_PREFIX = "pack_eval:"


def as_assertion_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Eval results as the assertion rows reports render, typed `pack_eval:<type>` (upstream's ConvertEvalResults)."""
    rows = []
    for result in results:
        ok = bool(result.get("passed"))
        message = result.get("error") if not ok and result.get("error") else result.get("explanation", "")
        if result.get("skipped"):
            message = f"skipped: {result.get('skip_reason') or 'the eval could not judge'}"
        details = {"eval_id": result.get("eval_id"), "trigger": result.get("trigger"),
                   "turn_index": result.get("turn_index"), "duration_ms": result.get("duration_ms")}
        for key in ("score", "skip_reason"):
            if key in result:
                details[key] = result[key]
        rows.append({"type": f"{PACK_EVAL_TYPE_PREFIX}{result.get('type', '')}", "passed": ok,
                     "message": message or ("passed" if ok else "failed"), "details": details,
                     **({"skipped": True} if result.get("skipped") else {})})
    return rows


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def run_lines(run: dict[str, Any], limit: int) -> list[str]:
    """One line per pack eval result of a run (at most `limit`), for junit's system-out."""
    rows = as_assertion_rows(list(run.get("eval_results") or [])[:max(0, limit)])
    where = f"{run.get('ScenarioID')} × {run.get('ProviderID')} trial {run.get('Trial', 0)}"
    return [f"{where}: {row['type']} {row['details']['eval_id']}: {_verdict(row)}: {row['message']}" for row in rows]


def _verdict(row: dict[str, Any]) -> str:
    return "skipped" if row.get("skipped") else "passed" if row["passed"] else "failed"


class PackEvalTally:
    """Per pack eval (id, type): how many results, passed, failed, skipped — over every run, in bounded memory."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], dict[str, int]] = {}

    def add(self, run: dict[str, Any]) -> None:
        for result in run.get("eval_results") or []:
            key = (str(result.get("eval_id", "")), f"{PACK_EVAL_TYPE_PREFIX}{result.get('type', '')}")
            tally = self.counts.setdefault(key, {"results": 0, "passed": 0, "failed": 0, "skipped": 0})
            tally["results"] += 1
            outcome = "skipped" if result.get("skipped") else "passed" if result.get("passed") else "failed"
            tally[outcome] += 1

    def markdown(self) -> list[str]:
        """The report.md section (none when no run had pack evals)."""
        if not self.counts:
            return []
        lines = ["", "## Pack evals", "", "Observations, not gates: they do not decide a run's status.", "",
                 "| eval | type | results | passed | failed | skipped |", "|---|---|---:|---:|---:|---:|"]
        for (eval_id, kind), tally in sorted(self.counts.items()):
            lines.append(f"| {_cell(eval_id)} | {_cell(kind)} | {tally['results']} | {tally['passed']} | "
                         f"{tally['failed']} | {tally['skipped']} |")
        return lines
