"""kopf indexes: in-memory views of the objects controllers read, kept current by watches, not by polling."""

from __future__ import annotations

from typing import Any

import kopf

from ..api.common import GROUP, LABEL_ARENAJOB, LABEL_PARENT, VERSION
from ..reconcile.workers import pod_outline


def _object(meta: kopf.Meta, spec: kopf.Spec) -> dict[str, Any]:
    return {"metadata": {"name": meta.get("name"), "labels": dict(meta.get("labels") or {}),
                         "resourceVersion": meta.get("resourceVersion")}, "spec": dict(spec)}


@kopf.index(GROUP, VERSION, "arenasources", id="arena_sources")
def arena_sources(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace, name): {"status": dict(body.get("status") or {})}}


@kopf.index(GROUP, VERSION, "arenaconfigs", id="arena_configs")
def arena_configs(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace, name): {"spec": dict(body.get("spec") or {}), "status": dict(body.get("status") or {}),
                                "generation": body.get("metadata", {}).get("generation")}}


@kopf.index(GROUP, VERSION, "providers", id="providers_by_namespace")
def providers_by_namespace(namespace: str, meta: kopf.Meta, spec: kopf.Spec, **_: Any) -> dict[str, dict[str, Any]]:
    return {namespace: _object(meta, spec)}


@kopf.index(GROUP, VERSION, "toolregistries", id="tool_registries_by_namespace")
def tool_registries_by_namespace(namespace: str, meta: kopf.Meta, spec: kopf.Spec,
                                 **_: Any) -> dict[str, dict[str, Any]]:
    return {namespace: _object(meta, spec)}


@kopf.index("batch", "v1", "jobs", labels={LABEL_ARENAJOB: kopf.PRESENT}, id="worker_jobs")
def worker_jobs(namespace: str, meta: kopf.Meta, body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    owner = meta.get("labels", {}).get(LABEL_ARENAJOB)
    return {(namespace, owner): {"name": meta.get("name"), "spec": dict(body.get("spec") or {}),
                                 "status": dict(body.get("status") or {})}}


@kopf.index("v1", "pods", labels={LABEL_ARENAJOB: kopf.PRESENT}, id="worker_pods")
def worker_pods(namespace: str, meta: kopf.Meta, body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """Each worker pod's outline (reconcile.workers): a failed pod's units are handed back at once, and a pod that
    cannot start says why."""
    return {(namespace, meta.get("labels", {}).get(LABEL_ARENAJOB)): pod_outline(dict(body))}


def one(index: kopf.Index, key: Any) -> Any:
    """The single value an index holds for a key (names are unique per namespace), or None."""
    values = index.get(key)
    return next(iter(values), None) if values else None


@kopf.index(GROUP, VERSION, "arenajobs", id="arena_jobs")
def arena_jobs(namespace: str, name: str, meta: kopf.Meta, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    """Every ArenaJob's outline, per namespace: what a template needs of its children, and a comparison of its
    baseline run."""
    status = body.get("status") or {}
    return {namespace: {
        "name": name, "parent": (meta.get("labels") or {}).get(LABEL_PARENT),
        "created": meta.get("creationTimestamp"), "phase": status.get("phase"),
        "completionTime": status.get("completionTime"), "revision": status.get("revision"),
        "result": dict(status.get("result") or {}),
    }}
