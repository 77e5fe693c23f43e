"""ToolRegistry: tool handlers (HTTP endpoints) that replace same-name tools of a bundle at run time.

A bundle declares tools with mock or default endpoints; a ToolRegistry selected by an ArenaJob's
``toolRegistryOverride`` points them at real services per environment without editing the bundle.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from .common import (
    ApiModel,
    ArenaObject,
    Condition,
    Duration,
    check_type_block,
    conditions_field,
    free_form,
    observed_generation_field,
    type_block_rules,
)

HandlerType = Literal["http"]
RegistryPhase = Literal["Pending", "Ready", "Error"]
HANDLER_BLOCKS: dict[str, str] = {"http": "httpConfig"}


class ToolDefinition(ApiModel):
    """The tool as the model sees it."""

    name: str = Field(min_length=1, description="Tool name; replaces the bundle's tool of the same name.")
    description: str | None = Field(None, description="What the tool does, shown to the model.")
    input_schema: dict[str, Any] | None = free_form("JSON Schema of the tool's arguments (free-form).")


class HTTPConfig(ApiModel):
    """How a tool call becomes an HTTP request: the arguments are sent as JSON, the response body is the result."""

    endpoint: str = Field(pattern=r"^https?://", description="URL called for each tool call.")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = Field("POST", description="HTTP method.")
    headers: dict[str, str] | None = Field(None, description="Extra request headers.")


class ToolHandler(ApiModel):
    """One handler: a tool definition and where calls to it go."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": type_block_rules(HANDLER_BLOCKS)})

    name: str = Field(min_length=1, description="Handler name, unique within the registry.")
    type: HandlerType = Field(description="Handler type: http (the block httpConfig must be set).")
    tool: ToolDefinition = Field(description="The tool this handler implements.")
    http_config: HTTPConfig | None = Field(None, description="HTTP settings, for type http.")
    timeout: Duration = Field("10s", description="Time limit for one tool call, e.g. 10s.")

    @model_validator(mode="after")
    def _block_for_type(self) -> ToolHandler:
        check_type_block(self, HANDLER_BLOCKS)
        return self


class ToolRegistrySpec(ApiModel):
    """Desired state of a ToolRegistry."""

    # maxItems bounds the API server's static cost estimate of the per-handler CEL rule.
    handlers: list[ToolHandler] = Field(
        min_length=1, max_length=256,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        description="Tool handlers (1 to 256); names are unique.")

    @field_validator("handlers")
    @classmethod
    def _unique_handler_names(cls, handlers: list[ToolHandler]) -> list[ToolHandler]:
        names = [handler.name for handler in handlers]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"handler names must be unique: {', '.join(duplicates)} repeated")
        return handlers


class DiscoveredTool(ApiModel):
    """A tool the registry offers, as recorded by the operator."""

    name: str = Field(description="Tool name.")
    handler_name: str | None = Field(None, description="The handler serving it.")
    description: str | None = Field(None, description="The tool's description.")
    endpoint: str | None = Field(None, description="The endpoint calls are sent to.")


class ToolRegistryStatus(ApiModel):
    """Observed state of a ToolRegistry."""

    phase: RegistryPhase | None = Field(None, description="Pending, Ready or Error.")
    conditions: list[Condition] = conditions_field("Ready")
    discovered_tools: list[DiscoveredTool] | None = Field(None, description="Tools this registry offers.")
    observed_generation: int | None = observed_generation_field()


class ToolRegistry(ArenaObject):
    """A ToolRegistry object as stored by the API server."""

    kind: Literal["ToolRegistry"] = Field("ToolRegistry", description="Kind.")
    spec: ToolRegistrySpec = Field(description="Desired state.")
    status: ToolRegistryStatus | None = Field(None, description="Observed state.")
