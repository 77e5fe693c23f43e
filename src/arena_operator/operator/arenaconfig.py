"""ArenaConfig: re-validated when its spec, its source's artifact or a referenced Provider changes — decided from
indexes every tick, in memory."""

from __future__ import annotations

from typing import Any

import kopf
from pydantic import ValidationError

from ..api.arenaconfig import ArenaConfigSpec
from ..api.conditions import set_condition
from ..api.kinds import spec_problems
from ..reconcile.arenaconfig import source_info, validate_config
from .config import GROUP, SOURCE_TICK_SECONDS, VERSION
from .indexes import one


def _fingerprint(generation: int, source: dict[str, Any] | None, providers: list[dict[str, Any]]) -> str:
    artifact = ((source or {}).get("status") or {}).get("artifact") or {}
    versions = sorted(f"{p['metadata']['name']}@{p['metadata']['resourceVersion']}" for p in providers)
    return f"{generation}|{artifact.get('digest')}|{','.join(versions)}"


@kopf.timer(GROUP, VERSION, "arenaconfigs", interval=SOURCE_TICK_SECONDS, id="arenaconfig_reconcile")
def arenaconfig_reconcile(body: kopf.Body, spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, namespace: str,
                          name: str, patch: kopf.Patch, memo: kopf.Memo, arena_sources: kopf.Index,
                          providers_by_namespace: kopf.Index, **_: Any) -> None:
    generation = int(meta.get("generation") or 1)
    seen: dict[tuple[str, str], str] = memo.setdefault("config_fingerprints", {})
    try:
        config = ArenaConfigSpec.model_validate(dict(spec))
    except ValidationError as error:
        config = None
        problem = spec_problems(error)
    source = one(arena_sources, (namespace, config.source_ref.name)) if config else None
    providers = list(providers_by_namespace.get(namespace, []))
    fingerprint = _fingerprint(generation, source, providers)
    if seen.get((namespace, name)) == fingerprint and status.get("observedGeneration") == generation:
        return
    seen[(namespace, name)] = fingerprint
    conditions = list(status.get("conditions") or [])
    if config is None:
        patch.status.update(phase="Invalid", observedGeneration=generation,
                            conditions=set_condition(conditions, "Ready", False, "InvalidSpec", problem, generation))
        kopf.warn(body, reason="InvalidSpec", message=problem)
        return
    names = {p["metadata"]["name"] for p in providers}
    outcome = validate_config(config, namespace, source_info(source), memo.store, names, generation,
                              memo.config.max_artifact_bytes)
    patch.status.update(outcome.status)
    for kind, ok, reason, message in outcome.conditions:
        conditions = set_condition(conditions, kind, ok, reason, message, generation)
    patch.status["conditions"] = conditions
    if outcome.event:
        kopf.event(body, type=outcome.event[0], reason=outcome.event[1], message=outcome.event[2])
