"""ArenaSource: a timer per source decides (cheaply) whether it is due, and runs one reconcile pass if so."""

from __future__ import annotations

from typing import Any

import kopf

from ..api.common import GROUP, VERSION
from ..api.conditions import READY
from ..api.kinds import ArenaSourceSpec
from ..reconcile.arenasource import READY_RULE, SourceContext, is_due, reconcile_source
from .config import SOURCE_TICK_SECONDS
from .status import apply_outcome, parse_or_reject, report_refusal


@kopf.index("configmaps", id="configmap_versions")
def configmap_versions(namespace: str, name: str, meta: kopf.Meta, **_: Any) -> dict[tuple[str, str], str]:
    """ConfigMap resourceVersions, so a configmap source notices an edit within one tick, not one interval."""
    return {(namespace, name): str(meta.get("resourceVersion", ""))}


@kopf.timer(GROUP, VERSION, "arenasources", interval=SOURCE_TICK_SECONDS, id="arenasource_reconcile")
async def arenasource_reconcile(body: kopf.Body, spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta,
                                namespace: str, name: str, patch: kopf.Patch, memo: kopf.Memo,
                                configmap_versions: kopf.Index, **_: Any) -> None:
    generation = int(meta.get("generation") or 1)
    current = dict(status)
    source = parse_or_reject(ArenaSourceSpec, body, spec, patch, current, generation, "Error", READY_RULE)
    if source is None:
        return
    ctx = SourceContext(
        namespace=namespace, name=name, generation=generation, spec=source, status=current,
        annotations=dict(meta.annotations), store=memo.store, base_url=memo.artifact_base_url,
        read_secret=memo.kube.secret_data, read_config_map=memo.kube.config_map,
        max_bytes=memo.config.max_artifact_bytes, workspace_dir=memo.config.workspace_dir,
        validation_budget=memo.config.validation_budget,
    )
    version = None
    if source.type == "configmap" and source.config_map is not None:
        versions = configmap_versions.get((namespace, source.config_map.name))
        version = next(iter(versions), None) if versions else None
    if is_due(ctx, version) is None:
        return
    with memo.metrics.fetch_seconds.labels(type=source.type).time():
        try:
            outcome = await reconcile_source(ctx)
        except Exception as exc:
            report_refusal(body, patch, current, exc, generation)
            raise
    if outcome.status.get("phase") == "Error":
        memo.metrics.fetch_failures.labels(type=source.type, reason=outcome.conditions[READY].reason).inc()
    apply_outcome(body, patch, current, outcome, generation)


@kopf.on.delete(GROUP, VERSION, "arenasources", id="arenasource_delete")
def arenasource_delete(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    """The finalizer's job: the source's artifacts leave the store with it."""
    memo.store.remove_source(namespace, name)
