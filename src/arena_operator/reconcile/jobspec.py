"""An ArenaJob's spec read as one model whatever its form (documented or the Go operator's; runplan.forms has the
mapping and the precedence): the configuration it runs with, its source, its worker-pod settings, what this
operator cannot do — and the step that reports a spec setting one thing in both forms (SpecWarning)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..api import conditions as c
from ..api.arenaconfig import ArenaConfigSpec
from ..api.arenajob import ArenaJobSpec
from ..runplan.forms import effective_config, overlaps, source_name, unsupported_fields
from .outcome import Outcome

if TYPE_CHECKING:
    from .jobcontext import JobContext


def _config_spec(spec: ArenaJobSpec, config: dict[str, Any] | None) -> ArenaConfigSpec | None:
    return ArenaConfigSpec.model_validate(config["spec"]) if config and spec.config_ref else None


def job_config(spec: ArenaJobSpec, config: dict[str, Any] | None) -> ArenaConfigSpec:
    """What the job runs with: its ArenaConfig (``config``, from the index) with the job's own settings over it,
    or, with sourceRef, its own."""
    return effective_config(spec, _config_spec(spec, config))


def job_source(spec: ArenaJobSpec, config: dict[str, Any] | None) -> str | None:
    """The ArenaSource the job runs (None while its ArenaConfig is unknown); the config is read as stored, as it
    may not be valid (yet)."""
    if spec.source_ref is not None or not config:
        return source_name(spec, None)
    return ((config.get("spec") or {}).get("sourceRef") or {}).get("name")


async def step_forms(ctx: JobContext, out: Outcome) -> None:
    """SpecWarning=True while the spec sets a thing in both forms, saying which wins; a Warning event once."""
    notes = overlaps(ctx.spec)
    before = c.get_condition(ctx.status.get("conditions"), c.SPEC_WARNING)
    if notes:
        message = "; ".join(notes)
        out.condition(c.SPEC_WARNING, True, c.BOTH_FORMS_PRESENT, message)
        if (before or {}).get("message") != message:
            out.event("Warning", c.BOTH_FORMS_PRESENT, message)
    elif before is not None:
        out.remove_condition(c.SPEC_WARNING)


def unsupported_reason(spec: ArenaJobSpec) -> str | None:
    """Say so plainly rather than run something other than what the manifest asks for."""
    if spec.type not in ("evaluation", "datagen", "loadtest"):
        return f"spec.type {spec.type!r} is not implemented by this operator version yet"
    return unsupported_fields(spec)


def output_of(spec: ArenaJobSpec) -> dict[str, Any]:
    """``spec.output`` in wire form (``{}`` without one), as the worker Job takes it."""
    return spec.output.model_dump(by_alias=True, exclude_none=True) if spec.output else {}


def stdio_commands_of(spec: ArenaJobSpec) -> tuple[str, ...]:
    """``spec.mcp.allowStdioCommands``: the commands the job's worker pods may run as stdio MCP servers."""
    return tuple(spec.mcp.allow_stdio_commands or ()) if spec.mcp else ()


def exec_tools_of(spec: ArenaJobSpec) -> bool:
    """``spec.exec.allowTools``: whether the job's worker pods may run the bundle's exec tools."""
    return bool(spec.exec and spec.exec.allow_tools)


def pod_overrides_of(spec: ArenaJobSpec) -> dict[str, Any] | None:
    """``spec.workers.podOverrides`` in wire form, or None."""
    overrides = spec.workers.pod_overrides if spec.workers else None
    return overrides.model_dump(mode="json", by_alias=True, exclude_none=True) if overrides else None
