"""Outcome → kopf: the one place a reconcile pass becomes a status patch and events, for every kind."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import kopf
from pydantic import BaseModel, ValidationError

from ..api import conditions as c
from ..api.conditions import get_condition, remove_condition, set_condition
from ..api.kinds import spec_problems
from ..kube import refusal, transient
from ..reconcile.outcome import Outcome, ReadyRule, rejected_spec

M = TypeVar("M", bound=BaseModel)
REFUSAL_RETRY_SECONDS = 30
TRANSIENT_RETRY_SECONDS = 2


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


def report_refusal(body: kopf.Body, patch: kopf.Patch, status: Mapping[str, Any], exc: BaseException,
                   generation: int) -> None:
    """An API refusal (RBAC) becomes Ready=False, reason Forbidden, and a Warning event naming what was refused —
    then kopf retries the handler later, once the permission may have been granted. A transient API failure
    (conflict, throttling, 5xx) is retried within seconds instead of after kopf's default minute."""
    message = refusal(exc)
    if message is None:
        if (code := transient(exc)) is not None:
            raise kopf.TemporaryError(f"Kubernetes API {code}; retrying", delay=TRANSIENT_RETRY_SECONDS) from None
        return
    if (get_condition(status.get("conditions"), c.READY) or {}).get("message") != message:
        out = Outcome()
        out.condition(c.READY, False, c.FORBIDDEN, message)
        out.event("Warning", c.FORBIDDEN, message)
        apply_outcome(body, patch, status, out, generation)
    raise kopf.TemporaryError(f"{c.FORBIDDEN}: {message}", delay=REFUSAL_RETRY_SECONDS) from None
