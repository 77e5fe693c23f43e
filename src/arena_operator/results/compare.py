"""A run compared with its baseline, per scenario × provider: pass-rate delta, newly failing and newly passing
runs (by deterministic run id: the same scenario, provider, region and trial), latency p95 and cost deltas.

The baseline is read once into a compact map (run id → outcome); the current run streams past it, so memory
is one small entry per baseline run, whatever the size of the reports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .location import sink_at
from .sinkbase import NO_RESULTS, ResultSink, SinkError
from .summary import Tally

TOP_REGRESSIONS = 5
IDS_PER_CELL = 20  # newly failing/passing run ids listed per cell (all are counted)


@dataclass
class _Cell:
    baseline: Tally = field(default_factory=Tally)
    current: Tally = field(default_factory=Tally)
    newly_failing: list[str] = field(default_factory=list)
    newly_passing: list[str] = field(default_factory=list)
    failing_count: int = 0
    passing_count: int = 0


def _rate(tally: Tally) -> float | None:
    return tally.passed / tally.runs if tally.runs else None


def _key(run: Mapping[str, Any]) -> tuple[str, str]:
    return str(run.get("ScenarioID", "")), str(run.get("ProviderID", ""))


@dataclass
class Comparison:
    """The verdict of one run against its baseline."""

    baseline: dict[str, Any]
    current: dict[str, Any]
    max_pass_rate_drop: float
    cells: list[dict[str, Any]]
    counts: dict[str, int]

    @property
    def regressions(self) -> list[dict[str, Any]]:
        """Cells whose pass rate dropped by more than the allowed amount, worst first."""
        dropped = [c for c in self.cells if c["delta"] is not None and -c["delta"] > self.max_pass_rate_drop + 1e-12]
        return sorted(dropped, key=lambda c: (c["delta"], c["scenario"], c["provider"]))

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)

    def summary(self) -> dict[str, Any]:
        """The short form kept in an ArenaJob's status.result.comparison."""
        return {"baseline": self.baseline, "regressed": self.regressed, "maxPassRateDrop": self.max_pass_rate_drop,
                "counts": self.counts,
                "topRegressions": [{k: c[k] for k in ("scenario", "provider", "baselinePassRate", "passRate",
                                                      "delta", "newlyFailingCount")}
                                   for c in self.regressions[:TOP_REGRESSIONS]]}

    def to_dict(self) -> dict[str, Any]:
        """comparison.json: the summary plus every cell."""
        return {**self.summary(), "current": self.current, "cells": self.cells}

    def message(self) -> str:
        if not self.regressed:
            return (f"no scenario × provider lost pass rate beyond {self.max_pass_rate_drop:.0%} since "
                    f"{self.baseline.get('revision') or self.baseline.get('url')}")
        worst = ", ".join(f"{c['scenario']} × {c['provider']} {c['baselinePassRate']:.0%} → {c['passRate']:.0%}"
                          for c in self.regressions[:TOP_REGRESSIONS])
        return f"{len(self.regressions)} scenario × provider regressed since " \
               f"{self.baseline.get('revision') or self.baseline.get('url')}: {worst}"


class Comparer:
    """Feed the baseline's runs, then the current run's; `result()` gives the comparison."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str, str], _Cell] = {}
        self.before: dict[str, bool] = {}
        self.counts = {"newlyFailing": 0, "newlyPassing": 0, "unchanged": 0, "added": 0, "removed": 0}

    def add_baseline(self, run: Mapping[str, Any]) -> None:
        self.cells.setdefault(_key(run), _Cell()).baseline.add(dict(run))
        self.before[str(run.get("RunID"))] = run.get("Status") == "passed"

    def add_current(self, run: Mapping[str, Any]) -> None:
        cell = self.cells.setdefault(_key(run), _Cell())
        cell.current.add(dict(run))
        run_id = str(run.get("RunID"))
        was = self.before.pop(run_id, None)
        passed = run.get("Status") == "passed"
        if was is None:
            self.counts["added"] += 1
        elif was and not passed:
            self.counts["newlyFailing"] += 1
            cell.failing_count += 1
            if len(cell.newly_failing) < IDS_PER_CELL:
                cell.newly_failing.append(run_id)
        elif passed and not was:
            self.counts["newlyPassing"] += 1
            cell.passing_count += 1
            if len(cell.newly_passing) < IDS_PER_CELL:
                cell.newly_passing.append(run_id)
        else:
            self.counts["unchanged"] += 1

    def result(self, baseline: Mapping[str, Any] | None = None, current: Mapping[str, Any] | None = None,
               max_pass_rate_drop: float = 0.0) -> Comparison:
        counts = {**self.counts, "removed": len(self.before)}
        return Comparison(dict(baseline or {}), dict(current or {}), max_pass_rate_drop,
                          [_cell_dict(key, cell) for key, cell in sorted(self.cells.items())], counts)


def compare(baseline_runs: Iterable[Mapping[str, Any]], current_runs: Iterable[Mapping[str, Any]], *,
            baseline: Mapping[str, Any] | None = None, current: Mapping[str, Any] | None = None,
            max_pass_rate_drop: float = 0.0) -> Comparison:
    comparer = Comparer()
    for run in baseline_runs:
        comparer.add_baseline(run)
    for run in current_runs:
        comparer.add_current(run)
    return comparer.result(baseline, current, max_pass_rate_drop)


async def compare_sinks(baseline_sink: ResultSink, current_sink: ResultSink, *, baseline: Mapping[str, Any],
                        current: Mapping[str, Any], max_pass_rate_drop: float = 0.0) -> Comparison:
    """The same, streaming the unit results of two sinks (a baseline elsewhere, this run's own)."""
    comparer = Comparer()
    async for run in baseline_sink.iter_units(ordered=False):
        comparer.add_baseline(run)
    if not comparer.before:
        raise SinkError(NO_RESULTS, f"no unit results at {baseline_sink.url}")
    async for run in current_sink.iter_units(ordered=False):
        comparer.add_current(run)
    return comparer.result(baseline, current, max_pass_rate_drop)


def _cell_dict(key: tuple[str, str], cell: _Cell) -> dict[str, Any]:
    old, new = _rate(cell.baseline), _rate(cell.current)
    old_p95, new_p95 = cell.baseline.percentile_ms(95), cell.current.percentile_ms(95)
    return {
        "scenario": key[0], "provider": key[1],
        "baselineRuns": cell.baseline.runs, "runs": cell.current.runs,
        "baselinePassRate": old, "passRate": new,
        "delta": None if old is None or new is None else round(new - old, 6),
        "baselineP95Ms": old_p95, "p95Ms": new_p95, "p95DeltaMs": round(new_p95 - old_p95, 3),
        "baselineCostUsd": round(cell.baseline.cost_usd, 8), "costUsd": round(cell.current.cost_usd, 8),
        "costDeltaUsd": round(cell.current.cost_usd - cell.baseline.cost_usd, 8),
        "newlyFailingCount": cell.failing_count, "newlyFailing": cell.newly_failing,
        "newlyPassingCount": cell.passing_count, "newlyPassing": cell.newly_passing,
    }


@dataclass(frozen=True)
class Verdict:
    """What a finished run reports about its baseline: the full comparison (comparison.json, report.html) and the
    short form with its message (the ArenaJob status), or only an error when the baseline could not be read."""

    full: dict[str, Any] | None
    short: dict[str, Any]


async def judge_against(baseline: Mapping[str, Any], current_sink: ResultSink, *, revision: str | None,
                        max_pass_rate_drop: float, output: dict[str, Any] | None = None,
                        results_dir: Path | None = None) -> Verdict:
    """Compare the run in `current_sink` with `baseline` ({url, revision, job} or {reason}); never raises for a
    baseline that cannot be read — that is reported, the run's own reports do not depend on it."""
    if baseline.get("reason") or not baseline.get("url"):
        return Verdict(None, {"error": str(baseline.get("reason") or "the baseline has no results URL")})
    try:
        source = sink_at(str(baseline["url"]), output=output, results_dir=results_dir)
        comparison = await compare_sinks(source, current_sink, baseline=dict(baseline),
                                         current={"revision": revision, "url": current_sink.url},
                                         max_pass_rate_drop=max_pass_rate_drop)
    except SinkError as exc:
        return Verdict(None, {"error": f"baseline {baseline['url']} could not be read: {exc}"})
    return Verdict(comparison.to_dict(), {**comparison.summary(), "message": comparison.message()})
