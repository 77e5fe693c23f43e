"""The failure digest in the terminal, like pytest's short test summary."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from ..results.failures import FailureDigest

SHOWN_GROUPS = 25


def print_failures(console: Console, digest: FailureDigest) -> None:
    if not digest.total:
        return
    console.print(f"[bold]Failures[/] ({digest.verdict()}):")
    ordered = sorted(digest.groups.items(), key=lambda item: (item[0][2] != "error", item[0][0], item[0][1], -item[1]))
    for (scenario, provider, status, reason), count in ordered[:SHOWN_GROUPS]:
        mark = "[yellow]![/]" if status == "error" else "[red]✗[/]"
        times = f" ×{count}" if count > 1 else ""
        console.print(f" {mark} {escape(scenario)} × {escape(provider)}{times}: {escape(reason)}", soft_wrap=True)
    hidden = len(ordered) - SHOWN_GROUPS
    if hidden > 0 or digest.ungrouped:
        console.print(f"   … {max(hidden, 0)} more group(s)" + (f", {digest.ungrouped} more failure(s)" if
                                                                  digest.ungrouped else "")
                      + " — see report.html or results.csv")
