"""A worker's load-test measurements: counters and HDR histograms, in total and per 1 s bucket of test time.

Latencies (successful requests), time to first token and scheduling lag are recorded in microseconds into
``hdrhistogram`` histograms (1 µs … 1 h, 3 significant digits). Histograms travel encoded (``encode()``: compressed,
base64) and are merged by adding their counts, which is lossless: the merged histogram of three workers is exactly
the histogram of the union of their values, so p95/p99 over all workers are exact — never an average of
per-worker percentiles.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

MAX_US = 3_600_000_000
HISTOGRAMS = ("lat", "ttft", "lag")
ERROR_CLASSES = ("timeout", "rate_limited", "server_error", "connection", "client_error", "other")
_CLASS_OF_KIND = {"timeout": "timeout", "rate_limited": "rate_limited", "server_error": "server_error",
                  "overloaded": "server_error", "connection": "connection", "auth_error": "client_error",
                  "bad_request": "client_error"}
COUNTERS = ("arrivals", "started", "steady_started", "dropped", "completed", "passed", "failed", "errored",
            "interrupted", "requests", "successful_requests", "input_tokens", "output_tokens", "unpriced_requests",
            *(f"err_{name}" for name in ERROR_CLASSES), *(f"{name}_us" for name in HISTOGRAMS))  # µs sums: the means


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, MAX_US, 3)


def error_class(kind: str, status: int | None = None) -> str:
    """timeout, rate_limited (429), server_error (5xx), connection, client_error (other 4xx) or other."""
    if status == 429:
        return "rate_limited"
    if status is not None and status >= 500:
        return "server_error"
    return _CLASS_OF_KIND.get(kind, "client_error" if status is not None and status >= 400 else "other")


def _observe(tallies: tuple[Tally, ...], name: str, seconds: float) -> None:
    value = min(MAX_US, max(1, round(seconds * 1_000_000)))
    for tally in tallies:
        tally.hists[name].record_value(value)
        tally.counts[f"{name}_us"] += value


@dataclass
class Tally:
    """Counters and histograms of one span of time (the whole test, or one second)."""

    counts: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    cost_usd: float = 0.0
    hists: dict[str, HdrHistogram] = field(default_factory=lambda: {n: new_histogram() for n in HISTOGRAMS})
    vus: int = 0  # closed model: virtual users running (a gauge: the latest value)
    capped: int = 0  # closed model: virtual users asked for but over vusPerWorker (a gauge: the peak)

    def encode(self) -> dict[str, Any]:
        encoded = {n: (h.encode().decode() if h.get_total_count() else "") for n, h in self.hists.items()}
        return {"c": self.counts, "cost": self.cost_usd, "vus": self.vus, "capped": self.capped, **encoded}

    @classmethod
    def decode(cls, data: dict[str, Any]) -> Tally:
        tally = cls()
        tally.add_encoded(data)
        return tally

    def add_encoded(self, data: dict[str, Any]) -> None:
        """Add another tally (in encoded form) to this one."""
        for key, value in (data.get("c") or {}).items():
            self.counts[key] = self.counts.get(key, 0) + value
        self.cost_usd += float(data.get("cost") or 0.0)
        self.vus += int(data.get("vus") or 0)
        self.capped += int(data.get("capped") or 0)
        for name in HISTOGRAMS:
            if data.get(name):
                self.hists[name].add(HdrHistogram.decode(data[name]))


class Recorder:
    """What one worker measured. ``clock`` gives test time in seconds (0 = the shared start); runs started within
    ``window`` (the steady phase: after the ramp-up, before the ramp-down) are what the achieved rate counts."""

    def __init__(self, clock: Callable[[], float], window: tuple[float, float] = (0.0, math.inf)) -> None:
        self.clock = clock
        self.window = window
        self.total = Tally()
        self.buckets: dict[int, Tally] = {}
        self.ended = 0.0  # test time at which this worker stopped starting runs (0 while it runs)

    def _bucket(self) -> Tally:
        second = max(0, math.floor(self.clock()))
        bucket = self.buckets.get(second)
        if bucket is None:
            bucket = self.buckets[second] = Tally()  # a new one: cheaper than HdrHistogram.reset(), a Python loop
        return bucket

    def _count(self, names: dict[str, float]) -> tuple[Tally, Tally]:
        """Add ``names`` to this second's bucket and to the total (one bucket lookup: this is per request)."""
        tallies = (self._bucket(), self.total)
        for tally in tallies:
            counts = tally.counts
            for name, amount in names.items():
                counts[name] += amount
        return tallies

    def arrival(self, started: bool, lag_s: float | None) -> None:
        """An arrival came due; it started ``lag_s`` after its time, or was dropped (the in-flight cap was full).
        The closed model has no arrival times: its iterations start with no lag to measure (None)."""
        names = {"arrivals": 1, "started" if started else "dropped": 1}
        if started and self.window[0] <= self.clock() < self.window[1]:
            names["steady_started"] = 1
        tallies = self._count(names)
        if lag_s is not None:
            _observe(tallies, "lag", lag_s)

    def run_done(self, status: str) -> None:
        """A scenario run ended: passed, failed (an assertion), error, or interrupted (stopped at the end)."""
        outcome = {"passed": "passed", "failed": "failed", "interrupted": "interrupted"}.get(status, "errored")
        self._count({outcome: 1} if status == "interrupted" else {"completed": 1, outcome: 1})

    def request(self, latency_s: float, ttft_ms: float | None, tokens: tuple[int, int], cost: float | None,
                error: str | None) -> None:
        """One provider request (one attempt): ``error`` is its class, None when it succeeded; ``cost`` None when
        the provider has no pricing."""
        names = {"requests": 1, "input_tokens": tokens[0], "output_tokens": tokens[1],
                 f"err_{error}" if error is not None else "successful_requests": 1}
        if cost is None:
            names["unpriced_requests"] = 1
        tallies = self._count(names)
        for tally in tallies:
            tally.cost_usd += cost or 0.0
        if error is None:
            _observe(tallies, "lat", latency_s)
            if ttft_ms is not None:
                _observe(tallies, "ttft", ttft_ms / 1000)

    def gauge(self, vus: int, capped: int) -> None:
        bucket = self._bucket()
        bucket.vus, bucket.capped = vus, max(bucket.capped, capped)

    def take_closed(self, final: bool = False) -> dict[str, str]:
        """The buckets of seconds that are over (every bucket when ``final``), encoded, and forgotten here."""
        now = math.floor(self.clock())
        done = {}
        for second in sorted(s for s in self.buckets if final or s < now):
            done[str(second)] = json.dumps(self.buckets.pop(second).encode(), separators=(",", ":"))
        return done

    def totals(self) -> str:
        return json.dumps(self.total.encode(), separators=(",", ":"))


def merge(encoded: Iterable[str | bytes | dict[str, Any]]) -> Tally:
    """One tally from many encoded ones (workers' totals, or one second's buckets)."""
    tally = Tally()
    for item in encoded:
        tally.add_encoded(item if isinstance(item, dict) else json.loads(item))
    return tally


def percentiles_ms(tally: Tally, name: str) -> dict[str, float]:
    """{p50, p90, p95, p99, max, avg, count} of histogram ``name`` in milliseconds (zeros, count 0, when nothing
    was recorded); the mean from the exact sum, not from the histogram's buckets."""
    histogram = tally.hists[name]
    count = histogram.get_total_count()
    if not count:
        return {"p50": 0.0, "p90": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0, "avg": 0.0, "count": 0}
    values = histogram.get_percentile_to_value_dict([50, 90, 95, 99])
    out = {f"p{int(p)}": round(v / 1000, 3) for p, v in values.items()}
    return {**out, "max": round(histogram.get_max_value() / 1000, 3),
            "avg": round(tally.counts.get(f"{name}_us", 0) / count / 1000, 3), "count": count}
