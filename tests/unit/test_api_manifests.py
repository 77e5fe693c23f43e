"""Manifests against the API: the documented examples are accepted, broken ones are rejected with their path.

Both guards are checked: the pydantic models (what the operator enforces) and the rendered CRD schema (what
the API server enforces: OpenAPI via ``jsonschema``, unknown fields as with kubectl's default strict field
validation, map-list key uniqueness, and the CEL rules when ``cel-python`` is installed).

The examples come from the product documentation beside the repository (``../shared/seeds``, as in CI):
every ```yaml block of the ArenaJob reference and the Arena Fleet architecture page. Blocks that are only a
``spec:`` fragment are completed with the fields the fragment's page leaves out (``configRef``).
"""

from __future__ import annotations

import copy
import functools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from arena_operator.api import API_VERSION, KINDS_BY_NAME, ManifestError, parse_object, render_crds

REPO = Path(__file__).resolve().parents[2]
SEEDS_DIR = Path(os.environ.get("ARENA_SEEDS_DIR", REPO.parent / "shared" / "seeds"))
SEED_DOCS = ("000_88a66f4c77ff4e4b.txt", "002_d0e6bb88eec7d489.txt")
#: What a spec fragment of a page needs to become a complete object of the page's kind.
FRAGMENT_BASES: dict[str, dict[str, Any]] = {"ArenaJob": {"configRef": {"name": "seed-fragment-config"}}}
_FENCE = re.compile(r"^```ya?ml[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_TITLE = re.compile(r'^title:\s*"?([A-Za-z]+)', re.MULTILINE)


@dataclass(frozen=True)
class Example:
    """One YAML document of a documentation page, completed into a full object."""

    source: str
    block: int
    document: int
    manifest: dict[str, Any]
    fragment: bool

    @property
    def id(self) -> str:
        name = "spec-fragment" if self.fragment else self.manifest["metadata"]["name"]
        return f"{self.source[:3]}-block{self.block}.{self.document}-{self.manifest['kind']}-{name}"


def _complete(doc: dict[str, Any], page_kind: str, source: str, block: int, index: int) -> Example | None:
    if "apiVersion" in doc:
        if doc["apiVersion"] != API_VERSION or "spec" not in doc:
            return None  # e.g. the "API Version" block: apiVersion and kind only
        return Example(source, block, index, doc, fragment=False)
    if set(doc) != {"spec"}:
        raise AssertionError(f"{source} block {block}: neither a manifest nor a spec fragment: {sorted(doc)}")
    if page_kind not in FRAGMENT_BASES:
        raise AssertionError(f"{source} block {block}: a spec fragment on a page of unknown kind {page_kind!r}")
    manifest = {"apiVersion": API_VERSION, "kind": page_kind,
                "metadata": {"name": f"seed-{source[:3]}-fragment-{block}-{index}"},
                "spec": {**copy.deepcopy(FRAGMENT_BASES[page_kind]), **doc["spec"]}}
    return Example(source, block, index, manifest, fragment=True)


def seed_examples() -> list[Example]:
    """Every manifest and spec fragment in the ```yaml blocks of the two seed pages, in page order."""
    examples = []
    for source in SEED_DOCS:
        path = SEEDS_DIR / source
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: the seed docs live in ../shared/seeds beside the repository "
                                    "(or set ARENA_SEEDS_DIR)")
        text = path.read_text(encoding="utf-8")
        title = _TITLE.search(text)
        page_kind = title.group(1) if title else ""
        for block, match in enumerate(_FENCE.finditer(text)):
            for index, doc in enumerate(yaml.safe_load_all(match.group(1))):
                if doc is not None:
                    example = _complete(doc, page_kind, source, block, index)
                    if example is not None:
                        examples.append(example)
    return examples


def repo_examples() -> list[tuple[str, dict[str, Any]]]:
    """Every YAML document with our apiVersion under ``examples/`` (bundles use another apiVersion)."""
    found = []
    for path in sorted((REPO / "examples").rglob("*.y*ml")):
        for index, doc in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8"))):
            if isinstance(doc, dict) and doc.get("apiVersion") == API_VERSION:
                found.append((f"{path.relative_to(REPO)}#{index}", doc))
    return found


# -- what the API server would say -----------------------------------------------------------------------

def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with unknown fields forbidden wherever the API server would reject them (strict field
    validation): every object with properties, unless it preserves unknown fields."""
    schema = copy.deepcopy(schema)

    def visit(node: dict[str, Any]) -> None:
        if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
        for child in (node.get("properties") or {}).values():
            visit(child)
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                visit(node[key])

    visit(schema)
    return schema


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _walk(node: dict[str, Any], value: Any, path: str) -> Iterator[tuple[dict[str, Any], Any, str]]:
    """Every (schema node, value, path) pair where the value is present."""
    yield node, value, path
    if isinstance(value, dict):
        for key, child in value.items():
            schema = (node.get("properties") or {}).get(key) or (
                node.get("additionalProperties") if isinstance(node.get("additionalProperties"), dict) else None)
            if schema is not None:
                yield from _walk(schema, child, f"{path}.{key}" if path else key)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for index, child in enumerate(value):
            yield from _walk(node["items"], child, f"{path}[{index}]")


def cel_problems(schema: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    """Evaluate every x-kubernetes-validations rule (with cel-python) where its node has a value."""
    import celpy  # optional: the caller skips when it is missing

    environment = celpy.Environment()
    problems = []
    for node, value, path in _walk(schema, manifest, ""):
        for rule in node.get("x-kubernetes-validations") or []:
            program = environment.program(environment.compile(rule["rule"]))
            if not bool(program.evaluate({"self": celpy.json_to_cel(value)})):
                problems.append(f"{path}: {rule['message']}")
    return problems


def _describe(error: jsonschema.ValidationError) -> list[str]:
    """As the API server words it: the missing or unknown field's own path, not its parent's."""
    parent = _path(error.absolute_path)
    if error.validator == "required":
        missing = set(error.validator_value) - set(error.instance)
        return [f"{parent}.{name}: Required value" for name in sorted(missing)]
    if error.validator == "additionalProperties":
        known = error.schema.get("properties", {})
        return [f"{parent}.{name}: unknown field" for name in sorted(set(error.instance) - set(known))]
    return [f"{parent or '(root)'}: {error.message}"]


@functools.cache
def _crd_schema(kind_name: str) -> tuple[dict[str, Any], jsonschema.Draft202012Validator]:
    """The openAPIV3Schema of a kind's CRD, and a strict validator for it (rendered once per test session)."""
    schema = render_crds()[KINDS_BY_NAME[kind_name].crd_name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema, jsonschema.Draft202012Validator(_strict(schema))


def crd_problems(manifest: dict[str, Any], *, cel: bool) -> list[str]:
    """``path: message`` for everything the CRD of the manifest's kind rejects."""
    schema, validator = _crd_schema(manifest["kind"])
    problems = [problem for error in validator.iter_errors(manifest) for problem in _describe(error)]
    for node, value, path in _walk(schema, manifest, ""):
        if node.get("x-kubernetes-list-type") == "map" and isinstance(value, list):
            keys = [tuple(item.get(key) for key in node["x-kubernetes-list-map-keys"]) for item in value]
            problems += [f"{path}: duplicate entry {key}" for key in sorted(set(keys)) if keys.count(key) > 1]
    if cel:
        problems += cel_problems(schema, manifest)
    return problems


def _has_cel() -> bool:
    try:
        import celpy  # noqa: F401
    except ImportError:
        return False
    return True


HAS_CEL = _has_cel()
EXAMPLES = seed_examples()


def test_the_seed_pages_yield_every_documented_example() -> None:
    kinds = sorted({example.manifest["kind"] for example in EXAMPLES})
    assert kinds == ["ArenaConfig", "ArenaJob", "ArenaSource", "Provider", "ToolRegistry"]
    assert sum(not example.fragment for example in EXAMPLES) == 14  # whole manifests on the two pages
    assert sum(example.fragment for example in EXAMPLES) == 14  # spec: fragments of the ArenaJob reference


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.id)
def test_documented_example_is_valid_for_the_model_and_the_crd(example: Example) -> None:
    parsed = parse_object(example.manifest)
    assert parsed.kind == example.manifest["kind"]
    assert crd_problems(example.manifest, cel=HAS_CEL) == []


@pytest.mark.parametrize(("where", "manifest"), repo_examples() or [pytest.param("none", {}, marks=pytest.mark.skip(
    reason="no manifest with our apiVersion under examples/ yet"))])
def test_repository_example_is_valid_for_the_model_and_the_crd(where: str, manifest: dict[str, Any]) -> None:
    parse_object(manifest)
    assert crd_problems(manifest, cel=HAS_CEL) == [], where


def _job(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "ArenaJob", "metadata": {"name": "broken"},
            "spec": {"configRef": {"name": "cfg"}, **spec}}


def _object(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": "broken"}, "spec": spec}


def _without_config_ref() -> dict[str, Any]:
    manifest = _job(type="evaluation")
    del manifest["spec"]["configRef"]
    return manifest


_GIT = {"url": "https://example.com/prompts.git"}
_HTTPLESS_HANDLER = {"name": "h", "type": "http", "tool": {"name": "t"}}
_HANDLER = {**_HTTPLESS_HANDLER, "httpConfig": {"endpoint": "http://svc"}}
#: (id, manifest, path the error must name, a word of the message, enforced in the CRD by CEL only)
BROKEN: list[tuple[str, dict[str, Any], str, str, bool]] = [
    ("wrong-enum", _job(type="loadtesting"), "spec.type", "loadtesting", False),
    ("neither-configRef-nor-sourceRef", _without_config_ref(), "spec", "exactly one of configRef and sourceRef",
     True),
    ("both-configRef-and-sourceRef", _job(sourceRef={"name": "src"}), "spec", "exactly one of configRef and "
     "sourceRef", True),
    ("arenaFile-climbing-out", _job(arenaFile="../../etc/passwd"), "spec.arenaFile", "relative path", True),
    ("arenaFile-absolute", _job(arenaFile="/etc/passwd"), "spec.arenaFile", "relative path", True),
    ("zero-trials", _job(trials=0), "spec.trials", "", False),
    ("bad-toleration-effect", _job(workers={"podOverrides": {"tolerations": [{"effect": "Never"}]}}),
     "spec.workers.podOverrides.tolerations[0].effect", "Never", False),
    ("unknown-pod-override", _job(workers={"podOverrides": {"hostNetwork": True}}),
     "spec.workers.podOverrides.hostNetwork", "", False),
    ("bad-threshold-metric", _job(loadTest={"thresholds": [{"metric": "latency_p42", "operator": "<",
                                                             "value": "3s"}]}),
     "spec.loadTest.thresholds[0].metric", "latency_p42", False),
    ("bad-ramp", _job(loadTest={"ramp": {"up": "two minutes"}}), "spec.loadTest.ramp.up", "", False),
    ("loadtest-without-target", _job(type="loadtest", loadTest={"rampUp": "1m"}), "spec",
     "needs loadTest.targetRPS (open model) or loadTest.concurrency", True),
    ("bad-budget", _job(loadTest={"budgetLimit": "$25"}), "spec.loadTest.budgetLimit", "", False),
    ("workspace-without-block", _object("ArenaSource", {"type": "workspace"}), "spec", "workspace is required",
     True),
    ("workspace-path-climbing-out", _object("ArenaSource", {"type": "workspace", "workspace": {"path": "a/../../b"}}),
     "spec.workspace.path", "relative path", True),
    ("targetPath-absolute", _object("ArenaSource", {"type": "configmap", "configMap": {"name": "b"},
                                                    "targetPath": "/var/run"}), "spec.targetPath", "relative path",
     True),
    ("s3-without-s3", _job(output={"type": "s3"}), "spec.output", "s3 is required", True),
    ("pvc-without-pvc", _job(output={"type": "pvc", "s3": {"bucket": "b"}}), "spec.output", "pvc is required", True),
    ("unknown-spec-field", _job(replicas=3), "spec.replicas", "", False),
    ("unknown-nested-field", _job(workers={"replica": 3}), "spec.workers.replica", "", False),
    ("string-for-int", _job(workers={"replicas": "3"}), "spec.workers.replicas", "", False),
    ("min-above-max", _job(workers={"minReplicas": 5, "maxReplicas": 2}), "spec.workers", "maxReplicas", True),
    ("negative-ttl", _job(ttlSecondsAfterFinished=-1), "spec.ttlSecondsAfterFinished", "", False),
    ("bad-duration", _job(loadTest={"rampUp": "2 minutes"}), "spec.loadTest.rampUp", "", False),
    ("bad-datagen-format", _job(dataGen={"format": "xml"}), "spec.dataGen.format", "xml", False),
    ("bad-output-format", _job(evaluation={"outputFormats": ["html"]}), "spec.evaluation.outputFormats[0]", "html",
     False),
    ("bad-concurrency-policy", _job(schedule={"cron": "0 2 * * *", "concurrencyPolicy": "Skip"}),
     "spec.schedule.concurrencyPolicy", "Skip", False),
    ("bad-selector-operator",
     _job(providerOverrides={"default": {"selector": {"matchExpressions": [{"key": "k", "operator": "Like"}]}}}),
     "spec.providerOverrides.default.selector.matchExpressions[0].operator", "Like", False),
    ("override-without-selector", _job(providerOverrides={"judge": {}}), "spec.providerOverrides.judge.selector",
     "required", False),
    ("s3-without-bucket", _job(output={"type": "s3", "s3": {"prefix": "x/"}}), "spec.output.s3.bucket", "required",
     False),
    ("source-type-without-block", _object("ArenaSource", {"type": "git"}), "spec", "git is required", True),
    ("configmap-without-block", _object("ArenaSource", {"type": "configmap", "git": _GIT}), "spec",
     "configMap is required", True),
    ("two-git-refs", _object("ArenaSource", {"type": "git", "git": {**_GIT, "ref": {"branch": "a", "tag": "b"}}}),
     "spec.git.ref", "at most one", True),
    ("bad-commit", _object("ArenaSource", {"type": "git", "git": {**_GIT, "ref": {"commit": "main"}}}),
     "spec.git.ref.commit", "", False),
    ("bad-git-url", _object("ArenaSource", {"type": "git", "git": {"url": "github.com/acme/x"}}), "spec.git.url", "",
     False),
    ("bad-oci-url", _object("ArenaSource", {"type": "oci", "oci": {"url": "https://ghcr.io/x"}}), "spec.oci.url", "",
     False),
    ("bad-interval", _object("ArenaSource", {"type": "configmap", "configMap": {"name": "b"}, "interval": "5"}),
     "spec.interval", "", False),
    ("config-without-source", _object("ArenaConfig", {"workers": 2}), "spec.sourceRef", "required", False),
    ("zero-workers", _object("ArenaConfig", {"sourceRef": {"name": "s"}, "workers": 0}), "spec.workers", "", False),
    ("provider-type", _object("Provider", {"type": "anthropic"}), "spec.type", "anthropic", False),
    ("hot-temperature", _object("Provider", {"type": "openai", "defaults": {"temperature": 2.5}}),
     "spec.defaults.temperature", "", False),
    ("negative-price", _object("Provider", {"type": "openai", "pricing": {"inputCostPer1K": -1}}),
     "spec.pricing.inputCostPer1K", "", False),
    ("mock-config-on-openai", _object("Provider", {"type": "openai", "mockConfig": {"responses": {}}}), "spec",
     "mockConfig", True),
    ("handler-without-tool", _object("ToolRegistry", {"handlers": [{"name": "h", "type": "http"}]}),
     "spec.handlers[0].tool", "required", False),
    ("handler-endpoint", _object("ToolRegistry", {"handlers": [{**_HANDLER, "httpConfig": {"endpoint": "ftp://x"}}]}),
     "spec.handlers[0].httpConfig.endpoint", "", False),
    ("handler-without-http", _object("ToolRegistry", {"handlers": [_HTTPLESS_HANDLER]}), "spec.handlers[0]",
     "httpConfig is required", True),
    ("tool-without-name", _object("ToolRegistry", {"handlers": [{**_HANDLER, "tool": {}}]}),
     "spec.handlers[0].tool.name", "required", False),
    ("duplicate-handlers", _object("ToolRegistry", {"handlers": [_HANDLER, _HANDLER]}), "spec.handlers", "", False),
]


@pytest.mark.parametrize(("manifest", "path", "word"),
                         [pytest.param(m, p, w, id=i) for i, m, p, w, _ in BROKEN])
def test_broken_manifest_is_rejected_by_the_model_with_its_path(manifest: dict[str, Any], path: str,
                                                                word: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_object(manifest)
    assert any(problem.startswith(f"{path}: ") and word in problem for problem in caught.value.problems), \
        caught.value.problems


@pytest.mark.parametrize(("manifest", "path", "word", "by_cel"),
                         [pytest.param(m, p, w, c, id=i) for i, m, p, w, c in BROKEN])
def test_broken_manifest_is_rejected_by_the_crd_with_its_path(manifest: dict[str, Any], path: str, word: str,
                                                              by_cel: bool) -> None:
    if by_cel and not HAS_CEL:
        pytest.skip("cel-python is not installed: this rule is a CEL rule (x-kubernetes-validations)")
    problems = crd_problems(manifest, cel=by_cel)
    assert any(problem.startswith(f"{path}: ") for problem in problems), problems
    if by_cel:  # the CEL messages are ours, worded as the model's
        assert any(problem.startswith(f"{path}: ") and word in problem for problem in problems), problems


def test_model_and_crd_agree_on_the_selector_rule_left_to_the_operator() -> None:
    """values vs operator is checked by the model only (see LabelSelectorRequirement): the CRD accepts it."""
    manifest = _job(toolRegistryOverride={"selector": {"matchExpressions": [{"key": "tier", "operator": "In"}]}})
    with pytest.raises(ManifestError, match=r"spec\.toolRegistryOverride\.selector\.matchExpressions\[0\]: values"):
        parse_object(manifest)
    assert crd_problems(manifest, cel=HAS_CEL) == []
