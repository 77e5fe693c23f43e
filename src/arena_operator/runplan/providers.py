"""Which providers and tools a run uses: ArenaJob overrides and ArenaConfig settings over the bundle's own.

Pure functions over objects as listed from the API (plain dicts); no Kubernetes client, no kopf. The operator
lists Provider and ToolRegistry objects of the namespace, calls :func:`resolve_providers` and
:func:`resolve_tools`, records the result in the job's status and hands it to the workers; a worker loads the
bundle and calls :func:`apply_to_bundle`, so operator and workers plan and run exactly the same providers.

Secrets never pass through here: a Provider's ``credential.secretRef`` becomes a :class:`SecretEnv` (which
Secret key goes into which environment variable of the worker pod) and the engine spec names only that
variable (``credential.credential_env``).

Inline mock responses (a mock Provider's ``mockConfig``) travel in the engine spec as
``additional_config["mock_config_inline"]``; the engine's mock provider reads only files, so whoever runs the
bundle (not the operator, which only plans) materialises them: :func:`apply_resolved_config` does it in the
worker, a local run passes ``mock_dir`` to :func:`apply_to_bundle`. Each inline config is written to
``<mock_dir>/<provider>.mock.json`` and ``additional_config["mock_config"]`` points at that file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from ..api import conditions as c
from ..api.arenaconfig import ArenaConfigSpec
from ..api.arenajob import ArenaJobSpec
from ..api.common import LabelSelector
from ..api.compat import ArenaProviderEntry
from ..api.provider import ProviderSpec as ProviderCrdSpec
from ..engine import spec as engine_spec
from ..engine.bundle import Bundle
from .selection import ResolutionError, as_model, format_selector, inventory, object_name, select_objects

INLINE_MOCK_KEY = "mock_config_inline"
"""``additional_config`` key of a mock Provider's inline ``mockConfig`` until a worker writes it to a file."""
DEFAULT_GROUP = "default"
WILDCARD = "*"
DEFAULT_KEY_BY_TYPE: dict[str, str] = {
    "openai": "OPENAI_API_KEY",
    "claude": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
}
"""The Secret key read when ``credential.secretRef.key`` is unset: the variable the type's SDKs use."""

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, order=True)
class SecretEnv:
    """Environment variable ``env`` of the worker is taken from key ``key`` of Secret ``secret_name``."""

    env: str
    secret_name: str
    key: str


@dataclass
class ResolvedProviders:
    """Providers replacing the bundle's: per group the Provider names, their engine specs, their secrets.

    Groups absent from ``groups`` keep the bundle's own providers. ``specs`` holds engine ``ProviderSpec``
    dumps (JSON-ready), so the whole object can be stored (e.g. in Redis) and rebuilt with :meth:`from_dict`.
    Provider ids are the Provider names, except in a Go-form map group, where each keeps the bundle's id it
    replaces; ``origins`` maps such an id to its Provider's name.
    """

    groups: dict[str, list[str]] = field(default_factory=dict)
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: list[SecretEnv] = field(default_factory=list)
    origins: dict[str, str] = field(default_factory=dict)

    def to_config(self) -> dict[str, Any]:
        """A JSON-ready form for the job config the workers read (see :meth:`from_config`)."""
        return {"groups": self.groups, "specs": self.specs, "origins": self.origins,
                "secrets": [{"env": s.env, "secret_name": s.secret_name, "key": s.key} for s in self.secrets]}

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> ResolvedProviders:
        """The inverse of :meth:`to_config`."""
        secrets = [SecretEnv(**secret) for secret in data.get("secrets") or []]
        return cls(dict(data.get("groups") or {}), dict(data.get("specs") or {}), secrets,
                   dict(data.get("origins") or {}))

    def provider_names(self) -> dict[str, list[str]]:
        """Provider names per group (``status.resolvedProviders``): a map group's ids become their Providers."""
        return {group: [self.origins.get(pid, pid) for pid in ids] for group, ids in self.groups.items()}


# -- selectors -------------------------------------------------------------------------------------------

def provider_env_var(provider_name: str) -> str:
    """The worker environment variable holding a Provider's API key, e.g. ``ARENA_PROVIDER_GPT4_PROD_API_KEY``.

    Lower-case letters, digits and ``-`` map one-to-one; a name with anything else (``.``, upper case) also
    gets a short hash of the name, so ``a.b`` and ``a-b`` never share a variable.
    """
    body = re.sub(r"[^A-Z0-9]", "_", provider_name.upper())
    if not re.fullmatch(r"[a-z0-9-]+", provider_name):
        body += "_" + hashlib.sha256(provider_name.encode()).hexdigest()[:8].upper()
    return f"ARENA_PROVIDER_{body}_API_KEY"


def _secret_key(name: str, crd: ProviderCrdSpec) -> str | None:
    ref = crd.credential.secret_ref if crd.credential else None
    if ref is None:
        return None
    key = ref.key or DEFAULT_KEY_BY_TYPE.get(crd.type)
    if not key:
        raise ResolutionError(c.INVALID_SPEC, f"Provider {name}: credential.secretRef.key is required for type "
                                            f"{crd.type} (it has no usual variable name)")
    return key


def _provider_crd(provider: Mapping[str, Any]) -> tuple[str, ProviderCrdSpec]:
    name = object_name(provider)
    return name, as_model(ProviderCrdSpec, provider.get("spec") or {}, f"Provider {name}")


def engine_provider_spec(provider: Mapping[str, Any]) -> engine_spec.ProviderSpec:
    """A Provider object → the engine's ProviderSpec (id = the Provider's name).

    The API key is referenced by variable only (:func:`provider_env_var`); an inline ``mockConfig`` goes to
    ``additional_config["mock_config_inline"]`` (see the module docstring).
    """
    name, crd = _provider_crd(provider)
    spec: dict[str, Any] = {"id": name, "type": crd.type, "model": crd.model or "", "base_url": crd.base_url}
    if crd.defaults is not None:
        spec["defaults"] = crd.defaults.model_dump(exclude_none=True)
    if crd.pricing is not None:
        spec["pricing"] = crd.pricing.model_dump(exclude_none=True)
    if _secret_key(name, crd) is not None:
        spec["credential"] = {"credential_env": provider_env_var(name)}
    if crd.mock_config is not None:
        spec["additional_config"] = {INLINE_MOCK_KEY: crd.mock_config}
    return engine_spec.ProviderSpec.model_validate(spec)


def _provider_secret(provider: Mapping[str, Any]) -> SecretEnv | None:
    name, crd = _provider_crd(provider)
    key = _secret_key(name, crd)
    if key is None or crd.credential is None:
        return None
    return SecretEnv(provider_env_var(name), crd.credential.secret_ref.name, key)


def _group_source(group: str, config: ArenaConfigSpec, job: ArenaJobSpec) -> tuple[str, Any] | None:
    """Where a group's providers come from, by precedence: the job's Go-form providers, its override, its '*',
    the config's list, providerRef (runplan.forms explains why)."""
    if (job.providers or {}).get(group):  # an empty group counts as unset, as in the config
        return f"providers.{group}", (job.providers or {})[group]
    overrides = job.provider_overrides or {}
    if group in overrides:
        return f"providerOverrides.{group}", overrides[group].selector
    if WILDCARD in overrides:
        return f"providerOverrides.* (group {group})", overrides[WILDCARD].selector
    if (config.providers or {}).get(group):
        return f"ArenaConfig providers.{group}", [ref.name for ref in config.providers[group]]
    if group == DEFAULT_GROUP and config.provider_ref is not None:
        return "ArenaConfig providerRef", [config.provider_ref.name]
    return None


def _go_group(where: str, group: list[ArenaProviderEntry] | dict[str, ArenaProviderEntry],
              namespace: str | None) -> list[tuple[str | None, str]]:
    """A Go-form group as (bundle provider id, or None for a pool entry; Provider name), refusing what cannot run."""
    entries = [(pid, group[pid]) for pid in sorted(group)] if isinstance(group, dict) else [(None, e) for e in group]
    chosen = []
    for index, (pid, entry) in enumerate(entries):
        here = f"{where}.{pid}" if pid is not None else f"{where}[{index}]"
        if entry.agent_ref is not None:
            raise ResolutionError(c.UNSUPPORTED, f"{here}: agentRef {entry.agent_ref.name} needs an AgentRuntime "
                                               "(the Go operator's fleet mode), which this operator does not have; "
                                               "use providerRef")
        ref = entry.provider_ref
        assert ref is not None  # the model requires exactly one of the two
        if ref.namespace and namespace is not None and ref.namespace != namespace:
            raise ResolutionError(c.UNSUPPORTED, f"{here}: Provider {ref.namespace}/{ref.name} is in another "
                                               f"namespace than the job ({namespace}); worker pods can read "
                                               "only their own namespace's Secrets")
        chosen.append((pid, ref.name))
    return chosen


def _matched(where: str, rule: Any, providers: list[Mapping[str, Any]],
             namespace: str | None) -> list[tuple[str, Mapping[str, Any]]]:
    """(provider id, Provider object) for one group's rule: a selector, a list of names or a Go-form group."""
    by_name = {object_name(p): p for p in providers}
    if isinstance(rule, LabelSelector):
        matched = select_objects(providers, rule)
        if not matched:
            raise ResolutionError(c.NO_PROVIDER_MATCHED, f"{where}: no Provider matches {format_selector(rule)} "
                                                       f"({inventory('Provider', providers)})")
        return [(object_name(p), p) for p in matched]
    go_form = isinstance(rule, dict) or any(isinstance(entry, ArenaProviderEntry) for entry in rule)
    pairs = _go_group(where, rule, namespace) if go_form else [(None, name) for name in rule]
    missing = [name for _, name in pairs if name not in by_name]
    if missing:
        raise ResolutionError(c.PROVIDER_NOT_FOUND, f"{where}: Provider {', '.join(missing)} not found "
                                                  f"({inventory('Provider', providers)})")
    if all(pid is None for pid, _ in pairs):  # a pool: one position per Provider, by name
        return [(name, by_name[name]) for name in sorted(dict.fromkeys(name for _, name in pairs))]
    return [(str(pid), by_name[name]) for pid, name in pairs]


def resolve_providers(bundle_groups: Mapping[str, list[str]], config_spec: ArenaConfigSpec | Mapping[str, Any],
                      job_spec: ArenaJobSpec | Mapping[str, Any],
                      providers: list[Mapping[str, Any]], namespace: str | None = None) -> ResolvedProviders:
    """Provider names per group replacing the bundle's (see :func:`bundle_groups` for ``bundle_groups``).

    Per group: the job's Go-form ``providers[group]`` (a pool of Provider references, or a map of the bundle's
    provider ids to Providers, each id keeping its name), else its ``providerOverrides[group]`` selector, else
    its ``providerOverrides["*"]``, else the config's ``providers[group]`` (an empty list counts as unset), else
    ``providerRef`` for group default. The groups considered are the bundle's, those the job or config name, and
    default when providerRef is set. ``namespace`` (the job's) refuses Go-form references to other namespaces.
    Raises :class:`ResolutionError` (NoProviderMatched, ProviderNotFound, ProviderConflict, Unsupported,
    InvalidSpec).
    """
    config = as_model(ArenaConfigSpec, config_spec, "ArenaConfig spec")
    job = as_model(ArenaJobSpec, job_spec, "ArenaJob spec")
    candidates = (set(bundle_groups) | set(job.provider_overrides or {}) | set(config.providers or {})
                  | set(job.providers or {}))
    if config.provider_ref is not None:
        candidates.add(DEFAULT_GROUP)
    candidates.discard(WILDCARD)
    resolved = ResolvedProviders()
    secrets: dict[str, SecretEnv] = {}
    for group in sorted(candidates):
        source = _group_source(group, config, job)
        if source is None:
            continue
        where, rule = source
        matched = _matched(where, rule, providers, namespace)
        resolved.groups[group] = [pid for pid, _ in matched]
        for pid, provider in matched:
            spec = {**engine_provider_spec(provider).model_dump(mode="json"), "id": pid}
            if resolved.specs.get(pid, spec) != spec:
                raise ResolutionError(c.PROVIDER_CONFLICT, f"{where}: provider id {pid} stands for Provider "
                                                         f"{object_name(provider)} here and for Provider "
                                                         f"{resolved.origins.get(pid, pid)} in another group")
            resolved.specs[pid] = spec
            if pid != object_name(provider):
                resolved.origins[pid] = object_name(provider)
            secret = _provider_secret(provider)
            if secret is not None:
                secrets[secret.env] = secret
    resolved.secrets = sorted(secrets.values())
    return resolved


def bundle_groups(bundle: Bundle) -> dict[str, list[str]]:
    """The bundle's providers by group (group → ids, in bundle order): the ``bundle_groups`` argument."""
    groups: dict[str, list[str]] = {}
    for provider_id in bundle.providers:
        groups.setdefault(bundle.provider_groups.get(provider_id, DEFAULT_GROUP), []).append(provider_id)
    return groups


def effective_groups(bundle_groups: Mapping[str, list[str]], resolved: ResolvedProviders) -> dict[str, list[str]]:
    """Provider names per group after resolution (bundle ids where nothing replaced them), for status."""
    merged = {group: list(ids) for group, ids in bundle_groups.items()}
    merged.update({group: list(names) for group, names in resolved.groups.items()})
    return dict(sorted(merged.items()))


# -- tools -----------------------------------------------------------------------------------------------
