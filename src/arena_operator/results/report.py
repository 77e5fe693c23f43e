"""The self-contained HTML report of a run: totals, providers, a pass/fail matrix, every conversation."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template

TEMPLATE = "report.html.j2"
_TEMPLATES = Path(__file__).with_name("templates")
# Header facts shown first and with a friendly label; any other meta key follows, labelled by its name.
_META_LABELS = {"bundle": "Bundle", "bundle_name": "Bundle", "revision": "Revision", "command": "Command",
                "started": "Started", "finished": "Finished", "planned": "Planned runs"}
_STATUSES = ("passed", "failed", "error")


def anchor(scenario_id: str) -> str:
    """The id of a scenario's section: `scenario-<id>`, whitespace (not allowed in ids) turned into `_`."""
    return "scenario-" + re.sub(r"\s+", "_", scenario_id)


def _href(scenario_id: str) -> str:
    return "#" + quote(anchor(scenario_id), safe="-_.~!$&'()*+,;=:@/")


def _num(value: Any) -> str:
    try:
        return f"{int(value or 0):,}"
    except (TypeError, ValueError):
        return str(value)


def _ms(value: Any) -> str:
    """Milliseconds for people: `843 ms`, `12.4 ms`, `3.21 s`; a dash when unknown."""
    try:
        ms = float(value)
    except (TypeError, ValueError):
        return "\u2013"  # en dash
    if ms >= 10_000:
        return f"{ms / 1000:,.1f} s"
    if ms >= 1_000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms"


def _usd(value: Any) -> str:
    amount = float(value or 0)
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.4f}"


def _pct(rate: Any) -> str:
    return f"{float(rate or 0) * 100:.1f}%"


def _pretty(value: Any) -> str:
    """JSON for tool arguments and assertion details (indented when long); strings as they are."""
    if isinstance(value, str):
        return value
    compact = json.dumps(value, ensure_ascii=False, default=str)
    return compact if len(compact) <= 100 else json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _cell_class(cell: dict[str, int] | None) -> str:
    """Matrix colour: red when any run failed, amber for errors only, green when all passed."""
    if not cell or not sum(cell.values()):
        return "empty"
    if cell.get("failed"):
        return "bad"
    return "warn" if cell.get("errors") else "good"


def _row_totals(row: dict[str, dict[str, int]] | None) -> dict[str, int]:
    """A scenario's counts over every provider."""
    out = {"passed": 0, "failed": 0, "errors": 0}
    for cell in (row or {}).values():
        for key in out:
            out[key] += int(cell.get(key, 0))
    out["runs"] = sum(out.values())
    return out


def _assertions(block: Any) -> list[dict[str, Any]]:
    return list((block or {}).get("results") or []) if isinstance(block, dict) else []


def _triggered(validators: Any) -> list[dict[str, Any]]:
    """The guardrail validators that fired on a reply."""
    return [v for v in validators or [] if isinstance(v, dict) and v.get("triggered")]


def _run_view(run: dict[str, Any]) -> dict[str, Any]:
    """The few derived facts the template needs about one run, computed once."""
    fallback = "error" if run.get("Error") else "passed" if run.get("Passed") else "failed"
    status = str(run.get("Status") or fallback)
    if status not in _STATUSES:
        status = "failed"
    messages = run.get("Messages") or []
    failed = sum(1 for m in messages for a in _assertions((m.get("meta") or {}).get("assertions"))
                 if not a.get("passed"))
    failed += sum(1 for a in _assertions(run.get("conversation_assertions")) if not a.get("passed"))
    region = str(run.get("Region") or "")
    return {"run": run, "status": status, "messages": messages, "failed_assertions": failed,
            "region": "" if region == "default" else region, "cost": run.get("Cost") or {},
            "conversation_assertions": _assertions(run.get("conversation_assertions"))}


def _sort_key(view: dict[str, Any]) -> tuple[str, str, int]:
    run = view["run"]
    try:
        trial = int(run.get("Trial") or 0)
    except (TypeError, ValueError):
        trial = 0
    return str(run.get("ProviderID", "")), view["region"], trial


def _meta_rows(meta: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not meta:
        return []
    keys = [k for k in _META_LABELS if k in meta] + sorted(k for k in meta if k not in _META_LABELS)
    rows = []
    for key in keys:
        value = meta[key]
        if value is None or value == "":
            continue
        label = _META_LABELS.get(key, key.replace("_", " ").capitalize())
        text = value if isinstance(value, str) else json.dumps(value, default=str) \
            if isinstance(value, dict | list) else str(value)
        rows.append((label, text))
    return rows


@lru_cache(maxsize=1)
def _template() -> Template:
    env = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=_num, ms=_ms, usd=_usd, pct=_pct, pretty=_pretty)
    env.globals.update(anchor=anchor, href=_href, cell_class=_cell_class, assertions=_assertions,
                       row_totals=_row_totals, triggered=_triggered)
    return env.get_template(TEMPLATE)


class _ScenarioViews:
    """scenario → its runs' views, sorted, made when the template reaches that scenario: runs given as JSON lines
    are parsed one scenario at a time, so only one scenario's detail is in memory as objects."""

    def __init__(self, runs: Iterable[dict[str, Any] | bytes]) -> None:
        self._runs: dict[str, list[dict[str, Any] | bytes]] = {}
        for run in runs:
            scenario = (json.loads(run) if isinstance(run, bytes) else run).get("ScenarioID", "")
            self._runs.setdefault(str(scenario), []).append(run)

    def __iter__(self) -> Iterator[str]:
        return iter(self._runs)

    def get(self, scenario: str, default: Any = None) -> Any:
        if scenario not in self._runs:
            return default
        views = [_run_view(json.loads(run) if isinstance(run, bytes) else run) for run in self._runs[scenario]]
        return sorted(views, key=_sort_key)


def _changes(comparison: dict | None) -> list[dict[str, Any]]:
    """The cells worth showing under "Changes since": regressions first, then anything that moved."""
    if not comparison:
        return []
    moved = [c for c in comparison.get("cells") or []
             if c.get("delta") or c.get("newlyFailingCount") or c.get("newlyPassingCount")]
    return sorted(moved, key=lambda c: (c.get("delta") is None, c.get("delta") or 0, c["scenario"], c["provider"]))


def write_html(
    runs: Iterable[dict[str, Any] | bytes], summary: dict, out: IO[str], title: str = "Arena report",
    meta: dict | None = None, comparison: dict | None = None,
) -> None:
    """Render the report into `out`. `runs` (dicts, or their JSON lines) is iterated once; output is streamed.
    `comparison` (comparison.json's content) adds "Changes since <baseline>" at the top."""
    by_scenario = _ScenarioViews(runs)
    matrix: dict[str, dict[str, dict[str, int]]] = summary.get("matrix") or {}
    providers_summary: dict[str, dict[str, Any]] = summary.get("providers") or {}
    scenarios = sorted(set(matrix) | set(by_scenario))
    providers = sorted(set(providers_summary) | {p for row in matrix.values() for p in row})
    latency = summary.get("latencyMs") or {}
    totals: dict[str, Any] = {key: summary.get(key, 0) for key in (
        "runs", "passed", "failed", "errors", "passRate", "inputTokens", "outputTokens", "costUSD")}
    totals.update(p50=latency.get("p50"), p95=latency.get("p95"))
    stream = _template().generate(
        title=title, meta_rows=_meta_rows(meta), totals=totals, error_kinds=summary.get("errorKinds") or {},
        providers=providers, providers_summary=providers_summary, matrix=matrix, scenarios=scenarios,
        by_scenario=by_scenario, comparison=comparison, changes=_changes(comparison),
    )
    for chunk in stream:
        out.write(chunk)
