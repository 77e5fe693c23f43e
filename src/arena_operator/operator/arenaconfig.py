"""ArenaConfig: re-validated when its spec, its source's artifact or a referenced Provider changes — decided from
indexes every tick, in memory."""

from __future__ import annotations

from typing import Any

import kopf

from ..api.arenaconfig import ArenaConfigSpec
from ..api.common import GROUP, VERSION
from ..reconcile.arenaconfig import READY_RULE, ConfigContext, reconcile_config, source_info
from .config import SOURCE_TICK_SECONDS
from .indexes import one
from .status import apply_outcome, parse_or_reject


def _fingerprint(generation: int, source: dict[str, Any] | None, providers: list[dict[str, Any]]) -> str:
    artifact = ((source or {}).get("status") or {}).get("artifact") or {}
    versions = sorted(f"{p['metadata']['name']}@{p['metadata']['resourceVersion']}" for p in providers)
    return f"{generation}|{source is not None}|{artifact.get('digest')}|{','.join(versions)}"


@kopf.timer(GROUP, VERSION, "arenaconfigs", interval=SOURCE_TICK_SECONDS, id="arenaconfig_reconcile")
async def arenaconfig_reconcile(body: kopf.Body, spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta,
                                namespace: str, name: str, patch: kopf.Patch, memo: kopf.Memo,
                                arena_sources: kopf.Index, providers_by_namespace: kopf.Index, **_: Any) -> None:
    generation = int(meta.get("generation") or 1)
    current = dict(status)
    config = parse_or_reject(ArenaConfigSpec, body, spec, patch, current, generation, "Invalid", READY_RULE)
    if config is None:
        return
    source = one(arena_sources, (namespace, config.source_ref.name))
    providers = list(providers_by_namespace.get(namespace, []))
    seen: dict[tuple[str, str], str] = memo.setdefault("config_fingerprints", {})
    fingerprint = _fingerprint(generation, source, providers)
    if seen.get((namespace, name)) == fingerprint and status.get("observedGeneration") == generation:
        return
    seen[(namespace, name)] = fingerprint
    ctx = ConfigContext(namespace=namespace, name=name, generation=generation, spec=config,
                        source=source_info(source), store=memo.store,
                        provider_names={p["metadata"]["name"] for p in providers},
                        max_bytes=memo.config.max_artifact_bytes)
    outcome = await reconcile_config(ctx, list(current.get("conditions") or []))
    apply_outcome(body, patch, current, outcome, generation)
