"""What decides a run's result, hashed: `--resume` reuses a finished run only while these are unchanged.

A run depends on parts shared by many runs — its scenario, the prompt of its task_type (with the arena's vars), its
provider and that provider's mock responses, the tools the prompt offers, the personas and self-play providers of
its turns, the judges, the arena file's own settings, `--mock-provider`/`--mock-config`, the arena version. Each
part is hashed once and named as a person would say it (`prompt prompts/support.yaml`), so a rerun can say which
part changed. Region and trial are in the run id itself."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..engine import spec as s
from ..engine.bundle import Bundle
from ..engine.evalspec import split_ref
from ..engine.plan import RunCombination

VERSION_PART = "the arena version"
MOCK_FLAGS_PART = "--mock-provider/--mock-config"
# Arena settings that are themselves parts of their own (or only list files): left out of the arena file's part, so
# adding a scenario to the arena file reruns nothing else.
_OWN_PARTS = frozenset({"prompt_configs", "providers", "scenarios", "tools", "provider_specs", "scenario_specs",
                        "tool_specs", "prompt_specs"})


def digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:20]
    except OSError:
        return "missing"


@dataclass(frozen=True)
class MockFlags:
    mock_provider: bool = False
    mock_config: Path | None = None


class InputHasher:
    """Parts of each run and their hashes, computed once per part."""

    def __init__(self, bundle: Bundle, flags: MockFlags) -> None:
        self.bundle = bundle
        self._parts: dict[str, str] = {}
        self._runs: dict[tuple[str, str], dict[str, str]] = {}
        self._hashes: dict[tuple[str, str], str] = {}
        self._put(VERSION_PART, __version__)
        arena = bundle.arena.model_dump(mode="json", exclude=set(_OWN_PARTS))
        self._put(f"arena file {self._rel(bundle.arena_file)}", {"arena": arena, "evals": bundle.evals})
        self._arena_label = f"arena file {self._rel(bundle.arena_file)}"
        self._put(MOCK_FLAGS_PART, [flags.mock_provider, _file_digest(flags.mock_config) if flags.mock_config
                                    else None])
        self._prompt_files = {ref.id: ref.file for ref in bundle.arena.prompt_configs if ref.id}

    @property
    def table(self) -> dict[str, str]:
        """Every part hashed so far: label → hash."""
        return dict(self._parts)

    def _rel(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.bundle.root.resolve()))
        except ValueError:
            return str(path)

    def _put(self, label: str, value: Any) -> str:
        if label not in self._parts:
            self._parts[label] = digest(value)
        return label

    def parts(self, combo: RunCombination) -> dict[str, str]:
        """The labels and hashes of the parts deciding `combo` (the same for every region and trial)."""
        key = (combo.scenario_id, combo.provider_id)
        if key not in self._runs:
            labels = [VERSION_PART, self._arena_label, MOCK_FLAGS_PART, *self._scenario_parts(combo)]
            self._runs[key] = {label: self._parts[label] for label in dict.fromkeys(labels)}
        return self._runs[key]

    def run_hash(self, combo: RunCombination) -> str:
        key = (combo.scenario_id, combo.provider_id)
        if key not in self._hashes:
            self._hashes[key] = digest(self.parts(combo))
        return self._hashes[key]

    def _scenario_parts(self, combo: RunCombination) -> list[str]:
        if combo.recording:
            return self._eval_parts(combo.scenario_id)
        bundle = self.bundle
        scenario = bundle.scenarios[combo.scenario_id]
        file = bundle.scenario_files.get(combo.scenario_id, "")
        inline = not file or file == self._rel(bundle.arena_file)
        labels = [self._put(f"scenario {combo.scenario_id}" if inline else f"scenario {file}",
                            scenario.model_dump(mode="json"))]
        prompt, arena_vars = bundle.prompt_for(scenario)
        if prompt is not None:
            pid = next(p for p, spec in bundle.prompt_configs.items() if spec is prompt)
            where = self._prompt_files.get(pid)
            labels.append(self._put(f"prompt {where}" if where else f"prompt {pid}",
                                    [prompt.model_dump(mode="json"), arena_vars]))
        providers = [combo.provider_id, *bundle.judges.values()]
        for turn in scenario.turns:
            role_provider = bundle.role_provider(turn.role)
            if role_provider:
                providers.append(role_provider)
            persona = bundle.personas.get(turn.persona or "")
            if persona is not None:
                labels.append(self._put(f"persona {turn.persona}", persona.model_dump(mode="json")))
        for provider_id in dict.fromkeys(providers):
            labels.extend(self._provider_parts(provider_id))
        names = list(prompt.allowed_tools) if prompt else list(bundle.tools)
        for name in names:
            tool = bundle.tools.get(name)
            if tool is not None:
                labels.append(self._put(f"tool {name}", tool.model_dump(mode="json")))
        return labels

    def _eval_parts(self, eval_id: str) -> list[str]:
        """An eval run depends on its eval, the content of every recording it replays and the judges."""
        entry = self.bundle.eval_runs[eval_id]
        files = sorted({split_ref(ref)[0] for ref in entry.recordings})
        labels = [self._put(f"eval {entry.file} {eval_id}", entry.spec.model_dump(mode="json"))]
        labels += [self._put(f"recording {f}", _file_digest(self.bundle.root / f)) for f in files]
        for provider_id in dict.fromkeys(self.bundle.judges.values()):
            labels.extend(self._provider_parts(provider_id))
        return labels

    def _provider_parts(self, provider_id: str) -> list[str]:
        provider: s.ProviderSpec | None = self.bundle.providers.get(provider_id)
        if provider is None:
            return []
        dumped = provider.model_dump(mode="json")
        mock_file = (dumped.get("additional_config") or {}).pop("mock_config", None)  # its content, not its path
        labels = [self._put(f"provider {provider_id}", dumped)]
        if mock_file:
            path = self.bundle.root / str(mock_file)
            where = self._rel(path)  # a job file's mocks are written to a temp dir: named by provider then
            label = f"mock responses {where}"
            if Path(where).is_absolute():
                label = f"mock responses of provider {provider_id}"
            labels.append(self._put(label, _file_digest(path)))
        return labels
