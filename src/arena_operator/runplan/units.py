"""ArenaJob + resolved bundle → work units. Pure and streaming: units are yielded, never listed, so a plan of a
million units costs the memory of one batch; a configurable limit refuses absurd plans before anything runs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..engine.bundle import Bundle
from ..engine.plan import RunCombination, RunFilters, iter_plan

DEFAULT_MAX_UNITS = 100_000


@dataclass(frozen=True)
class WorkUnit:
    """One scenario × provider × region × trial (or one eval × recorded conversation, `recording` set): what the
    planner enqueues and a worker runs. Its id is the deterministic run id, so re-enqueueing after a crash is
    idempotent."""

    id: str
    scenario: str
    provider: str
    region: str
    trial: int
    recording: str = ""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "scenario": self.scenario, "provider": self.provider,
                                "region": self.region, "trial": self.trial}
        if self.recording:
            data["recording"] = self.recording
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkUnit:
        """The unit from its queue form; a malformed entry raises ValueError naming what is missing."""
        missing = [k for k in ("id", "scenario", "provider", "region", "trial") if k not in data]
        if missing:
            raise ValueError(f"work unit without {', '.join(missing)}: {sorted(data)}")
        return cls(str(data["id"]), str(data["scenario"]), str(data["provider"]), str(data["region"]),
                   int(data["trial"]), str(data.get("recording") or ""))

    def combination(self) -> RunCombination:
        return RunCombination(self.region, self.scenario, self.provider, self.trial, self.recording)


class PlanTooLarge(ValueError):
    """A plan above the limit: the message says how big and what limits it."""


@dataclass(frozen=True)
class PlanInputs:
    """The scenario selection and trials a job runs with: the job's own, else its config's."""

    include: list[str]
    exclude: list[str]
    trials: int

    def filters(self) -> RunFilters:
        return RunFilters(scenarios=self.include, exclude_scenarios=self.exclude, trials=self.trials)


def plan_inputs(config_spec: Any, job_spec: Any) -> PlanInputs:
    """`spec.scenarios` of the ArenaJob overrides the ArenaConfig's (seed reference); so does its `spec.trials`
    (the Go operator's form)."""
    chosen = job_spec.scenarios if job_spec.scenarios is not None else config_spec.scenarios
    include = list(chosen.include or []) if chosen else []
    exclude = list(chosen.exclude or []) if chosen else []
    trials = getattr(job_spec, "trials", None)
    return PlanInputs(include, exclude, trials if trials is not None else config_spec.trials)


def iter_units(bundle: Bundle, inputs: PlanInputs) -> Iterator[WorkUnit]:
    """The plan's work units, streamed."""
    for combo in iter_plan(bundle, inputs.filters()):
        yield WorkUnit(combo.run_id, combo.scenario_id, combo.provider_id, combo.region, combo.trial, combo.recording)


def count_units(bundle: Bundle, inputs: PlanInputs, limit: int = DEFAULT_MAX_UNITS) -> int:
    """Count without materialising; raise PlanTooLarge past `limit`."""
    count = 0
    for _ in iter_plan(bundle, inputs.filters()):
        count += 1
        if count > limit:
            scenarios = len(bundle.scenarios)
            raise PlanTooLarge(f"the plan has more than {limit} work units ({scenarios} scenarios × providers × "
                               f"trials {inputs.trials}); narrow spec.scenarios or raise the operator's "
                               "ARENA_MAX_UNITS")
    return count


def batches(units: Iterator[WorkUnit], size: int = 500) -> Iterator[list[dict[str, Any]]]:
    """The units in queue form, a batch at a time."""
    batch: list[dict[str, Any]] = []
    for unit in units:
        batch.append(unit.to_json())
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
