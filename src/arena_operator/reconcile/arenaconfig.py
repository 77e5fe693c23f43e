"""ArenaConfig validation: the source's bundle at its current revision, filters, providers. No kopf here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..api.arenaconfig import ArenaConfigSpec
from ..engine.bundle import Bundle, load_bundle
from ..engine.errors import BundleInvalid
from ..engine.plan import RunFilters, select_scenarios
from ..sources.store import ArtifactStore

MAX_PROBLEMS_SHOWN = 5


@dataclass
class SourceInfo:
    """What a config needs of its ArenaSource (from the operator's index of sources)."""

    ready: bool
    revision: str | None
    digest: str | None
    url: str | None
    message: str = ""


@dataclass
class ConfigOutcome:
    status: dict[str, Any] = field(default_factory=dict)
    conditions: list[tuple[str, bool, str, str]] = field(default_factory=list)
    event: tuple[str, str, str] | None = None


def source_info(body: dict[str, Any] | None) -> SourceInfo | None:
    if body is None:
        return None
    status = body.get("status") or {}
    artifact = status.get("artifact") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    message = next((c.get("message", "") for c in status.get("conditions") or [] if c.get("type") == "Ready"), "")
    return SourceInfo(ready or bool(artifact.get("digest")), artifact.get("revision"), artifact.get("digest"),
                      artifact.get("url"), message)


def load_config_bundle(store: ArtifactStore, namespace: str, source: str, info: SourceInfo, spec: ArenaConfigSpec,
                       max_bytes: int) -> Bundle:
    assert info.digest is not None
    root: Path = store.unpacked(namespace, source, info.digest, max_bytes)
    return load_bundle(root / spec.arena_file if spec.arena_file else root)


def validate_config(spec: ArenaConfigSpec, namespace: str, info: SourceInfo | None, store: ArtifactStore,
                    provider_names: set[str], generation: int, max_bytes: int) -> ConfigOutcome:
    """Ordered checks; the first failing one decides the phase and says precisely why."""
    out = ConfigOutcome(status={"observedGeneration": generation})
    source = spec.source_ref.name
    if info is None:
        return _pending(out, "SourceNotFound", f"ArenaSource {namespace}/{source} (spec.sourceRef) not found")
    if not info.ready or not info.digest:
        return _pending(out, "SourceNotReady", f"ArenaSource {source} has no artifact yet: {info.message}".strip())
    out.conditions.append(("SourceReady", True, "ArtifactAvailable", f"source {source} at {info.revision}"))
    try:
        bundle = load_config_bundle(store, namespace, source, info, spec, max_bytes)
    except BundleInvalid as exc:
        shown = "; ".join(str(p) for p in exc.problems[:MAX_PROBLEMS_SHOWN])
        return _invalid(out, "InvalidBundle", f"bundle at {info.revision}: {shown}")
    except FileNotFoundError as exc:
        return _pending(out, "ArtifactMissing", str(exc))
    missing = [r.name for r in _provider_refs(spec) if r.name not in provider_names]
    if missing:
        return _invalid(out, "ProviderNotFound", f"Provider {', '.join(sorted(missing))} not found in {namespace}")
    filters = RunFilters(scenarios=list(spec.scenarios.include or []) if spec.scenarios else [],
                         exclude_scenarios=list(spec.scenarios.exclude or []) if spec.scenarios else [])
    selected = select_scenarios(bundle, filters)
    if not selected:
        return _invalid(out, "NoScenarios", f"spec.scenarios selects none of the bundle's {len(bundle.scenarios)} "
                        "scenarios")
    providers = _provider_groups(spec, bundle)
    out.status.update(phase="Ready", revision=info.revision, scenarioCount=len(selected), providers=providers)
    out.conditions += [("Valid", True, "Validated", f"{len(selected)} scenarios, providers {providers}"),
                       ("Ready", True, "Validated", f"ready at revision {info.revision}")]
    out.event = ("Normal", "Validated", f"bundle at {info.revision}: {len(selected)} scenarios")
    return out


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


def _pending(out: ConfigOutcome, reason: str, message: str) -> ConfigOutcome:
    out.status["phase"] = "Pending"
    out.conditions += [("SourceReady", False, reason, message), ("Ready", False, reason, message)]
    return out


def _invalid(out: ConfigOutcome, reason: str, message: str) -> ConfigOutcome:
    out.status["phase"] = "Invalid"
    out.conditions += [("Valid", False, reason, message), ("Ready", False, reason, message)]
    out.event = ("Warning", reason, message)
    return out
