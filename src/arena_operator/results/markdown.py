"""report.md, upstream PromptArena's markdown report: totals, per-provider table, the scenario × provider matrix and
the failures grouped — what a CI job posts as a pull-request comment. Streaming: a Summary and a bounded failure
digest, however many runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .failures import FailureDigest
from .packeval_rows import PackEvalTally
from .summary import Summary

SHOWN_FAILURES = 50


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


class MarkdownWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.summary = Summary()
        self.failures = FailureDigest()
        self.pack_evals = PackEvalTally()

    def add(self, run: dict[str, Any], line: bytes) -> None:
        self.summary.add(run)
        self.failures.add(run)
        self.pack_evals.add(run)

    def close(self) -> None:
        data = self.summary.to_dict()
        lines = ["# Arena report", "",
                 f"**{data['passed']}/{data['runs']} passed** ({data['passRate']:.1%}) · {data['failed']} failed · "
                 f"{data['errors']} errors · {data['inputTokens'] + data['outputTokens']} tokens · "
                 f"${data['costUSD']:.4f}", "",
                 "| provider | runs | passed | failed | errors | p50 ms | p95 ms | cost USD |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, tally in data["providers"].items():
            latency = tally["latencyMs"]
            lines.append(f"| {_cell(name)} | {tally['runs']} | {tally['passed']} | {tally['failed']} | "
                         f"{tally['errors']} | {latency['p50']:.1f} | {latency['p95']:.1f} | {tally['costUSD']:.4f} |")
        providers = sorted(data["providers"])
        lines += ["", "## Scenario × provider", "", "| scenario | " + " | ".join(map(_cell, providers)) + " |",
                  "|---|" + "---|" * len(providers)]
        for scenario, row in sorted(data["matrix"].items()):
            cells = []
            for provider in providers:
                cell = row.get(provider)
                if cell is None:
                    cells.append("–")
                    continue
                total = cell["passed"] + cell["failed"] + cell["errors"]
                mark = "✅" if cell["passed"] == total else "❌"
                cells.append(f"{mark} {cell['passed']}/{total}")
            lines.append(f"| {_cell(scenario)} | " + " | ".join(cells) + " |")
        if self.failures.total:
            lines += ["", f"## Failures ({self.failures.verdict()})", ""]
            ordered = sorted(self.failures.groups.items(), key=lambda item: (item[0][2] != "error", item[0]))
            for (scenario, provider, _status, reason), count in ordered[:SHOWN_FAILURES]:
                times = f" ×{count}" if count > 1 else ""
                lines.append(f"- **{_cell(scenario)} × {_cell(provider)}**{times}: {_cell(reason)}")
            if len(ordered) > SHOWN_FAILURES or self.failures.ungrouped:
                lines.append("- … more in report.html / results.csv")
        lines += self.pack_evals.markdown()
        self.path.write_text("\n".join(lines) + "\n", encoding="utf-8")
