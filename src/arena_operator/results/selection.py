"""Which runs report.html shows in full: every failure up to a cap (shared fairly between scenario × provider
cells) and a few passed runs per cell, so a report of 100,000 runs stays a page, not gigabytes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

HTML_FAILURE_LIMIT = 500
MAX_PASSED_DETAIL = 2000


def fair_share(counts: Iterable[int], cap: int) -> int:
    """The largest per-cell quota L with sum(min(count, L)) <= cap, so every cell with failures shows some."""
    ordered = sorted(counts)
    remaining = cap
    for index, count in enumerate(ordered):
        share = remaining // (len(ordered) - index)
        if count > share:
            return share
        remaining -= count
    return ordered[-1] if ordered else 0


class DetailSelection:
    """The runs the HTML report shows in full: failed/errored runs up to `failure_limit` (all of them when there
    are fewer, else a fair share per scenario × provider cell), and up to `per_cell` passed runs per cell."""

    def __init__(self, per_cell: int, failure_limit: int, failures_per_cell: Counter[tuple[str, str]],
                 passed_limit: int = MAX_PASSED_DETAIL) -> None:
        self.per_cell, self.failure_limit, self.passed_limit = per_cell, failure_limit, passed_limit
        self.failure_quota = fair_share(failures_per_cell.values(), failure_limit)
        # Slots the even quota leaves unused go, one each, to the first cells (in report order) that have more.
        self._spare = failure_limit - sum(min(n, self.failure_quota) for n in failures_per_cell.values())
        # What the caller offered with each chosen run: the run itself, or (the aggregation) its compact JSON line.
        self.runs: list[Any] = []
        self.failures = 0
        self.passed = 0
        self.seen = 0
        self._failed_cells: Counter[tuple[str, str]] = Counter()
        self._passed_cells: Counter[tuple[str, str]] = Counter()

    def offer(self, run: dict[str, Any], keep: Any = None) -> None:
        """Consider `run` (in report order); if chosen, `keep` (default: the run) is appended to `runs`."""
        self.seen += 1
        kept = run if keep is None else keep
        cell = cell_of(run)
        if run.get("Status") != "passed":
            shown = self._failed_cells[cell]
            spare = shown == self.failure_quota and self._spare > 0
            if (shown < self.failure_quota or spare) and self.failures < self.failure_limit:
                self._spare -= spare
                self._failed_cells[cell] += 1
                self.failures += 1
                self.runs.append(kept)
        elif self._passed_cells[cell] < self.per_cell and self.passed < self.passed_limit:
            self._passed_cells[cell] += 1
            self.passed += 1
            self.runs.append(kept)

    def note(self, where: str) -> str | None:
        """The header line saying what is shown, when it is not every run."""
        if len(self.runs) == self.seen:
            return None
        return (f"showing {len(self.runs):,} of {self.seen:,} runs: failed and errored runs (up to "
                f"{self.failure_limit:,}) and up to {self.per_cell:,} passed runs per scenario × provider; "
                f"every run is in {where}")


def cell_of(run: dict[str, Any]) -> tuple[str, str]:
    return str(run.get("ScenarioID", "")), str(run.get("ProviderID", ""))
