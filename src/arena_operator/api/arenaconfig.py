"""ArenaConfig: how to run a bundle — which source, which providers, how many workers, which scenarios.

It separates what is tested (the source's bundle at a revision) from one run of it (ArenaJob), so many jobs
share one validated configuration and a job never re-validates a bundle the config already proved valid.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import (
    MAX_CONCURRENCY,
    MAX_TRIALS,
    MAX_WORKERS,
    ApiModel,
    ArenaObject,
    Condition,
    Duration,
    LocalObjectReference,
    RelativePath,
    conditions_field,
    observed_generation_field,
)

ConfigPhase = Literal["Pending", "Ready", "Invalid"]


class ScenarioFilter(ApiModel):
    """Scenario selection by glob; a scenario runs when it matches include (or include is empty) and no exclude."""

    include: list[str] | None = Field(
        None, description="Glob patterns of scenario ids or files to run, e.g. scenarios/critical-*.yaml. Empty "
                          "means all.")
    exclude: list[str] | None = Field(None, description="Glob patterns of scenario ids or files to leave out, "
                                                        "applied after include.")


class ArenaConfigSpec(ApiModel):
    """Desired state of an ArenaConfig."""

    source_ref: LocalObjectReference = Field(description="The ArenaSource whose bundle is tested.")
    provider_ref: LocalObjectReference | None = Field(
        None, description="Default Provider for the bundle's provider slots that no other setting fills.")
    providers: dict[str, list[LocalObjectReference]] | None = Field(
        None, description="Providers per group (group name → Provider references), e.g. default: "
                          "[{name: gpt4}], judge: [{name: claude}]. Each scenario runs once per provider of "
                          "its group.")
    scenarios: ScenarioFilter | None = Field(None, description="Default scenario selection for jobs using this "
                                                               "config; a job may override it.")
    workers: int | None = Field(None, ge=1, le=MAX_WORKERS,
                                description="Default number of worker pods for jobs using this config.")
    timeout: Duration | None = Field(None, description="Time limit for one work unit (one scenario × provider × "
                                                       "trial), e.g. 5m.")
    concurrency: int = Field(4, ge=1, le=MAX_CONCURRENCY, description="Work units one worker runs in parallel.")
    trials: int = Field(1, ge=1, le=MAX_TRIALS, description="Runs per scenario × provider, to measure flakiness.")
    arena_file: RelativePath | None = Field(
        None, description="Path of the Arena entry file inside the bundle; defaults to the first of "
                          "config.arena.yaml, config.arena.yml, arena.yaml, arena.yml.")


class ArenaConfigStatus(ApiModel):
    """Observed state of an ArenaConfig."""

    phase: ConfigPhase | None = Field(None, description="Summary for display: Pending (waiting for the "
                                                        "source), Ready or Invalid.")
    revision: str | None = Field(None, description="The source revision the bundle was validated at.")
    scenario_count: int | None = Field(None, ge=0, description="Scenarios selected by the filters at that "
                                                               "revision.")
    providers: dict[str, list[str]] | None = Field(
        None, description="Resolved providers: group name → Provider names (or bundle provider ids) used.")
    conditions: list[Condition] = conditions_field("SourceReady, Valid, Ready")
    observed_generation: int | None = observed_generation_field()


class ArenaConfig(ArenaObject):
    """An ArenaConfig object as stored by the API server."""

    kind: Literal["ArenaConfig"] = Field("ArenaConfig", description="Kind.")
    spec: ArenaConfigSpec = Field(description="Desired state.")
    status: ArenaConfigStatus | None = Field(None, description="Observed state.")
