"""Which runs report.html shows in full: every failure up to a cap (shared fairly between scenario × provider
cells) and a few passed runs per cell, so a report of 100,000 runs stays a page, not gigabytes. The reasons of
every failure are counted as they go past (FailureGroups), so the report's Failures section covers all runs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

HTML_FAILURE_LIMIT = 500
MAX_PASSED_DETAIL = 2000
MAX_FAILURE_GROUPS = 1000  # distinct failure reasons tracked; failures of any further reason are counted apart
CELLS_PER_GROUP = 50  # scenario × provider cells named per reason (all are counted)
_REASON_CHARS = 500


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
        self.runs = DetailRuns()
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
            chosen = (shown < self.failure_quota or spare) and self.failures < self.failure_limit
            if chosen:
                self._spare -= spare
                self._failed_cells[cell] += 1
                self.failures += 1
                self.runs.append(kept)
            self.runs.failures.add(run, shown=chosen)
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


def run_status(run: dict[str, Any]) -> str:
    """passed, failed or error (a run without Status: from Error and Passed)."""
    status = run.get("Status") or ("error" if run.get("Error") else "passed" if run.get("Passed") else "failed")
    return status if status in ("passed", "failed", "error") else "failed"


def _failed_checks(block: Any) -> list[dict[str, Any]]:
    results = block.get("results") if isinstance(block, dict) else None
    return [a for a in results or [] if isinstance(a, dict) and not a.get("passed")]


Reason = tuple[str, str, str]  # (status, error kind or assertion type, message)


def failure_reasons(run: dict[str, Any]) -> list[Reason]:
    """Why a run did not pass, each reason once and in order: an errored run's error (kind, first 500 characters of
    the message); a failed run's failed assertions (type, message), turn by turn, then the conversation's."""
    status = run_status(run)
    if status == "passed":
        return []
    if status == "error":
        return [("error", str(run.get("ErrorKind") or "error"), str(run.get("Error") or "")[:_REASON_CHARS])]
    checks = [a for m in run.get("Messages") or [] if isinstance(m, dict)
              for a in _failed_checks((m.get("meta") or {}).get("assertions"))]
    checks += _failed_checks(run.get("conversation_assertions"))
    reasons = [("failed", str(a.get("type") or ""), str(a.get("message") or "")[:_REASON_CHARS]) for a in checks]
    return list(dict.fromkeys(reasons)) or [("failed", "", "no failed assertion recorded")]


@dataclass
class FailureGroup:
    """The runs that failed for one reason: how many, where (runs per cell, the first CELLS_PER_GROUP cells
    named), and the first of them the report shows in full."""

    reason: Reason
    runs: int = 0
    cells: Counter[tuple[str, str]] = field(default_factory=Counter)
    other_cell_runs: int = 0  # runs of this reason in cells beyond the first CELLS_PER_GROUP
    example: str | None = None


class FailureGroups:
    """Identical failures counted over every run offered, in bounded memory: at most `limit` distinct reasons;
    the runs failing for any further reason are counted in `other_runs`."""

    def __init__(self, limit: int = MAX_FAILURE_GROUPS) -> None:
        self.limit = limit
        self.groups: dict[Reason, FailureGroup] = {}
        self.failed_runs = 0
        self.other_runs = 0

    def add(self, run: dict[str, Any], shown: bool = True) -> None:
        reasons = failure_reasons(run)
        if not reasons:
            return
        self.failed_runs += 1
        cell = cell_of(run)
        untracked = False
        for reason in reasons:
            group = self.groups.get(reason)
            if group is None:
                if len(self.groups) >= self.limit:
                    untracked = True
                    continue
                group = self.groups[reason] = FailureGroup(reason)
            group.runs += 1
            if cell in group.cells or len(group.cells) < CELLS_PER_GROUP:
                group.cells[cell] += 1
            else:
                group.other_cell_runs += 1
            if shown and group.example is None:
                group.example = str(run.get("RunID", ""))
        self.other_runs += untracked

    def ranked(self) -> list[FailureGroup]:
        """Most frequent first; ties in the order of their reason (status, kind, message)."""
        return sorted(self.groups.values(), key=lambda g: (-g.runs, g.reason))


class DetailRuns(list):  # type: ignore[type-arg]
    """The chosen runs, in report order; `failures` holds the failure reasons of every run offered."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = FailureGroups()
