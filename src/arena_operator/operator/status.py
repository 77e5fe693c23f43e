"""Outcome → kopf: the one place a reconcile pass becomes a status patch and events, for every kind."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import kopf
from pydantic import BaseModel, ValidationError

from ..api.conditions import remove_condition, set_condition
from ..api.kinds import spec_problems
from ..reconcile.outcome import Outcome, ReadyRule, rejected_spec

M = TypeVar("M", bound=BaseModel)


def apply_outcome(body: kopf.Body, patch: kopf.Patch, status: Mapping[str, Any], outcome: Outcome,
                  generation: int) -> None:
    """Patch the status fields and changed conditions (lastTransitionTime kept while a status holds), post events."""
    patch.status.update(outcome.status)
    before = list(status.get("conditions") or [])
    conditions = before
    for update in outcome.conditions.values():
        if update.status is None:
            conditions = remove_condition(conditions, update.type)
        else:
            conditions = set_condition(conditions, update.type, update.status, update.reason, update.message,
                                       generation)
    if conditions != before:
        patch.status["conditions"] = conditions
    for event in outcome.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)


def parse_or_reject(model: type[M], body: kopf.Body, spec: Mapping[str, Any], patch: kopf.Patch,
                    status: Mapping[str, Any], generation: int, phase: str, rule: ReadyRule) -> M | None:
    """The spec as its model, or None after marking the object Stalled (once per generation) with every problem
    named by field — the API server's schema catches most of these; this covers what a schema cannot say."""
    try:
        return model.model_validate(dict(spec))
    except ValidationError as error:
        if status.get("observedGeneration") != generation or status.get("phase") != phase:
            apply_outcome(body, patch, status, rejected_spec(spec_problems(error), phase, status, rule, generation),
                          generation)
        return None
