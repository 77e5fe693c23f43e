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
import json
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..api import conditions as c
from ..api.arenaconfig import ArenaConfigSpec
from ..api.arenajob import ArenaJobSpec
from ..api.common import LabelSelector, parse_duration
from ..api.provider import ProviderSpec as ProviderCrdSpec
from ..api.toolregistry import ToolRegistrySpec
from ..engine import spec as engine_spec
from ..engine.bundle import Bundle

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


class ResolutionError(Exception):
    """Providers or tools cannot be resolved; ``reason`` is a CamelCase condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


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
    """

    groups: dict[str, list[str]] = field(default_factory=dict)
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: list[SecretEnv] = field(default_factory=list)

    def to_config(self) -> dict[str, Any]:
        """A JSON-ready form for the job config the workers read (see :meth:`from_config`)."""
        return {"groups": self.groups, "specs": self.specs,
                "secrets": [{"env": s.env, "secret_name": s.secret_name, "key": s.key} for s in self.secrets]}

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> ResolvedProviders:
        """The inverse of :meth:`to_config`."""
        secrets = [SecretEnv(**secret) for secret in data.get("secrets") or []]
        return cls(dict(data.get("groups") or {}), dict(data.get("specs") or {}), secrets)


# -- selectors -------------------------------------------------------------------------------------------

def _as_model(model: type[M], value: M | Mapping[str, Any], what: str) -> M:
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(dict(value))  # kopf hands over Mapping views, strict models want a dict
    except ValidationError as exc:
        raise ResolutionError(c.INVALID_SPEC, f"{what}: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where + ': ' if where else ''}{error['msg']}{more}"


def selector_matches(selector: LabelSelector | Mapping[str, Any], labels: Mapping[str, str] | None) -> bool:
    """Kubernetes label-selector semantics: every matchLabels pair and every matchExpressions term must hold.

    An empty selector matches everything; ``NotIn`` and ``DoesNotExist`` hold when the key is absent.
    """
    sel = _as_model(LabelSelector, selector, "label selector")
    labels = labels or {}
    for key, value in (sel.match_labels or {}).items():
        if labels.get(key) != value:
            return False
    for term in sel.match_expressions or []:
        present = term.key in labels
        values = term.values or []
        holds = {
            "In": present and labels.get(term.key) in values,
            "NotIn": not present or labels.get(term.key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[term.operator]
        if not holds:
            return False
    return True


def format_selector(selector: LabelSelector | Mapping[str, Any]) -> str:
    """``{role: evaluator, model-size in (large, xlarge)}``: a selector as people read it in messages."""
    sel = _as_model(LabelSelector, selector, "label selector")
    parts = [f"{key}: {value}" for key, value in sorted((sel.match_labels or {}).items())]
    for term in sel.match_expressions or []:
        if term.operator in ("In", "NotIn"):
            op = "in" if term.operator == "In" else "notin"
            parts.append(f"{term.key} {op} ({', '.join(term.values or [])})")
        else:
            parts.append(term.key if term.operator == "Exists" else f"!{term.key}")
    return "{" + ", ".join(parts) + "}"


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _select(objects: list[Mapping[str, Any]], selector: LabelSelector) -> list[Mapping[str, Any]]:
    return sorted((o for o in objects if selector_matches(selector, _labels(o))), key=_name)


def _inventory(kind: str, objects: list[Mapping[str, Any]]) -> str:
    names = sorted(_name(o) for o in objects)
    if not names:
        return f"there are no {kind} objects in the namespace"
    shown = ", ".join(names[:10]) + (f", … ({len(names)} in all)" if len(names) > 10 else "")
    return f"{kind}s in the namespace: {shown}"


# -- providers -------------------------------------------------------------------------------------------

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
    name = _name(provider)
    return name, _as_model(ProviderCrdSpec, provider.get("spec") or {}, f"Provider {name}")


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
    """Where a group's providers come from, by precedence: job override, job '*', config list, providerRef."""
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


def resolve_providers(bundle_groups: Mapping[str, list[str]], config_spec: ArenaConfigSpec | Mapping[str, Any],
                      job_spec: ArenaJobSpec | Mapping[str, Any],
                      providers: list[Mapping[str, Any]]) -> ResolvedProviders:
    """Provider names per group replacing the bundle's (see :func:`bundle_groups` for ``bundle_groups``).

    Per group: the job's ``providerOverrides[group]`` selector, else its ``providerOverrides["*"]``, else the
    config's ``providers[group]`` (an empty list counts as unset), else ``providerRef`` for group default.
    The groups considered are the bundle's, those the job or config name, and default when providerRef is set.
    Raises :class:`ResolutionError` (NoProviderMatched, ProviderNotFound, InvalidSpec).
    """
    config = _as_model(ArenaConfigSpec, config_spec, "ArenaConfig spec")
    job = _as_model(ArenaJobSpec, job_spec, "ArenaJob spec")
    by_name = {_name(p): p for p in providers}
    candidates = set(bundle_groups) | set(job.provider_overrides or {}) | set(config.providers or {})
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
        if isinstance(rule, LabelSelector):
            matched = _select(providers, rule)
            if not matched:
                raise ResolutionError(c.NO_PROVIDER_MATCHED, f"{where}: no Provider matches {format_selector(rule)} "
                                                           f"({_inventory('Provider', providers)})")
        else:
            missing = [name for name in rule if name not in by_name]
            if missing:
                raise ResolutionError(c.PROVIDER_NOT_FOUND, f"{where}: Provider {', '.join(missing)} not found "
                                                          f"({_inventory('Provider', providers)})")
            matched = sorted((by_name[name] for name in dict.fromkeys(rule)), key=_name)
        resolved.groups[group] = [_name(p) for p in matched]
        for provider in matched:
            name = _name(provider)
            resolved.specs[name] = engine_provider_spec(provider).model_dump(mode="json")
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

def _matched_handlers(job_spec: ArenaJobSpec | Mapping[str, Any],
                      registries: list[Mapping[str, Any]]) -> list[tuple[str, Any]]:
    """(registry name, handler) for every handler of the selected registries; duplicate tool names raise."""
    job = _as_model(ArenaJobSpec, job_spec, "ArenaJob spec")
    if job.tool_registry_override is None:
        return []
    selector = job.tool_registry_override.selector
    matched = _select(registries, selector)
    if not matched:
        raise ResolutionError(c.NO_TOOL_REGISTRY_MATCHED, f"toolRegistryOverride: no ToolRegistry matches "
                                                        f"{format_selector(selector)} "
                                                        f"({_inventory('ToolRegistry', registries)})")
    seen: dict[str, str] = {}
    handlers = []
    for registry in matched:
        name = _name(registry)
        spec = _as_model(ToolRegistrySpec, registry.get("spec") or {}, f"ToolRegistry {name}")
        for handler in spec.handlers:
            here = f"ToolRegistry {name} (handler {handler.name})"
            if handler.tool.name in seen:
                raise ResolutionError(c.DUPLICATE_TOOL, f"toolRegistryOverride: tool {handler.tool.name} is defined "
                                                      f"by {seen[handler.tool.name]} and by {here}")
            seen[handler.tool.name] = here
            handlers.append((name, handler))
    return handlers


def resolve_tools(job_spec: ArenaJobSpec | Mapping[str, Any],
                  registries: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Tool name → engine ``ToolSpec`` fields (live, http) from the job's ``toolRegistryOverride``.

    ``description`` and ``input_schema`` appear only when the registry sets them, so :func:`apply_to_bundle`
    keeps the bundle tool's own where the registry is silent. Raises :class:`ResolutionError`
    (NoToolRegistryMatched, DuplicateTool, InvalidSpec). No override → ``{}``.
    """
    tools: dict[str, dict[str, Any]] = {}
    for _registry, handler in _matched_handlers(job_spec, registries):
        http = handler.http_config
        tool: dict[str, Any] = {"name": handler.tool.name, "mode": "live", "http": {
            "url": http.endpoint, "method": http.method, "headers": dict(http.headers or {}),
            "timeout_ms": max(1, round(parse_duration(handler.timeout).total_seconds() * 1000)),
        }}
        if handler.tool.description is not None:
            tool["description"] = handler.tool.description
        if handler.tool.input_schema is not None:
            tool["input_schema"] = handler.tool.input_schema
        tools[handler.tool.name] = tool
    return tools


def resolved_tool_records(job_spec: ArenaJobSpec | Mapping[str, Any],
                          registries: list[Mapping[str, Any]]) -> list[dict[str, str]]:
    """``status.resolvedTools`` entries (name, registry, handler, endpoint), sorted by tool name."""
    records = [{"name": handler.tool.name, "registry": registry, "handler": handler.name,
                "endpoint": handler.http_config.endpoint} for registry, handler in _matched_handlers(job_spec,
                                                                                                     registries)]
    return sorted(records, key=lambda record: record["name"])


# -- applying to a loaded bundle -------------------------------------------------------------------------

def apply_to_bundle(bundle: Bundle, resolved: ResolvedProviders, tools: Mapping[str, Mapping[str, Any]], *,
                    mock_dir: Path | None = None) -> None:
    """Put the resolved providers and tools into a loaded bundle (in place).

    For each resolved group the bundle's providers of that group are removed and the resolved ones added
    (id = Provider name). References to a removed provider are re-pointed so the bundle stays consistent:
    judges and self-play roles to the first resolved provider of its group, a scenario's explicit
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
    _repoint(bundle, removed, resolved.groups)
    for name, override in tools.items():
        current = bundle.tools.get(name)
        base = current.model_dump() if current is not None else {}
        bundle.tools[name] = engine_spec.ToolSpec.model_validate({**base, **override, "name": name})
    if mock_dir is not None:
        materialize_mock_configs(bundle, mock_dir)


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
    (:func:`resolve_tools`) to the bundle, writing inline mock configs to ``mock_dir`` (default: a new
    temporary directory, created only when there is one)."""
    apply_to_bundle(bundle, ResolvedProviders.from_config(config.get("providers") or {}), config.get("tools") or {})
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
