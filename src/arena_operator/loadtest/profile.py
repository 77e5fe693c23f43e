"""What a load test runs: the model (open or closed), its target over time, limits, thresholds and budget.

Both models are described by one piecewise-linear curve over test time: the arrival rate (open model) or the
number of virtual users (closed model), ramped linearly from 0 over ``rampUp`` (or ``ramp.up``), held, and ramped
down to 0 over ``ramp.down`` at the end. The open model's k-th arrival (k = 0, 1, …) is due when the integral
of the rate reaches k, so arrivals are exactly as many as the target says, whatever the providers do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any, Literal

from ..api.arenajob import LoadTestSettings
from ..api.common import parse_duration
from .thresholds import Threshold, threshold_from_spec

Model = Literal["open", "closed"]
DEFAULT_MAX_IN_FLIGHT = 256  # per worker, open model, when neither vusPerWorker nor concurrency caps it
GRACEFUL_STOP_S = 30.0  # runs still in flight at the end get this long to finish (k6's gracefulStop)


@dataclass(frozen=True)
class Curve:
    """A piecewise-linear function of test time: ``points`` are (seconds, value), times non-decreasing; the
    value is 0 outside them (a vertical step is two points at one time)."""

    points: tuple[tuple[float, float], ...]

    def at(self, t: float) -> float:
        pts = self.points
        if not pts or t < pts[0][0] or t >= pts[-1][0]:
            return 0.0
        for (t0, v0), (t1, v1) in pairwise(pts):
            if t0 <= t < t1:
                return v0 + (v1 - v0) * (t - t0) / (t1 - t0)
        return 0.0

    def integral(self, t: float) -> float:
        """The area under the curve from 0 to ``t`` (for a rate: the arrivals due by ``t``)."""
        total = 0.0
        for (t0, v0), (t1, v1) in pairwise(self.points):
            if t <= t0:
                break
            end = min(t, t1)
            if end > t0:
                slope = (v1 - v0) / (t1 - t0)
                total += v0 * (end - t0) + slope * (end - t0) ** 2 / 2
        return total

    def inverse(self, area: float) -> float | None:
        """The first time the integral reaches ``area``; None when it never does."""
        done = 0.0
        for (t0, v0), (t1, v1) in pairwise(self.points):
            length = t1 - t0
            if length <= 0:
                continue
            segment = (v0 + v1) / 2 * length
            if done + segment >= area:
                rest = area - done
                half_slope = (v1 - v0) / length / 2
                root = math.sqrt(max(0.0, v0 * v0 + 4 * half_slope * rest))
                return t0 if rest <= 0 else t0 + 2 * rest / (v0 + root)
            done += segment
        return None

    @property
    def end(self) -> float:
        return self.points[-1][0] if self.points else 0.0


def ramp_curve(target: float, duration: float, up: float, down: float) -> Curve:
    """0 → target over ``up``, held, target → 0 over ``down``, ending at ``duration``."""
    up = min(up, duration)
    down = min(down, duration - up)
    return Curve(((0.0, 0.0), (up, float(target)), (duration - down, float(target)), (duration, 0.0 if down else
                                                                                     float(target))))


@dataclass(frozen=True)
class LoadProfile:
    """A load test's settings in seconds and plain numbers, as workers read them from the job config."""

    model: Model
    duration: float
    ramp_up: float = 0.0
    ramp_down: float = 0.0
    target_rps: float | None = None
    concurrency: int | None = None  # closed: total virtual users; open: cap on runs in flight over all workers
    vus_per_worker: int | None = None  # closed: virtual users per worker; open: in-flight cap per worker
    iterations: int | None = None  # closed model with spec.trials: a fixed amount of work
    thresholds: tuple[Threshold, ...] = ()
    budget_limit: float | None = None
    budget_currency: str = "USD"
    graceful_stop: float = GRACEFUL_STOP_S
    notes: tuple[str, ...] = field(default=())

    def curve(self) -> Curve:
        """The arrival rate (open) or the virtual users wanted over all workers (closed)."""
        if self.model == "open":
            return ramp_curve(self.target_rps or 0.0, self.duration, self.ramp_up, self.ramp_down)
        return ramp_curve(float(self.concurrency or self.vus_per_worker or 1), self.duration, self.ramp_up,
                          self.ramp_down)

    def in_flight_cap(self, index: int, workers: int) -> int:
        """Open model: how many runs one worker may have in flight before an arrival counts as dropped."""
        caps = [self.vus_per_worker or DEFAULT_MAX_IN_FLIGHT]
        if self.concurrency:
            caps.append(share(self.concurrency, index, workers))
        return max(1, min(caps))

    def vus_for(self, t: float, index: int, workers: int) -> tuple[int, int]:
        """Closed model: (virtual users this worker runs at ``t``, how many more it was asked for but capped)."""
        wanted = self.curve().at(t)
        if self.concurrency:  # a total over all workers, split; vusPerWorker then caps each worker
            mine = share(round(wanted), index, workers)
            cap = self.vus_per_worker or mine
            return min(mine, cap), max(0, mine - cap)
        return round(wanted), 0  # vusPerWorker only: each worker runs that many

    def to_config(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("thresholds", "notes")}
        return {**data, "thresholds": [t.to_dict() for t in self.thresholds], "notes": list(self.notes)}

    @classmethod
    def from_config(cls, data: dict[str, Any]) -> LoadProfile:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["thresholds"] = tuple(Threshold.from_dict(t) for t in data.get("thresholds") or [])
        fields["notes"] = tuple(data.get("notes") or ())
        return cls(**fields)

    def with_changes(self, **changes: Any) -> LoadProfile:
        return replace(self, **changes)

    def steady_window(self) -> tuple[float, float]:
        """The phase at full target, after the ramp-up and before the ramp-down (the whole test if the ramps fill
        it): the achieved rate is measured over it."""
        start, end = self.ramp_up, self.duration - self.ramp_down
        return (start, end) if end > start else (0.0, self.duration)


def share(total: int, index: int, workers: int) -> int:
    """Worker ``index``'s part of ``total`` split over ``workers`` (the first ones take the remainder)."""
    workers = max(1, workers)
    return total // workers + (1 if index < total % workers else 0)


def _seconds(value: str | None) -> float:
    return parse_duration(value).total_seconds() if value else 0.0


def profile_from_spec(load: LoadTestSettings, trials: int | None, mix_size: int) -> LoadProfile:
    """The profile of an ArenaJob's ``loadTest`` block (both forms). ``trials`` is the job's own ``spec.trials``
    (the Go form's fixed amount of work for the closed model); raises ValueError on settings that cannot run."""
    explicit = load.model_fields_set
    ramp = load.ramp
    notes: list[str] = []
    open_model = load.target_rps is not None
    if ramp is not None and ramp.up is not None:
        ramp_up = _seconds(ramp.up)
        if "ramp_up" in explicit:
            notes.append(f"loadTest.ramp.up ({ramp.up}) wins over loadTest.rampUp ({load.ramp_up})")
    else:  # the Go form's closed model has no ramp unless it asks for one
        ramp_up = _seconds(load.ramp_up) if open_model or "ramp_up" in explicit else 0.0
    budget = float(load.budget_limit) if load.budget_limit is not None else None
    profile = LoadProfile(
        model="open" if open_model else "closed", duration=_seconds(load.duration), ramp_up=ramp_up,
        ramp_down=_seconds(ramp.down) if ramp and ramp.down else 0.0,
        target_rps=float(load.target_rps) if open_model else None, concurrency=load.concurrency,
        vus_per_worker=load.vus_per_worker,
        iterations=trials * mix_size if trials and not open_model else None,
        thresholds=tuple(threshold_from_spec(t.metric, t.operator, t.value) for t in load.thresholds or []),
        budget_limit=budget, budget_currency=load.budget_currency or "USD", notes=tuple(notes))
    check_profile(profile)
    return profile


def check_profile(profile: LoadProfile) -> None:
    if profile.duration <= 0:
        raise ValueError("loadTest.duration must be more than 0s")
    if profile.ramp_up + profile.ramp_down > profile.duration:
        raise ValueError(f"the ramps ({profile.ramp_up:g}s up + {profile.ramp_down:g}s down) are longer than "
                         f"loadTest.duration ({profile.duration:g}s)")
    if profile.model == "open" and not profile.target_rps:
        raise ValueError("the open model needs loadTest.targetRPS")
    if profile.model == "closed" and not (profile.concurrency or profile.vus_per_worker):
        raise ValueError("the closed model needs loadTest.concurrency or loadTest.vusPerWorker")
