"""Load a PromptKit Arena bundle from a directory, collecting every problem with file, line and field."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from . import spec as s
from .assertions.guardrails import VALIDATORS
from .assertions.registry import KNOWN_TYPES, required_params
from .errors import BundleInvalid, BundleProblem, TemplateError
from .manifests import (
    Collector,
    Loaded,
    load_kind,
    manifest_id,
    read_manifest,
    register,
    report_unknown,
    suggest,
    validate_model,
)
from .templating import render

log = logging.getLogger(__name__)

ARENA_FILE_NAMES = (
    "config.arena.yaml", "config.arena.yml", "arena.yaml", "arena.yml", "config.yaml", "config.yml",
)
SCRIPTED_ROLES = ("user",)

M = TypeVar("M", bound=BaseModel)


@dataclass
class Bundle:
    """A validated bundle, ready to plan and run."""

    root: Path
    arena_file: Path
    arena: s.ArenaSpec
    prompt_configs: dict[str, s.PromptConfigSpec] = field(default_factory=dict)
    prompt_vars: dict[str, dict[str, Any]] = field(default_factory=dict)
    providers: dict[str, s.ProviderSpec] = field(default_factory=dict)
    provider_groups: dict[str, str] = field(default_factory=dict)
    scenarios: dict[str, s.ScenarioSpec] = field(default_factory=dict)
    scenario_files: dict[str, str] = field(default_factory=dict)
    tools: dict[str, s.ToolSpec] = field(default_factory=dict)
    personas: dict[str, s.PersonaSpec] = field(default_factory=dict)
    evals: dict[str, Any] = field(default_factory=dict)

    def prompt_for(self, scenario: s.ScenarioSpec) -> tuple[s.PromptConfigSpec | None, dict[str, Any]]:
        """The prompt config whose task_type matches the scenario's, with arena `vars` for it."""
        for prompt_id, prompt in self.prompt_configs.items():
            if scenario.task_type and prompt.task_type == scenario.task_type:
                return prompt, self.prompt_vars.get(prompt_id, {})
        return None, {}

    def variables_for(self, scenario: s.ScenarioSpec) -> dict[str, Any]:
        """Variables layered: prompt defaults → arena `vars` → scenario `variables`."""
        prompt, arena_vars = self.prompt_for(scenario)
        merged: dict[str, Any] = {}
        if prompt:
            merged.update({v.name: v.default for v in prompt.variables if v.default is not None})
        merged.update(arena_vars)
        merged.update(scenario.variables)
        return merged

    def role_provider(self, role_id: str) -> str | None:
        roles = self.arena.self_play.roles if self.arena.self_play else []
        return next((r.provider for r in roles if r.id == role_id), None)

    def judge_provider(self, name: str | None) -> str | None:
        judges = self.arena.judges
        if not judges:
            return None
        if name is None:
            return judges[0].provider
        return next((j.provider for j in judges if j.name == name), None)


def find_arena_file(path: Path) -> Path:
    """Resolve a file or directory to the arena config file, in upstream's lookup order."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise BundleInvalid([BundleProblem(str(path), 0, "", "no such file or directory")])
    for name in ARENA_FILE_NAMES:
        if (path / name).is_file():
            return path / name
    wanted = ", ".join(ARENA_FILE_NAMES)
    raise BundleInvalid([BundleProblem(str(path), 0, "", f"no arena config file found (looked for {wanted})")])


def _check_assertions(
    assertions: list[s.AssertionSpec], file: str, doc: Any, prefix: list[str | int], out: Collector
) -> None:
    for index, assertion in enumerate(assertions):
        where = [*prefix, index]
        kind = assertion.type
        if kind not in KNOWN_TYPES:
            out.add(file, doc, [*where, "type"], f"unknown assertion {kind!r}{suggest(kind, KNOWN_TYPES)}")
            continue
        for name in required_params(kind, assertion.params):
            out.add(file, doc, [*where, "params"], f"assertion {kind!r} needs params.{name}")


class BundleLoader:
    """Reads one bundle; `load()` returns a Bundle or raises BundleInvalid with every problem."""

    def __init__(self, path: Path) -> None:
        self.arena_file = find_arena_file(Path(path))
        self.root = self.arena_file.parent
        self.out = Collector(self.root)

    def load(self) -> Bundle:
        read = read_manifest(self.arena_file, "Arena", self.out)
        if read is None:
            raise BundleInvalid(self.out.problems)
        doc, raw = read
        file = self.out.rel(self.arena_file)
        arena = validate_model(s.ArenaSpec, raw, file, doc, ["spec"], self.out)
        if arena is None:
            raise BundleInvalid(self.out.problems)
        report_unknown(arena, file)
        if not arena.providers and not arena.provider_specs:
            self.out.add(file, doc, ["spec", "providers"], "at least one provider is required")
        bundle = Bundle(root=self.root, arena_file=self.arena_file, arena=arena)
        self._load_referenced(bundle, doc, file)
        self._cross_check(bundle, doc, file)
        if self.out.problems:
            raise BundleInvalid(self.out.problems)
        return bundle

    def _each(self, where: tuple[str, ...], kind: str, model: type[M],
              on_loaded: Callable[[Loaded, Any], None]) -> None:
        """Load every file the arena lists under `where` (e.g. spec.scenarios); a missing file is reported at
        the line that references it."""
        refs = self._arena_value(where)
        for index, ref in enumerate(refs):
            if not (self.root / ref.file).is_file():
                self.out.add(self._arena_rel, self._arena_doc, ["spec", *where, index, "file"],
                             f"{ref.file}: {kind} file not found")
                continue
            loaded = load_kind(self.root, ref.file, kind, model, self.out)
            if loaded is not None:
                on_loaded(loaded, ref)

    def _arena_value(self, where: tuple[str, ...]) -> list[Any]:
        value: Any = self._arena
        for key in where:
            value = getattr(value, key) if value is not None else None
        return list(value or [])

    def _load_referenced(self, bundle: Bundle, doc: Any, file: str) -> None:
        arena = bundle.arena
        where: dict[str, dict[str, str]] = {k: {} for k in ("prompt", "provider", "scenario", "tool", "persona")}

        def on_prompt(loaded: Loaded, ref: s.PromptConfigRef) -> None:
            loaded.id = ref.id or loaded.id
            register(bundle.prompt_configs, loaded, self.out, where["prompt"], "prompt config")
            bundle.prompt_vars[loaded.id] = ref.vars
            self._prompt_docs[loaded.id] = loaded

        def on_provider(loaded: Loaded, ref: s.ProviderRef) -> None:
            register(bundle.providers, loaded, self.out, where["provider"], "provider")
            bundle.provider_groups.setdefault(loaded.id, ref.group)
            self._check_mock_config(loaded)

        def on_scenario(loaded: Loaded, _ref: Any) -> None:
            register(bundle.scenarios, loaded, self.out, where["scenario"], "scenario")
            bundle.scenario_files.setdefault(loaded.id, loaded.file)
            self._scenario_docs[loaded.id] = loaded

        def on_tool(loaded: Loaded, _ref: Any) -> None:
            loaded.spec.name = loaded.id
            register(bundle.tools, loaded, self.out, where["tool"], "tool")

        def on_persona(loaded: Loaded, _ref: Any) -> None:
            register(bundle.personas, loaded, self.out, where["persona"], "persona")

        self._scenario_docs: dict[str, Loaded] = {}
        self._prompt_docs: dict[str, Loaded] = {}
        self._arena, self._arena_doc, self._arena_rel = arena, doc, file
        self._each(("prompt_configs",), "PromptConfig", s.PromptConfigSpec, on_prompt)
        self._each(("providers",), "Provider", s.ProviderSpec, on_provider)
        self._each(("scenarios",), "Scenario", s.ScenarioSpec, on_scenario)
        self._each(("tools",), "Tool", s.ToolSpec, on_tool)
        self._each(("self_play", "personas"), "Persona", s.PersonaSpec, on_persona)
        for ref in arena.evals:
            read = read_manifest(self.root / ref.file, "Eval", self.out)
            if read is not None:
                bundle.evals[manifest_id(read[0], None, self.root / ref.file)] = read[1]
        self._load_inline(bundle, doc, file, where)

    def _load_inline(self, bundle: Bundle, doc: Any, file: str, where: dict[str, dict[str, str]]) -> None:
        """`provider_specs`, `scenario_specs`, … : the same kinds written inside the arena file."""
        inline: list[tuple[str, type[BaseModel], dict[str, Any], str]] = [
            ("provider_specs", s.ProviderSpec, bundle.providers, "provider"),
            ("scenario_specs", s.ScenarioSpec, bundle.scenarios, "scenario"),
            ("tool_specs", s.ToolSpec, bundle.tools, "tool"),
            ("prompt_specs", s.PromptConfigSpec, bundle.prompt_configs, "prompt"),
        ]
        for key, model, target, kind in inline:
            for item_id, raw in getattr(bundle.arena, key).items():
                obj = validate_model(model, raw, file, doc, ["spec", key, item_id], self.out)
                if obj is None:
                    continue
                loaded = Loaded(str(item_id), obj, file, doc)
                if kind == "tool":
                    obj.name = obj.name or loaded.id
                register(target, loaded, self.out, where[kind], kind)
                if kind == "provider":
                    bundle.provider_groups.setdefault(loaded.id, "default")
                if kind == "scenario":
                    bundle.scenario_files.setdefault(loaded.id, file)
                    self._scenario_docs[loaded.id] = Loaded(loaded.id, obj, file, doc, ("spec", key, item_id))

    def _check_mock_config(self, loaded: Loaded) -> None:
        mock_file = loaded.spec.additional_config.get("mock_config")
        if loaded.spec.type == "mock" and mock_file and not (self.root / str(mock_file)).is_file():
            self.out.add(loaded.file, loaded.doc, ["spec", "additional_config", "mock_config"],
                         f"mock config file {mock_file!r} not found")

    def _cross_check(self, bundle: Bundle, doc: Any, file: str) -> None:
        arena = bundle.arena
        providers = bundle.providers
        for index, judge in enumerate(arena.judges):
            if judge.provider not in providers:
                self.out.add(file, doc, ["spec", "judges", index, "provider"],
                             f"unknown provider {judge.provider!r}{suggest(judge.provider, providers)}")
        roles = {}
        if arena.self_play:
            for index, role in enumerate(arena.self_play.roles):
                roles[role.id] = role.provider
                if role.provider not in providers:
                    self.out.add(file, doc, ["spec", "self_play", "roles", index, "provider"],
                                 f"unknown provider {role.provider!r}{suggest(role.provider, providers)}")
        _check_assertions(arena.globals.conversation_assertions, file, doc,
                          ["spec", "globals", "conversation_assertions"], self.out)
        for loaded in self._prompt_docs.values():
            self._check_prompt(bundle, loaded)
        for scenario_id, loaded in self._scenario_docs.items():
            self._check_scenario(bundle, scenario_id, loaded, roles)

    def _check_prompt(self, bundle: Bundle, loaded: Loaded) -> None:
        prompt: s.PromptConfigSpec = loaded.spec
        for index, tool in enumerate(prompt.allowed_tools):
            if tool not in bundle.tools:
                self.out.add(loaded.file, loaded.doc, ["spec", "allowed_tools", index],
                             f"unknown tool {tool!r}{suggest(tool, bundle.tools)}")
        for index, validator in enumerate(prompt.validators):
            if validator.type not in VALIDATORS:
                self.out.add(loaded.file, loaded.doc, ["spec", "validators", index, "type"],
                             f"unknown validator {validator.type!r}{suggest(validator.type, VALIDATORS)}")

    def _check_scenario(self, bundle: Bundle, scenario_id: str, loaded: Loaded, roles: dict[str, str]) -> None:
        scenario: s.ScenarioSpec = loaded.spec
        file, doc, spec = loaded.file, loaded.doc, loaded.prefix
        for index, provider in enumerate(scenario.providers or []):
            if provider not in bundle.providers:
                self.out.add(file, doc, [*spec, "providers", index],
                             f"unknown provider {provider!r}{suggest(provider, bundle.providers)}")
        task = scenario.task_type
        if task:
            matches = [p for p in bundle.prompt_configs.values() if p.task_type == task]
            if not matches:
                tasks = {p.task_type for p in bundle.prompt_configs.values()}
                self.out.add(file, doc, [*spec, "task_type"],
                             f"no prompt config has task_type {task!r}{suggest(task, tasks)}")
            elif len(matches) > 1:
                self.out.add(file, doc, [*spec, "task_type"],
                             f"task_type {task!r} matches {len(matches)} prompt configs; it must be unique")
            else:
                self._check_template(bundle, scenario, matches[0], file, doc, spec)
        for index, turn in enumerate(scenario.turns):
            where: list[str | int] = [*spec, "turns", index]
            if turn.role in roles:
                if turn.persona and turn.persona not in bundle.personas:
                    self.out.add(file, doc, [*where, "persona"],
                                 f"unknown persona {turn.persona!r}{suggest(turn.persona, bundle.personas)}")
            elif turn.role not in SCRIPTED_ROLES:
                known = [*SCRIPTED_ROLES, *roles]
                self.out.add(file, doc, [*where, "role"], f"unsupported role {turn.role!r}{suggest(turn.role, known)}")
            elif turn.content is None and not turn.parts:
                self.out.add(file, doc, [*where, "content"], "a user turn needs content or parts")
            _check_assertions(turn.assertions, file, doc, [*where, "assertions"], self.out)
        _check_assertions(scenario.conversation_assertions, file, doc,
                          [*spec, "conversation_assertions"], self.out)

    def _check_template(self, bundle: Bundle, scenario: s.ScenarioSpec, prompt: s.PromptConfigSpec, file: str,
                        doc: Any, spec: tuple[str | int, ...]) -> None:
        try:
            render(prompt.system_template, bundle.variables_for(scenario))
        except TemplateError as exc:
            self.out.add(file, doc, [*spec, "variables"], f"system_template of task {prompt.task_type!r}: {exc}")


def load_bundle(path: Path | str) -> Bundle:
    """Load and validate a bundle directory (or arena file); raises BundleInvalid listing every problem."""
    return BundleLoader(Path(path)).load()
