"""examples/: every object validated (Arena kinds against the generated CRDs and the models, built-in kinds against
the Kubernetes OpenAPI schemas, Flux and Argo CD objects against their required fields and what they point at),
the ArenaJob reference reproduced example by example, the one-file quickstart run with `arena run` and applied
unchanged with kubectl, and the GitOps setups rendered the way Flux and Argo CD render them (real helm and
kubectl)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from arena_operator.api import API_VERSION
from tests.harness.k8s import K8sApi
from tests.harness.k8s import k8s_api as k8s_api  # the fixture, re-exported for pytest
from tests.integration.kube_tools import REPO, Object, helm, run, tool, validate_objects
from tests.unit.test_api_manifests import seed_examples

EXAMPLES = REPO / "examples"
QUICKSTART = EXAMPLES / "cluster-quickstart" / "job.yaml"
REFERENCE = EXAMPLES / "arenajob-reference"
REPO_URL = "https://github.com/arena-operator/arena-operator"
BUNDLES = (EXAMPLES / "quickstart",)  # PromptKit bundle files, not Kubernetes objects


def _documents(path: Path) -> list[Object]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict)]


def _example_objects() -> list[tuple[str, Object]]:
    found = []
    for path in sorted(EXAMPLES.rglob("*.y*ml")):
        if not any(path.is_relative_to(bundle) for bundle in BUNDLES):
            found += [(f"{path.relative_to(REPO)}#{index}", doc) for index, doc in enumerate(_documents(path))]
    return found


# -- Flux and Argo CD objects: the fields their controllers require ------------------------------------------

_DURATION = {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"}
_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}
_META = {"type": "object", "required": ["name", "namespace"], "properties": {"name": _NAME, "namespace": _NAME}}
_REF = {"type": "object", "required": ["kind", "name"], "properties": {"name": _NAME}}


def _kind(spec: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
            "properties": {"metadata": _META, "spec": {"type": "object", **spec}}}


GITOPS_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("source.toolkit.fluxcd.io/v1", "GitRepository"): _kind({
        "required": ["interval", "url"], "properties": {
            "interval": _DURATION, "url": {"type": "string", "pattern": r"^(https?|ssh)://"},
            "ref": {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
                    "properties": {k: {"type": "string"} for k in ("branch", "tag", "semver", "name", "commit")}},
            "ignore": {"type": "string"}}}),
    ("helm.toolkit.fluxcd.io/v2", "HelmRelease"): _kind({
        "required": ["interval", "chart"], "properties": {
            "interval": _DURATION, "releaseName": _NAME, "targetNamespace": _NAME,
            "chart": {"type": "object", "required": ["spec"], "properties": {"spec": {
                "type": "object", "required": ["chart", "sourceRef"], "properties": {
                    "chart": {"type": "string"},
                    "sourceRef": {**_REF, "properties": {"kind": {"enum": ["GitRepository", "HelmRepository",
                                                                            "Bucket"]}, "name": _NAME}},
                    "reconcileStrategy": {"enum": ["ChartVersion", "Revision"]}}}}},
            "install": {"type": "object", "properties": {"createNamespace": {"type": "boolean"},
                                                         "crds": {"enum": ["Skip", "Create", "CreateReplace"]}}},
            "upgrade": {"type": "object", "properties": {"crds": {"enum": ["Skip", "Create", "CreateReplace"]}}},
            "values": {"type": "object"}}}),
    ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"): _kind({
        "required": ["interval", "sourceRef", "prune"], "properties": {
            "interval": _DURATION, "timeout": _DURATION, "path": {"type": "string", "pattern": r"^\./"},
            "prune": {"type": "boolean"}, "wait": {"type": "boolean"},
            "sourceRef": {**_REF, "properties": {"kind": {"enum": ["GitRepository", "OCIRepository", "Bucket"]},
                                                 "name": _NAME}}}}),
    ("argoproj.io/v1alpha1", "Application"): _kind({
        "required": ["project", "source", "destination"], "properties": {
            "project": {"type": "string"},
            "source": {"type": "object", "required": ["repoURL", "path", "targetRevision"],
                       "properties": {"repoURL": {"type": "string"}, "path": {"type": "string"},
                                      "helm": {"type": "object", "properties": {"valuesObject": {"type": "object"},
                                                                                 "releaseName": _NAME}}}},
            "destination": {"type": "object", "required": ["server", "namespace"]},
            "syncPolicy": {"type": "object", "properties": {"syncOptions": {"type": "array", "items": {
                "type": "string", "pattern": r"^[A-Za-z]+=(true|false)$"}}}}}}),
}


def _gitops_problems(obj: Object) -> list[str]:
    schema = GITOPS_SCHEMAS[(obj["apiVersion"], obj["kind"])]
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in
            jsonschema.Draft7Validator(schema).iter_errors(obj)]


def test_every_example_object_is_valid() -> None:
    objects = _example_objects()
    kubernetes, gitops = [], []
    for where, obj in objects:
        key = (obj.get("apiVersion"), obj.get("kind"))
        if key in GITOPS_SCHEMAS:
            assert _gitops_problems(obj) == [], where
            gitops.append(obj)
        else:
            kubernetes.append(obj)
    assert validate_objects(kubernetes) == len(kubernetes)
    ours = [obj for obj in kubernetes if obj["apiVersion"] == API_VERSION]
    assert {obj["kind"] for obj in ours} == {"ArenaSource", "ArenaConfig", "ArenaJob", "Provider", "ToolRegistry"}
    assert {obj["kind"] for obj in gitops} == {"GitRepository", "HelmRelease", "Kustomization", "Application"}
    print(f"\n{len(objects)} example objects validated: {len(ours)} Arena objects against the CRDs, "
          f"{len(kubernetes) - len(ours)} built-in against the Kubernetes schemas, {len(gitops)} Flux/Argo CD")


# -- the ArenaJob reference ---------------------------------------------------------------------------------

def _fragment_spec(example: Any) -> dict[str, Any]:
    """The snippet's own spec, before the test machinery completed it (FRAGMENT_BASES adds a configRef)."""
    from tests.unit.test_api_manifests import FRAGMENT_BASES

    base = FRAGMENT_BASES[example.manifest["kind"]]
    return {k: v for k, v in example.manifest["spec"].items() if k not in base or v != base[k]}


def test_every_example_of_the_arenajob_reference_is_in_examples() -> None:
    """Each manifest of the reference page as written there; each `spec:` snippet as an ArenaJob of its own."""
    page = [example for example in seed_examples() if example.source.startswith("000")]
    ours = [doc for path in sorted(REFERENCE.glob("*.yaml")) for doc in _documents(path)]
    unmatched = list(ours)
    for example in page:
        expected = example.manifest
        if example.fragment:  # completed here with a name and, where the snippet has none, a configRef
            spec = {"configRef": {"name": "my-evaluation-config"}, **_fragment_spec(example)}
            match = next((doc for doc in unmatched if doc["kind"] == expected["kind"] and doc["spec"] == spec
                          and doc["metadata"]["name"].startswith("field-")), None)
        else:
            match = next((doc for doc in unmatched if doc == expected), None)
        assert match is not None, f"{example.id} is not in {REFERENCE.relative_to(REPO)}"
        unmatched.remove(match)
    assert unmatched == [], "examples that are not on the reference page"
    assert len(page) == len(ours) == 25


# -- the one-file quickstart ---------------------------------------------------------------------------------

def test_quickstart_is_one_file_with_everything_it_needs() -> None:
    docs = _documents(QUICKSTART)
    kinds = [doc["kind"] for doc in docs]
    assert kinds == ["Namespace", "ConfigMap", "ArenaSource", "Provider", "ArenaConfig", "ArenaJob"]
    source, provider, config, job = docs[2:]
    assert source["spec"] == {"type": "configmap", "configMap": {"name": docs[1]["metadata"]["name"]}}
    assert provider["spec"]["type"] == "mock" and provider["spec"]["mockConfig"]
    assert config["spec"]["sourceRef"]["name"] == source["metadata"]["name"]
    assert config["spec"]["providerRef"]["name"] == provider["metadata"]["name"]
    assert job["spec"]["configRef"]["name"] == config["metadata"]["name"]
    assert {doc["metadata"].get("namespace") for doc in docs[1:]} == {docs[0]["metadata"]["name"]}
    assert (job["metadata"]["namespace"], job["metadata"]["name"]) == ("arena", "quickstart")  # as NOTES.txt says


def test_quickstart_runs_with_arena_run(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "arena_operator.cli", "run", str(QUICKSTART), "-q", "--ci",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sorted(r["ScenarioID"] for r in runs) == ["competitor-question", "greeting", "order-status",
                                                     "refund-policy"]
    assert {r["Status"] for r in runs} == {"passed"} and {r["ProviderID"] for r in runs} == {"mock-assistant"}
    assert (tmp_path / "junit.xml").exists() and not (tmp_path / "results.csv").exists()  # outputFormats


def test_quickstart_applies_unchanged_with_kubectl(k8s_api: K8sApi) -> None:
    """The file as it is, with the real kubectl 1.31 against the emulated API (which validates nothing: the
    schemas are checked above): the namespace and every object are created where the file says."""
    kubectl = [tool("kubectl"), f"--kubeconfig={k8s_api.kubeconfig}"]
    run(*kubectl, "apply", "--validate=false", "-f", REPO / "crds")
    applied = run(*kubectl, "apply", "--validate=false", "-f", QUICKSTART).stdout
    for line in ("namespace/arena created", "configmap/quickstart-bundle created",
                 "arenasource.omnia.altairalabs.ai/quickstart created",
                 "provider.omnia.altairalabs.ai/mock-assistant created",
                 "arenaconfig.omnia.altairalabs.ai/quickstart created",
                 "arenajob.omnia.altairalabs.ai/quickstart created"):
        assert line in applied, applied
    job = k8s_api.get(API_VERSION, "arenajobs", "arena", "quickstart")
    assert job is not None and job["spec"] == _documents(QUICKSTART)[-1]["spec"]


# -- Flux and Argo CD, rendered as they render ----------------------------------------------------------------

def _gitops(directory: str) -> list[Object]:
    return [doc for path in sorted((EXAMPLES / directory).glob("*.yaml")) for doc in _documents(path)
            if (doc.get("apiVersion"), doc.get("kind")) in GITOPS_SCHEMAS]


def _chart_render(path: str, values: dict[str, Any], namespace: str, tmp_path: Path) -> list[Object]:
    """`helm template` of a chart path of this repository with the values the GitOps object gives (so
    values.schema.json checks them), validated like the chart's own renders."""
    chart = REPO / path.lstrip("./")
    assert (chart / "Chart.yaml").exists(), path
    values_file = tmp_path / f"values-{len(list(tmp_path.iterdir()))}.yaml"
    values_file.write_text(yaml.safe_dump(values))
    text = helm("template", "arena-operator", chart, "--namespace", namespace, "--include-crds", "-f",
                values_file).stdout
    objects = [doc for doc in yaml.safe_load_all(text) if doc]
    validate_objects(objects)
    return objects


def _directory_render(path: str, tmp_path: Path) -> list[Object]:
    """What Flux's kustomize-controller (and Argo CD's directory source) applies from a plain directory: every
    manifest in it, through a generated kustomization.yaml, with the real kubectl kustomize."""
    source = REPO / path.lstrip("./")
    copy = tmp_path / f"dir-{len(list(tmp_path.iterdir()))}"
    shutil.copytree(source, copy)
    files = sorted(str(p.relative_to(copy)) for p in copy.rglob("*.y*ml"))
    (copy / "kustomization.yaml").write_text(yaml.safe_dump({"apiVersion": "kustomize.config.k8s.io/v1beta1",
                                                             "kind": "Kustomization", "resources": files}))
    objects = [doc for doc in yaml.safe_load_all(run(tool("kubectl"), "kustomize", copy).stdout) if doc]
    validate_objects(objects)
    return objects


def test_flux_installs_the_chart_and_applies_arena_objects_from_git(tmp_path: Path) -> None:
    objects = _gitops("flux")
    repositories = {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == "GitRepository"}
    assert {repo["spec"]["url"] for repo in repositories.values()} == {REPO_URL}
    [release] = [obj for obj in objects if obj["kind"] == "HelmRelease"]
    chart = release["spec"]["chart"]["spec"]
    assert chart["sourceRef"]["name"] in repositories and chart["sourceRef"]["kind"] == "GitRepository"
    assert release["spec"]["install"]["crds"] == release["spec"]["upgrade"]["crds"] == "CreateReplace"
    rendered = _chart_render(chart["chart"], release["spec"]["values"], release["spec"]["targetNamespace"], tmp_path)
    assert sum(obj["kind"] == "CustomResourceDefinition" for obj in rendered) == 5
    assert any(obj["kind"] == "Deployment" for obj in rendered)
    [kustomization] = [obj for obj in objects if obj["kind"] == "Kustomization"]
    assert kustomization["spec"]["sourceRef"]["name"] in repositories
    assert kustomization["spec"]["wait"] is True
    applied = _directory_render(kustomization["spec"]["path"], tmp_path)
    assert {obj["kind"] for obj in applied} >= {"ArenaSource", "ArenaConfig", "Provider", "ArenaJob"}


def test_argocd_installs_the_chart_and_syncs_arena_objects(tmp_path: Path) -> None:
    applications = {obj["metadata"]["name"]: obj for obj in _gitops("argocd")}
    assert set(applications) == {"arena-operator", "arena-evaluations"}
    operator = applications["arena-operator"]["spec"]
    assert operator["source"]["repoURL"] == REPO_URL
    assert "ServerSideApply=true" in operator["syncPolicy"]["syncOptions"]
    values = operator["source"]["helm"]["valuesObject"]
    rendered = _chart_render(operator["source"]["path"], values, operator["destination"]["namespace"], tmp_path)
    # `helm template` cannot look the generated Redis password up: the Application names a Secret instead
    assert not [obj for obj in rendered if obj["kind"] == "Secret"]
    evaluations = applications["arena-evaluations"]["spec"]
    applied = _directory_render(evaluations["source"]["path"], tmp_path)
    assert {obj["kind"] for obj in applied} >= {"ArenaSource", "ArenaConfig", "Provider", "ArenaJob"}


def test_argocd_cm_carries_the_tested_health_scripts() -> None:
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "render_argocd_health.py"), "--check"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    [config_map] = _documents(EXAMPLES / "argocd" / "argocd-cm-health.yaml")
    assert set(config_map["data"]) == {f"resource.customizations.health.omnia.altairalabs.ai_{kind}"
                                       for kind in ("ArenaJob", "ArenaSource", "ArenaConfig")}
    for key, script in config_map["data"].items():
        kind = key.rsplit("_", 1)[1]
        assert script == (EXAMPLES / "argocd" / "health" / f"{kind.lower()}.lua").read_text(), kind


@pytest.mark.parametrize("path", ["examples/flux/arena-evaluations.yaml", "examples/argocd/arena-operator.yaml"])
def test_gitops_examples_point_at_paths_that_exist(path: str) -> None:
    for doc in _documents(REPO / path):
        spec = doc.get("spec") or {}
        target = spec.get("path") or (spec.get("source") or {}).get("path")
        if target:
            assert (REPO / target.lstrip("./")).is_dir(), target
