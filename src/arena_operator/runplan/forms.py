"""The two forms of an ArenaJob — the documented one and the Go operator's current one — mapped onto one model.

Everything downstream (loading the bundle, resolving providers and tools, planning, the worker pods) reads the
job through these functions, so both forms behave identically; the operator and ``arena run job.yaml`` alike.

Precedence, when a manifest sets both forms of one thing (the README's "Coming from the Go operator" says the
same, and the operator reports every overlap in the job's ``SpecWarning`` condition):

- ``configRef`` or ``sourceRef``: exactly one (the CRD and the model refuse both or neither). With ``sourceRef``
  the job's configuration is its own: ``sourceRef``, ``arenaFile`` (default ``config.arena.yaml``), ``trials``
  (default 1), and the ArenaConfig defaults for the rest (concurrency 4, no unit timeout, one worker).
- ``trials``, ``arenaFile`` on a job with ``configRef``: the job's value wins over the ArenaConfig's.
- providers, per group: ``providers[group]`` (explicit references) wins over ``providerOverrides[group]`` and
  ``providerOverrides["*"]`` (selectors), which win over the ArenaConfig's ``providers[group]`` and
  ``providerRef``. Explicit references beat selectors.
- tools: ``toolRegistries`` (explicit references) wins over ``toolRegistryOverride`` (a selector); they are not
  merged.
- ``suspend`` or ``cancelled``: either one cancels (there is nothing to pick).
"""

from __future__ import annotations

from ..api.arenaconfig import ArenaConfigSpec
from ..api.arenajob import ArenaJobSpec
from ..api.compat import DEFAULT_ARENA_FILE
from .providers import WILDCARD

GLOB_CHARACTERS = frozenset("*?[")


def effective_config(job: ArenaJobSpec, config: ArenaConfigSpec | None) -> ArenaConfigSpec:
    """The configuration a job runs with: its ArenaConfig with the job's own trials and arenaFile over it, or,
    for a job with ``sourceRef``, one made from the job alone."""
    if job.source_ref is not None:
        return ArenaConfigSpec(source_ref=job.source_ref, arena_file=job.arena_file or DEFAULT_ARENA_FILE,
                               trials=job.trials or 1)
    if config is None:
        raise ValueError("a job with configRef needs its ArenaConfig")
    update = {key: value for key, value in (("trials", job.trials), ("arena_file", job.arena_file))
              if value is not None}
    return config.model_copy(update=update)


def source_name(job: ArenaJobSpec, config: ArenaConfigSpec | None) -> str | None:
    """The ArenaSource a job runs: its own sourceRef, else its ArenaConfig's (None while that is unknown)."""
    if job.source_ref is not None:
        return job.source_ref.name
    return config.source_ref.name if config is not None else None


def overlaps(job: ArenaJobSpec) -> list[str]:
    """What the job sets in both forms, each with the form that wins; empty when nothing overlaps."""
    notes = []
    if job.providers and job.provider_overrides:
        named = sorted(job.providers)
        also = [group for group in sorted(job.provider_overrides) if group in job.providers or group == WILDCARD]
        covered = [g for g in also if g != WILDCARD]
        if covered or WILDCARD in job.provider_overrides:
            shadow = ", ".join(f"providerOverrides.{g}" for g in also)
            notes.append(f"spec.providers names group(s) {', '.join(named)}: for those it wins over {shadow}; "
                         "providerOverrides applies only to the groups spec.providers does not name")
        else:
            notes.append(f"spec.providers (groups {', '.join(named)}) and spec.providerOverrides (groups "
                         f"{', '.join(sorted(job.provider_overrides))}) are both set; they name different groups, "
                         "so each applies to its own")
    if job.tool_registries and job.tool_registry_override:
        names = ", ".join(ref.name for ref in job.tool_registries)
        notes.append(f"spec.toolRegistries ({names}) wins over spec.toolRegistryOverride, which is ignored")
    return notes


def unsupported_fields(job: ArenaJobSpec) -> str | None:
    """A Go-form setting this operator cannot honour, said plainly (None when there is none). agentRef entries
    and Providers of other namespaces are refused where providers are resolved (runplan.providers)."""
    if job.arena_file and GLOB_CHARACTERS & set(job.arena_file):
        return (f"spec.arenaFile {job.arena_file!r} is a glob pattern; this operator runs one arena file: name "
                "it exactly")
    return None
