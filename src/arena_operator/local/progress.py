"""Terminal output of `arena run`: a live progress bar and the per-provider summary table."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ..results.formats import FILE_NAMES, FORMATS, SUMMARY, wanted_formats
from .failures import print_failures
from .run import LocalRunOutcome

PLAIN_EVERY_SECONDS = 10.0  # a CI log gets a progress line this often


class RunProgress:
    """A rich progress bar fed by run results (passed / failed / errors, rate, ETA) on a terminal; on a plain
    output (CI) a line with done/total, rate and ETA every PLAIN_EVERY_SECONDS instead of silence."""

    def __init__(self, console: Console, enabled: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        self.console, self.clock = console, clock
        self.enabled = enabled and console.is_terminal
        self.plain = enabled and not console.is_terminal
        self.counts = {"passed": 0, "failed": 0, "error": 0}
        self.total: int | None = None
        self._started = self._last_line = clock()
        self._progress = Progress(
            TextColumn("[bold]arena run"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, disable=not self.enabled, refresh_per_second=8,
        )
        self._task = self._progress.add_task("", total=None, rate="")

    def __enter__(self) -> RunProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)  # type: ignore[arg-type]

    def start(self, total: int) -> None:
        self.total = total
        self._progress.update(self._task, total=total)

    def advance(self, run: dict[str, Any]) -> None:
        status = str(run.get("Status"))
        self.counts[status] = self.counts.get(status, 0) + 1
        c = self.counts
        text = f"[green]{c['passed']} passed[/] [red]{c['failed']} failed[/] [yellow]{c['error']} errors[/]"
        self._progress.update(self._task, advance=1, description=text, rate=f"{self.rate():.1f}/s")
        now = self.clock()
        if self.plain and (now - self._last_line >= PLAIN_EVERY_SECONDS or self.done == self.total):
            self._last_line = now
            self.console.print(self.line(), markup=False, highlight=False)

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def rate(self) -> float:
        elapsed = self.clock() - self._started
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        """`arena run: 120/600 (20.0 runs/s, ETA 24s) — 110 passed, 8 failed, 2 errors`"""
        rate = self.rate()
        total = "?" if self.total is None else str(self.total)
        eta = f", ETA {max(0, (self.total or 0) - self.done) / rate:.0f}s" if rate and self.total else ""
        c = self.counts
        return (f"arena run: {self.done}/{total} ({rate:.1f} runs/s{eta}) — {c['passed']} passed, "
                f"{c['failed']} failed, {c['error']} errors")


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
    print_failures(console, outcome.failures)
    if outcome.interrupted:
        console.print(f"[yellow]interrupted: the reports cover the {outcome.executed} runs that finished; rerun the "
                      "same command with --resume to run the rest[/]", soft_wrap=True)
