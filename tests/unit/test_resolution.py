"""runplan: selector semantics, provider precedence, spec conversion, tool overrides, applying to a bundle."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from arena_operator.api.arenaconfig import ArenaConfigSpec
from arena_operator.api.arenajob import ArenaJobSpec
from arena_operator.api.common import LabelSelector
from arena_operator.engine.bundle import Bundle, load_bundle
from arena_operator.engine.plan import generate_plan
from arena_operator.engine.providers.registry import build_providers
from arena_operator.engine.spec import ProviderSpec as EngineProviderSpec
from arena_operator.runplan.apply import apply_resolved_config, apply_to_bundle, materialize_mock_configs
from arena_operator.runplan.providers import (
    ResolvedProviders,
    SecretEnv,
    bundle_groups,
    effective_groups,
    engine_provider_spec,
    provider_env_var,
    resolve_providers,
)
from arena_operator.runplan.selection import ResolutionError, format_selector, selector_matches
from arena_operator.runplan.tools import resolve_tools, resolved_tool_records


def provider(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "omnia.altairalabs.ai/v1alpha1", "kind": "Provider",
            "metadata": {"name": name, "namespace": "arena", "labels": labels or {}},
            "spec": {"type": "openai", "model": "gpt-4", **spec}}


def registry(name: str, labels: dict[str, str], *handlers: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "ToolRegistry", "metadata": {"name": name, "labels": labels}, "spec": {"handlers": list(handlers)}}


def handler(name: str, tool_name: str, endpoint: str = "http://tools.svc/x", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "http", "tool": {"name": tool_name, **extra.pop("tool", {})},
            "httpConfig": {"endpoint": endpoint, **extra.pop("http", {})}, **extra}


def job(**spec: Any) -> ArenaJobSpec:
    return ArenaJobSpec.model_validate({"configRef": {"name": "c"}, **spec})


def config(**spec: Any) -> ArenaConfigSpec:
    return ArenaConfigSpec.model_validate({"sourceRef": {"name": "s"}, **spec})


# -- selectors ---------------------------------------------------------------------------------------------

LABELS = {"tier": "production", "team": "ml", "size": "large"}


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ({}, {}, True),
    ({}, LABELS, True),
    ({"matchLabels": {}}, LABELS, True),
    ({"matchLabels": {"tier": "production"}}, LABELS, True),
    ({"matchLabels": {"tier": "production", "team": "ml"}}, LABELS, True),
    ({"matchLabels": {"tier": "production", "team": "web"}}, LABELS, False),
    ({"matchLabels": {"tier": "production"}}, {}, False),
    ({"matchLabels": {"tier": ""}}, {}, False),
    ({"matchExpressions": [{"key": "size", "operator": "In", "values": ["large", "xlarge"]}]}, LABELS, True),
    ({"matchExpressions": [{"key": "size", "operator": "In", "values": ["small"]}]}, LABELS, False),
    ({"matchExpressions": [{"key": "absent", "operator": "In", "values": ["x"]}]}, LABELS, False),
    ({"matchExpressions": [{"key": "size", "operator": "NotIn", "values": ["large"]}]}, LABELS, False),
    ({"matchExpressions": [{"key": "size", "operator": "NotIn", "values": ["small"]}]}, LABELS, True),
    ({"matchExpressions": [{"key": "absent", "operator": "NotIn", "values": ["x"]}]}, LABELS, True),
    ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, LABELS, True),
    ({"matchExpressions": [{"key": "absent", "operator": "Exists"}]}, LABELS, False),
    ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, LABELS, False),
    ({"matchExpressions": [{"key": "absent", "operator": "DoesNotExist"}]}, LABELS, True),
    ({"matchExpressions": [{"key": "absent", "operator": "DoesNotExist"}]}, {}, True),
    # all terms are ANDed, matchLabels with matchExpressions
    ({"matchLabels": {"tier": "production"},
      "matchExpressions": [{"key": "size", "operator": "In", "values": ["large"]},
                           {"key": "team", "operator": "NotIn", "values": ["ml"]}]}, LABELS, False),
    ({"matchLabels": {"tier": "production"},
      "matchExpressions": [{"key": "size", "operator": "In", "values": ["large"]},
                           {"key": "gpu", "operator": "DoesNotExist"}]}, LABELS, True),
])
def test_selector_matches(selector: dict[str, Any], labels: dict[str, str], expected: bool) -> None:
    assert selector_matches(selector, labels) is expected
    assert selector_matches(LabelSelector.model_validate(selector), labels) is expected


def test_selector_invalid_and_formatting() -> None:
    with pytest.raises(ResolutionError) as err:
        selector_matches({"matchExpressions": [{"key": "a", "operator": "In"}]}, {})
    assert err.value.reason == "InvalidSpec"
    assert selector_matches({"matchLabels": {"a": "b"}}, None) is False
    assert selector_matches(MappingProxyType({"matchLabels": {"a": "b"}}), {"a": "b"}) is True  # kopf-style views
    assert format_selector({"matchLabels": {"role": "evaluator"}, "matchExpressions": [
        {"key": "size", "operator": "In", "values": ["large", "xlarge"]},
        {"key": "gpu", "operator": "Exists"}, {"key": "spot", "operator": "DoesNotExist"},
        {"key": "env", "operator": "NotIn", "values": ["dev"]}]}) == \
        "{role: evaluator, size in (large, xlarge), gpu, !spot, env notin (dev)}"
    assert format_selector({}) == "{}"


# -- provider names and specs ---------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "expected"), [
    ("gpt4-prod", "ARENA_PROVIDER_GPT4_PROD_API_KEY"),
    ("claude", "ARENA_PROVIDER_CLAUDE_API_KEY"),
    ("1st", "ARENA_PROVIDER_1ST_API_KEY"),
])
def test_provider_env_var(name: str, expected: str) -> None:
    assert provider_env_var(name) == expected


def test_provider_env_var_is_injective_and_valid() -> None:
    names = ["a-b", "a.b", "a--b", "a.-b", "A-b", "a_b", "x" * 253]
    envs = [provider_env_var(n) for n in names]
    assert len(set(envs)) == len(names)
    assert all(re.fullmatch(r"[A-Z_][A-Z0-9_]*", e) for e in envs)
    assert provider_env_var("a.b") == provider_env_var("a.b")


def test_engine_provider_spec_full() -> None:
    spec = engine_provider_spec(provider(
        "gpt4-prod", type="openai", model="gpt-4o", baseURL="https://llm.internal/v1",
        credential={"secretRef": {"name": "openai-creds"}},
        defaults={"temperature": 0.3, "maxTokens": 512, "topP": 0.9},
        pricing={"inputCostPer1K": 0.005, "outputCostPer1K": 0.015}))
    assert spec.id == "gpt4-prod" and spec.type == "openai" and spec.model == "gpt-4o"
    assert spec.base_url == "https://llm.internal/v1"
    assert (spec.defaults.temperature, spec.defaults.max_tokens, spec.defaults.top_p) == (0.3, 512, 0.9)
    assert (spec.pricing.input_cost_per_1k, spec.pricing.output_cost_per_1k) == (0.005, 0.015)
    assert spec.credential.credential_env == "ARENA_PROVIDER_GPT4_PROD_API_KEY"
    assert spec.additional_config == {}


def test_engine_provider_spec_minimal_and_mock() -> None:
    plain = engine_provider_spec(provider("local", type="ollama", model=None))
    assert plain.model == "" and plain.base_url is None and plain.pricing is None
    assert plain.credential.credential_env is None
    mock = engine_provider_spec(provider("m", type="mock", mockConfig={"defaultResponse": "hi"}))
    assert mock.additional_config == {"mock_config_inline": {"defaultResponse": "hi"}}


@pytest.mark.parametrize("bad", [
    {"type": "openai", "mockConfig": {"a": 1}},  # mockConfig only for mock
    {"type": "nope"},
    {"type": "vllm", "credential": {"secretRef": {"name": "s"}}},  # no usual key for vllm: key required
])
def test_engine_provider_spec_rejects(bad: dict[str, Any]) -> None:
    obj = provider("p")
    obj["spec"] = bad
    with pytest.raises(ResolutionError) as err:
        resolve_providers({}, config(providerRef={"name": "p"}), job(), [obj])
    assert err.value.reason == "InvalidSpec" and "Provider p" in err.value.message


@pytest.mark.parametrize(("ptype", "key", "expected"), [
    ("openai", None, "OPENAI_API_KEY"),
    ("claude", None, "ANTHROPIC_API_KEY"),
    ("gemini", None, "GEMINI_API_KEY"),
    ("openai", "token", "token"),
    ("vllm", "api-key", "api-key"),
])
def test_secret_key_defaults(ptype: str, key: str | None, expected: str) -> None:
    ref = {"name": "creds", **({"key": key} if key else {})}
    resolved = resolve_providers({}, config(providerRef={"name": "p"}), job(),
                                 [provider("p", type=ptype, credential={"secretRef": ref})])
    assert resolved.secrets == [SecretEnv("ARENA_PROVIDER_P_API_KEY", "creds", expected)]


# -- precedence --------------------------------------------------------------------------------------------

PROVIDERS = [
    provider("gpt4-prod", {"tier": "production", "team": "ml"}, credential={"secretRef": {"name": "openai"}}),
    provider("gpt4-staging", {"tier": "staging"}),
    provider("claude-judge", {"role": "evaluator", "model-size": "large"}, type="claude",
             credential={"secretRef": {"name": "anthropic", "key": "token"}}),
    provider("claude-mini", {"role": "evaluator", "model-size": "small"}, type="claude"),
    provider("mock", {"tier": "production", "team": "ml"}, type="mock", model=None),
]
BUNDLE = {"default": ["support-assistant"], "judge": ["judge"], "selfplay": ["customer-sim"]}
PROD = {"selector": {"matchLabels": {"tier": "production"}}}
EVAL = {"selector": {"matchLabels": {"role": "evaluator"}}}


@pytest.mark.parametrize(("cfg", "overrides", "expected"), [
    ({}, None, {}),
    ({"providerRef": {"name": "gpt4-staging"}}, None, {"default": ["gpt4-staging"]}),
    ({"providers": {"judge": [{"name": "claude-judge"}]}}, None, {"judge": ["claude-judge"]}),
    ({"providers": {"default": [{"name": "gpt4-prod"}]}, "providerRef": {"name": "gpt4-staging"}}, None,
     {"default": ["gpt4-prod"]}),
    ({"providers": {"default": []}, "providerRef": {"name": "gpt4-staging"}}, None, {"default": ["gpt4-staging"]}),
    # matches are sorted by name, duplicates in a config list collapse
    ({"providers": {"default": [{"name": "gpt4-staging"}, {"name": "gpt4-prod"}, {"name": "gpt4-prod"}]}}, None,
     {"default": ["gpt4-prod", "gpt4-staging"]}),
    ({"providerRef": {"name": "gpt4-staging"}}, {"default": PROD}, {"default": ["gpt4-prod", "mock"]}),
    ({"providers": {"judge": [{"name": "gpt4-staging"}]}}, {"judge": EVAL},
     {"judge": ["claude-judge", "claude-mini"]}),
    # '*' fills every group not listed, beating the config; listed groups use their own selector
    ({"providers": {"judge": [{"name": "claude-judge"}]}, "providerRef": {"name": "gpt4-staging"}},
     {"*": PROD}, {"default": ["gpt4-prod", "mock"], "judge": ["gpt4-prod", "mock"],
                   "selfplay": ["gpt4-prod", "mock"]}),
    ({}, {"*": PROD, "judge": EVAL}, {"default": ["gpt4-prod", "mock"], "judge": ["claude-judge", "claude-mini"],
                                      "selfplay": ["gpt4-prod", "mock"]}),
    # a group only the job names (no bundle provider in it) is resolved too
    ({}, {"extra": {"selector": {"matchExpressions": [{"key": "model-size", "operator": "In", "values":
                                                        ["large", "xlarge"]}]}}}, {"extra": ["claude-judge"]}),
])
def test_precedence(cfg: dict[str, Any], overrides: dict[str, Any] | None, expected: dict[str, list[str]]) -> None:
    job_spec = job(providerOverrides=overrides) if overrides else job()
    resolved = resolve_providers(BUNDLE, config(**cfg), job_spec, PROVIDERS)
    assert resolved.groups == expected
    names = {n for ns in expected.values() for n in ns}
    assert set(resolved.specs) == names
    assert all(EngineProviderSpec.model_validate(s).id == n for n, s in resolved.specs.items())


def test_secrets_and_plain_dict_inputs() -> None:
    resolved = resolve_providers(
        BUNDLE, {"sourceRef": {"name": "s"}},
        {"configRef": {"name": "c"}, "providerOverrides": {"default": PROD, "judge": EVAL}}, PROVIDERS)
    assert resolved.secrets == [SecretEnv("ARENA_PROVIDER_CLAUDE_JUDGE_API_KEY", "anthropic", "token"),
                                SecretEnv("ARENA_PROVIDER_GPT4_PROD_API_KEY", "openai", "OPENAI_API_KEY")]
    assert resolved.specs["gpt4-prod"]["credential"]["credential_env"] == "ARENA_PROVIDER_GPT4_PROD_API_KEY"
    assert ResolvedProviders.from_config(json.loads(json.dumps(resolved.to_config()))) == resolved
    assert effective_groups(BUNDLE, resolved) == {"default": ["gpt4-prod", "mock"],
                                                  "judge": ["claude-judge", "claude-mini"],
                                                  "selfplay": ["customer-sim"]}


@pytest.mark.parametrize(("cfg", "overrides", "reason", "message"), [
    ({}, {"judge": {"selector": {"matchLabels": {"role": "evaluator", "team": "x"}}}}, "NoProviderMatched",
     "providerOverrides.judge: no Provider matches {role: evaluator, team: x} (Providers in the namespace: "
     "claude-judge, claude-mini, gpt4-prod, gpt4-staging, mock)"),
    ({}, {"*": {"selector": {"matchLabels": {"tier": "dev"}}}}, "NoProviderMatched",
     "providerOverrides.* (group default): no Provider matches {tier: dev}"),
    ({"providerRef": {"name": "gpt5"}}, None, "ProviderNotFound", "ArenaConfig providerRef: Provider gpt5 not found"),
    ({"providers": {"judge": [{"name": "claude-judge"}, {"name": "nope"}]}}, None, "ProviderNotFound",
     "ArenaConfig providers.judge: Provider nope not found"),
])
def test_resolution_errors(cfg: dict[str, Any], overrides: dict[str, Any] | None, reason: str, message: str) -> None:
    job_spec = job(providerOverrides=overrides) if overrides else job()
    with pytest.raises(ResolutionError) as err:
        resolve_providers(BUNDLE, config(**cfg), job_spec, PROVIDERS)
    assert err.value.reason == reason
    assert err.value.message.startswith(message), err.value.message
    assert str(err.value) == err.value.message


def test_no_providers_in_namespace_message() -> None:
    with pytest.raises(ResolutionError, match=r"no Provider matches \{role: evaluator\} \(there are no Provider "
                                              r"objects in the namespace\)"):
        resolve_providers(BUNDLE, config(), job(providerOverrides={"judge": EVAL}), [])


# -- tools -------------------------------------------------------------------------------------------------

REGISTRIES = [
    registry("production-tools", {"environment": "production"},
             handler("weather-handler", "get_weather", "http://weather-api.prod.svc:8080/weather",
                     tool={"description": "Get real weather data",
                           "inputSchema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                     http={"method": "GET", "headers": {"X-Env": "prod"}}, timeout="1.5s"),
             handler("orders", "lookup_order", "http://orders.prod.svc/lookup")),
    registry("staging-tools", {"environment": "staging"}, handler("w", "get_weather", "http://weather.staging")),
    registry("extra-tools", {"environment": "production", "extra": "yes"}, handler("t", "get_time")),
]


def test_resolve_tools() -> None:
    spec = job(toolRegistryOverride={"selector": {"matchLabels": {"environment": "production"}}})
    tools = resolve_tools(spec, REGISTRIES)
    assert list(tools) == ["get_time", "get_weather", "lookup_order"]  # registries by name, then handler order
    assert tools["get_weather"] == {
        "name": "get_weather", "mode": "live", "description": "Get real weather data",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        "http": {"url": "http://weather-api.prod.svc:8080/weather", "method": "GET", "headers": {"X-Env": "prod"},
                 "timeout_ms": 1500}}
    assert tools["lookup_order"] == {"name": "lookup_order", "mode": "live", "http": {
        "url": "http://orders.prod.svc/lookup", "method": "POST", "headers": {}, "timeout_ms": 10000}}
    assert resolved_tool_records(spec, REGISTRIES)[1] == {
        "name": "get_weather", "registry": "production-tools", "handler": "weather-handler",
        "endpoint": "http://weather-api.prod.svc:8080/weather"}
    assert resolve_tools(job(), REGISTRIES) == {}


@pytest.mark.parametrize(("selector", "reason", "message"), [
    ({"matchExpressions": [{"key": "environment", "operator": "Exists"}]}, "DuplicateTool",
     "toolRegistryOverride: tool get_weather is defined by ToolRegistry production-tools (handler weather-handler) "
     "and by ToolRegistry staging-tools (handler w)"),
    ({"matchLabels": {"environment": "dev"}}, "NoToolRegistryMatched",
     "toolRegistryOverride: no ToolRegistry matches {environment: dev} (ToolRegistrys in the namespace: "
     "extra-tools, production-tools, staging-tools)"),
])
def test_tool_errors(selector: dict[str, Any], reason: str, message: str) -> None:
    with pytest.raises(ResolutionError) as err:
        resolve_tools(job(toolRegistryOverride={"selector": selector}), REGISTRIES)
    assert (err.value.reason, err.value.message) == (reason, message)


def test_duplicate_tool_within_one_registry() -> None:
    twice = registry("r", {}, handler("a", "same"), handler("b", "same"))
    with pytest.raises(ResolutionError, match="tool same is defined by ToolRegistry r \\(handler a\\) and by "
                                              "ToolRegistry r \\(handler b\\)"):
        resolve_tools(job(toolRegistryOverride={"selector": {}}), [twice])


# -- applying to the quickstart bundle ---------------------------------------------------------------------

@pytest.fixture
def bundle(quickstart: Path, monkeypatch: pytest.MonkeyPatch) -> Bundle:
    for name in ("ARENA_PROVIDER", "ARENA_MODEL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return load_bundle(quickstart)


def test_apply_two_providers_doubles_plan(bundle: Bundle) -> None:
    before = len(generate_plan(bundle))
    groups = bundle_groups(bundle)
    assert groups == {"default": ["support-assistant"], "judge": ["judge"], "selfplay": ["customer-sim"]}
    resolved = resolve_providers(groups, config(), job(providerOverrides={"default": PROD}), PROVIDERS)
    apply_to_bundle(bundle, resolved, {})
    assert len(generate_plan(bundle)) == 2 * before
    assert {c.provider_id for c in generate_plan(bundle).combinations} == {"gpt4-prod", "mock"}
    assert "support-assistant" not in bundle.providers
    assert bundle.provider_groups == {"judge": "judge", "customer-sim": "selfplay", "gpt4-prod": "default",
                                      "mock": "default"}
    assert bundle.providers["gpt4-prod"].credential.credential_env == "ARENA_PROVIDER_GPT4_PROD_API_KEY"
    assert bundle.arena.judges[0].provider == "judge"  # group judge not resolved: untouched


def test_apply_repoints_judges_roles_and_scenarios(bundle: Bundle) -> None:
    bundle.scenarios["greeting"].providers = ["support-assistant", "judge"]
    resolved = resolve_providers(bundle_groups(bundle), config(providerRef={"name": "gpt4-staging"}),
                                 job(providerOverrides={"judge": EVAL, "selfplay": PROD}), PROVIDERS)
    apply_to_bundle(bundle, resolved, {})
    assert bundle.arena.judges[0].provider == "claude-judge"
    assert bundle.arena.self_play.roles[0].provider == "gpt4-prod"
    assert bundle.scenarios["greeting"].providers == ["gpt4-staging", "claude-judge", "claude-mini"]
    assert set(bundle.providers) == {"gpt4-staging", "claude-judge", "claude-mini", "gpt4-prod", "mock"}


def test_apply_conflicting_name(bundle: Bundle) -> None:
    clash = [provider("judge", {"tier": "production"})]
    resolved = resolve_providers(bundle_groups(bundle), config(), job(providerOverrides={"default": PROD}), clash)
    with pytest.raises(ResolutionError) as err:
        apply_to_bundle(bundle, resolved, {})
    assert err.value.reason == "ProviderConflict" and "group judge" in err.value.message


def test_apply_tools(bundle: Bundle) -> None:
    original = bundle.tools["lookup_order"]
    tools = resolve_tools(job(toolRegistryOverride={"selector": {"matchLabels": {"environment": "production"}}}),
                          REGISTRIES)
    apply_to_bundle(bundle, ResolvedProviders(), tools)
    replaced = bundle.tools["lookup_order"]
    assert replaced.mode == "live" and replaced.http.url == "http://orders.prod.svc/lookup"
    assert replaced.input_schema == original.input_schema and replaced.description == original.description
    assert bundle.tools["get_weather"].description == "Get real weather data"
    assert bundle.tools["get_time"].mode == "live"


def test_inline_mock_config_reaches_mock_provider(bundle: Bundle, tmp_path: Path) -> None:
    mocks = [provider("canned", {"tier": "production"}, type="mock", model=None,
                      mockConfig={"defaultResponse": "from the CRD",
                                  "scenarios": {"greeting": {"turns": {"1": "hi"}}}})]
    resolved = resolve_providers(bundle_groups(bundle), config(), job(providerOverrides={"default": PROD}), mocks)
    apply_to_bundle(bundle, resolved, {}, mock_dir=tmp_path / "mocks")
    spec = bundle.providers["canned"]
    assert "mock_config_inline" not in spec.additional_config
    path = Path(spec.additional_config["mock_config"])
    assert path == (tmp_path / "mocks" / "canned.mock.json").resolve() and path.is_file()
    built = build_providers({"canned": spec}, bundle.root)["canned"]
    assert built.config.lookup("greeting", None, 1) == "hi"
    assert built.config.lookup("other", None, 1) == "from the CRD"
    assert materialize_mock_configs(bundle, tmp_path / "again") == {}  # already written: nothing left inline


def test_apply_resolved_config_as_the_worker_does(bundle: Bundle, tmp_path: Path) -> None:
    mocks = [provider("canned", {"tier": "production"}, type="mock", model=None, mockConfig={"defaultResponse": "x"})]
    resolved = resolve_providers(bundle_groups(bundle), config(), job(providerOverrides={"*": PROD}), mocks)
    tools = resolve_tools(job(toolRegistryOverride={"selector": {"matchLabels": {"environment": "production"}}}),
                          REGISTRIES)
    job_config = json.loads(json.dumps({"providers": resolved.to_config(), "tools": tools}))  # via Redis
    apply_resolved_config(bundle, job_config, mock_dir=tmp_path)
    assert set(bundle.providers) == {"canned"} and bundle.arena.judges[0].provider == "canned"
    assert bundle.tools["lookup_order"].mode == "live"
    assert (tmp_path / "canned.mock.json").is_file()
    assert build_providers(bundle.providers, bundle.root)["canned"].config.default == "x"
    untouched = load_bundle(bundle.root)
    apply_resolved_config(untouched, {})  # no providers, no tools: nothing changes, nothing is written
    assert set(untouched.providers) == {"support-assistant", "judge", "customer-sim"}
