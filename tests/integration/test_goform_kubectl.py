"""The Go operator's manifests (tests/fixtures/goform) with the real kubectl against the CRDs: they apply as
written, and what is stored is what was applied — nothing pruned, neither by the emulated API nor by the CRD
schemas' structural pruning (which the emulator does not do, so it is applied here with the same rules as the
API server: tests.unit.test_goform.pruned). The Go form of status.artifact survives the status subresource too."""

from __future__ import annotations

import json
from typing import Any

import yaml

from arena_operator.api import API_VERSION
from tests.harness.k8s import K8sApi
from tests.harness.k8s import k8s_api as k8s_api  # the fixture, re-exported for pytest
from tests.unit.test_api_manifests import REPO
from tests.unit.test_goform import MANIFESTS, object_schema, pruned

NAMESPACE = "arena"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _apply(api: K8sApi, *args: str, manifests: list[dict[str, Any]] | None = None) -> str:
    text = yaml.safe_dump_all(manifests, sort_keys=False) if manifests is not None else None
    return api.kubectl("apply", "--validate=false", *args, input=text).stdout


def _stored(api: K8sApi) -> dict[tuple[str, str], dict[str, Any]]:
    listed = json.loads(api.kubectl("get", "arenajobs,arenasources", "-n", NAMESPACE, "-o", "json").stdout)
    return {(item["kind"], item["metadata"]["name"]): item for item in listed["items"]}


def test_go_form_manifests_apply_with_kubectl_and_nothing_is_pruned(k8s_api: K8sApi) -> None:
    _apply(k8s_api, "-f", str(REPO / "crds"))
    k8s_api.create_namespace(NAMESPACE)
    manifests = [manifest for _, manifest in MANIFESTS]
    applied = _apply(k8s_api, "-n", NAMESPACE, "-f", str(REPO / "tests" / "fixtures" / "goform"))
    for manifest in manifests:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        assert f"{kind.lower()}.omnia.altairalabs.ai/{name} created" in applied, applied

    stored = _stored(k8s_api)
    assert len(stored) == len(manifests)
    for manifest in manifests:
        item = stored[manifest["kind"], manifest["metadata"]["name"]]
        assert item["apiVersion"] == API_VERSION and item["metadata"]["namespace"] == NAMESPACE
        assert item["spec"] == manifest["spec"], manifest["metadata"]["name"]
        # what the API server would keep of the stored object under the CRD's schema: all of it
        assert pruned(object_schema(manifest["kind"]), item)["spec"] == manifest["spec"], manifest["metadata"]["name"]
        # kubectl sent the manifest as written (its last-applied record) and would find nothing to change
        last = json.loads(item["metadata"]["annotations"][LAST_APPLIED])
        assert last["spec"] == manifest["spec"]
    assert _apply(k8s_api, "-n", NAMESPACE, "-f", str(REPO / "tests" / "fixtures" / "goform")).count(
        "unchanged") == len(manifests)

    # kubectl get reads the Go-form objects with the CRDs' printer columns
    listed = k8s_api.kubectl("get", "arenasources", "-n", NAMESPACE, "-o",
                             "custom-columns=NAME:.metadata.name,TYPE:.spec.type").stdout
    types = dict(line.split() for line in listed.splitlines()[1:])
    assert types == {"go-prompts": "git", "go-private-prompts": "git", "go-workspace": "workspace"}


def test_the_go_form_of_status_artifact_survives_the_status_subresource(k8s_api: K8sApi) -> None:
    _apply(k8s_api, "-f", str(REPO / "crds"))
    k8s_api.create_namespace(NAMESPACE)
    [source] = [m for _, m in MANIFESTS if m["metadata"]["name"] == "go-workspace"]
    _apply(k8s_api, "-n", NAMESPACE, "-f", "-", manifests=[source])
    digest = "sha256:" + "ab" * 32
    artifact = {"revision": "sha256:" + "cd" * 32, "url": "http://arena-operator/artifacts/arena/go-workspace/x",
                "digest": digest, "checksum": digest, "version": "abababababab", "size": 5632,
                "contentPath": "arena/support-snapshots/.arena/versions/abababababab",
                "lastUpdateTime": "2026-12-01T10:00:00Z"}
    k8s_api.patch(API_VERSION, "arenasources", NAMESPACE, "go-workspace", {"status": {
        "phase": "Ready", "artifact": artifact}}, subresource="status")
    item = json.loads(k8s_api.kubectl("get", "arenasource", "go-workspace", "-n", NAMESPACE, "-o", "json").stdout)
    assert item["status"]["artifact"] == artifact
    assert pruned(object_schema("ArenaSource"), item)["status"]["artifact"] == artifact
    version = k8s_api.kubectl("get", "asrc", "go-workspace", "-n", NAMESPACE, "-o",
                              "jsonpath={.status.artifact.version} {.status.artifact.contentPath}").stdout
    assert version == "abababababab arena/support-snapshots/.arena/versions/abababababab"
