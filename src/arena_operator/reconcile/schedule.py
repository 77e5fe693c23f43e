"""When a cron schedule is due, in an IANA time zone, correct across daylight-saving changes.

croniter walks wall-clock (naive local) times; each wall time is then mapped to real instants:
- a wall time that does not exist (spring forward) runs once, at the instant the clocks jump to, when the cron
  names fixed hours (``30 2 * * *`` runs at 03:00 that day); an every-hour cron simply has no run then;
- a wall time that happens twice (fall back) runs once, at its first occurrence, when the cron names fixed hours;
  an every-hour cron runs at both occurrences (``* * * * *`` keeps firing every real minute).
That is Vixie cron's rule: no run is skipped or doubled by a transition.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

LOOKBACK = timedelta(hours=3)  # wall-clock margin so a fold or gap just before `after` is not missed


def _every_hour(cron: str) -> bool:
    return cron.split()[1] in ("*", "*/1")


def _exists(wall: datetime, zone: ZoneInfo) -> bool:
    return wall.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall


def _gap_end(wall: datetime, zone: ZoneInfo) -> datetime:
    """The real instant the clocks jumped at, for a wall time inside a spring-forward gap."""
    start = wall
    while not _exists(start - timedelta(minutes=1), zone):
        start -= timedelta(minutes=1)
    return start.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _real(wall: datetime, zone: ZoneInfo, every_hour: bool) -> tuple[datetime, list[datetime]]:
    """(the earliest instant this or any later wall time can map to, the instants this wall time runs at)."""
    if not _exists(wall, zone):
        end = _gap_end(wall, zone)
        return end, [] if every_hour else [end]
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return first, [first, second] if every_hour and second != first else [first]


def instants(cron: str, timezone: str, after: datetime) -> Iterator[datetime]:
    """The schedule's real instants (aware, UTC) strictly after ``after``, in order, each once, forever."""
    zone = ZoneInfo(timezone)
    every_hour = _every_hour(cron)
    offsets = {(after + shift).astimezone(zone).utcoffset() for shift in (-LOOKBACK, timedelta(0), LOOKBACK)}
    margin = timedelta(minutes=1) if len(offsets) == 1 else LOOKBACK  # no transition near: nothing to catch up
    walls = croniter(cron, after.astimezone(zone).replace(tzinfo=None) - margin)
    pending: list[datetime] = []  # instants known but not yet safe to emit (a fall-back repeat comes later)
    last: datetime | None = None
    while True:
        bound, runs = _real(walls.get_next(datetime), zone, every_hour)
        for instant in runs:
            heapq.heappush(pending, instant)
        while pending and pending[0] <= bound:
            instant = heapq.heappop(pending)
            if instant > after and (last is None or instant > last):
                last = instant
                yield instant


@dataclass(frozen=True)
class Due:
    """What the schedule asks for now."""

    run_at: datetime | None  # the latest due instant still within the starting deadline, if any
    missed: int  # due instants passed over without a run (>= 1 when any was; only reported)
    next_at: datetime  # the first instant after now


def due(cron: str, timezone: str, last_scheduled: datetime | None, created: datetime, now: datetime,
        starting_deadline: float) -> Due:
    """The run to start now (at most one, never older than the deadline) and the next due time. Only the
    deadline window is walked, so a schedule last run years ago costs no more than one run a minute ago."""
    anchor = last_scheduled or created
    window_start = now - timedelta(seconds=starting_deadline)
    missed = 0
    if anchor < window_start:
        first = next(instants(cron, timezone, anchor))
        if first < window_start:
            missed, anchor = 1, window_start - timedelta(microseconds=1)
    run_at: datetime | None = None
    for instant in instants(cron, timezone, anchor):
        if instant > now:
            return Due(run_at, missed, instant)
        if run_at is not None:
            missed += 1
        run_at = instant
    raise AssertionError("unreachable: a cron schedule has infinitely many instants")


def child_name(parent: str, instant: datetime) -> str:
    """``<parent>-<unix minutes>``: the idempotency key of a scheduled run (the same due time → the same name)."""
    return f"{parent}-{int(instant.timestamp() // 60)}"
