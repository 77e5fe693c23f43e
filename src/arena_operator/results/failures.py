"""What failed, grouped: every failing scenario × provider with the assertion's message or the error, identical
failures counted together (the terminal's short summary, report.md). Bounded: at most MAX_GROUPS distinct groups
are kept (the rest are counted), so a million failures cost no more than a hundred."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

MAX_GROUPS = 100
REASON_CHARS = 240


def _assertions(block: Any) -> list[dict[str, Any]]:
    return list((block or {}).get("results") or []) if isinstance(block, dict) else []


def failure_reason(run: dict[str, Any]) -> str | None:
    """Why a run did not pass (its first failed assertion, or its error), or None when it passed."""
    if run.get("Status") == "passed":
        return None
    if run.get("Error"):
        text = f"{run.get('ErrorKind') or 'error'}: {run['Error']}"
    else:
        failed = [a for m in run.get("Messages") or [] for a in _assertions((m.get("meta") or {}).get("assertions"))
                  if not a.get("passed") and not a.get("skipped")]
        failed += [a for a in _assertions(run.get("conversation_assertions")) if not a.get("passed")]
        first = failed[0] if failed else {}
        text = f"{first.get('type', 'assertion')}: {first.get('message') or 'failed'}" if failed else "failed"
    line = " ".join(str(text).split())
    return line if len(line) <= REASON_CHARS else line[: REASON_CHARS - 1] + "…"


@dataclass
class FailureDigest:
    groups: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)  # scenario, provider, status, why
    failed: int = 0
    errors: int = 0
    ungrouped: int = 0  # failures beyond MAX_GROUPS distinct groups

    def add(self, run: dict[str, Any]) -> None:
        reason = failure_reason(run)
        if reason is None:
            return
        status = "error" if run.get("Status") == "error" else "failed"
        if status == "error":
            self.errors += 1
        else:
            self.failed += 1
        key = (str(run.get("ScenarioID")), str(run.get("ProviderID")), status, reason)
        if key in self.groups or len(self.groups) < MAX_GROUPS:
            self.groups[key] += 1
        else:
            self.ungrouped += 1

    @property
    def total(self) -> int:
        return self.failed + self.errors

    def verdict(self) -> str:
        """The one line that comes with a failing exit code."""
        parts = [f"{self.failed} run(s) with failed assertions"] if self.failed else []
        parts += [f"{self.errors} run(s) errored"] if self.errors else []
        return ", ".join(parts)
