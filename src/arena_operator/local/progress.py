"""Terminal output of `arena run`: a live progress bar and the per-provider summary table."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

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
    rows = [*sorted(summary.by_provider.items()), ("total", summary.total)]
    # Provider ids are what people search for: never truncated; the numbers are short.
    table.add_column("provider", no_wrap=True, min_width=max(len(name) for name, _ in rows))
    for column in ("runs", "passed", "failed", "errors", "p50", "p95", "tokens", "cost"):
        table.add_column(column, justify="right", no_wrap=True, min_width=len(column))
    for name, tally in rows:
        table.add_row(
            name, str(tally.runs), f"[green]{tally.passed}", f"[red]{tally.failed}" if tally.failed else "0",
            f"[yellow]{tally.errors}" if tally.errors else "0", f"{tally.percentile_ms(50):.1f}",
            f"{tally.percentile_ms(95):.1f}", str(tally.input_tokens + tally.output_tokens), f"{tally.cost_usd:.4f}",
        )
    console.print(table)
    skipped = f", {outcome.skipped} resumed" if outcome.skipped else ""
    console.print(f"{outcome.executed} runs executed{skipped}; reports in {outcome.out_dir}/ "
                  f"({', '.join(sorted(set(outcome.formats) | {'html'}))}, results.jsonl, summary.json)")
