"""Who runs which part of the load: the roster of live workers and each worker's share of it.

The roster is kept in Redis (coord.py): every worker refreshes its heartbeat four times a second; a change (a worker
joined, left or stopped answering) takes effect ``lead`` seconds later, at one moment every worker agrees on, so
that all of them switch to the new shares together. Before that moment the previous roster holds.

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
    workers: tuple[str, ...]
    since: float  # test time (s) from which this roster holds
    previous: tuple[str, ...] = ()

    def at(self, t: float) -> tuple[str, ...]:
        return self.workers if t >= self.since else self.previous

    def position(self, worker: str, t: float) -> tuple[int, int] | None:
        """(index, number of workers) of ``worker`` at ``t``; None when it has no share then."""
        workers = self.at(t)
        return (workers.index(worker), len(workers)) if worker in workers else None


def next_arrival(curve: Curve, roster: Roster, worker: str, after: int) -> tuple[int, float] | None:
    """This worker's first arrival index k > ``after`` and its due time; None when the curve has no more."""
    k = after + 1
    for _ in range(4):  # at most one roster switch lies ahead: re-aim once past it
        due = curve.inverse(k)
        if due is None or due >= curve.end:
            return None
        place = roster.position(worker, due)
        if place is None:
            if due >= roster.since:
                return None  # not in the roster in effect from now on
            k = max(k, math.ceil(curve.integral(roster.since)))  # wait for the switch
            continue
        index, count = place
        candidate = k + (index - k) % count
        mine = curve.inverse(candidate)
        if mine is None or mine >= curve.end:
            return None
        if (mine >= roster.since) == (due >= roster.since):
            return candidate, mine
        k = max(k, math.ceil(curve.integral(roster.since)))  # crossed the switch: assign under the new roster
    return None
