"""The one reconcile contract shared by every controller: ordered steps with one signature, one Outcome, and
`Ready` computed once per pass from the conditions the steps own.

A step is ``async def step(ctx, out) -> None``. It reads the context, sets only the conditions it owns
(``out.condition``), adds status fields and events, and calls ``out.stop()`` when the pass is decided (a
failure, a wait, or a finished object). ``run_steps`` runs them in order and, when a step stops the pass
because a prerequisite is missing (``blocked=True``), marks the conditions owned by the later steps Unknown,
so a condition never stays ``True`` about something the pass could no longer check. Finally ``Ready`` is
summarised from the merged conditions (kstatus / Flux conventions): False with the reason of the first
abnormal or failing condition, Unknown while a prerequisite is unknown or missing, True when all hold.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from ..api import conditions as c

Ctx = TypeVar("Ctx")


@dataclass(frozen=True)
class ConditionUpdate:
    """A condition a pass sets (``status`` True/False/"Unknown"), or removes (``status`` None)."""

    type: str
    status: bool | str | None
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Outcome:
    """What one pass decided: status fields to patch, condition updates (by type, last write wins), events."""

    status: dict[str, Any] = field(default_factory=dict)
    conditions: dict[str, ConditionUpdate] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    stopped: bool = False
    blocked: bool = False
    retried: int = 0  # ArenaJob: units retried so far (a metric, not status)

    def condition(self, type_: str, status: bool | str, reason: str, message: str = "") -> None:
        self.conditions[type_] = ConditionUpdate(type_, status, reason, message)

    def remove_condition(self, type_: str) -> None:
        self.conditions[type_] = ConditionUpdate(type_, None)

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, message))

    def stop(self, *, blocked: bool = False) -> None:
        """The pass is decided; ``blocked``: later steps could not run, so what they own is no longer known."""
        self.stopped = True
        self.blocked = blocked


@dataclass
class ObjectIdentity:
    """Who a pass is about: the first fields of every controller's context."""

    namespace: str
    name: str
    uid: str
    generation: int
    created: datetime


@dataclass(frozen=True)
class Step(Generic[Ctx]):
    """A reconcile step and the condition types it alone writes."""

    run: Callable[[Ctx, Outcome], Awaitable[None]]
    owns: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReadyRule:
    """How a kind's `Ready` follows from its other conditions."""

    positive: tuple[str, ...]  # must all be True, in order of dependency
    abnormal: tuple[str, ...] = (c.STALLED,)  # True means something is wrong (kstatus' Stalled, Flux's FetchFailed)


async def run_steps(ctx: Ctx, steps: Sequence[Step[Ctx]], out: Outcome, current: Iterable[Mapping[str, Any]],
                    rule: ReadyRule) -> Outcome:
    """Run the steps in order until one stops the pass, then summarise `Ready` into the outcome."""
    for index, step in enumerate(steps):
        await step.run(ctx, out)
        if out.stopped:
            if out.blocked:
                _mark_unknown(out, steps[index + 1:], merged(current, out), _blocking_update(out, step))
            break
    if any(item.get("type") == c.STALLED for item in current) and c.STALLED not in out.conditions:
        out.remove_condition(c.STALLED)  # the spec parsed, so whatever stalled it was fixed
    ready = summarize_ready(merged(current, out), rule)
    out.conditions[c.READY] = ready
    return out


def _blocking_update(out: Outcome, step: Step[Any]) -> ConditionUpdate | None:
    return next((out.conditions[t] for t in step.owns if t in out.conditions), None)


def _mark_unknown(out: Outcome, later: Sequence[Step[Any]], conditions: list[dict[str, Any]],
                  cause: ConditionUpdate | None) -> None:
    present = {item.get("type") for item in conditions}
    for step in later:
        for type_ in step.owns:
            if type_ in present and type_ not in out.conditions:
                why = f"waiting for {cause.type}: {cause.message}" if cause else "not checked in this pass"
                out.condition(type_, c.UNKNOWN, cause.reason if cause else c.PENDING, why)


def rejected_spec(problem: str, phase: str, status: Mapping[str, Any], rule: ReadyRule, generation: int) -> Outcome:
    """A spec that cannot be acted on: Stalled (and so not Ready) with every problem named, until it changes."""
    out = Outcome(status={"phase": phase, "observedGeneration": generation})
    out.condition(c.STALLED, True, c.INVALID_SPEC, problem)
    out.event("Warning", c.INVALID_SPEC, problem)
    out.conditions[c.READY] = summarize_ready(merged(status.get("conditions") or [], out), rule)
    return out


def merged(current: Iterable[Mapping[str, Any]], out: Outcome) -> list[dict[str, Any]]:
    """The conditions as they will be after this pass (wire form, without timestamps for new entries)."""
    items = {str(item.get("type")): dict(item) for item in current}
    for type_, update in out.conditions.items():
        if update.status is None:
            items.pop(type_, None)
        else:
            items[type_] = {"type": type_, "status": _text(update.status), "reason": update.reason,
                            "message": update.message}
    return list(items.values())


def summarize_ready(conditions: Iterable[Mapping[str, Any]], rule: ReadyRule) -> ConditionUpdate:
    """`Ready` from the other conditions: the first abnormal one that is True, else the first positive one that
    is False, else the first that is Unknown or missing; True (with the last positive's reason) when all hold."""
    by_type = {str(item.get("type")): item for item in conditions}
    for type_ in rule.abnormal:
        item = by_type.get(type_)
        if item and item.get("status") == c.TRUE:
            return ConditionUpdate(c.READY, False, str(item.get("reason")), str(item.get("message", "")))
    for status in (c.FALSE, c.UNKNOWN):
        for type_ in rule.positive:
            item = by_type.get(type_)
            if item and item.get("status") == status:
                return ConditionUpdate(c.READY, False if status == c.FALSE else c.UNKNOWN, str(item.get("reason")),
                                       str(item.get("message", "")))
    missing = next((t for t in rule.positive if t not in by_type), None)
    if missing is not None:
        return ConditionUpdate(c.READY, c.UNKNOWN, c.PROGRESSING_REASON, f"{missing} not yet determined")
    last = by_type[rule.positive[-1]]
    return ConditionUpdate(c.READY, True, str(last.get("reason")), str(last.get("message", "")))


def _text(status: bool | str) -> str:
    if isinstance(status, bool):
        return c.TRUE if status else c.FALSE
    return status
