"""Who runs which part of the load: the roster of live workers over time, and each worker's share of it.

The roster is kept in Redis (coord.py) as a short history of entries (since, workers): every worker refreshes its
heartbeat four times a second; a change (a worker joined, left or stopped answering) appends an entry that takes
effect ``lead`` seconds later — a moment every worker learns before it comes, so that all of them switch to the
new shares together. An entry, once written, never changes.

In the open model the k-th arrival of the whole test belongs to the worker at position ``k mod n`` of the roster in
effect at its time: the shares interleave, each worker runs 1/n of the rate, and the arrivals of the test stay
exactly those of the target curve whoever runs them. In the closed model each worker runs its part of the
virtual users (profile.LoadProfile.vus_for).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .profile import Curve


@dataclass(frozen=True)
class Roster:
    entries: tuple[tuple[float, tuple[str, ...]], ...]  # (test time it holds from, workers), in time order

    @classmethod
    def of(cls, *entries: tuple[float, tuple[str, ...]]) -> Roster:
        return cls(tuple(entries))

    @property
    def workers(self) -> tuple[str, ...]:
        """The latest roster known (maybe not in effect yet)."""
        return self.entries[-1][1] if self.entries else ()

    def segment(self, t: float) -> tuple[tuple[str, ...], float | None]:
        """(the workers in effect at ``t``, when the next entry takes over: None for the last one)."""
        current: tuple[str, ...] = ()
        for index, (since, workers) in enumerate(self.entries):
            if since > t:
                return current, since
            current = workers
            if index == len(self.entries) - 1:
                return current, None
        return current, None

    def at(self, t: float) -> tuple[str, ...]:
        return self.segment(t)[0]

    def position(self, worker: str, t: float) -> tuple[int, int] | None:
        """(index, number of workers) of ``worker`` at ``t``; None when it has no share then."""
        workers = self.at(t)
        return (workers.index(worker), len(workers)) if worker in workers else None


def next_arrival(curve: Curve, roster: Roster, worker: str, after: int) -> tuple[int, float] | None:
    """This worker's first arrival index k > ``after`` and its due time; None when it has no more."""
    k = after + 1
    while True:
        due = curve.inverse(k)
        if due is None or due >= curve.end:
            return None
        workers, until = roster.segment(due)
        if worker in workers:
            index, count = workers.index(worker), len(workers)
            candidate = k + (index - k) % count
            mine = curve.inverse(candidate)
            if mine is None or mine >= curve.end:
                return None
            if until is None or mine < until:
                return candidate, mine
        if until is None:
            return None  # not in the roster from here on
        k = max(k + 1, math.ceil(curve.integral(until)))  # the next entry decides the arrivals from its time on
