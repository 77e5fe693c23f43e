"""Terminal output of `arena run`: a live progress bar and the per-provider summary table."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..results.formats import FILE_NAMES, FORMATS, SUMMARY, wanted_formats
from .run import LocalRunOutcome


class RunProgress:
    """A rich progress bar fed by run results; shows passed / failed / errors as they arrive."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.enabled = enabled and console.is_terminal
        self.counts = {"passed": 0, "failed": 0, "error": 0}
        self._progress = Progress(
            TextColumn("[bold]arena run"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
            TimeElapsedColumn(), console=console, disable=not self.enabled, refresh_per_second=8,
        )
        self._task = self._progress.add_task("", total=None)

    def __enter__(self) -> RunProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)  # type: ignore[arg-type]

    def start(self, total: int) -> None:
        self._progress.update(self._task, total=total)

    def advance(self, run: dict[str, Any]) -> None:
        status = str(run.get("Status"))
        self.counts[status] = self.counts.get(status, 0) + 1
        c = self.counts
        text = f"[green]{c['passed']} passed[/] [red]{c['failed']} failed[/] [yellow]{c['error']} errors[/]"
        self._progress.update(self._task, advance=1, description=text)


def print_summary(console: Console, outcome: LocalRunOutcome) -> None:
    summary = outcome.summary
    table = Table(title="Results by provider (latency p50/p95 in ms, cost in USD)", box=box.SIMPLE_HEAD,
                  pad_edge=False, collapse_padding=True)
    rows = [*sorted((summary.get("providers") or {}).items()), ("total", summary)]
    # Provider ids are what people search for: never truncated; the numbers are short.
    table.add_column("provider", no_wrap=True, min_width=max(len(name) for name, _ in rows))
    for column in ("runs", "passed", "failed", "errors", "p50", "p95", "tokens", "cost"):
        table.add_column(column, justify="right", no_wrap=True, min_width=len(column))
    for name, tally in rows:
        latency = tally.get("latencyMs") or {}
        failed, errors = tally.get("failed", 0), tally.get("errors", 0)
        table.add_row(
            name, str(tally.get("runs", 0)), f"[green]{tally.get('passed', 0)}", f"[red]{failed}" if failed else "0",
            f"[yellow]{errors}" if errors else "0", f"{latency.get('p50', 0):.1f}", f"{latency.get('p95', 0):.1f}",
            str(tally.get("inputTokens", 0) + tally.get("outputTokens", 0)), f"{tally.get('costUSD', 0):.4f}",
        )
    console.print(table)
    skipped = f", {outcome.skipped} resumed" if outcome.skipped else ""
    files = [FILE_NAMES[f] for f in FORMATS if f in wanted_formats(outcome.formats)]
    console.print(f"{outcome.executed} runs executed{skipped}; reports in {outcome.out_dir}/ "
                  f"({', '.join([*files, SUMMARY.file])}; each run in units/)")
