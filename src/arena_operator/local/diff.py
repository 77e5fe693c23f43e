"""`arena diff OLD NEW` and `arena run --baseline`: a run compared with an earlier one, printed as a delta table."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from ..results.compare import Verdict, judge_against
from ..results.location import sink_at

MAX_ROWS = 30


async def diff(old: str, new: str, max_pass_rate_drop: float = 0.0) -> Verdict:
    """Compare the results at `new` (a directory or s3:// URL) with those at `old`."""
    return await judge_against({"url": old, "revision": None, "job": None}, sink_at(new), revision=None,
                               max_pass_rate_drop=max_pass_rate_drop)


def _pct(rate: Any) -> str:
    return "–" if rate is None else f"{rate:.0%}"


def print_comparison(console: Console, verdict: Verdict) -> None:
    """The cells that changed, worst first, then the verdict line (in red when it regressed)."""
    if verdict.full is None:
        console.print(f"[yellow]no comparison: {verdict.short.get('error')}[/]", markup=True)
        return
    full = verdict.full
    moved = [c for c in full["cells"] if c["delta"] or c["newlyFailingCount"] or c["newlyPassingCount"]]
    moved.sort(key=lambda c: (c["delta"] is None, c["delta"] or 0, c["scenario"], c["provider"]))
    counts = full["counts"]
    if moved:
        table = Table(title="Changes since the baseline (p95 in ms, cost in USD)", box=box.SIMPLE_HEAD,
                      pad_edge=False, collapse_padding=True)
        table.add_column("scenario", overflow="fold")
        table.add_column("provider", no_wrap=True, min_width=max(len(c["provider"]) for c in moved[:MAX_ROWS]))
        for column in ("pass rate", "Δ", "p95", "cost Δ", "new fails"):
            table.add_column(column, justify="right", no_wrap=True)
        for cell in moved[:MAX_ROWS]:
            delta = cell["delta"]
            shown = "–" if delta is None else f"{delta * 100:+.0f} pts"
            style = "red" if delta is not None and delta < 0 else "green" if delta else ""
            table.add_row(cell["scenario"], cell["provider"],
                          f"{_pct(cell['baselinePassRate'])} → {_pct(cell['passRate'])}",
                          f"[{style}]{shown}[/]" if style else shown,
                          f"{cell['baselineP95Ms']:.0f} → {cell['p95Ms']:.0f}",
                          f"{cell['costDeltaUsd']:+.4f}", str(cell["newlyFailingCount"]))
        console.print(table)
        if len(moved) > MAX_ROWS:
            console.print(f"… and {len(moved) - MAX_ROWS} more in comparison.json")
    style = "bold red" if full.get("regressed") else "green"
    console.print(f"[{style}]{verdict.short['message']}[/] ({counts['newlyFailing']} newly failing, "
                  f"{counts['newlyPassing']} newly passing, {counts['added']} added, {counts['removed']} removed)")
