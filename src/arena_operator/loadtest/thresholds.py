"""Thresholds (SLOs) on a load test's merged data: ``latency_p95 < 3s``, ``error_rate <= 0.01``, …

Every metric is really computed from the summary. A metric that cannot be computed — no successful request for a
latency, no streamed response for a TTFT, no request at all for a rate, an unpriced provider for the cost — fails
its threshold with the reason, never passes it (the Go operator counts "unavailable" as a pass).
"""

from __future__ import annotations

import operator as op
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..api.common import parse_duration

OPERATORS: dict[str, Callable[[float, float], bool]] = {"<": op.lt, "<=": op.le, ">": op.gt, ">=": op.ge}
LATENCY_METRICS = {f"latency_{s}" for s in ("avg", "p50", "p90", "p95", "p99")}
TTFT_METRICS = {f"ttft_{s}" for s in ("avg", "p50", "p90", "p95", "p99")}
RATE_METRICS = {"error_rate", "pass_rate", "rate_limit_rate"}
METRICS = frozenset(LATENCY_METRICS | TTFT_METRICS | RATE_METRICS | {"total_cost", "rps"})
_EXPRESSION = re.compile(r"^\s*([a-z0-9_]+)\s*(<=|>=|<|>)\s*(\S+)\s*$")


@dataclass(frozen=True)
class Threshold:
    metric: str
    operator: str
    value: str  # as written: 3s, 500, 0.01
    limit: float  # in the metric's unit: milliseconds, a fraction, USD, runs per second

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "operator": self.operator, "value": self.value, "limit": self.limit}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Threshold:
        return cls(str(data["metric"]), str(data["operator"]), str(data["value"]), float(data["limit"]))

    def __str__(self) -> str:
        return f"{self.metric} {self.operator} {self.value}"


def _limit(metric: str, value: str) -> float:
    text = value.strip()
    if metric in LATENCY_METRICS | TTFT_METRICS:
        try:
            return float(text)  # a plain number is milliseconds
        except ValueError:
            return parse_duration(text).total_seconds() * 1000
    try:
        return float(text.lstrip("$"))
    except ValueError:
        raise ValueError(f"threshold {metric}: {value!r} is not a number") from None


def threshold_from_spec(metric: str, operator: str, value: str) -> Threshold:
    """One threshold; ValueError naming the problem (unknown metric or operator, a value that is not one)."""
    if metric not in METRICS:
        raise ValueError(f"unknown threshold metric {metric!r} (one of {', '.join(sorted(METRICS))})")
    if operator not in OPERATORS:
        raise ValueError(f"threshold {metric}: operator {operator!r} is not one of <, <=, >, >=")
    try:
        return Threshold(metric, operator, value, _limit(metric, value))
    except ValueError as exc:
        raise ValueError(f"threshold {metric} {operator} {value}: {exc}") from None


def parse_threshold(expression: str) -> Threshold:
    """The CLI form: ``latency_p95<500`` (milliseconds), ``ttft_p99<=2s``, ``error_rate<0.01``."""
    found = _EXPRESSION.match(expression)
    if not found:
        raise ValueError(f"threshold {expression!r}: write METRIC<VALUE, e.g. latency_p95<500 or error_rate<=0.01")
    return threshold_from_spec(*found.groups())


def measure(metric: str, summary: dict[str, Any]) -> tuple[float | None, str]:
    """(the metric's value, or None with the reason it cannot be computed) from a summary.json dict."""
    requests, ok = summary.get("requests") or 0, summary.get("successful_requests") or 0
    if metric in LATENCY_METRICS:
        if not ok:
            return None, "no request succeeded, so there is no latency to measure"
        return summary["latency_ms"][metric.removeprefix("latency_")], ""
    if metric in TTFT_METRICS:
        if not (summary.get("ttft_ms") or {}).get("count"):
            return None, ("no streamed response: time to first token is measured on streaming requests only "
                          "(set streaming: true on the scenario)")
        return summary["ttft_ms"][metric.removeprefix("ttft_")], ""
    if metric in ("error_rate", "rate_limit_rate"):
        if not requests:
            return None, "no provider request was made"
        return (summary["error_rate"] if metric == "error_rate" else summary["rate_limit_rate"]), ""
    if metric == "pass_rate":
        if not (summary.get("runs") or {}).get("completed"):
            return None, "no scenario run completed"
        return summary["pass_rate"], ""
    if metric == "total_cost":
        if summary.get("cost_unknown"):
            return None, f"cost unknown: {summary['cost_unknown']}"
        return summary["cost_usd"], ""
    if metric == "rps":
        if not summary.get("measured_seconds"):
            return None, "no time was measured"
        return summary["achieved_rps"], ""
    return None, f"unknown metric {metric!r}"


def evaluate(thresholds: tuple[Threshold, ...] | list[Threshold], summary: dict[str, Any]) -> list[dict[str, Any]]:
    """summary.json's ``thresholds``: [{metric, operator, value, measured, passed, reason?}] in the given order."""
    results = []
    for threshold in thresholds:
        measured, reason = measure(threshold.metric, summary)
        passed = measured is not None and OPERATORS[threshold.operator](measured, threshold.limit)
        entry: dict[str, Any] = {"metric": threshold.metric, "operator": threshold.operator, "value": threshold.value,
                                 "measured": measured, "passed": passed}
        if reason:
            entry["reason"] = reason
        results.append(entry)
    return results


def measured_text(result: dict[str, Any]) -> str:
    """``3412.0 ms``, ``0.0125``, or ``not computed: <reason>``."""
    if result.get("measured") is None:
        return f"not computed: {result.get('reason', 'unavailable')}"
    unit = " ms" if result["metric"] in LATENCY_METRICS | TTFT_METRICS else ""
    value = float(result["measured"])
    return f"{value:.4g}{unit}" if abs(value) < 1 else f"{value:.1f}{unit}"


def describe(result: dict[str, Any]) -> str:
    """``latency_p95 < 3s (measured 3412.0 ms)`` or ``ttft_p95 < 1s (not computed: …)``."""
    head = f"{result['metric']} {result['operator']} {result['value']}"
    text = measured_text(result)
    return f"{head} ({text})" if result.get("measured") is None else f"{head} (measured {text})"
