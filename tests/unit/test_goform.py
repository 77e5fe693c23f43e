"""The Go operator's current forms: its manifests (tests/fixtures/goform) against the models and the CRD schemas,
nothing pruned by the schemas, and their mapping onto one model with the documented precedence (runplan.forms,
runplan.providers, runplan.tools)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from arena_operator.api import parse_object, render_crds
from arena_operator.api.arenaconfig import ArenaConfigSpec
from arena_operator.api.arenajob import ArenaJobSpec
from arena_operator.api.kinds import spec_problems
from arena_operator.engine.bundle import Bundle
from arena_operator.runplan.apply import apply_to_bundle
from arena_operator.runplan.forms import effective_config, overlaps, source_name, unsupported_fields
from arena_operator.runplan.providers import ResolvedProviders, bundle_groups, resolve_providers
from arena_operator.runplan.selection import ResolutionError
from arena_operator.runplan.tools import resolve_tools, resolved_tool_records
from arena_operator.runplan.units import plan_inputs
from tests.unit.test_api_manifests import HAS_CEL, crd_problems
from tests.unit.test_resolution import bundle as bundle  # the fixture: the quickstart, loaded

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "goform"


def goform_manifests() -> list[tuple[str, dict[str, Any]]]:
    """Every manifest of tests/fixtures/goform, as (file#index, manifest)."""
    found = []
    for path in sorted(FIXTURES.glob("*.yaml")):
        for index, doc in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8"))):
            found.append((f"{path.name}#{index}", doc))
    return found


MANIFESTS = goform_manifests()


def go_manifest(name: str) -> dict[str, Any]:
    """A copy of the fixture manifest of this name."""
    return copy.deepcopy(next(m for _, m in MANIFESTS if m["metadata"]["name"] == name))


def outcomes(runs: list[dict[str, Any]], rename: dict[str, str] | None = None) -> list[tuple[Any, ...]]:
    """What "the same results" means for two runs of one bundle (local and e2e tests compare with it): per run
    (scenario, provider — renamed by ``rename`` —, trial, status, the assistant's replies)."""
    names = rename or {}
    return sorted((r["ScenarioID"], names.get(r["ProviderID"], r["ProviderID"]), r["Trial"], r["Status"],
                   [str(m.get("content")) for m in r["Messages"] if m.get("role") == "assistant"]) for r in runs)


def pruned(schema: dict[str, Any], value: Any) -> Any:
    """``value`` as the API server's structural pruning leaves it: fields a schema does not name are dropped,
    except under ``x-kubernetes-preserve-unknown-fields`` (where the named ones are still pruned inside)."""
    if isinstance(value, dict) and schema.get("type", "object") == "object":
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        keep = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        out = {}
        for key, child in value.items():
            if key in properties:
                out[key] = pruned(properties[key], child)
            elif isinstance(extra, dict):
                out[key] = pruned(extra, child)
            elif keep:
                out[key] = child
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [pruned(schema["items"], item) for item in value]
    return value


def object_schema(kind: str) -> dict[str, Any]:
    crd = next(c for c in render_crds().values() if c["spec"]["names"]["kind"] == kind)
    schema = copy.deepcopy(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"]["x-kubernetes-preserve-unknown-fields"] = True  # the server's own part
    return schema


def test_the_fixtures_cover_every_go_form_field() -> None:
    kinds = sorted({manifest["kind"] for _, manifest in MANIFESTS})
    assert kinds == ["ArenaJob", "ArenaSource"]
    text = "".join(path.read_text() for path in FIXTURES.glob("*.yaml"))
    for word in ("sourceRef", "arenaFile", "trials", "providerRef", "agentRef", "toolRegistries", "podOverrides",
                 "extraEnvFrom", "extraVolumes", "extraVolumeMounts", "imagePullSecrets", "tolerations",
                 "cancelled", "verbose", "sessionRecording", "vusPerWorker", "thresholds", "budgetLimit",
                 "type: workspace", "targetPath", "createVersionOnSync", "key: identity"):
        assert word in text, word


@pytest.mark.parametrize(("where", "manifest"), MANIFESTS, ids=[where for where, _ in MANIFESTS])
def test_go_form_manifest_is_valid_for_the_model_and_the_crd(where: str, manifest: dict[str, Any]) -> None:
    parsed = parse_object(manifest)
    assert parsed.kind == manifest["kind"]
    assert crd_problems(manifest, cel=HAS_CEL) == [], where


@pytest.mark.parametrize(("where", "manifest"), MANIFESTS, ids=[where for where, _ in MANIFESTS])
def test_the_crd_schema_prunes_nothing_of_a_go_form_manifest(where: str, manifest: dict[str, Any]) -> None:
    assert pruned(object_schema(manifest["kind"]), manifest) == manifest, where


def test_pruning_helper_drops_what_a_schema_does_not_name() -> None:
    """The check above would be vacuous if the helper pruned nothing: an unknown field goes, free-form stays."""
    job = {"apiVersion": "omnia.altairalabs.ai/v1alpha1", "kind": "ArenaJob", "metadata": {"name": "x"},
           "spec": {"sourceRef": {"name": "s", "namespace": "other"}, "replicas": 3,
                    "providers": {"default": [{"providerRef": {"name": "p"}, "weight": 2}]},
                    "workers": {"podOverrides": {"affinity": {"nodeAffinity": {"x": 1}}, "hostNetwork": True}}}}
    kept = pruned(object_schema("ArenaJob"), job)["spec"]
    assert kept == {"sourceRef": {"name": "s"}, "providers": job["spec"]["providers"],
                    "workers": {"podOverrides": {"affinity": {"nodeAffinity": {"x": 1}}}}}


def fixture_job(name: str) -> ArenaJobSpec:
    return ArenaJobSpec.model_validate(go_manifest(name)["spec"])


def job(**spec: Any) -> ArenaJobSpec:
    return ArenaJobSpec.model_validate({"configRef": {"name": "c"}, **spec})


def go_job(**spec: Any) -> ArenaJobSpec:
    return ArenaJobSpec.model_validate({"sourceRef": {"name": "src"}, **spec})


def config(**spec: Any) -> ArenaConfigSpec:
    return ArenaConfigSpec.model_validate({"sourceRef": {"name": "cfg-src"}, **spec})


# -- one model -------------------------------------------------------------------------------------------

def test_a_source_ref_job_is_its_own_config() -> None:
    pool = fixture_job("go-pool")
    own = effective_config(pool, None)
    assert (own.source_ref.name, own.arena_file, own.trials) == ("go-prompts", "config.arena.yaml", 2)
    assert (own.concurrency, own.timeout, own.workers, own.providers) == (4, None, None, None)
    assert effective_config(go_job(), None).arena_file == "config.arena.yaml"  # the Go operator's default
    assert effective_config(go_job(), config(trials=5)).source_ref.name == "src"  # a config is ignored
    assert source_name(pool, None) == "go-prompts"
    inputs = plan_inputs(own, pool)
    assert (inputs.trials, inputs.include, inputs.exclude) == (2, [], [])


def test_a_config_ref_job_overrides_trials_and_arena_file_of_its_config() -> None:
    base = config(trials=4, arenaFile="a/config.arena.yaml", concurrency=8)
    assert effective_config(job(), base) == base
    over = effective_config(job(trials=2, arenaFile="b/arena.yaml"), base)
    assert (over.trials, over.arena_file, over.concurrency, over.source_ref.name) == (2, "b/arena.yaml", 8,
                                                                                       "cfg-src")
    assert plan_inputs(base, job(trials=3)).trials == 3 and plan_inputs(base, job()).trials == 4
    assert source_name(job(), base) == "cfg-src" and source_name(job(), None) is None
    with pytest.raises(ValueError, match="needs its ArenaConfig"):
        effective_config(job(), None)


def test_a_spec_with_neither_or_both_refs_is_stalled_naming_spec() -> None:
    """What parse_or_reject writes into Stalled's message (a model-level problem is the spec's own)."""
    for spec in ({"type": "evaluation"}, {"configRef": {"name": "c"}, "sourceRef": {"name": "s"}}):
        with pytest.raises(ValidationError) as caught:
            ArenaJobSpec.model_validate(spec)
        assert spec_problems(caught.value) == "spec: set exactly one of configRef and sourceRef"


def test_cancelled_is_suspend() -> None:
    assert go_job(cancelled=True).cancel_requested and job(suspend=True).cancel_requested
    assert not go_job(cancelled=False).cancel_requested and not job().cancel_requested


def test_unsupported_go_fields_are_named() -> None:
    assert unsupported_fields(go_job(arenaFile="evals/*.arena.yaml")) == (
        "spec.arenaFile 'evals/*.arena.yaml' is a glob pattern; this operator runs one arena file: name it exactly")
    assert unsupported_fields(fixture_job("go-pool")) is None


# -- providers -------------------------------------------------------------------------------------------

def provider(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"type": "openai", "model": "gpt-4o", "credential": {"secretRef": {"name": f"{name}-key"}},
                     **spec}}


PROVIDERS = [provider("mock-a", {"tier": "production"}), provider("mock-b", {"tier": "production"}),
             provider("mock-judge", {"role": "judge"}), provider("mock-c")]
GROUPS = {"default": ["support-assistant"], "judge": ["judge"], "selfplay": ["customer-sim"]}
PROD = {"selector": {"matchLabels": {"tier": "production"}}}
POOL_C = [{"providerRef": {"name": "mock-c"}}]


@pytest.mark.parametrize(("case", "cfg", "spec", "expected"), [
    ("pool", {}, {"providers": {"default": [{"providerRef": {"name": "mock-b"}}, {"providerRef": {"name": "mock-a"}}]}},
     {"default": ["mock-a", "mock-b"]}),
    ("providers-over-override", {}, {"providers": {"default": POOL_C}, "providerOverrides": {"default": PROD}},
     {"default": ["mock-c"]}),
    ("providers-over-wildcard", {}, {"providers": {"default": POOL_C}, "providerOverrides": {"*": PROD}},
     {"default": ["mock-c"], "judge": ["mock-a", "mock-b"], "selfplay": ["mock-a", "mock-b"]}),
    ("different-groups-each-apply", {}, {"providers": {"judge": [{"providerRef": {"name": "mock-judge"}}]},
                                         "providerOverrides": {"default": PROD}},
     {"default": ["mock-a", "mock-b"], "judge": ["mock-judge"]}),
    ("providers-over-config", {"providerRef": {"name": "mock-a"}, "providers": {"judge": [{"name": "mock-a"}]}},
     {"providers": {"default": POOL_C, "judge": [{"providerRef": {"name": "mock-judge"}}]}},
     {"default": ["mock-c"], "judge": ["mock-judge"]}),
    ("empty-group-is-unset", {"providerRef": {"name": "mock-a"}}, {"providers": {"default": []}},
     {"default": ["mock-a"]}),
    ("same-namespace-is-fine", {}, {"providers": {"default": [{"providerRef": {"name": "mock-c", "namespace": "ns"}}]}},
     {"default": ["mock-c"]}),
])
def test_provider_precedence(case: str, cfg: dict[str, Any], spec: dict[str, Any],
                             expected: dict[str, list[str]]) -> None:
    resolved = resolve_providers(GROUPS, config(**cfg), job(**spec), PROVIDERS, "ns")
    assert resolved.provider_names() == expected, case
    assert resolved.groups == expected and resolved.origins == {}


def test_a_map_group_keeps_the_bundle_ids() -> None:
    resolved = resolve_providers(GROUPS, config(), fixture_job("go-mapping"), PROVIDERS, "arena")
    assert resolved.groups == {"default": ["support-assistant"], "judge": ["judge"]}
    assert resolved.provider_names() == {"default": ["mock-a"], "judge": ["mock-judge"]}
    assert resolved.origins == {"support-assistant": "mock-a", "judge": "mock-judge"}
    assert resolved.specs["support-assistant"]["id"] == "support-assistant"
    assert resolved.specs["support-assistant"]["credential"]["credential_env"] == "ARENA_PROVIDER_MOCK_A_API_KEY"
    assert {s.secret_name for s in resolved.secrets} == {"mock-a-key", "mock-judge-key"}
    again = ResolvedProviders.from_config(resolved.to_config())  # through Redis, as the workers read it
    assert again == resolved


@pytest.mark.parametrize(("spec", "namespace", "reason", "words"), [
    ({"providers": {"default": [{"providerRef": {"name": "mock-a"}}, {"agentRef": {"name": "support-agent"}}]}},
     "ns", "Unsupported", "providers.default[1]: agentRef support-agent needs an AgentRuntime"),
    ({"providers": {"default": [{"providerRef": {"name": "mock-a", "namespace": "shared"}}]}}, "ns", "Unsupported",
     "Provider shared/mock-a is in another namespace than the job (ns)"),
    ({"providers": {"default": {"support-assistant": {"providerRef": {"name": "absent"}}}}}, "ns",
     "ProviderNotFound", "providers.default: Provider absent not found"),
    ({"providers": {"default": {"judge": {"providerRef": {"name": "mock-a"}}},
                    "judge": {"judge": {"providerRef": {"name": "mock-judge"}}}}}, "ns", "ProviderConflict",
     "provider id judge stands for Provider mock-judge here and for Provider mock-a in another group"),
])
def test_go_form_provider_errors(spec: dict[str, Any], namespace: str, reason: str, words: str) -> None:
    with pytest.raises(ResolutionError) as err:
        resolve_providers(GROUPS, config(), job(**spec), PROVIDERS, namespace)
    assert err.value.reason == reason and words in err.value.message, err.value.message


def test_local_runs_ignore_the_provider_namespace() -> None:
    spec = job(providers={"default": [{"providerRef": {"name": "mock-a", "namespace": "shared"}}]})
    assert resolve_providers(GROUPS, config(), spec, PROVIDERS, None).groups == {"default": ["mock-a"]}


def test_a_map_group_replaces_settings_and_keeps_every_reference(bundle: Bundle) -> None:
    bundle.scenarios["greeting"].providers = ["support-assistant"]
    mocks = [provider("mock-a", type="mock", model=None, credential=None, mockConfig={"defaultResponse": "a"}),
             provider("mock-judge", type="mock", model=None, credential=None, mockConfig={"defaultResponse": "j"})]
    resolved = resolve_providers(bundle_groups(bundle), config(), fixture_job("go-mapping"), mocks, "arena")
    apply_to_bundle(bundle, resolved, {})
    assert set(bundle.providers) == {"support-assistant", "judge", "customer-sim"}
    assert bundle.providers["support-assistant"].type == "mock"
    assert bundle.providers["support-assistant"].additional_config["mock_config_inline"] == {"defaultResponse": "a"}
    assert bundle.arena.judges[0].provider == "judge"  # the id came back: nothing re-pointed
    assert bundle.scenarios["greeting"].providers == ["support-assistant"]


# -- tools -----------------------------------------------------------------------------------------------

def registry(name: str, labels: dict[str, str], tool: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "spec": {"handlers": [
        {"name": "h", "type": "http", "tool": {"name": tool}, "httpConfig": {"endpoint": f"http://{name}.svc/x"}}]}}


REGISTRIES = [registry("orders-live", {"environment": "test"}, "lookup_order"),
              registry("weather", {"environment": "test"}, "get_weather"),
              registry("orders-staging", {"environment": "staging"}, "lookup_order")]


def test_tool_registries_by_name_win_over_the_selector() -> None:
    by_name = go_job(toolRegistries=[{"name": "orders-live"}, {"name": "orders-live"}])
    assert set(resolve_tools(by_name, REGISTRIES)) == {"lookup_order"}
    both = go_job(toolRegistries=[{"name": "orders-staging"}],
                  toolRegistryOverride={"selector": {"matchLabels": {"environment": "test"}}})
    tools = resolve_tools(both, REGISTRIES)
    assert set(tools) == {"lookup_order"} and tools["lookup_order"]["http"]["url"] == "http://orders-staging.svc/x"
    assert [r["registry"] for r in resolved_tool_records(both, REGISTRIES)] == ["orders-staging"]
    with pytest.raises(ResolutionError) as err:
        resolve_tools(go_job(toolRegistries=[{"name": "absent"}]), REGISTRIES)
    assert err.value.reason == "ToolRegistryNotFound" and "ToolRegistry absent not found" in err.value.message
    with pytest.raises(ResolutionError, match="toolRegistries: tool lookup_order is defined by"):
        resolve_tools(go_job(toolRegistries=[{"name": "orders-live"}, {"name": "orders-staging"}]), REGISTRIES)


# -- overlaps: what SpecWarning says ------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "expected"), [
    ({}, []),
    ({"providers": {"default": POOL_C}}, []),
    ({"providerOverrides": {"default": PROD}}, []),
    ({"providers": {"default": POOL_C}, "providerOverrides": {"default": PROD, "judge": PROD}},
     ["spec.providers names group(s) default: for those it wins over providerOverrides.default; providerOverrides "
      "applies only to the groups spec.providers does not name"]),
    ({"providers": {"default": POOL_C}, "providerOverrides": {"*": PROD}},
     ["spec.providers names group(s) default: for those it wins over providerOverrides.*; providerOverrides "
      "applies only to the groups spec.providers does not name"]),
    ({"providers": {"default": POOL_C}, "providerOverrides": {"judge": PROD}},
     ["spec.providers (groups default) and spec.providerOverrides (groups judge) are both set; they name "
      "different groups, so each applies to its own"]),
    ({"toolRegistries": [{"name": "a"}, {"name": "b"}], "toolRegistryOverride": {"selector": {}}},
     ["spec.toolRegistries (a, b) wins over spec.toolRegistryOverride, which is ignored"]),
])
def test_overlaps_say_which_form_wins(spec: dict[str, Any], expected: list[str]) -> None:
    assert overlaps(go_job(**spec)) == expected
