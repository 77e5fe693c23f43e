"""summary.json of a load test, from the merged measurements of every worker.

Stable top-level keys: ``target_rps``, ``achieved_rps``, ``requests``, ``dropped``, ``errors`` (by class),
``error_rate``, ``latency_ms {p50, p90, p95, p99, max, avg}``, ``ttft_ms {…}``, ``scheduling_lag_ms {p50, p99}``,
``cost_usd``, ``thresholds [{metric, operator, value, measured, passed}]``; the others add detail.

Definitions: an arrival is a scenario run due to start (open model) or an iteration of a virtual user (closed
model); ``achieved_rps`` is the runs started per second during the steady phase (after the ramp-up, before the
ramp-down); ``requests`` are provider requests (every attempt); latency is over successful requests, TTFT over
streamed ones; ``error_rate`` and ``rate_limit_rate`` are failed / rate-limited (429) requests over requests;
``pass_rate`` is passed runs over completed runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .metrics import ERROR_CLASSES, Tally, percentiles_ms
from .profile import LoadProfile
from .thresholds import evaluate


@dataclass
class WorkerInfo:
    """One worker as the report shows it: when it joined and left (test seconds) and how it left."""

    name: str
    joined: float
    left: float | None = None
    how: str | None = None  # finished, stopped (SIGTERM), lost (stopped answering: killed, evicted)
    totals: Tally = field(default_factory=Tally)

    def to_dict(self) -> dict[str, Any]:
        counts = self.totals.counts
        return {"name": self.name, "joined_s": round(self.joined, 3),
                "left_s": None if self.left is None else round(self.left, 3), "how": self.how,
                "started": int(counts.get("started", 0)), "dropped": int(counts.get("dropped", 0)),
                "requests": int(counts.get("requests", 0))}


def test_end(profile: LoadProfile, stop: dict[str, Any] | None, ended: float) -> float:
    """When the test ended, in test seconds: its duration, unless stopped early (budget, cancel) or, for a fixed
    amount of work, done before (then when the last worker stopped starting runs)."""
    if stop and stop.get("at") is not None:
        return max(0.0, min(profile.duration, float(stop["at"])))
    if profile.iterations and ended:
        return min(profile.duration, ended)
    return profile.duration


def _ratio(part: float, whole: float) -> float:
    return round(part / whole, 6) if whole else 0.0


def build_summary(profile: LoadProfile, total: Tally, *, elapsed: float, workers: list[WorkerInfo],
                  stop: dict[str, Any] | None = None, unpriced: list[str] | None = None,
                  final: bool = True) -> dict[str, Any]:
    """The summary of ``total`` (merged over ``workers``) after ``elapsed`` seconds of test time."""
    c = total.counts
    requests, ok = int(c["requests"]), int(c["successful_requests"])
    start, end = profile.steady_window()
    measured = max(0.0, min(end, elapsed) - start)
    lag = percentiles_ms(total, "lag")
    expected = profile.curve().integral(min(elapsed, profile.duration)) if profile.model == "open" else None
    cost_unknown = None
    if c["unpriced_requests"]:
        cost_unknown = f"provider(s) {', '.join(unpriced or ['of this test'])} have no pricing"
    summary: dict[str, Any] = {
        "model": profile.model,
        "target_rps": profile.target_rps,
        "achieved_rps": round(c["steady_started"] / measured, 3) if measured else 0.0,
        "requests": requests,
        "successful_requests": ok,
        "dropped": int(c["dropped"]),
        "errors": {name: int(c[f"err_{name}"]) for name in ERROR_CLASSES},
        "error_rate": _ratio(requests - ok, requests),
        "rate_limit_rate": _ratio(c["err_rate_limited"], requests),
        "latency_ms": percentiles_ms(total, "lat"),
        "ttft_ms": percentiles_ms(total, "ttft"),
        "scheduling_lag_ms": {"p50": lag["p50"], "p99": lag["p99"], "max": lag["max"], "count": lag["count"]},
        "cost_usd": round(total.cost_usd, 6),
        "thresholds": evaluate(profile.thresholds, _for_thresholds(c, total, measured, cost_unknown)) if final
        else [],
        "arrivals": int(c["arrivals"]),
        "expected_arrivals": None if expected is None else round(expected),
        "runs": {"started": int(c["started"]), "completed": int(c["completed"]), "passed": int(c["passed"]),
                 "failed": int(c["failed"]), "errored": int(c["errored"]), "interrupted": int(c["interrupted"])},
        "pass_rate": _ratio(c["passed"], c["completed"]),
        "tokens": {"input": int(c["input_tokens"]), "output": int(c["output_tokens"])},
        "duration_s": profile.duration,
        "elapsed_s": round(elapsed, 3),
        "measured_seconds": round(measured, 3),
        "ramp": {"up_s": profile.ramp_up, "down_s": profile.ramp_down},
        "workers": [w.to_dict() for w in workers],
    }
    if profile.model == "closed":
        summary["vus"] = {"concurrency": profile.concurrency, "per_worker": profile.vus_per_worker,
                          "iterations": profile.iterations}
    if profile.budget_limit is not None:
        summary["budget"] = {"limit": profile.budget_limit, "currency": profile.budget_currency,
                             "spent": round(total.cost_usd, 6)}
    if cost_unknown:
        summary["cost_unknown"] = cost_unknown
    if stop:
        summary["stopped"] = stop
    if profile.notes:
        summary["notes"] = list(profile.notes)
    return summary


def _for_thresholds(c: dict[str, float], total: Tally, measured: float, cost_unknown: str | None) -> dict[str, Any]:
    """What thresholds.measure reads: the same numbers as the summary, unrounded where it matters."""
    requests, ok = c["requests"], c["successful_requests"]
    latency, ttft = percentiles_ms(total, "lat"), percentiles_ms(total, "ttft")
    return {"requests": requests, "successful_requests": ok, "latency_ms": latency, "ttft_ms": ttft,
            "error_rate": (requests - ok) / requests if requests else 0.0,
            "rate_limit_rate": c["err_rate_limited"] / requests if requests else 0.0,
            "runs": {"completed": c["completed"]}, "pass_rate": c["passed"] / c["completed"] if c["completed"] else 0.0,
            "cost_usd": total.cost_usd, "cost_unknown": cost_unknown,
            "achieved_rps": c["steady_started"] / measured if measured else 0.0, "measured_seconds": measured}


def verdict(summary: dict[str, Any]) -> tuple[bool, list[dict[str, Any]]]:
    """(every threshold held, the failed ones)."""
    failed = [t for t in summary.get("thresholds") or [] if not t.get("passed")]
    return not failed, failed
