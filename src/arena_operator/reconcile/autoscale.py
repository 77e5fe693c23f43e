"""Worker autoscaling of an evaluation: enough workers for the pending units, within min/maxReplicas."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

UNITS_PER_WORKER_SLOT = 5  # autoscaling aims for about this many pending units per concurrent run


@dataclass(frozen=True)
class ScaleDecision:
    current: int
    desired: int
    low: int
    high: int
    rate: float  # units finished per second since the last pass

    @property
    def changes(self) -> bool:
        return self.desired != self.current

    def message(self, pending: int) -> str:
        return (f"scaled workers {self.current} → {self.desired} ({pending} units pending, {self.rate:.1f} units/s, "
                f"bounds {self.low}..{self.high})")


def decide_scale(workers: Any, current: int, pending: int, done: int, concurrency: int, now: datetime,
                 last: dict[str, Any]) -> ScaleDecision | None:
    """None when the job does not autoscale (no min/maxReplicas); ``last`` carries the previous pass's count."""
    if workers is None or (workers.min_replicas is None and workers.max_replicas is None):
        return None
    low = workers.min_replicas or 1
    high = max(low, workers.max_replicas or low)
    wanted = math.ceil(pending / (concurrency * UNITS_PER_WORKER_SLOT)) if pending else low
    elapsed = (now - last.get("at", now)).total_seconds()
    rate = (done - last.get("done", done)) / (elapsed if elapsed > 0 else 1.0)
    last.update(done=done, at=now)
    return ScaleDecision(current, min(high, max(low, wanted)), low, high, rate)
