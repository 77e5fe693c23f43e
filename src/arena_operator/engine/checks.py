"""Cross-file checks of a loaded bundle: assertion types and params, prompt validators and tools, scenario roles,
personas, task types and templates, and unknown keys (warnings; errors with `strict`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from . import spec as s
from .a2a import sanitize
from .assertions.registry import param_problems, suggest, tool_references, type_problem, validator_problem
from .duplex import check_duplex
from .errors import TemplateError
from .manifests import Collector, Loaded
from .templating import render
from .workflow.session import template_defaults

SCRIPTED_ROLES = ("user",)
# Namespaced tools the runtime provides itself (memory, workflow, media generation, A2A agents, skills).
SYSTEM_TOOL_PREFIXES = ("memory__", "workflow__", "image__", "video__", "skill__")
# Keys upstream's schemas know that the engine models loosely (kept, not warned about).
EXTRA_KEYS: dict[type[BaseModel], frozenset[str]] = {
    s.ToolPolicy: frozenset({"max_rounds", "max_cost_usd", "max_identical_tool_calls"}),
}


def arena_entries(arena: s.ArenaSpec, key: str) -> list[dict[str, Any]]:
    value = (arena.model_extra or {}).get(key)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


class ToolNames:
    """Which `allowed_tools` names can resolve: bundle tools and `runtime.tools` bindings, declared MCP servers
    (`mcp_servers`, `runtime.mcp_servers`) and A2A agents, system tools; any bare name when a source-backed MCP
    server (its tools are only known at run time) is declared."""

    def __init__(self, arena: s.ArenaSpec, tools: dict[str, s.ToolSpec]) -> None:
        runtime = (arena.model_extra or {}).get("runtime")
        runtime = runtime if isinstance(runtime, dict) else {}
        bound = runtime.get("tools") if isinstance(runtime.get("tools"), dict) else {}
        servers = arena_entries(arena, "mcp_servers") + [m for m in runtime.get("mcp_servers") or []
                                                          if isinstance(m, dict)]
        self.tools = {**tools, **{str(name): None for name in bound}}
        self.mcp = {str(m.get("name")) for m in servers if m.get("name")}
        self.dynamic = any(m.get("source") for m in servers)
        agents = arena_entries(arena, "a2a_agents")
        # An agent's tools are named after its card (`a2a__<card name>__<skill>`), a remote card only known at
        # run time: with a remote agent (`url`) any a2a__ name may resolve.
        self.agents = {str(a.get("name")) for a in agents if a.get("name")} | {
            sanitize(str(a["card"].get("name") or "")) for a in agents if isinstance(a.get("card"), dict)}
        self.remote_agents = any(a.get("url") for a in agents)

    def known(self) -> str:
        """`the bundle's tools: a, b` — what a misspelt name could have meant."""
        shown = sorted(self.tools)
        more = f", … ({len(shown)} in all)" if len(shown) > 10 else ""
        return f"the bundle's tools: {', '.join(shown[:10])}{more}" if shown else "the bundle defines no tools"

    def assertion_problem(self, name: str) -> str | None:
        """As `problem`, but a bare name may be any declared MCP server's tool (assertions see the names the model
        called, and a server's tools are only listed once it runs)."""
        if self.mcp and not name.startswith(("mcp__", "a2a__")):
            return None
        return self.problem(name)

    def problem(self, name: str) -> str | None:
        if name in self.tools or name.startswith(SYSTEM_TOOL_PREFIXES):
            return None
        if self.remote_agents and name.startswith("a2a__"):
            return None
        for prefix, known, what in (("mcp__", self.mcp, "spec.mcp_servers"), ("a2a__", self.agents,
                                                                              "spec.a2a_agents")):
            if name.startswith(prefix):
                owner = name[len(prefix):].split("__", 1)[0]
                if owner in known:
                    return None
                return f"unknown tool {name!r}: {owner!r} is not in {what}{suggest(owner, known)}"
        if self.dynamic:
            return None
        return f"unknown tool {name!r}{suggest(name, self.tools)}"


def check_assertions(assertions: list[s.AssertionSpec], file: str, doc: Any, prefix: list[str | int],
                     out: Collector, names: ToolNames | None = None) -> None:
    """Types and params of each assertion; with `names`, also the tools it names (None: `--schema-only`)."""
    for index, assertion in enumerate(assertions):
        where = [*prefix, index]
        warn_unknown_keys(assertion, file, doc, where, out)
        problem = type_problem(assertion.type)
        if problem:
            out.add(file, doc, [*where, "type"], problem)
            continue
        errors, warnings = param_problems(assertion)
        for message in errors:
            out.add(file, doc, [*where, "params"], message)
        for message in warnings:  # upstream loads these and the eval fails (or ignores the param) at run time
            out.warn(file, doc, [*where, "params"], message)
        for key in ("min_score", "max_score"):
            if getattr(assertion, key) is not None:
                out.warn(file, doc, [*where, key], f"upstream's schema has no {key} here; put it under params")
        for ref in tool_references(assertion) if names is not None else ():
            if problem := names.assertion_problem(ref.tool):
                report = out.add if ref.effect == "never passes" else out.warn
                report(file, doc, [*where, *ref.path], f"{problem}: {names.known()}; this assertion {ref.effect}")


def warn_unknown_keys(model: BaseModel, file: str, doc: Any, where: list[str | int], out: Collector) -> None:
    fields = set(type(model).model_fields)
    for key in sorted(model.model_extra or {}):
        if key not in EXTRA_KEYS.get(type(model), ()):
            out.warn(file, doc, [*where, key], f"unknown key {key!r}{suggest(str(key), fields)}")


def check_prompt(loaded: Loaded, names: ToolNames | None, out: Collector) -> None:
    """Validator types; with `names` also the allowed_tools (None: `--schema-only`)."""
    prompt: s.PromptConfigSpec = loaded.spec
    for index, tool in enumerate(prompt.allowed_tools):
        if names is not None and (problem := names.problem(tool)):
            out.add(loaded.file, loaded.doc, ["spec", "allowed_tools", index], problem)
    for index, validator in enumerate(prompt.validators):
        if problem := validator_problem(validator.type):
            out.add(loaded.file, loaded.doc, ["spec", "validators", index, "type"], problem)


class ScenarioChecker:
    """A scenario's keys, roles and assertions; with `references` also what it names elsewhere in the bundle
    (providers, personas, the prompt of its task_type and its template variables, tools): off for `--schema-only`."""

    def __init__(self, bundle: Any, roles: dict[str, str], out: Collector, names: ToolNames | None = None,
                 references: bool = True) -> None:
        self.bundle = bundle
        self.roles = roles
        self.out = out
        self.names = names if references else None
        self.references = references

    def check(self, loaded: Loaded) -> None:
        bundle, out = self.bundle, self.out
        scenario: s.ScenarioSpec = loaded.spec
        file, doc, spec = loaded.file, loaded.doc, list(loaded.prefix)
        warn_unknown_keys(scenario, file, doc, spec, out)
        warn_unknown_keys(scenario.tool_policy, file, doc, [*spec, "tool_policy"], out)
        check_duplex(scenario, file, doc, spec, out)
        for index, provider in enumerate(scenario.providers or [] if self.references else []):
            if provider not in bundle.providers:
                out.add(file, doc, [*spec, "providers", index],
                        f"unknown provider {provider!r}{suggest(provider, bundle.providers)}")
        if self.references:
            self._check_task(scenario, file, doc, spec)
        for index, turn in enumerate(scenario.turns):
            where: list[str | int] = [*spec, "turns", index]
            warn_unknown_keys(turn, file, doc, where, out)
            if turn.role in self.roles:
                if self.references and turn.persona and turn.persona not in bundle.personas:
                    out.add(file, doc, [*where, "persona"],
                            f"unknown persona {turn.persona!r}{suggest(turn.persona, bundle.personas)}")
            elif turn.role not in SCRIPTED_ROLES:
                known = [*SCRIPTED_ROLES, *self.roles]
                out.add(file, doc, [*where, "role"], f"unsupported role {turn.role!r}{suggest(turn.role, known)}")
            elif turn.content is None and not turn.parts:
                out.add(file, doc, [*where, "content"], "a user turn needs content or parts")
            check_assertions(turn.assertions, file, doc, [*where, "assertions"], out, self.names)
        check_assertions(scenario.conversation_assertions, file, doc, [*spec, "conversation_assertions"], out,
                         self.names)

    def _check_task(self, scenario: s.ScenarioSpec, file: str, doc: Any, spec: list[str | int]) -> None:
        task = scenario.task_type
        if not task:
            return
        bundle = self.bundle
        matches = [p for p in bundle.prompt_configs.values() if p.task_type == task]
        if not matches:
            tasks = {p.task_type for p in bundle.prompt_configs.values()}
            self.out.add(file, doc, [*spec, "task_type"],
                         f"no prompt config has task_type {task!r}{suggest(task, tasks)}")
        elif len(matches) > 1:
            self.out.add(file, doc, [*spec, "task_type"],
                         f"task_type {task!r} matches {len(matches)} prompt configs; it must be unique")
        else:
            try:
                render(matches[0].system_template,
                       {**template_defaults(bundle.arena.workflow), **bundle.variables_for(scenario)})
            except TemplateError as exc:
                self.out.add(file, doc, [*spec, "variables"], f"system_template of task {task!r}: {exc}")
