"""The CRDs and the documented manifests with the real kubectl, against the emulated Kubernetes API.

The emulator (``tests/harness/k8s.py``) validates nothing and serves no OpenAPI, so this checks what kubectl
itself needs: the CRD files apply, the kinds answer to their plural, short names and category, every
documented example applies as written (in namespace ``arena``), and the printer columns read real fields.
Schema validation of the same manifests is in ``tests/unit/test_api_manifests.py``.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from arena_operator.api import API_VERSION, KINDS, render_crds
from tests.harness.k8s import K8sApi, dig
from tests.harness.k8s import k8s_api as k8s_api  # the fixture, re-exported for pytest
from tests.unit.test_api_manifests import REPO, seed_examples

NAMESPACE = "arena"
DIGEST = "sha256:" + "ab" * 32


def _apply(api: K8sApi, *args: str, manifests: list[dict[str, Any]] | None = None) -> str:
    text = yaml.safe_dump_all(manifests, sort_keys=False) if manifests is not None else None
    return api.kubectl("apply", "--validate=false", *args, input=text).stdout


def _printer_columns(kind: str) -> list[dict[str, Any]]:
    crd = render_crds()[next(k.crd_name for k in KINDS if k.kind == kind)]
    return list(crd["spec"]["versions"][0]["additionalPrinterColumns"])


def test_kubectl_applies_the_crds_and_serves_their_names(k8s_api: K8sApi) -> None:
    applied = _apply(k8s_api, "-f", str(REPO / "crds"))
    for kind in KINDS:
        assert f"customresourcedefinition.apiextensions.k8s.io/{kind.crd_name} created" in applied
    assert _apply(k8s_api, "-f", str(REPO / "crds")).count("unchanged") == len(KINDS)

    names = k8s_api.kubectl("get", "crds", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
    assert sorted(names) == sorted(kind.crd_name for kind in KINDS)
    k8s_api.create_namespace(NAMESPACE)
    for kind in KINDS:
        for name in (kind.plural, kind.singular, *kind.short_names, f"{kind.plural}.omnia.altairalabs.ai"):
            listed = json.loads(k8s_api.kubectl("get", name, "-n", NAMESPACE, "-o", "json").stdout)
            assert listed["items"] == [], name


def test_every_documented_example_applies_as_written(k8s_api: K8sApi) -> None:
    _apply(k8s_api, "-f", str(REPO / "crds"))
    k8s_api.create_namespace(NAMESPACE)
    examples = seed_examples()
    applied = _apply(k8s_api, "-n", NAMESPACE, "-f", "-", manifests=[example.manifest for example in examples])

    for example in examples:
        kind, name = example.manifest["kind"], example.manifest["metadata"]["name"]
        assert f"{kind.lower()}.omnia.altairalabs.ai/{name} created" in applied, example.id
    # The "arena" category lists all five kinds at once, as `kubectl get arena` does for users. api-resources
    # refreshes kubectl's discovery cache, which still holds the pre-CRD resources (no categories).
    category = k8s_api.kubectl("api-resources", "--categories=arena", "-o", "name").stdout.split()
    assert sorted(category) == sorted(kind.crd_name for kind in KINDS)
    stored = json.loads(k8s_api.kubectl("get", "arena", "-n", NAMESPACE, "-o", "json").stdout)["items"]
    by_key = {(item["kind"], item["metadata"]["name"]): item for item in stored}
    assert len(by_key) == len(examples)
    for example in examples:
        item = by_key[example.manifest["kind"], example.manifest["metadata"]["name"]]
        assert item["apiVersion"] == API_VERSION and item["metadata"]["namespace"] == NAMESPACE
        assert item["spec"] == example.manifest["spec"], example.id


def test_kubectl_get_shows_the_arena_source_printer_columns(k8s_api: K8sApi) -> None:
    _apply(k8s_api, "-f", str(REPO / "crds"))
    k8s_api.create_namespace(NAMESPACE)
    [source] = [example.manifest for example in seed_examples() if example.manifest["kind"] == "ArenaSource"]
    _apply(k8s_api, "-n", NAMESPACE, "-f", "-", manifests=[source])
    revision = "main@sha1:" + "1" * 40
    k8s_api.patch(API_VERSION, "arenasources", NAMESPACE, source["metadata"]["name"], {"status": {
        "phase": "Ready",
        "artifact": {"revision": revision, "url": "http://arena-artifacts/x.tar.gz", "digest": DIGEST},
        "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded", "message": "stored",
                        "lastTransitionTime": "2025-01-02T03:04:05Z"}]}}, subresource="status")
    columns = _printer_columns("ArenaSource")
    headers = [column["name"] for column in columns]
    assert headers == ["TYPE", "REVISION", "READY", "AGE"]

    table = k8s_api.kubectl("get", "arenasources", "-n", NAMESPACE).stdout.splitlines()
    if table[0].split() == ["NAME", *headers]:  # an API server that prints tables from the CRD
        assert table[1].split()[:4] == [source["metadata"]["name"], "git", revision, "True"]
        return
    # The emulator serves no server-side Table, so kubectl falls back to NAME and AGE: ask kubectl for the
    # same columns from the CRD's own jsonPaths instead (AGE then shows the raw creationTimestamp).
    assert table[0].split() == ["NAME", "AGE"]
    spec = ",".join(["NAME:.metadata.name", *(f"{column['name']}:{column['jsonPath']}" for column in columns)])
    table = k8s_api.kubectl("get", "asrc", "-n", NAMESPACE, "-o", f"custom-columns={spec}").stdout.splitlines()
    assert table[0].split() == ["NAME", *headers]
    created = dig(k8s_api.get(API_VERSION, "arenasources", NAMESPACE, source["metadata"]["name"]),
                  "metadata.creationTimestamp")
    assert table[1].split() == [source["metadata"]["name"], "git", revision, "True", created]
