"""ArenaJob fields in the form the Go operator (AltairaLabs/Omnia) writes them today, beside the documented ones.

``spec.providers`` names Provider objects per group, either as a pool (a list of entries) or as a 1:1 mapping
of the bundle's provider ids to Provider objects (a map); like the Go CRD, the CRD keeps each group untyped
(an array or an object) and the model checks it. The load-test fields (a closed model: virtual users running
scenarios back to back, thresholds, a budget) run in the same engine as the documented open model (loadtest/).
How the two forms map onto one model, and which wins when both are set, is in ``runplan/forms.py``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Discriminator, Field, Tag, model_validator

from .common import ApiModel, Duration, LocalObjectReference, any_json

DEFAULT_ARENA_FILE = "config.arena.yaml"
"""The arena file an ArenaJob with ``sourceRef`` runs when ``arenaFile`` is unset (the Go operator's default)."""


class ProviderRef(ApiModel):
    """A Provider object, by name (and, in the Go form, optionally namespace)."""

    name: str = Field(min_length=1, description="Name of the Provider.")
    namespace: str | None = Field(None, description="Namespace of the Provider; only the job's own namespace is "
                                                    "supported (worker pods read Secrets of their namespace only).")


class ArenaProviderEntry(ApiModel):
    """One provider position: a Provider object, or an AgentRuntime (fleet mode, not supported here)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [{
        "rule": "has(self.providerRef) != has(self.agentRef)",
        "message": "exactly one of providerRef or agentRef must be set"}]})

    provider_ref: ProviderRef | None = Field(None, description="The Provider used at this position.")
    agent_ref: LocalObjectReference | None = Field(
        None, description="An AgentRuntime (the Go operator's fleet mode). Accepted by the schema; a job using it "
                          "fails Unsupported, as this operator has no AgentRuntime kind.")

    @model_validator(mode="after")
    def _exactly_one(self) -> ArenaProviderEntry:
        if (self.provider_ref is None) == (self.agent_ref is None):
            raise ValueError("exactly one of providerRef or agentRef must be set")
        return self


def _group_form(value: Any) -> str | None:
    return "list" if isinstance(value, list) else "map" if isinstance(value, dict) else None


ProviderGroup = Annotated[
    Annotated[list[ArenaProviderEntry], Tag("list")] | Annotated[dict[str, ArenaProviderEntry], Tag("map")],
    Discriminator(_group_form, custom_error_type="provider_group",
                  custom_error_message="a provider group is a list of entries or a map of provider id to entry"),
    any_json("A provider group: a list of entries (a pool: each scenario runs once per entry) or a map of the "
             "bundle's provider ids to entries (each id keeps its name and gets that Provider's settings)."),
]


class RampSettings(ApiModel):
    """Load-test ramp (Go form): of the virtual users (closed model) or of the arrival rate (open model)."""

    up: Duration | None = Field(None, description="Time to ramp from 0 to the target (virtual users or arrival "
                                                  "rate); wins over rampUp.")
    down: Duration | None = Field(None, description="Time to ramp down to 0 at the end.")


class LoadThreshold(ApiModel):
    """A load-test SLO evaluated on the merged data after the test; a metric that cannot be computed fails it."""

    metric: Literal["latency_avg", "latency_p50", "latency_p90", "latency_p95", "latency_p99", "ttft_avg",
                    "ttft_p50", "ttft_p90", "ttft_p95", "ttft_p99", "error_rate", "pass_rate", "total_cost",
                    "rate_limit_rate", "rps"] = Field(description="The metric, e.g. latency_p95 or error_rate.")
    operator: Literal["<", ">", "<=", ">="] = Field(description="Comparison: <, >, <= or >=.")
    value: str = Field(min_length=1, description="Target: a duration for latency and TTFT (3s, 500ms; a plain "
                                                 "number is milliseconds), a fraction for the rates (0.01), a cost "
                                                 "(50.00) or requests per second (rps).")
