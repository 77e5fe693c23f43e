"""Condition types, reasons and the one helper that writes a condition.

As in Flux's ``api/v1``, types and reasons are CamelCase constants that live with the API, so controllers,
tests and dashboards spell them identically. Types are positive (``Ready``, ``Valid``); what went wrong is
said by the reason. ``set_condition`` keeps ``lastTransitionTime`` while the status does not change, so the
time tells when the state was entered, not when it was last re-confirmed.

The helpers work on the wire form (the list of dicts in ``status.conditions`` that kopf hands to handlers and
that a status patch needs) and also accept :class:`Condition` models; they return new lists and never mutate
their input (kopf's ``status`` is read-only).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from .common import Condition, utcnow

ConditionStatus = Literal["True", "False", "Unknown"]
TRUE: ConditionStatus = "True"
FALSE: ConditionStatus = "False"
UNKNOWN: ConditionStatus = "Unknown"
MAX_MESSAGE = 32768  # metav1.Condition's limit; longer messages are cut, not rejected

# -- condition types ----------------------------------------------------------------------------------
READY = "Ready"  # every kind: the summary, computed once at the end of a reconcile pass
SOURCE_VALID = "SourceValid"  # ArenaSource: the fetched content is a loadable bundle; ArenaJob with sourceRef: the
# source serves an artifact and its bundle (arenaFile) loads at that revision
ARTIFACT_AVAILABLE = "ArtifactAvailable"  # ArenaSource: an artifact (maybe the last good one) is served
SOURCE_READY = "SourceReady"  # ArenaConfig: the referenced ArenaSource has an artifact
VALID = "Valid"  # ArenaConfig: the bundle at the source's revision loads and its providers resolve
CONFIG_VALID = "ConfigValid"  # ArenaJob: the referenced ArenaConfig exists and is Ready
JOB_CREATED = "JobCreated"  # ArenaJob: the worker batch/v1 Job exists
PROGRESSING = "Progressing"  # ArenaJob: workers are executing work units
PLANNED = "Planned"  # ArenaJob: work units are planned and queued
COMPLETE = "Complete"  # ArenaJob: Unknown while running, True when it succeeded, False when it failed or was cancelled
SCHEDULED_CONDITION = "Scheduled"  # an ArenaJob template: its schedule/trigger creates runs
REGRESSED = "Regressed"  # ArenaJob (abnormal-true): the run got worse than its baseline
STALLED = "Stalled"  # every kind (abnormal-true, kstatus): the spec cannot be acted on until it is changed
FETCH_FAILED_CONDITION = "FetchFailed"  # ArenaSource (abnormal-true, as Flux): the last fetch failed
SPEC_WARNING = "SpecWarning"  # ArenaJob (True, not part of Ready): both forms of a setting are set; says which wins
THRESHOLDS = "Thresholds"  # ArenaJob type loadtest: True when every threshold held on the merged data, else False

# -- reasons: progress and success --------------------------------------------------------------------
SUCCEEDED = "Succeeded"
PROGRESSING_REASON = "Progressing"
NEW_ARTIFACT = "NewArtifact"
LAST_GOOD_ARTIFACT = "LastGoodArtifact"
FETCHING = "Fetching"
SUSPENDED = "Suspended"
VALIDATED = "Validated"
JOB_CREATED_REASON = "JobCreated"
WORKERS_RUNNING = "WorkersRunning"
COMPLETED = "Completed"
SCHEDULED = "Scheduled"
DISCOVERED = "Discovered"
PLANNED_REASON = "Planned"
TRIGGERED = "Triggered"
SKIPPED = "Skipped"
MISSED_SCHEDULE = "MissedSchedule"
REPLACED = "Replaced"
PRUNED = "Pruned"
WAITING_FOR_SOURCE = "WaitingForSource"
ARTIFACT_GONE = "ArtifactGone"
NO_REGRESSION = "NoRegression"
NO_BASELINE = "NoBaseline"
CONFIG_READY = "ConfigReady"
CREATED = "Created"
RUNNING = "Running"
SCALED = "Scaled"
THRESHOLDS_PASSED = "ThresholdsPassed"
NO_THRESHOLDS = "NoThresholds"
BOTH_FORMS_PRESENT = "BothFormsPresent"

# -- reasons: waiting (retried) -----------------------------------------------------------------------
SOURCE_NOT_FOUND = "SourceNotFound"
SOURCE_NOT_READY = "SourceNotReady"
CONFIG_NOT_FOUND = "ConfigNotFound"
CONFIG_NOT_READY = "ConfigNotReady"
PENDING = "Pending"

# -- reasons: failures --------------------------------------------------------------------------------
INVALID_SPEC = "InvalidSpec"
FETCH_FAILED = "FetchFailed"
INVALID_URL = "InvalidURL"
REVISION_NOT_FOUND = "RevisionNotFound"
UNREACHABLE = "Unreachable"
UNSAFE_ARTIFACT = "UnsafeArtifact"
DIGEST_MISMATCH = "DigestMismatch"
ARTIFACT_MISSING = "ArtifactMissing"
NO_SCENARIOS = "NoScenarios"
FETCH_TIMEOUT = "FetchTimeout"
AUTHENTICATION_FAILED = "AuthenticationFailed"
SECRET_NOT_FOUND = "SecretNotFound"
INVALID_SECRET = "InvalidSecret"
CONFIG_MAP_NOT_FOUND = "ConfigMapNotFound"
ARTIFACT_FAILED = "ArtifactFailed"
ARTIFACT_TOO_LARGE = "ArtifactTooLarge"
INVALID_BUNDLE = "InvalidBundle"
VALIDATION_BUDGET_EXCEEDED = "ValidationBudgetExceeded"  # a bundle whose loading needs more time/memory than allowed
INVALID_BUNDLE_LAYOUT = "InvalidBundleLayout"
PROVIDER_NOT_FOUND = "ProviderNotFound"
TOOL_REGISTRY_NOT_FOUND = "ToolRegistryNotFound"
JOB_CREATE_FAILED = "JobCreateFailed"
WORKERS_FAILED = "WorkersFailed"
DEADLINE_EXCEEDED = "DeadlineExceeded"
FAILED = "Failed"
CANCELLED = "Cancelled"
SCHEDULE_INVALID = "ScheduleInvalid"
SECRET_KEY_NOT_FOUND = "SecretKeyNotFound"
CLAIM_NOT_FOUND = "ClaimNotFound"
UNSUPPORTED = "Unsupported"
PLAN_TOO_LARGE = "PlanTooLarge"
EMPTY_PLAN = "EmptyPlan"
NO_PROVIDER_MATCHED = "NoProviderMatched"
NO_TOOL_REGISTRY_MATCHED = "NoToolRegistryMatched"
DUPLICATE_TOOL = "DuplicateTool"
PROVIDER_CONFLICT = "ProviderConflict"
WORKER_FAILED = "WorkerFailed"
WORKER_JOB_FAILED = "WorkerJobFailed"
NO_UNIT_RAN = "NoUnitRan"
NO_REPORTS = "NoReports"
THRESHOLDS_FAILED = "ThresholdsFailed"
BUDGET_EXCEEDED = "BudgetExceeded"
DATA_INCOMPLETE = "DataIncomplete"  # a datagen job wrote fewer than dataGen.count items (a shard failed)
REDIS_UNAVAILABLE = "RedisUnavailable"
FORBIDDEN = "Forbidden"  # the Kubernetes API refused the operator a request (RBAC)
WORKSPACE_NOT_CONFIGURED = "WorkspaceNotConfigured"
WORKSPACE_PATH_NOT_FOUND = "WorkspacePathNotFound"
WORKERS_NOT_STARTED = "WorkersNotStarted"  # no worker pod started within the start timeout (image, quota, secret)
WAITING_FOR_WORKERS = "WaitingForWorkers"
UNITS_RELEASED = "UnitsReleased"  # a dead worker's units handed back before the visibility timeout
QUEUE_LOST = "QueueLost"  # Redis lost a running job's queue (restarted without persistence)

ConditionLike = Condition | Mapping[str, Any]


def _wire(condition: ConditionLike) -> dict[str, Any]:
    if isinstance(condition, Condition):
        return condition.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dict(condition)


def _status_text(status: bool | str) -> ConditionStatus:
    if isinstance(status, bool):
        return TRUE if status else FALSE
    if status not in (TRUE, FALSE, UNKNOWN):
        raise ValueError(f"condition status must be True, False or Unknown, not {status!r}")
    return status  # type: ignore[return-value]  # narrowed by the check above


def get_condition(conditions: Iterable[ConditionLike] | None, type_: str) -> dict[str, Any] | None:
    """The condition of this type in wire form, or None."""
    return next((_wire(item) for item in conditions or () if _wire(item).get("type") == type_), None)


def is_true(conditions: Iterable[ConditionLike] | None, type_: str) -> bool:
    """Whether the condition of this type exists and is True (missing means not known to be true)."""
    condition = get_condition(conditions, type_)
    return condition is not None and condition.get("status") == TRUE


def set_condition(
    conditions: Iterable[ConditionLike] | None,
    type_: str,
    status: bool | ConditionStatus,
    reason: str,
    message: str = "",
    generation: int | None = None,
    *,
    now: datetime.datetime | None = None,
) -> list[dict[str, Any]]:
    """A new conditions list with the condition of ``type_`` added or replaced (wire form, ready to patch).

    ``status`` is True/False/"Unknown" (a bool is accepted). ``lastTransitionTime`` moves only when the status
    changes; reason, message and observedGeneration are always refreshed. Order is kept and a new type is
    appended, so re-setting an unchanged condition yields an identical list and no needless patch. The new
    entry is validated as a :class:`Condition` (a reason that is not CamelCase raises ``ValueError``).
    """
    text = _status_text(status)
    items = [_wire(item) for item in conditions or ()]
    index = next((i for i, item in enumerate(items) if item.get("type") == type_), None)
    previous = items[index] if index is not None else {}
    kept = previous.get("lastTransitionTime") if previous.get("status") == text else None
    updated = Condition(type=type_, status=text, reason=reason, message=message[:MAX_MESSAGE],
                        last_transition_time=kept or now or utcnow(), observed_generation=generation)
    if index is None:
        items.append(_wire(updated))
    else:
        items[index] = _wire(updated)
    return items


def remove_condition(conditions: Iterable[ConditionLike] | None, type_: str) -> list[dict[str, Any]]:
    """A new conditions list without the condition of this type (e.g. ``Progressing`` once a job finished)."""
    return [item for item in (_wire(each) for each in conditions or ()) if item.get("type") != type_]
