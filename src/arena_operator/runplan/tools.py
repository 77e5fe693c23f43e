"""Which tool handlers a run uses: ToolRegistry objects named by the job's Go-form toolRegistries, else those
selected by its toolRegistryOverride, replace same-name tools of the bundle (explicit names win; runplan.forms)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api import conditions as c
from ..api.arenajob import ArenaJobSpec
from ..api.common import parse_duration
from ..api.toolregistry import ToolRegistrySpec
from .selection import ResolutionError, as_model, format_selector, inventory, object_name, select_objects


def _matched_handlers(job_spec: ArenaJobSpec | Mapping[str, Any],
                      registries: list[Mapping[str, Any]]) -> list[tuple[str, Any]]:
    """(registry name, handler) for every handler of the selected registries; duplicate tool names raise."""
    job = as_model(ArenaJobSpec, job_spec, "ArenaJob spec")
    if job.tool_registries:
        where = "toolRegistries"
        by_name = {object_name(r): r for r in registries}
        names = list(dict.fromkeys(ref.name for ref in job.tool_registries))
        missing = [name for name in names if name not in by_name]
        if missing:
            raise ResolutionError(c.TOOL_REGISTRY_NOT_FOUND, f"toolRegistries: ToolRegistry {', '.join(missing)} "
                                                           f"not found ({inventory('ToolRegistry', registries)})")
        matched = [by_name[name] for name in names]
    elif job.tool_registry_override is not None:
        where = "toolRegistryOverride"
        selector = job.tool_registry_override.selector
        matched = select_objects(registries, selector)
        if not matched:
            raise ResolutionError(c.NO_TOOL_REGISTRY_MATCHED, f"toolRegistryOverride: no ToolRegistry matches "
                                                            f"{format_selector(selector)} "
                                                            f"({inventory('ToolRegistry', registries)})")
    else:
        return []
    seen: dict[str, str] = {}
    handlers = []
    for registry in matched:
        name = object_name(registry)
        spec = as_model(ToolRegistrySpec, registry.get("spec") or {}, f"ToolRegistry {name}")
        for handler in spec.handlers:
            here = f"ToolRegistry {name} (handler {handler.name})"
            if handler.tool.name in seen:
                raise ResolutionError(c.DUPLICATE_TOOL, f"{where}: tool {handler.tool.name} is defined "
                                                      f"by {seen[handler.tool.name]} and by {here}")
            seen[handler.tool.name] = here
            handlers.append((name, handler))
    return handlers


def resolve_tools(job_spec: ArenaJobSpec | Mapping[str, Any],
                  registries: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Tool name → engine ``ToolSpec`` fields (live, http) from the job's ``toolRegistries`` or
    ``toolRegistryOverride``.

    ``description`` and ``input_schema`` appear only when the registry sets them, so :func:`apply_to_bundle`
    keeps the bundle tool's own where the registry is silent. Raises :class:`ResolutionError`
    (NoToolRegistryMatched, ToolRegistryNotFound, DuplicateTool, InvalidSpec). Neither set → ``{}``.
    """
    tools: dict[str, dict[str, Any]] = {}
    for _registry, handler in _matched_handlers(job_spec, registries):
        http = handler.http_config
        tool: dict[str, Any] = {"name": handler.tool.name, "mode": "live", "http": {
            "url": http.endpoint, "method": http.method, "headers": dict(http.headers or {}),
            "timeout_ms": max(1, round(parse_duration(handler.timeout).total_seconds() * 1000)),
        }}
        if handler.tool.description is not None:
            tool["description"] = handler.tool.description
        if handler.tool.input_schema is not None:
            tool["input_schema"] = handler.tool.input_schema
        tools[handler.tool.name] = tool
    return tools


def resolved_tool_records(job_spec: ArenaJobSpec | Mapping[str, Any],
                          registries: list[Mapping[str, Any]]) -> list[dict[str, str]]:
    """``status.resolvedTools`` entries (name, registry, handler, endpoint), sorted by tool name."""
    records = [{"name": handler.tool.name, "registry": registry, "handler": handler.name,
                "endpoint": handler.http_config.endpoint} for registry, handler in _matched_handlers(job_spec,
                                                                                                     registries)]
    return sorted(records, key=lambda record: record["name"])


# -- applying to a loaded bundle -------------------------------------------------------------------------
