"""RunPlan: regions × scenarios × providers × trials, filtered by globs — upstream's GenerateRunPlan. Or, in eval
mode (an `--eval` filter, or a bundle with evals and no scenarios, as upstream; scenarios and evals never mix in
one plan), one run per eval × recorded conversation, whose `recording` names it (engine/evalspec.py)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .bundle import Bundle
from .result import run_id_for
from .spec import ScenarioSpec

DEFAULT_REGION = "default"
EVAL_PROVIDER = "eval"  # upstream's ProviderID of an eval run: the real provider is in the recording


@dataclass(frozen=True, slots=True)
class RunCombination:
    region: str
    scenario_id: str
    provider_id: str
    trial: int = 0
    recording: str = ""  # an eval run: the eval id is scenario_id, this the conversation it replays

    @property
    def run_id(self) -> str:
        if self.recording:
            return run_id_for(self.region, f"{self.scenario_id}\x00{self.recording}", self.provider_id, self.trial)
        return run_id_for(self.region, self.scenario_id, self.provider_id, self.trial)


@dataclass
class RunFilters:
    """Globs match a scenario's id or its file path (`scenarios/critical-*.yaml`, `*-slow.yaml`)."""

    scenarios: list[str] = field(default_factory=list)
    exclude_scenarios: list[str] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    trials: int | None = None
    evals: list[str] = field(default_factory=list)  # `--eval`: eval id or file globs; selects eval mode


def _matches(globs: Iterable[str], *names: str) -> bool:
    return any(fnmatch.fnmatchcase(name, glob) for glob in globs for name in names if name)


def scenario_providers(bundle: Bundle, scenario: ScenarioSpec) -> list[str]:
    """As upstream: its `providers`, else its group's providers (group `default` unless set), else all
    providers; then only those declaring every `required_capabilities` entry."""
    if scenario.providers:
        return list(scenario.providers)
    group = scenario.provider_group or "default"
    chosen = [p for p, g in bundle.provider_groups.items() if g == group] or list(bundle.providers)
    if scenario.required_capabilities:
        needed = set(scenario.required_capabilities)
        chosen = [p for p in chosen if needed <= set(bundle.providers[p].capabilities)]
    return chosen


def select_scenarios(bundle: Bundle, filters: RunFilters) -> list[str]:
    selected = []
    for scenario_id in bundle.scenarios:
        file = bundle.scenario_files.get(scenario_id, "")
        if filters.scenarios and not _matches(filters.scenarios, scenario_id, file):
            continue
        if _matches(filters.exclude_scenarios, scenario_id, file):
            continue
        selected.append(scenario_id)
    return selected


def eval_mode(bundle: Bundle, filters: RunFilters) -> bool:
    """Upstream's rule: an eval filter, or no scenario filter, no scenarios and some evals."""
    return bool(filters.evals) or (not filters.scenarios and not bundle.scenarios and bool(bundle.eval_runs))


def iter_eval_plan(bundle: Bundle, filters: RunFilters) -> Iterator[RunCombination]:
    """One run per eval × recorded conversation, evals in id order (regions, providers and trials do not apply)."""
    for eval_id in sorted(bundle.eval_runs):
        entry = bundle.eval_runs[eval_id]
        if filters.evals and not _matches(filters.evals, eval_id, entry.file):
            continue
        for ref in entry.recordings:
            yield RunCombination(DEFAULT_REGION, eval_id, EVAL_PROVIDER, 0, ref)


def iter_plan(bundle: Bundle, filters: RunFilters | None = None) -> Iterator[RunCombination]:
    """Stream the combinations in a stable order (scenario, provider, region, trial)."""
    filters = filters or RunFilters()
    if eval_mode(bundle, filters):
        yield from iter_eval_plan(bundle, filters)
        return
    regions = filters.regions or [DEFAULT_REGION]
    for scenario_id in select_scenarios(bundle, filters):
        scenario = bundle.scenarios[scenario_id]
        trials = filters.trials or scenario.trials
        for provider_id in scenario_providers(bundle, scenario):
            if filters.providers and not _matches(filters.providers, provider_id):
                continue
            for region in regions:
                for trial in range(trials):
                    yield RunCombination(region, scenario_id, provider_id, trial)


@dataclass
class RunPlan:
    combinations: list[RunCombination]

    def __len__(self) -> int:
        return len(self.combinations)


def generate_plan(bundle: Bundle, filters: RunFilters | None = None) -> RunPlan:
    return RunPlan(list(iter_plan(bundle, filters)))
