"""The self-contained HTML report of a run: totals, failures grouped by reason, charts, providers, the pass/fail
matrix, every conversation shown (side by side across providers), and a small inlined script that filters them.

One file, no network: styles, SVG charts and the script are inline, and the page's Content-Security-Policy
(`default-src 'none'`, the script allowed by its hash) forbids loading anything. Deterministic: the same runs and
summary give the same bytes (no clock, no random ids)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template
from markupsafe import Markup

from . import report_charts as charts
from .media_rows import media_stats
from .packeval_rows import as_assertion_rows
from .report_format import anchor, filesize, href, measured_ms, ms, num, pct, pretty, run_anchor, scenario_href, usd
from .report_views import ScenarioDetail, assertions, failure_rows, scenario_detail
from .selection import FailureGroups

# The number formats, under the names the load-test report imports them by.
_ms, _num, _pct, _usd = ms, num, pct, usd
TEMPLATE = "report.html.j2"
SCRIPT = "report.js.j2"
STYLE = "report.css.j2"
FAILURE_ROWS = 100  # failure reasons listed (all are counted)
_TEMPLATES = Path(__file__).with_name("templates")
# Header facts shown first and with a friendly label; any other meta key follows, labelled by its name.
_META_LABELS = {"bundle": "Bundle", "bundle_name": "Bundle", "revision": "Revision", "command": "Command",
                "started": "Started", "finished": "Finished", "planned": "Planned runs"}


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


def _triggered(validators: Any) -> list[dict[str, Any]]:
    """The guardrail validators that fired on a reply."""
    return [v for v in validators or [] if isinstance(v, dict) and v.get("triggered")]


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


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=num, ms=ms, usd=usd, pct=pct, pretty=pretty, filesize=filesize)
    env.globals.update(anchor=anchor, href=scenario_href, run_href=lambda run_id: href(run_anchor(run_id)),
                       cell_class=_cell_class, assertions=assertions, row_totals=_row_totals, triggered=_triggered,
                       measured=measured_ms, pack_eval_rows=as_assertion_rows, media_stats=media_stats)
    return env


@lru_cache(maxsize=1)
def _template() -> Template:
    return _environment().get_template(TEMPLATE)


@lru_cache(maxsize=1)
def _inline() -> tuple[Markup, Markup, str]:
    """The inlined style and script, and the Content-Security-Policy that allows exactly them."""
    env = _environment()
    style, script = (env.get_template(name).render().strip() for name in (STYLE, SCRIPT))
    if "</" in script:
        raise ValueError(f"{SCRIPT} must not contain '</' (it is inlined in a <script> element)")
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    policy = (f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'; img-src data:; "
              "base-uri 'none'; form-action 'none'")
    return Markup(style), Markup(script), policy


class _ScenarioViews:
    """scenario → its runs' details, made when the template reaches that scenario: runs given as JSON lines are
    parsed one scenario at a time, so only one scenario's detail is in memory as objects."""

    def __init__(self, runs: Iterable[dict[str, Any] | bytes], matrix: dict[str, dict[str, dict[str, int]]],
                 changes: dict[str, str]) -> None:
        self._runs: dict[str, list[dict[str, Any] | bytes]] = {}
        self.run_ids: set[str] = set()
        self._matrix, self._changes = matrix, changes
        # The Failures section counts every run: a DetailSelection's runs carry the count made over all of them;
        # runs given otherwise are every run, counted here.
        self.failures: FailureGroups = getattr(runs, "failures", None) or FailureGroups()
        count = not hasattr(runs, "failures")
        for item in runs:
            run = json.loads(item) if isinstance(item, bytes) else item
            self._runs.setdefault(str(run.get("ScenarioID", "")), []).append(item)
            self.run_ids.add(str(run.get("RunID", "")))
            if count:
                self.failures.add(run)

    def __iter__(self) -> Iterator[str]:
        return iter(self._runs)

    def __len__(self) -> int:
        return len(self.run_ids)

    def get(self, scenario: str) -> ScenarioDetail:
        runs = (json.loads(r) if isinstance(r, bytes) else r for r in self._runs.get(scenario, []))
        cells = {p: sum(int(v) for v in c.values()) for p, c in (self._matrix.get(scenario) or {}).items()}
        return scenario_detail(runs, cells, self._changes)


def _changes(comparison: dict | None) -> list[dict[str, Any]]:
    """The cells worth showing under "Changes since": regressions first, then anything that moved."""
    if not comparison:
        return []
    moved = [c for c in comparison.get("cells") or []
             if c.get("delta") or c.get("newlyFailingCount") or c.get("newlyPassingCount")]
    return sorted(moved, key=lambda c: (c.get("delta") is None, c.get("delta") or 0, c["scenario"], c["provider"]))


def _run_changes(comparison: dict | None) -> dict[str, str]:
    """Run id → "newly failing" / "newly passing", for the runs comparison.json names."""
    out: dict[str, str] = {}
    for cell in (comparison or {}).get("cells") or []:
        out.update(dict.fromkeys(map(str, cell.get("newlyFailing") or []), "newly failing"))
        out.update(dict.fromkeys(map(str, cell.get("newlyPassing") or []), "newly passing"))
    return out


def _scenario_order(scenarios: list[str], matrix: dict[str, dict[str, dict[str, int]]]) -> list[str]:
    """Scenarios with a failed or errored run first, each group by name."""
    def all_passed(scenario: str) -> bool:
        totals = _row_totals(matrix.get(scenario))
        return totals["passed"] == totals["runs"]

    return sorted(scenarios, key=lambda s: (all_passed(s), s))


def write_html(
    runs: Iterable[dict[str, Any] | bytes], summary: dict, out: IO[str], title: str = "Arena report",
    meta: dict | None = None, comparison: dict | None = None,
) -> None:
    """Render the report into `out`. `runs` (dicts, or their JSON lines) is iterated once; output is streamed.
    `runs` are the runs shown in full: a DetailSelection's `runs` bring the failure reasons counted over every run
    (any other iterable is taken to be every run). `summary` (summary.json's content) gives the counts, charts
    and matrix. `comparison` (comparison.json's content) adds "Changes since <baseline>" at the top."""
    matrix: dict[str, dict[str, dict[str, int]]] = summary.get("matrix") or {}
    run_changes = _run_changes(comparison)
    by_scenario = _ScenarioViews(runs, matrix, run_changes)
    providers_summary: dict[str, dict[str, Any]] = summary.get("providers") or {}
    scenarios = sorted(set(matrix) | set(by_scenario))
    providers = sorted(set(providers_summary) | {p for row in matrix.values() for p in row})
    latency = summary.get("latencyMs") or {}
    totals: dict[str, Any] = {key: summary.get(key, 0) for key in (
        "runs", "passed", "failed", "errors", "passRate", "inputTokens", "outputTokens", "costUSD")}
    totals.update(p50=latency.get("p50"), p95=latency.get("p95"))
    heatmap, heatmap_note = charts.heatmap(scenarios, providers, matrix)
    style, script, policy = _inline()
    groups = by_scenario.failures
    listed = failure_rows(groups, FAILURE_ROWS)
    deltas = {(c["scenario"], c["provider"]): c.get("delta") for c in (comparison or {}).get("cells") or []}
    stream = _template().generate(
        title=title, meta_rows=_meta_rows(meta), sample_note=(meta or {}).get("runs_shown"), totals=totals,
        error_kinds=summary.get("errorKinds") or {}, providers=providers, providers_summary=providers_summary,
        matrix=matrix, scenarios=scenarios, sections=_scenario_order(scenarios, matrix), by_scenario=by_scenario,
        comparison=comparison, changes=_changes(comparison), deltas=deltas, run_ids=by_scenario.run_ids,
        failures=listed, failures_unlisted=sum(g.runs for g in groups.ranked()[FAILURE_ROWS:]),
        reasons=len(groups.groups), failed_runs=groups.failed_runs, untracked_runs=groups.other_runs,
        heatmap=heatmap, heatmap_note=heatmap_note, latency_chart=charts.latency_chart(providers, providers_summary),
        cost_chart=charts.cost_chart(providers, providers_summary), style=style, script=script, csp=policy,
        statuses=("failed", "error", "passed"),
    )
    for chunk in stream:
        out.write(chunk)
