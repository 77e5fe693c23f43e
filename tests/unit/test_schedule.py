"""Cron schedules in an IANA zone across DST, and the template reconciler (schedule, trigger, concurrency
policies, restarts, history) driven by an injected clock over simulated hours."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pydantic
import pytest

from arena_operator.api.arenajob import ArenaJobSpec
from arena_operator.api.kinds import spec_problems
from arena_operator.reconcile import template as tpl
from arena_operator.reconcile.schedule import child_name, due, instants

NY = ZoneInfo("America/New_York")
SPRING = datetime(2026, 3, 8, 12, tzinfo=UTC)  # 02:00 EST → 03:00 EDT that night (07:00 UTC)
FALL = datetime(2026, 11, 1, 12, tzinfo=UTC)  # 02:00 EDT → 01:00 EST that night (06:00 UTC)


def local(instant: datetime) -> str:
    return instant.astimezone(NY).strftime("%m-%d %H:%M %Z")


@pytest.mark.parametrize(("cron", "start", "expected"), [
    ("30 2 * * *", SPRING - timedelta(days=2), ["03-07 02:30 EST", "03-08 03:00 EDT", "03-09 02:30 EDT"]),
    ("30 1 * * *", FALL - timedelta(days=2), ["10-31 01:30 EDT", "11-01 01:30 EDT", "11-02 01:30 EST"]),
    ("0 2 * * *", FALL - timedelta(days=2), ["10-31 02:00 EDT", "11-01 02:00 EST", "11-02 02:00 EST"]),
    ("0 * * * *", datetime(2026, 11, 1, 4, 30, tzinfo=UTC),
     ["11-01 01:00 EDT", "11-01 01:00 EST", "11-01 02:00 EST"]),
    ("0 * * * *", datetime(2026, 3, 8, 5, 30, tzinfo=UTC), ["03-08 01:00 EST", "03-08 03:00 EDT", "03-08 04:00 EDT"]),
])
def test_fixed_times_run_once_and_wildcards_follow_real_time(cron: str, start: datetime,
                                                              expected: list[str]) -> None:
    assert [local(i) for i in islice(instants(cron, "America/New_York", start), 3)] == expected


@pytest.mark.parametrize("start", [datetime(2026, 3, 8, 5, tzinfo=UTC), datetime(2026, 11, 1, 4, tzinfo=UTC)])
def test_every_minute_across_a_transition_is_every_real_minute(start: datetime) -> None:
    runs = list(islice(instants("* * * * *", "America/New_York", start), 240))
    assert runs[0] == start + timedelta(minutes=1)
    assert all(b - a == timedelta(minutes=1) for a, b in pairwise(runs))


def test_due_runs_the_latest_within_the_deadline_and_counts_missed() -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    now = datetime(2026, 1, 1, 0, 10, 30, tzinfo=UTC)
    when = due("* * * * *", "UTC", None, created, now, starting_deadline=300)
    assert when.run_at == datetime(2026, 1, 1, 0, 10, tzinfo=UTC) and when.missed >= 1
    assert when.next_at == datetime(2026, 1, 1, 0, 11, tzinfo=UTC)
    late = due("0 2 * * *", "UTC", datetime(2026, 1, 1, 2, tzinfo=UTC), created,
               datetime(2026, 1, 2, 2, 10, tzinfo=UTC), starting_deadline=300)
    assert late.run_at is None and late.missed == 1  # the operator was down past the deadline: skipped
    years = due("* * * * *", "UTC", datetime(2020, 1, 1, tzinfo=UTC), created, now, starting_deadline=60)
    assert years.run_at == datetime(2026, 1, 1, 0, 10, tzinfo=UTC)  # no walk over six years of minutes


# -- the template reconciler over simulated time ---------------------------------------------------------------

@dataclass
class Cluster:
    """Children as the API would hold them; runs finish after `run_minutes`."""

    run_minutes: float = 0.5
    children: dict[str, dict[str, Any]] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    now: datetime = SPRING

    async def create(self, body: dict[str, Any]) -> bool:
        name = body["metadata"]["name"]
        if name in self.children:
            return False
        self.children[name] = {"body": body, "created": self.now, "phase": "Running", "done": None}
        return True

    async def cancel(self, name: str) -> None:
        self.cancelled.append(name)
        self.children[name].update(phase="Cancelled", done=self.now)

    async def delete(self, name: str) -> None:
        self.deleted.append(name)
        del self.children[name]

    def advance(self, to: datetime) -> None:
        self.now = to
        for child in self.children.values():
            if child["phase"] == "Running" and to >= child["created"] + timedelta(minutes=self.run_minutes):
                child.update(phase="Succeeded", done=child["created"] + timedelta(minutes=self.run_minutes))

    def records(self) -> list[tpl.Child]:
        return [tpl.Child(n, c["phase"], c["created"], c["done"]) for n, c in self.children.items()]


def context(cluster: Cluster, spec: dict[str, Any], status: dict[str, Any], created: datetime,
            artifact: dict[str, Any] | None = None) -> tpl.TemplateContext:
    raw = {"configRef": {"name": "cfg"}, **spec}
    return tpl.TemplateContext("ns", "nightly", "uid-1", 1, created, ArenaJobSpec.model_validate(raw), raw,
                               status, cluster.records(), artifact, cluster.create, cluster.cancel, cluster.delete,
                               now=cluster.now)


async def simulate(cluster: Cluster, spec: dict[str, Any], start: datetime, minutes: int, tick: float = 0.2,
                   restart_at: set[int] | None = None) -> dict[str, Any]:
    """Reconcile every `tick` minutes for `minutes`; status persists as the API would keep it, `restart_at`
    ticks lose nothing but the pass itself (an operator restart)."""
    status: dict[str, Any] = {}
    steps = int(minutes / tick)
    for index in range(steps + 1):
        cluster.advance(start + timedelta(minutes=index * tick))
        if restart_at and index in restart_at:
            continue
        out = await tpl.reconcile_template(context(cluster, spec, status, start))
        status.update({k: v for k, v in out.status.items()})
    return status


async def test_every_minute_in_new_york_across_both_transitions() -> None:
    spec = {"schedule": {"cron": "* * * * *", "timezone": "America/New_York"}, "successfulJobsHistoryLimit": 1000}
    for night in (datetime(2026, 3, 8, 6, 0, 30, tzinfo=UTC), datetime(2026, 11, 1, 5, 0, 30, tzinfo=UTC)):
        cluster = Cluster(now=night)
        await simulate(cluster, spec, night, minutes=120, tick=1)
        times = sorted(c["created"] for c in cluster.children.values())
        assert len(times) == 120 == len(set(cluster.children))
        assert {b - a for a, b in pairwise(times)} == {timedelta(minutes=1)}
        expected = {child_name("nightly", night.replace(second=0) + timedelta(minutes=m)) for m in range(1, 121)}
        assert set(cluster.children) == expected


async def test_daily_fixed_time_runs_once_a_day_across_dst() -> None:
    spec = {"schedule": {"cron": "30 1 * * *", "timezone": "America/New_York"}}
    start = datetime(2026, 10, 30, 12, tzinfo=UTC)
    cluster = Cluster(now=start)
    await simulate(cluster, spec, start, minutes=4 * 24 * 60, tick=5)
    days = sorted(local(c["created"]) for c in cluster.children.values())
    assert len(days) == 3 and all("01:3" in d for d in days), days  # 10-31, 11-01 (once), 11-02; history 3


@pytest.mark.parametrize(("policy", "runs", "cancelled"), [
    ("Forbid", 5, 0),  # runs take 1.5 min: every other due time is skipped
    ("Allow", 10, 0),
    ("Replace", 10, 9),
])
async def test_concurrency_policies(policy: str, runs: int, cancelled: int) -> None:
    spec = {"schedule": {"cron": "* * * * *", "concurrencyPolicy": policy}, "successfulJobsHistoryLimit": 100,
            "failedJobsHistoryLimit": 100}
    start = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)
    cluster = Cluster(run_minutes=1.5, now=start)
    await simulate(cluster, spec, start, minutes=10, tick=0.25)
    assert len(cluster.children) == runs and len(cluster.cancelled) == cancelled


async def test_a_restart_neither_loses_nor_duplicates_a_run() -> None:
    spec = {"schedule": {"cron": "*/5 * * * *"}, "successfulJobsHistoryLimit": 100}
    start = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)
    cluster = Cluster(now=start)
    down = set(range(20, 60))  # ticks 20..59 of 0.25 min: the operator is down 00:05:30–00:15:30
    await simulate(cluster, spec, start, minutes=30, tick=0.25, restart_at=down)
    names = sorted(cluster.children)
    # 00:05 ran; 00:10 missed entirely (down, and past its 300 s deadline? no: within it) → run late once
    expected = [child_name("nightly", datetime(2026, 1, 1, 0, m, tzinfo=UTC)) for m in (5, 15, 20, 25, 30)]
    assert names == sorted(expected), names


async def test_history_limits_prune_oldest_and_suspend_pauses() -> None:
    spec = {"schedule": {"cron": "* * * * *"}, "successfulJobsHistoryLimit": 2}
    start = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)
    cluster = Cluster(now=start)
    status = await simulate(cluster, spec, start, minutes=6, tick=0.25)
    assert len(cluster.children) == 2 and len(cluster.deleted) == 4
    assert status["lastRun"]["phase"] == "Succeeded" and status["lastSuccessfulTime"]
    before = set(cluster.children)
    cluster.now = start + timedelta(minutes=9)
    out = await tpl.reconcile_template(context(cluster, {**spec, "suspend": True}, status, start))
    assert set(cluster.children) == before
    assert (out.conditions["Ready"].status, out.conditions["Ready"].reason) == (False, "Suspended")


async def test_source_change_trigger_one_pinned_run_per_revision_after_debounce() -> None:
    spec = {"trigger": {"onSourceChange": True, "debounce": "30s"}}
    start = datetime(2026, 1, 1, tzinfo=UTC)
    cluster = Cluster(now=start, run_minutes=100)
    status: dict[str, Any] = {}
    timeline = [(0, "main@sha1:" + "a" * 40), (0.25, "main@sha1:" + "a" * 40), (0.75, "main@sha1:" + "a" * 40),
                (1.0, "main@sha1:" + "b" * 40), (1.2, "main@sha1:" + "c" * 40), (2.0, "main@sha1:" + "c" * 40),
                (3.0, "main@sha1:" + "c" * 40)]
    for minute, revision in timeline:
        cluster.advance(start + timedelta(minutes=minute))
        artifact = {"revision": revision, "digest": "sha256:" + revision[-1] * 64}
        out = await tpl.reconcile_template(context(cluster, spec, status, start, artifact))
        status.update(out.status)
    pinned = sorted((c["body"]["metadata"]["annotations"]["omnia.altairalabs.ai/pinned-revision"],
                     c["body"]["metadata"]["annotations"]["omnia.altairalabs.ai/pinned-digest"])
                    for c in cluster.children.values())
    assert pinned == [("main@sha1:" + "a" * 40, "sha256:" + "a" * 64), ("main@sha1:" + "c" * 40, "sha256:" + "c" * 64)]
    child = next(iter(cluster.children.values()))["body"]
    assert "trigger" not in child["spec"] and child["spec"]["configRef"] == {"name": "cfg"}
    assert child["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert child["metadata"]["labels"]["omnia.altairalabs.ai/parent"] == "nightly"


@pytest.mark.parametrize(("schedule", "field_words"), [
    ({"cron": "bogus"}, "schedule.cron"),
    ({"cron": "0 25 * * *"}, "invalid cron expression '0 25 * * *'"),
    ({"cron": "0 2 * * *", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
    ({"cron": "0 2 * * *", "timezone": "Mars Olympus"}, "unknown time zone 'Mars Olympus'"),
])
def test_invalid_schedules_are_refused_naming_the_field(schedule: dict[str, Any], field_words: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        ArenaJobSpec.model_validate({"configRef": {"name": "c"}, "schedule": schedule})
    assert field_words in spec_problems(caught.value)
