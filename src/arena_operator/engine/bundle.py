"""Load a PromptKit Arena bundle from a directory, collecting every problem with file, line and field."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from . import spec as s
from .a2a import check_agents
from .checks import ScenarioChecker, ToolNames, check_assertions, check_prompt
from .composition import Compositions, check_compositions
from .errors import BundleInvalid, BundleProblem
from .evalspec import EvalEntry, load_evals
from .manifests import (
    OUTSIDE_BUNDLE,
    Collector,
    Loaded,
    escapes,
    load_kind,
    read_manifest,
    register,
    report_unknown,
    suggest,
    validate_model,
)
from .mcp_checks import check_mcp_servers
from .media_check import check_media
from .packeval_spec import PackEvalDef, load_pack_evals
from .providers.replay import check_replay_providers, used_providers
from .recording import check_recording_config
from .workflow.loading import check_machinery
from .workflow.skills import SkillRegistry

log = logging.getLogger(__name__)

ARENA_FILE_NAMES = (
    "config.arena.yaml", "config.arena.yml", "arena.yaml", "arena.yml", "config.yaml", "config.yml",
)
MATRIX_ROLES = ("llm", "image")  # upstream: only Predict-shaped providers join the run matrix

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
    pack_evals: list[PackEvalDef] = field(default_factory=list)  # spec.pack_evals (packevals.py)
    eval_runs: dict[str, EvalEntry] = field(default_factory=dict)  # loaded evals with their recordings
    # Providers of other roles (tts, stt, embedding, inference): loaded, never in the run matrix.
    service_providers: dict[str, s.ProviderSpec] = field(default_factory=dict)
    warnings: list[BundleProblem] = field(default_factory=list)
    compositions: Compositions = field(default_factory=Compositions)  # the arena file's `compositions:`
    skills: SkillRegistry | None = None  # the arena file's `skills:`, when it declares any

    def prompt_for(self, scenario: s.ScenarioSpec, task_type: str | None = None,
                   ) -> tuple[s.PromptConfigSpec | None, dict[str, Any]]:
        """The prompt config whose task_type matches the scenario's (or `task_type`: a workflow state's
        prompt_task), with arena `vars` for it."""
        task = task_type or scenario.task_type
        for prompt_id, prompt in self.prompt_configs.items():
            if task and prompt.task_type == task:
                return prompt, self.prompt_vars.get(prompt_id, {})
        return None, {}

    def variables_for(self, scenario: s.ScenarioSpec, task_type: str | None = None) -> dict[str, Any]:
        """Variables layered: prompt defaults → arena `vars` → scenario `variables`."""
        prompt, arena_vars = self.prompt_for(scenario, task_type)
        merged: dict[str, Any] = {}
        if prompt:
            merged.update({v.name: v.default for v in prompt.variables if v.default is not None})
        merged.update(arena_vars)
        merged.update(scenario.variables)
        return merged

    def role_provider(self, role_id: str) -> str | None:
        roles = self.arena.self_play.roles if self.arena.self_play else []
        return next((r.provider for r in roles if r.id == role_id), None)

    @property
    def judges(self) -> dict[str, str]:
        """Judge name → provider id: `spec.judges`, then the inline `spec.judge_specs`."""
        found = {j.name: j.provider for j in self.arena.judges}
        found.update({name: j.provider for name, j in self.arena.judge_specs.items()})
        return found

    def judge_provider(self, name: str | None) -> str | None:
        judges = self.judges
        if not judges:
            return None
        if name is None:
            return next(iter(judges.values()))
        return judges.get(name)


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


class BundleLoader:
    """Reads one bundle; `load()` returns a Bundle or raises BundleInvalid with every problem."""

    def __init__(self, path: Path, strict: bool = False, schema_only: bool = False, log_warnings: bool = True) -> None:
        self.arena_file = find_arena_file(Path(path))
        self.root = self.arena_file.parent
        self.out = Collector(self.root)
        self.strict = strict
        self.references = not schema_only  # schema_only: each file against its model, no cross-file checks
        self.log_warnings = log_warnings

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
        check_mcp_servers(arena, file, doc, self.root, self.out)
        if not arena.providers and not arena.provider_specs:
            self.out.add(file, doc, ["spec", "providers"], "at least one provider is required")
        bundle = Bundle(root=self.root, arena_file=self.arena_file, arena=arena)
        self._load_referenced(bundle, doc, file)
        self._cross_check(bundle, doc, file)
        if self.strict:
            self.out.problems.extend(self.out.warnings)
        if self.out.problems:
            raise BundleInvalid(self.out.problems)
        bundle.warnings = list(self.out.warnings)
        for warning in bundle.warnings if self.log_warnings else ():
            log.warning("%s", warning)
        return bundle

    def _each(self, where: tuple[str, ...], kind: str, model: type[M],
              on_loaded: Callable[[Loaded, Any], None]) -> None:
        """Load every file the arena lists under `where` (e.g. spec.scenarios); a missing file is reported at
        the line that references it."""
        refs = self._arena_value(where)
        for index, ref in enumerate(refs):
            if escapes(self.root, ref.file):
                self.out.add(self._arena_rel, self._arena_doc, ["spec", *where, index, "file"],
                             f"{ref.file}: {kind} file {OUTSIDE_BUNDLE}")
                continue
            if not (self.root / ref.file).is_file():
                # `--schema-only` checks the files that are there, as upstream's does (which reads none).
                report = self.out.add if self.references else self.out.warn
                report(self._arena_rel, self._arena_doc, ["spec", *where, index, "file"],
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
            if loaded.spec.role not in MATRIX_ROLES:
                register(bundle.service_providers, loaded, self.out, where["provider"], "provider")
                return
            register(bundle.providers, loaded, self.out, where["provider"], "provider")
            bundle.provider_groups.setdefault(loaded.id, ref.group)
            self._check_mock_config(loaded)
            if loaded.spec.type == "replay":
                self._replays.append(loaded)

        def on_scenario(loaded: Loaded, _ref: Any) -> None:
            register(bundle.scenarios, loaded, self.out, where["scenario"], "scenario")
            bundle.scenario_files.setdefault(loaded.id, loaded.file)
            self._scenario_docs[loaded.id] = loaded

        def on_tool(loaded: Loaded, _ref: Any) -> None:
            loaded.spec.name = loaded.id
            self._tool_docs[loaded.id] = loaded
            register(bundle.tools, loaded, self.out, where["tool"], "tool")

        def on_persona(loaded: Loaded, _ref: Any) -> None:
            register(bundle.personas, loaded, self.out, where["persona"], "persona")

        self._scenario_docs: dict[str, Loaded] = {}
        self._tool_docs: dict[str, Loaded] = {}
        self._replays: list[Loaded] = []
        self._prompt_docs: dict[str, Loaded] = {}
        self._arena, self._arena_doc, self._arena_rel = arena, doc, file
        self._each(("prompt_configs",), "PromptConfig", s.PromptConfigSpec, on_prompt)
        self._each(("providers",), "Provider", s.ProviderSpec, on_provider)
        self._each(("scenarios",), "Scenario", s.ScenarioSpec, on_scenario)
        self._each(("tools",), "Tool", s.ToolSpec, on_tool)
        self._each(("self_play", "personas"), "Persona", s.PersonaSpec, on_persona)
        bundle.evals, bundle.eval_runs = load_evals(self.root, arena, file, doc, self.out)
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
                    self._tool_docs[loaded.id] = Loaded(loaded.id, obj, file, doc, ("spec", key, item_id))
                if kind == "provider" and obj.role not in MATRIX_ROLES:
                    register(bundle.service_providers, loaded, self.out, where[kind], kind)
                    continue
                register(target, loaded, self.out, where[kind], kind)
                if kind == "provider":
                    bundle.provider_groups.setdefault(loaded.id, "default")
                if kind == "scenario":
                    bundle.scenario_files.setdefault(loaded.id, file)
                    self._scenario_docs[loaded.id] = Loaded(loaded.id, obj, file, doc, ("spec", key, item_id))

    def _check_mock_config(self, loaded: Loaded) -> None:
        mock_file = loaded.spec.additional_config.get("mock_config")
        if mock_file and escapes(self.root, str(mock_file)):  # any type: `--mock-provider` reads it too
            self.out.add(loaded.file, loaded.doc, ["spec", "additional_config", "mock_config"],
                         f"mock config file {mock_file!r} {OUTSIDE_BUNDLE}")
            return
        if self.references and loaded.spec.type == "mock" and mock_file and not (self.root / str(mock_file)).is_file():
            self.out.add(loaded.file, loaded.doc, ["spec", "additional_config", "mock_config"],
                         f"mock config file {mock_file!r} not found")

    def _cross_check(self, bundle: Bundle, doc: Any, file: str) -> None:
        arena = bundle.arena
        providers = bundle.providers
        judge_refs = [(["spec", "judges", i, "provider"], j) for i, j in enumerate(arena.judges)]
        judge_refs += [(["spec", "judge_specs", n, "provider"], j) for n, j in arena.judge_specs.items()]
        for where, judge in judge_refs if self.references else ():
            if judge.provider not in providers:
                self.out.add(file, doc, where,
                             f"unknown provider {judge.provider!r}{suggest(judge.provider, providers)}")
        roles = {}
        if arena.self_play:
            for index, role in enumerate(arena.self_play.roles):
                roles[role.id] = role.provider
                if self.references and role.provider not in providers:
                    self.out.add(file, doc, ["spec", "self_play", "roles", index, "provider"],
                                 f"unknown provider {role.provider!r}{suggest(role.provider, providers)}")
        check_agents(arena, file, doc, self.out)
        names = ToolNames(arena, bundle.tools) if self.references else None
        check_assertions(arena.globals.conversation_assertions, file, doc,
                         ["spec", "globals", "conversation_assertions"], self.out, names)
        for loaded in self._prompt_docs.values():
            check_prompt(loaded, names, self.out)
        checker = ScenarioChecker(bundle, roles, self.out, names, self.references)
        for loaded in self._scenario_docs.values():
            checker.check(loaded)
        bundle.compositions = check_compositions(bundle, file, doc, self.out, names)
        if self.references:
            check_media(self.root, self._scenario_docs, self._tool_docs, self.out)
        bundle.pack_evals = load_pack_evals(arena, file, doc, self.out)
        check_recording_config(arena.defaults.output.model_extra, file, doc, self.out)
        if self.references:
            used = used_providers(list(bundle.scenarios.values()), list(providers), [*bundle.judges.values(),
                                                                                     *roles.values()])
            check_replay_providers(self._replays, used, self.root, self.out)
        if self.references:
            check_machinery(bundle, file, doc, list(self._scenario_docs.values()), self.out)


def load_bundle(path: Path | str, strict: bool = False, schema_only: bool = False,
                log_warnings: bool = True) -> Bundle:
    """Load and validate a bundle directory (or arena file); raises BundleInvalid listing every problem.
    Warnings (unknown keys and params, spellings upstream would not read) are logged and kept on the bundle;
    with `strict` they are problems too. `schema_only` checks each file against its model (keys, types,
    assertion and validator vocabulary) but not what one file names in another (providers, personas, tools,
    prompts by task_type, mock files): upstream's `validate --schema-only`. `arena validate` prints the warnings
    itself (`log_warnings=False`)."""
    return BundleLoader(Path(path), strict, schema_only, log_warnings).load()
