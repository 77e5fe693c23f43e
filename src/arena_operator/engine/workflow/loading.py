"""Load-time checks of a bundle's workflow and skills, reported with file, line and field like every other
bundle problem."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..manifests import Collector
from .skills import SkillRegistry
from .spec import problems, warnings

if TYPE_CHECKING:
    from ..bundle import Bundle
    from ..manifests import Loaded


def _composition_names(bundle: Bundle) -> set[str] | None:
    declared = getattr(bundle.arena, "compositions", None)
    if declared is None:
        declared = (bundle.arena.model_extra or {}).get("compositions")
    return set(declared) if isinstance(declared, dict) else None


def check_machinery(bundle: Bundle, file: str, doc: Any, scenarios: list[Loaded], out: Collector) -> None:
    """The workflow against the bundle's prompts; each scenario's task_type against the workflow's states; the
    skill sources (directories inside the bundle, valid SKILL.md files)."""
    workflow = bundle.arena.workflow
    if bundle.arena.skills:
        bundle.skills = SkillRegistry.load(bundle.arena.skills, bundle.arena_file.parent, bundle.root, file, doc,
                                           out)
    if workflow is None:
        return
    tasks = {p.task_type for p in bundle.prompt_configs.values() if p.task_type}
    for where, message in problems(workflow, tasks, _composition_names(bundle)):
        out.add(file, doc, ["spec", "workflow", *where], message)
    for where, message in warnings(workflow):
        out.warn(file, doc, ["spec", "workflow", *where], message)
    if workflow.entry not in workflow.states:
        return
    for loaded in scenarios:
        try:
            workflow.start_state(loaded.spec.task_type)
        except ValueError as exc:
            out.add(loaded.file, loaded.doc, [*loaded.prefix, "task_type"], str(exc))
