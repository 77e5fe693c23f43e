"""Provider: an LLM endpoint as a Kubernetes object, selectable by label from ArenaJob.providerOverrides.

Keeping providers out of the bundle lets one bundle be tested against staging and production endpoints
(and their credentials) without editing it: the job picks Provider objects by label at run time.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from .common import ApiModel, ArenaObject, Condition, conditions_field, free_form, observed_generation_field

ProviderType = Literal["openai", "claude", "gemini", "ollama", "vllm", "mock"]
ProviderPhase = Literal["Pending", "Ready", "Error"]


class SecretKeyReference(ApiModel):
    """One key of a Secret in the same namespace."""

    name: str = Field(min_length=1, description="Name of the Secret, in the same namespace.")
    key: str | None = Field(None, description="Key holding the API key; defaults to the type's usual variable "
                                              "(OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY).")


class Credential(ApiModel):
    """Where the provider's API key comes from (never inline: specs are readable by many)."""

    secret_ref: SecretKeyReference = Field(description="Secret key holding the API key.")


class ProviderDefaults(ApiModel):
    """Sampling parameters used when a scenario does not set its own."""

    temperature: float | None = Field(None, ge=0, le=2, description="Sampling temperature, 0 to 2.")
    max_tokens: int | None = Field(None, ge=1, description="Maximum tokens per response.")
    top_p: float | None = Field(None, ge=0, le=1, description="Nucleus sampling probability mass, 0 to 1.")


class Pricing(ApiModel):
    """Token prices, for the cost figures in results."""

    input_cost_per_1k: float | None = Field(None, alias="inputCostPer1K", ge=0,
                                            description="Cost per 1000 input (prompt) tokens.")
    output_cost_per_1k: float | None = Field(None, alias="outputCostPer1K", ge=0,
                                             description="Cost per 1000 output (completion) tokens.")


class ProviderSpec(ApiModel):
    """Desired state of a Provider."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [{
        "rule": "!has(self.mockConfig) || self.type == 'mock'",
        "message": "mockConfig is only allowed when type is 'mock'",
    }]})

    type: ProviderType = Field(description="API flavour: openai, claude, gemini, ollama, vllm or mock (canned "
                                           "responses, no network).")
    model: str | None = Field(None, description="Model name sent to the API, e.g. gpt-4o or claude-3-opus.")
    base_url: str | None = Field(None, alias="baseURL", pattern=r"^https?://",
                                 description="API base URL, for self-hosted or compatible endpoints; defaults to "
                                             "the type's public endpoint.")
    credential: Credential | None = Field(None, description="API key source; not needed for mock, or for ollama "
                                                            "and vllm without authentication.")
    defaults: ProviderDefaults | None = Field(None, description="Default sampling parameters.")
    pricing: Pricing | None = Field(None, description="Token prices used to compute costs.")
    mock_config: dict[str, Any] | None = free_form(
        "Inline mock responses for type mock, in the format of a PromptKit mock responses file (free-form).")

    @model_validator(mode="after")
    def _mock_config_for_mock(self) -> ProviderSpec:
        if self.mock_config is not None and self.type != "mock":
            raise ValueError(f"mockConfig is only allowed when type is 'mock' (type is '{self.type}')")
        return self


class ProviderStatus(ApiModel):
    """Observed state of a Provider."""

    phase: ProviderPhase | None = Field(None, description="Pending, Ready or Error.")
    conditions: list[Condition] = conditions_field("Ready (credentials found)")
    observed_generation: int | None = observed_generation_field()


class Provider(ArenaObject):
    """A Provider object as stored by the API server."""

    kind: Literal["Provider"] = Field("Provider", description="Kind.")
    spec: ProviderSpec = Field(description="Desired state.")
    status: ProviderStatus | None = Field(None, description="Observed state.")
