"""Pack eval definitions: upstream's EvalDef as `spec.pack_evals[]` of the arena file and a compiled pack
(`pack_file`, *.pack.json) write it, checked when the bundle loads (a known eval type and params, a known trigger,
unique ids), merged as upstream merges them, and what the run flags select."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from . import spec as s
from .assertions.registry import param_problems, suggest, type_problem
from .errors import BundleProblem
from .manifests import OUTSIDE_BUNDLE, Collector, escapes, validate_model
from .yamlsrc import YamlSyntaxError, load_yaml_file

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
    """Upstream's collectAllEvalDefs: a compiled pack's evals (`pack_file`: its `evals`, each prompt's `evals`
    overriding them by id), then the arena file's `pack_evals` over those — each checked: a known eval type and
    params, a known trigger, ids unique within their list."""
    extra = arena.model_extra or {}
    defs = _pack_file_evals(extra.get("pack_file"), file, doc, out)
    return resolve(defs, _checked(extra.get("pack_evals"), file, doc, ["spec", "pack_evals"], out))


def resolve(base: list[PackEvalDef], overrides: list[PackEvalDef]) -> list[PackEvalDef]:
    """Upstream's ResolveEvals: an override replaces the eval of its id in place; new ids follow."""
    by_id = {d.id: d for d in overrides}
    merged = [by_id.get(d.id, d) for d in base]
    known = {d.id for d in base}
    return merged + [d for d in overrides if d.id not in known]


def _pack_file_evals(ref: Any, file: str, doc: Any, out: Collector) -> list[PackEvalDef]:
    if ref is None:
        return []
    where = ["spec", "pack_file"]
    if not isinstance(ref, str) or not ref or escapes(out.root, ref):
        out.add(file, doc, where, f"pack_file {ref!r} {OUTSIDE_BUNDLE}")
        return []
    path = out.root / ref
    if not path.is_file():
        out.add(file, doc, where, f"pack_file {ref!r} not found")
        return []
    pack_rel = out.rel(path)
    try:
        pack = load_yaml_file(path)  # JSON is YAML: positions for every field
    except YamlSyntaxError as exc:
        out.problems.append(BundleProblem(pack_rel, exc.line, "", str(exc), exc.column))
        return []
    if not isinstance(pack, dict):
        out.add(pack_rel, pack, [], "a compiled pack must be a JSON object")
        return []
    defs = _checked(pack.get("evals"), pack_rel, pack, ["evals"], out)
    prompts = pack.get("prompts")
    for prompt_id, prompt in prompts.items() if isinstance(prompts, dict) else ():
        if isinstance(prompt, dict):
            defs = resolve(defs, _checked(prompt.get("evals"), pack_rel, pack, ["prompts", prompt_id, "evals"], out))
    return defs


def _checked(raw: Any, file: str, doc: Any, prefix: list[str | int], out: Collector) -> list[PackEvalDef]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        out.add(file, doc, prefix, f"{prefix[-1]} must be a list of evals")
        return []
    defs, seen = [], set()
    for index, item in enumerate(raw):
        where: list[str | int] = [*prefix, index]
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
