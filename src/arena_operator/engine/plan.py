"""RunPlan: regions × scenarios × providers × trials, filtered by globs — upstream's GenerateRunPlan."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .bundle import Bundle
from .result import run_id_for
from .spec import ScenarioSpec

DEFAULT_REGION = "default"


@dataclass(frozen=True, slots=True)
class RunCombination:
    region: str
    scenario_id: str
    provider_id: str
    trial: int = 0

    @property
    def run_id(self) -> str:
        return run_id_for(self.region, self.scenario_id, self.provider_id, self.trial)


@dataclass
class RunFilters:
    """Globs match a scenario's id or its file path (`scenarios/critical-*.yaml`, `*-slow.yaml`)."""

    scenarios: list[str] = field(default_factory=list)
    exclude_scenarios: list[str] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    trials: int | None = None


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


def iter_plan(bundle: Bundle, filters: RunFilters | None = None) -> Iterator[RunCombination]:
    """Stream the combinations in a stable order (scenario, provider, region, trial)."""
    filters = filters or RunFilters()
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
