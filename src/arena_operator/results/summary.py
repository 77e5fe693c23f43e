"""Streaming aggregation of run results: totals, pass rate, tokens, cost, latency percentiles per provider."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

# Latencies in microseconds up to 1 hour, 3 significant digits: exact enough for p50/p95/p99.
_MAX_US = 3_600_000_000
EXAMPLE_CHARS = 300


def _histogram() -> HdrHistogram:
    return HdrHistogram(1, _MAX_US, 3)


@dataclass
class Tally:
    runs: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency: HdrHistogram = field(default_factory=_histogram)

    def add(self, run: dict[str, Any]) -> None:
        self.runs += 1
        status = run.get("Status")
        if status == "error":
            self.errors += 1
        elif status == "passed":
            self.passed += 1
        else:
            self.failed += 1
        cost = run.get("Cost") or {}
        self.input_tokens += int(cost.get("input_tokens", 0))
        self.output_tokens += int(cost.get("output_tokens", 0))
        self.cost_usd += float(cost.get("total_cost_usd", 0.0))
        duration_us = int(float(run.get("Duration") or 0) * 1000)
        self.latency.record_value(min(max(duration_us, 1), _MAX_US))

    def merge(self, other: Tally) -> None:
        self.runs += other.runs
        self.passed += other.passed
        self.failed += other.failed
        self.errors += other.errors
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_usd += other.cost_usd
        self.latency.add(other.latency)

    def percentile_ms(self, pct: float) -> float:
        if self.runs == 0:
            return 0.0
        return round(self.latency.get_value_at_percentile(pct) / 1000, 3)

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "passed": self.passed,
            "failed": self.failed,
            "errors": self.errors,
            "passRate": round(self.passed / self.runs, 4) if self.runs else 0.0,
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "costUSD": round(self.cost_usd, 6),
            "latencyMs": {"p50": self.percentile_ms(50), "p95": self.percentile_ms(95),
                          "p99": self.percentile_ms(99)},
        }


class Summary:
    """Constant memory per provider and per (scenario, provider) cell, whatever the number of runs."""

    def __init__(self) -> None:
        self.total = Tally()
        self.by_provider: dict[str, Tally] = {}
        self.matrix: dict[str, dict[str, dict[str, int]]] = {}
        self.error_kinds: dict[str, int] = {}
        self.error_examples: dict[str, str] = {}  # kind → the first error of that kind: a status can say why

    def add(self, run: dict[str, Any]) -> None:
        provider = str(run.get("ProviderID", ""))
        scenario = str(run.get("ScenarioID", ""))
        self.total.add(run)
        tally = self.by_provider.get(provider)
        if tally is None:  # not setdefault(provider, Tally()): that would build a histogram per run
            tally = self.by_provider[provider] = Tally()
        tally.add(run)
        cell = self.matrix.setdefault(scenario, {}).setdefault(provider, {"passed": 0, "failed": 0, "errors": 0})
        status = run.get("Status")
        cell["errors" if status == "error" else "passed" if status == "passed" else "failed"] += 1
        if run.get("ErrorKind"):
            kind = str(run["ErrorKind"])
            self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1
            if kind not in self.error_examples:
                self.error_examples[kind] = " ".join(str(run.get("Error") or "").split())[:EXAMPLE_CHARS]

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.total.to_dict(),
            "providers": {p: t.to_dict() for p, t in sorted(self.by_provider.items())},
            "matrix": self.matrix,
            "errorKinds": self.error_kinds,
            "errorExamples": self.error_examples,
        }


def errors_line(summary: dict[str, Any], limit: int = 3) -> str:
    """`12 unavailable (provider 'x' is unavailable: …); 2 timeout (…)`: the commonest error kinds of a summary, each
    with its first message — what a status message says about runs that errored."""
    kinds = sorted((summary.get("errorKinds") or {}).items(), key=lambda item: (-item[1], item[0]))
    examples = summary.get("errorExamples") or {}
    parts = [f"{count} {kind}" + (f" ({examples[kind]})" if examples.get(kind) else "") for kind, count in kinds]
    hidden = len(parts) - limit
    return "; ".join(parts[:limit]) + (f"; {hidden} more kind(s)" if hidden > 0 else "")
