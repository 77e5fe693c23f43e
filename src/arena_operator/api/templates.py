"""The template half of an ArenaJob: ``schedule`` (cron) and ``trigger`` (source changes) make the job a
template that creates child ArenaJobs; ``compare`` says which earlier run a finished run is compared with."""

from __future__ import annotations

import zoneinfo
from typing import Any, Literal

from croniter import croniter
from pydantic import Field, field_validator, model_validator

from .common import ApiModel, Duration, Time, free_form

CRON_FIELD = r"[0-9A-Za-z*/,?#LW-]+"
# In the CRD only (admission catches the shape); the validators below say what is wrong in words.
CRON_PATTERN = rf"^{CRON_FIELD}( {CRON_FIELD}){{4}}$"
TIMEZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"


class ScheduleSpec(ApiModel):
    """Recurring runs: the job becomes a template and each trigger creates a child ArenaJob."""

    cron: str = Field(max_length=200, json_schema_extra={"pattern": CRON_PATTERN, "minLength": 9},
                      description="Cron expression (5 fields, minute hour day month weekday), "
                                                "e.g. \"0 2 * * *\" for 2am daily.")
    timezone: str = Field("UTC", max_length=64, json_schema_extra={"pattern": TIMEZONE_PATTERN},
                          description="IANA time zone the cron expression is read in, e.g. "
                                             "America/New_York.")
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = Field(
        "Forbid", description="When a run is due while the previous one is still running: Allow (run both), "
                              "Forbid (skip the new one) or Replace (cancel the old one).")
    starting_deadline_seconds: int = Field(
        300, ge=0, description="A run that could not start within this many seconds of its due time (the operator "
                               "was down) is skipped; after a restart at most one missed run is started.")

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError(f"invalid cron expression {value!r}: use 5 fields (minute hour day month weekday)")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as UTC or Europe/Paris") from exc
        return value


class TriggerSpec(ApiModel):
    """Runs created by changes of the job's source rather than by the clock."""

    on_source_change: bool = Field(False, description="Create a child run each time the ArenaSource's revision "
                                                      "changes (one per revision; it runs exactly that revision).")
    debounce: Duration = Field("10s", description="How long a new revision must stay current before its run is "
                                                  "created, so a burst of pushes makes one run.")


class BaselineRef(ApiModel):
    """The run to compare with: an ArenaJob of this namespace, or a results location."""

    model_config = {"json_schema_extra": {"x-kubernetes-validations": [{
        "rule": "has(self.jobName) != has(self.url)", "message": "set exactly one of jobName and url"}]}}

    job_name: str | None = Field(None, description="A finished ArenaJob in this namespace whose results are the "
                                                   "baseline.")
    url: str | None = Field(None, description="A results location (s3://bucket/prefix/ or pvc://claim/path/) "
                                              "holding a previous run's results.jsonl.")

    @model_validator(mode="after")
    def _exactly_one(self) -> BaselineRef:
        if (self.job_name is None) == (self.url is None):
            raise ValueError("set exactly one of jobName and url")
        return self


class CompareSpec(ApiModel):
    """How a finished evaluation is compared with a baseline."""

    baseline: BaselineRef | None = Field(None, description="The baseline; default: the last Succeeded run of the "
                                                           "same template.")
    max_pass_rate_drop: float = Field(0.0, ge=0.0, le=1.0, description="Regressed=True when any scenario × "
                                      "provider's pass rate drops by more than this (0.05 = 5 points).")


class LastRun(ApiModel):
    """The last finished child of a template."""

    name: str = Field(description="The child ArenaJob.")
    phase: str = Field(description="Its final phase.")
    completion_time: Time | None = Field(None, description="When it finished.")
    revision: str | None = Field(None, description="The source revision it ran.")
    summary: dict[str, Any] | None = free_form("Its result summary.")
