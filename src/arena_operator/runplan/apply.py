"""Resolved providers and tools applied to a loaded bundle, by the worker and by a local run alike; inline mock
responses materialised as files."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..api import conditions as c
from ..engine import spec as engine_spec
from ..engine.bundle import Bundle
from .providers import DEFAULT_GROUP, INLINE_MOCK_KEY, ResolvedProviders
from .selection import ResolutionError


def apply_to_bundle(bundle: Bundle, resolved: ResolvedProviders, tools: Mapping[str, Mapping[str, Any]], *,
                    mock_dir: Path | None = None) -> None:
    """Put the resolved providers and tools into a loaded bundle (in place).

    For each resolved group the bundle's providers of that group are removed and the resolved ones added
    (id = Provider name, or the bundle's own id for a Go-form map group). References to a removed provider
    are re-pointed so the bundle stays consistent: judges and self-play roles to the first resolved provider
    of its group, a scenario's explicit
    ``providers`` list to all resolved providers of that group. A Provider resolved for several groups
    belongs to the first of them (default first, then by name) as far as ``provider_groups`` is concerned.
    Tools replace same-name bundle tools (keeping the bundle's description, schemas where the registry sets
    none) or are added. With ``mock_dir``, inline mock configs are written there
    (:func:`materialize_mock_configs`); the operator, which only plans, leaves it unset.
    """
    groups = sorted(resolved.groups, key=lambda g: (g != DEFAULT_GROUP, g))
    removed: dict[str, str] = {}
    for provider_id, group in list(bundle.provider_groups.items()):
        if group in resolved.groups:
            removed[provider_id] = group
            bundle.providers.pop(provider_id, None)
            del bundle.provider_groups[provider_id]
    added: set[str] = set()
    for group in groups:
        for name in resolved.groups[group]:
            if name in bundle.providers and name not in added:
                raise ResolutionError(c.PROVIDER_CONFLICT, f"Provider {name} resolved for group {group} has the "
                                                         f"name of the bundle's provider {name} of group "
                                                         f"{bundle.provider_groups.get(name, DEFAULT_GROUP)}")
            bundle.providers[name] = engine_spec.ProviderSpec.model_validate(resolved.specs[name])
            bundle.provider_groups.setdefault(name, group)
            added.add(name)
    # An id that comes back (a Go-form map group keeps the bundle's ids) keeps its references.
    _repoint(bundle, {pid: group for pid, group in removed.items() if pid not in added}, resolved.groups)
    for name, override in tools.items():
        current = bundle.tools.get(name)
        base = current.model_dump() if current is not None else {}
        bundle.tools[name] = engine_spec.ToolSpec.model_validate({**base, **override, "name": name})
    if mock_dir is not None:
        materialize_mock_configs(bundle, mock_dir)


OFFLINE_TYPES = ("mock", "replay")  # provider types that call nothing: a bundle may bring them into the cluster


def refuse_unresolved_endpoints(bundle: Bundle, resolved: ResolvedProviders) -> None:
    """The cluster's rule (operator and worker): a provider's endpoint, headers and credential come from a Provider
    object, never from the bundle, so a bundle provider the job does not resolve runs only as a mock (or replays
    one of its recordings). Otherwise a bundle would choose which secret goes to which host (`credential_env:
    AWS_SECRET_ACCESS_KEY` to its own `base_url`). Raises ResolutionError(ProviderNotFound) naming each such
    provider and its group."""
    from_bundle = sorted(pid for pid, spec in bundle.providers.items()
                         if pid not in resolved.specs and spec.type not in OFFLINE_TYPES)
    if from_bundle:
        named = ", ".join(f"{pid} (group {bundle.provider_groups.get(pid, DEFAULT_GROUP)}, type "
                          f"{bundle.providers[pid].type})" for pid in from_bundle)
        raise ResolutionError(c.PROVIDER_NOT_FOUND, f"bundle providers {named} are not resolved to Provider "
                                                    "objects: in the cluster a bundle may only bring mock providers; "
                                                    "resolve their groups with providers, providerOverrides or "
                                                    "providerRef (the Provider sets base URL and credential)")


def _repoint(bundle: Bundle, removed: Mapping[str, str], groups: Mapping[str, list[str]]) -> None:
    for judge in bundle.arena.judges:
        if judge.provider in removed:
            judge.provider = groups[removed[judge.provider]][0]
    for role in bundle.arena.self_play.roles if bundle.arena.self_play else []:
        if role.provider in removed:
            role.provider = groups[removed[role.provider]][0]
    for scenario in bundle.scenarios.values():
        if scenario.providers and any(p in removed for p in scenario.providers):
            replaced = [new for p in scenario.providers for new in (groups[removed[p]] if p in removed else [p])]
            scenario.providers = list(dict.fromkeys(replaced))


def apply_resolved_config(bundle: Bundle, config: Mapping[str, Any], *, mock_dir: Path | None = None) -> None:
    """The worker's side: apply a job config's ``providers`` (:meth:`ResolvedProviders.to_config`) and ``tools``
    (:func:`resolve_tools`) to the bundle, refuse endpoints only the bundle names (:func:`refuse_unresolved_endpoints`),
    write inline mock configs to ``mock_dir`` (default: a new temporary directory, created only when there is
    one)."""
    resolved = ResolvedProviders.from_config(config.get("providers") or {})
    apply_to_bundle(bundle, resolved, config.get("tools") or {})
    refuse_unresolved_endpoints(bundle, resolved)
    if any(INLINE_MOCK_KEY in spec.additional_config for spec in bundle.providers.values()):
        materialize_mock_configs(bundle, mock_dir or Path(tempfile.mkdtemp(prefix="arena-mocks-")))


def materialize_mock_configs(bundle: Bundle, directory: Path) -> dict[str, Path]:
    """Write each provider's inline mock config to ``<directory>/<id>.mock.json`` and point the spec at it.

    The engine's mock provider reads mock configs from files (``additional_config.mock_config``, resolved
    against the bundle root; an absolute path stays absolute). Returns provider id → file written.
    """
    written: dict[str, Path] = {}
    for provider_id, spec in bundle.providers.items():
        inline = spec.additional_config.pop(INLINE_MOCK_KEY, None)
        if inline is None:
            continue
        directory.mkdir(parents=True, exist_ok=True)
        path = (directory / f"{provider_id}.mock.json").resolve()
        path.write_text(json.dumps(inline, sort_keys=True), encoding="utf-8")
        spec.additional_config["mock_config"] = str(path)
        written[provider_id] = path
    return written
