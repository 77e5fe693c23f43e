"""ArenaConfig: the source's bundle at its current revision, filters and providers, checked as ordered steps.
No kopf here."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..api import conditions as c
from ..api.arenaconfig import ArenaConfigSpec
from ..engine.bundle import Bundle, load_bundle
from ..engine.envexpand import cluster_env, reading
from ..engine.errors import BundleInvalid
from ..engine.plan import RunFilters, eval_mode, select_scenarios
from ..sources.store import ArtifactStore
from .outcome import Outcome, ReadyRule, Step, run_steps

MAX_PROBLEMS_SHOWN = 5
READY_RULE = ReadyRule(positive=(c.SOURCE_READY, c.VALID))


@dataclass
class SourceInfo:
    """What a config needs of its ArenaSource (from the operator's index of sources)."""

    ready: bool
    revision: str | None
    digest: str | None
    url: str | None
    message: str = ""


@dataclass
class ConfigContext:
    namespace: str
    name: str
    generation: int
    spec: ArenaConfigSpec
    source: SourceInfo | None  # None: the ArenaSource does not exist
    store: ArtifactStore
    provider_names: set[str]  # Provider objects in the namespace
    max_bytes: int


def source_info(body: dict[str, Any] | None) -> SourceInfo | None:
    if body is None:
        return None
    status = body.get("status") or {}
    artifact = status.get("artifact") or {}
    ready = c.is_true(status.get("conditions"), c.READY)
    message = (c.get_condition(status.get("conditions"), c.READY) or {}).get("message", "")
    return SourceInfo(ready or bool(artifact.get("digest")), artifact.get("revision"), artifact.get("digest"),
                      artifact.get("url"), message)


def load_config_bundle(store: ArtifactStore, namespace: str, source: str, info: SourceInfo, spec: ArenaConfigSpec,
                       max_bytes: int) -> Bundle:
    assert info.digest is not None
    root: Path = store.unpacked(namespace, source, info.digest, max_bytes)
    with reading(cluster_env()):  # `${VAR}` reads only what the operator's $ARENA_BUNDLE_ENV grants
        return load_bundle(root / spec.arena_file if spec.arena_file else root)


async def step_source(ctx: ConfigContext, out: Outcome) -> None:
    """The referenced ArenaSource exists and serves an artifact."""
    source, info = ctx.spec.source_ref.name, ctx.source
    if info is None:
        _pending(out, c.SOURCE_NOT_FOUND, f"ArenaSource {ctx.namespace}/{source} (spec.sourceRef) not found")
    elif not info.ready or not info.digest:
        _pending(out, c.SOURCE_NOT_READY, f"ArenaSource {source} has no artifact yet: {info.message}".strip())
    else:
        out.condition(c.SOURCE_READY, True, c.ARTIFACT_AVAILABLE, f"source {source} at {info.revision}")


async def step_validate(ctx: ConfigContext, out: Outcome) -> None:
    """The bundle at the source's revision loads, its Provider references exist, the filters select scenarios."""
    spec, info = ctx.spec, ctx.source
    assert info is not None
    try:
        bundle = await asyncio.to_thread(load_config_bundle, ctx.store, ctx.namespace, spec.source_ref.name, info,
                                         spec, ctx.max_bytes)
    except BundleInvalid as exc:
        shown = "; ".join(str(p) for p in exc.problems[:MAX_PROBLEMS_SHOWN])
        return _invalid(out, c.INVALID_BUNDLE, f"bundle at {info.revision}: {shown}")
    except FileNotFoundError as exc:
        out.status["phase"] = "Pending"
        out.condition(c.VALID, c.UNKNOWN, c.ARTIFACT_MISSING, str(exc))
        return out.stop()
    missing = [r.name for r in _provider_refs(spec) if r.name not in ctx.provider_names]
    if missing:
        return _invalid(out, c.PROVIDER_NOT_FOUND,
                        f"Provider {', '.join(sorted(missing))} not found in {ctx.namespace}")
    filters = RunFilters(scenarios=list(spec.scenarios.include or []) if spec.scenarios else [],
                         exclude_scenarios=list(spec.scenarios.exclude or []) if spec.scenarios else [])
    if eval_mode(bundle, filters):  # evals and no scenarios: the jobs run the evals (upstream's GenerateRunPlan)
        return _evals_ready(out, bundle, info.revision, _provider_groups(spec, bundle))
    selected = select_scenarios(bundle, filters)
    if not selected:
        return _invalid(out, c.NO_SCENARIOS,
                        f"spec.scenarios selects none of the bundle's {len(bundle.scenarios)} scenarios")
    providers = _provider_groups(spec, bundle)
    out.status.update(phase="Ready", revision=info.revision, scenarioCount=len(selected), providers=providers)
    out.condition(c.VALID, True, c.VALIDATED,
                  f"ready at revision {info.revision}: {len(selected)} scenarios, providers {providers}")
    out.event("Normal", c.VALIDATED, f"bundle at {info.revision}: {len(selected)} scenarios")
    return None


def _evals_ready(out: Outcome, bundle: Bundle, revision: str, providers: dict[str, list[str]]) -> None:
    conversations = sum(len(entry.recordings) for entry in bundle.eval_runs.values())
    if not conversations:
        return _invalid(out, c.NO_SCENARIOS, f"the bundle has no scenarios and its {len(bundle.eval_runs)} evals "
                                             "name no recording")
    what = f"{len(bundle.eval_runs)} evals over {conversations} recorded conversations"
    out.status.update(phase="Ready", revision=revision, scenarioCount=0, providers=providers)
    out.condition(c.VALID, True, c.VALIDATED, f"ready at revision {revision}: {what}, providers {providers}")
    out.event("Normal", c.VALIDATED, f"bundle at {revision}: {what}")
    return None


STEPS: tuple[Step[ConfigContext], ...] = (Step(step_source, owns=(c.SOURCE_READY,)),
                                          Step(step_validate, owns=(c.VALID,)))


async def reconcile_config(ctx: ConfigContext, current: list[dict[str, Any]]) -> Outcome:
    """Ordered checks; the first failing one decides the phase and says precisely why."""
    return await run_steps(ctx, STEPS, Outcome(status={"observedGeneration": ctx.generation}), current, READY_RULE)


def _provider_refs(spec: ArenaConfigSpec) -> list[Any]:
    refs = [spec.provider_ref] if spec.provider_ref else []
    for group in (spec.providers or {}).values():
        refs.extend(group)
    return refs


def _provider_groups(spec: ArenaConfigSpec, bundle: Bundle) -> dict[str, list[str]]:
    """Group → providers a job will use by default: Provider CRDs where the config names them, else the bundle's."""
    groups: dict[str, list[str]] = {}
    for provider_id, group in bundle.provider_groups.items():
        groups.setdefault(group, []).append(provider_id)
    if spec.provider_ref:
        groups["default"] = [spec.provider_ref.name]
    for group, refs in (spec.providers or {}).items():
        groups[group] = [r.name for r in refs]
    return {g: sorted(names) for g, names in sorted(groups.items())}


def _pending(out: Outcome, reason: str, message: str) -> None:
    out.status["phase"] = "Pending"
    out.condition(c.SOURCE_READY, False, reason, message)
    out.stop(blocked=True)


def _invalid(out: Outcome, reason: str, message: str) -> None:
    out.status["phase"] = "Invalid"
    out.condition(c.VALID, False, reason, message)
    out.event("Warning", reason, message)
    out.stop()
