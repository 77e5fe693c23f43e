"""Pack eval definitions: upstream's EvalDef as `spec.pack_evals[]` of the arena file writes it, checked when the
bundle loads (a known eval type and params, a known trigger, unique ids), and what the run flags select."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from . import spec as s
from .assertions.registry import param_problems, suggest, type_problem
from .manifests import Collector, validate_model

TURN_TRIGGERS = ("every_turn", "sample_turns")
SESSION_TRIGGERS = ("on_session_complete", "sample_sessions")
# Valid upstream, but upstream's arena never fires them for pack evals (loaded, warned about, not run).
IDLE_TRIGGERS = ("on_conversation_complete", "on_workflow_step")
TRIGGERS = (*TURN_TRIGGERS, *SESSION_TRIGGERS, *IDLE_TRIGGERS)


class Threshold(s.Model):
    passed: bool | None = None
    min_score: float | None = None
    max_score: float | None = None


class PackEvalDef(s.Model):
    """Upstream's EvalDef."""

    id: str = Field(min_length=1)
    type: str
    trigger: str
    params: dict[str, Any] = Field(default_factory=dict)
    description: str | None = None
    enabled: bool = True
    sample_percentage: float | None = Field(default=None, ge=0, le=100)
    threshold: Threshold | None = None
    message: str | None = None
    when: s.When | None = None
    metric: dict[str, Any] | None = None
    groups: list[str] = Field(default_factory=list)


def load_pack_evals(arena: s.ArenaSpec, file: str, doc: Any, out: Collector) -> list[PackEvalDef]:
    """The arena file's `pack_evals`, checked: a known eval type and its params, a known trigger, unique ids."""
    raw = (arena.model_extra or {}).get("pack_evals")
    if raw is None:
        return []
    if not isinstance(raw, list):
        out.add(file, doc, ["spec", "pack_evals"], "pack_evals must be a list of evals")
        return []
    defs, seen = [], set()
    for index, item in enumerate(raw):
        where: list[str | int] = ["spec", "pack_evals", index]
        found = validate_model(PackEvalDef, item, file, doc, where, out)
        if found is None:
            continue
        if problem := type_problem(found.type):
            out.add(file, doc, [*where, "type"], problem.replace("unknown assertion", "unknown eval type"))
            continue
        if found.trigger not in TRIGGERS:
            out.add(file, doc, [*where, "trigger"], f"unknown trigger {found.trigger!r}"
                    f"{suggest(found.trigger, TRIGGERS)}; one of {', '.join(TRIGGERS)}")
            continue
        if found.trigger in IDLE_TRIGGERS:
            out.warn(file, doc, [*where, "trigger"], f"trigger {found.trigger!r}: upstream's arena does not run "
                                                     "pack evals on it, so this eval never runs")
        if found.id in seen:
            out.add(file, doc, [*where, "id"], f"duplicate pack eval id {found.id!r}")
            continue
        seen.add(found.id)
        errors, warnings = param_problems(s.AssertionSpec(type=found.type, params=found.params))
        for message in errors:
            out.add(file, doc, [*where, "params"], message)
        for message in warnings:
            out.warn(file, doc, [*where, "params"], message)
        defs.append(found)
    return defs


def select(defs: list[PackEvalDef], skip: bool, types: list[str] | None) -> list[PackEvalDef]:
    """What `--skip-pack-evals` and `--eval-types` leave (upstream's filterEvalDefs: by exact type name)."""
    if skip:
        return []
    return [d for d in defs if d.type in types] if types else list(defs)
