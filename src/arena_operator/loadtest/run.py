"""The load-test engine around the conversation engine, shared by a worker pod and ``arena run``: the mix of
scenario × provider × region combinations, the instrumented providers, the executor, and one worker's run."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine.bundle import Bundle
from ..engine.executor import ConversationExecutor
from ..engine.plan import RunFilters, iter_plan
from ..engine.providers.registry import build_providers
from .coord import Coordinator
from .instrument import instrument, unpriced
from .metrics import Recorder
from .profile import DEFAULT_MAX_IN_FLIGHT, LoadProfile
from .scheduler import LoadRunner, MixEntry


def mix_of(bundle: Bundle, filters: RunFilters) -> list[MixEntry]:
    """What the load cycles through: every selected scenario × provider × region once (trials do not repeat it;
    arrival k runs entry k mod len)."""
    once = dataclasses.replace(filters, trials=1)
    return [MixEntry(c.region, c.scenario_id, c.provider_id) for c in iter_plan(bundle, once)]


def mix_to_config(mix: list[MixEntry]) -> list[list[str]]:
    return [[m.region, m.scenario, m.provider] for m in mix]


def mix_from_config(data: list[list[str]]) -> list[MixEntry]:
    return [MixEntry(*entry) for entry in data]


@dataclass
class Prepared:
    executor: ConversationExecutor
    recorder: Recorder
    unpriced: list[str]


def prepare(bundle: Bundle, profile: LoadProfile, mix: list[MixEntry], *, mock: bool = False,
            mock_config: Path | None = None, run_timeout: float | None = None) -> Prepared:
    """Providers built and instrumented, the executor; ValueError when the test cannot run as asked (nothing to
    run, or a budget over providers whose cost is unknown)."""
    if not mix:
        raise ValueError("the scenario selection and providers give nothing to run")
    providers = build_providers(bundle.providers, bundle.root, mock, mock_config)
    ids = {m.provider for m in mix}
    missing = unpriced(providers, ids)
    if profile.budget_limit is not None and missing:
        raise ValueError(f"loadTest.budgetLimit needs the cost of every request, but provider(s) "
                         f"{', '.join(missing)} have no pricing")
    recorder = Recorder(lambda: 0.0, profile.steady_window())
    instrument(providers, ids, recorder, profile.vus_per_worker or profile.concurrency or DEFAULT_MAX_IN_FLIGHT)
    executor = ConversationExecutor(bundle, providers)
    if run_timeout:
        executor.run_timeout = run_timeout
    return Prepared(executor, recorder, missing)


async def run_share(prepared: Prepared, profile: LoadProfile, mix: list[MixEntry], coordinator: Coordinator,
                    on_tick: Callable[[], None] | None = None) -> LoadRunner:
    """This process's share of the test, start to end (the executor is closed after)."""
    runner = LoadRunner(profile, mix, prepared.executor.execute, coordinator, prepared.recorder, on_tick)
    # What exists now (modules, the bundle, providers) lives for the whole test: out of the collector's sight, a
    # full collection no longer walks it, and no longer stalls the arrivals (scheduling lag max 50 → 11 ms at
    # 400/s, bench/README.md).
    gc.freeze()
    try:
        await runner.run()
    finally:
        gc.unfreeze()
        await prepared.executor.aclose()
    return runner


def load_config(profile: LoadProfile, mix: list[MixEntry]) -> dict[str, Any]:
    """The job config's ``loadTest`` entry (what the operator plans, what workers read)."""
    return {**profile.to_config(), "mix": mix_to_config(mix)}
