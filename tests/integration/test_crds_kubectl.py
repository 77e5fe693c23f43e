"""The CRDs and the documented manifests with the real kubectl, against the emulated Kubernetes API.

The emulator (``tests/harness/emulator.py``) validates nothing and serves no OpenAPI, so this checks what kubectl
itself needs: the CRD files apply, the kinds answer to their plural, short names and category, every
documented example applies as written (in namespace ``arena``), and the printer columns read real fields.
Beyond the CRDs: ``kubectl get -w`` streams, and ``kubectl create secret|configmap|namespace`` (protobuf bodies).
Schema validation of the same manifests is in ``tests/unit/test_api_manifests.py``.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import httpx
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


def _table(stdout: str) -> list[dict[str, str]]:
    """kubectl's table output as one dict per row, cut at the header words (empty cells stay empty)."""
    header, *lines = stdout.splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    return [{name: line[start:end].strip() for name, start, end in zip(names, starts, [*starts[1:], None], strict=True)}
            for line in lines]


def _headers(stdout: str) -> list[str]:
    return stdout.splitlines()[0].split()


def test_kubectl_get_shows_the_arena_source_printer_columns(k8s_api: K8sApi) -> None:
    _apply(k8s_api, "-f", str(REPO / "crds"))
    k8s_api.create_namespace(NAMESPACE)
    [source] = [example.manifest for example in seed_examples() if example.manifest["kind"] == "ArenaSource"]
    name = source["metadata"]["name"]
    pending = {**source, "metadata": {"name": "not-fetched-yet"}, "spec": {**source["spec"], "type": "oci"}}
    _apply(k8s_api, "-n", NAMESPACE, "-f", "-", manifests=[source, pending])
    revision = "main@sha1:" + "1" * 40
    k8s_api.patch(API_VERSION, "arenasources", NAMESPACE, name, {"status": {
        "phase": "Ready",
        "artifact": {"revision": revision, "url": "http://arena-artifacts/x.tar.gz", "digest": DIGEST},
        "conditions": [
            {"type": "Reconciling", "status": "False", "reason": "Succeeded", "message": "done",
             "lastTransitionTime": "2025-01-02T03:04:05Z"},
            {"type": "Ready", "status": "True", "reason": "Succeeded", "message": "stored",
             "lastTransitionTime": "2025-01-02T03:04:05Z"}]}}, subresource="status")
    headers = [column["name"] for column in _printer_columns("ArenaSource")]
    assert headers == ["TYPE", "REVISION", "READY", "AGE"]

    # A plain `kubectl get` prints the server-side Table built from the CRD's printer columns.
    listed = k8s_api.kubectl("get", "arenasources", "-n", NAMESPACE).stdout
    assert _headers(listed) == ["NAME", "TYPE", "REVISION", "READY", "AGE"]
    rows = {row["NAME"]: row for row in _table(listed)}
    assert set(rows) == {name, "not-fetched-yet"}
    assert rows[name] | {"AGE": ""} == {"NAME": name, "TYPE": "git", "REVISION": revision, "READY": "True", "AGE": ""}
    assert rows["not-fetched-yet"] | {"AGE": ""} == {
        "NAME": "not-fetched-yet", "TYPE": "oci", "REVISION": "", "READY": "", "AGE": ""}
    for row in rows.values():  # the apiserver sends an age (duration.HumanDuration), not the timestamp
        assert re.fullmatch(r"\d+s", row["AGE"]), row

    # One object by name (a Table with one row), under a short name, and across namespaces.
    assert _table(k8s_api.kubectl("get", "asrc", name, "-n", NAMESPACE).stdout)[0]["REVISION"] == revision
    everywhere = k8s_api.kubectl("get", "arenasources", "--all-namespaces").stdout
    assert _headers(everywhere) == ["NAMESPACE", "NAME", "TYPE", "REVISION", "READY", "AGE"]
    assert {(row["NAMESPACE"], row["NAME"]) for row in _table(everywhere)} == {
        (NAMESPACE, name), (NAMESPACE, "not-fetched-yet")}

    # kubectl's own JSONPath, with the CRD's jsonPaths, agrees with the server's Table (AGE aside).
    spec = ",".join(["NAME:.metadata.name", *(f"{column['name']}:{column['jsonPath']}"
                                              for column in _printer_columns("ArenaSource")[:-1])])
    custom = _table(k8s_api.kubectl("get", "asrc", "-n", NAMESPACE, "-o", f"custom-columns={spec}").stdout)
    assert custom[0] == {key: value for key, value in rows[name].items() if key != "AGE"}
    assert custom[1] == {"NAME": "not-fetched-yet", "TYPE": "oci", "REVISION": "<none>", "READY": "<none>"}


def test_kubectl_get_shows_the_arena_job_printer_columns(k8s_api: K8sApi) -> None:
    _apply(k8s_api, "-f", str(REPO / "crds"))
    k8s_api.create_namespace(NAMESPACE)
    jobs = {example.manifest["metadata"]["name"]: example.manifest for example in seed_examples()
            if example.manifest["kind"] == "ArenaJob" and example.manifest["metadata"]["name"] in (
                "parallel-eval", "provider-loadtest")}
    _apply(k8s_api, "-n", NAMESPACE, "-f", "-", manifests=list(jobs.values()))
    k8s_api.patch(API_VERSION, "arenajobs", NAMESPACE, "parallel-eval", {"status": {
        "phase": "Running", "progressText": "37/120", "activeWorkers": 4,
        "progress": {"completed": 37, "failed": 0, "pending": 83, "total": 120}}}, subresource="status")
    assert [column["name"] for column in _printer_columns("ArenaJob")] == [
        "TYPE", "PHASE", "PROGRESS", "WORKERS", "AGE"]

    listed = k8s_api.kubectl("get", "arenajobs", "-n", NAMESPACE).stdout
    assert _headers(listed) == ["NAME", "TYPE", "PHASE", "PROGRESS", "WORKERS", "AGE"]
    rows = {row.pop("NAME"): row for row in _table(listed)}
    assert rows["parallel-eval"] | {"AGE": ""} == {
        "TYPE": "evaluation", "PHASE": "Running", "PROGRESS": "37/120", "WORKERS": "4", "AGE": ""}
    assert rows["provider-loadtest"] | {"AGE": ""} == {
        "TYPE": "loadtest", "PHASE": "", "PROGRESS": "", "WORKERS": "", "AGE": ""}
    assert all(re.fullmatch(r"\d+s", row["AGE"]) for row in rows.values()), rows


def test_the_api_serves_tables_only_to_who_asks(k8s_api: K8sApi) -> None:
    """The Table's shape (meta.k8s.io/v1), includeObject, and plain JSON for clients that do not ask."""
    _apply(k8s_api, "-f", str(REPO / "crds"))
    k8s_api.create_namespace(NAMESPACE)
    [source] = [example.manifest for example in seed_examples() if example.manifest["kind"] == "ArenaSource"]
    _apply(k8s_api, "-n", NAMESPACE, "-f", "-", manifests=[source])
    path = f"{k8s_api.url}/apis/{API_VERSION}/namespaces/{NAMESPACE}/arenasources"
    kubectl_accept = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
                      "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")

    def get(url: str, accept: str, **params: str) -> dict[str, Any]:
        response = httpx.get(url, headers={"Accept": accept}, params=params)
        assert response.status_code == 200, response.text
        return dict(response.json())

    table = get(path, kubectl_accept)
    assert (table["apiVersion"], table["kind"]) == ("meta.k8s.io/v1", "Table")
    assert [(c["name"], c["type"], c["format"]) for c in table["columnDefinitions"]] == [
        ("Name", "string", "name"), ("TYPE", "string", ""), ("REVISION", "string", ""), ("READY", "string", ""),
        ("AGE", "date", "")]
    assert all(set(c) == {"name", "type", "format", "description", "priority"} for c in table["columnDefinitions"])
    [row] = table["rows"]
    assert row["cells"][:4] == [source["metadata"]["name"], "git", None, None]
    assert (row["object"]["apiVersion"], row["object"]["kind"]) == ("meta.k8s.io/v1", "PartialObjectMetadata")
    assert row["object"]["metadata"]["name"] == source["metadata"]["name"] and "spec" not in row["object"]
    assert get(path, kubectl_accept, includeObject="Object")["rows"][0]["object"]["spec"] == source["spec"]
    assert get(path, kubectl_accept, includeObject="None")["rows"][0]["object"] is None
    one = get(f"{path}/{source['metadata']['name']}", kubectl_accept)
    assert one["kind"] == "Table" and len(one["rows"]) == 1
    assert get(path, "application/json;as=Table;v=v1beta1;g=meta.k8s.io")["apiVersion"] == "meta.k8s.io/v1beta1"
    for accept in ("application/json", "application/json, */*", f"application/json,{kubectl_accept}",
                   "application/json;as=Table;v=v2;g=meta.k8s.io,application/json"):
        assert get(path, accept)["kind"] == "ArenaSourceList", accept
    # A kind without a CRD's printer columns (every built-in kind here) gets NAME and AGE.
    namespaces = get(f"{k8s_api.url}/api/v1/namespaces", kubectl_accept)
    assert [c["name"] for c in namespaces["columnDefinitions"]] == ["Name", "Age"]


def test_kubectl_get_watch_prints_objects_created_after_it_started(k8s_api: K8sApi) -> None:
    """`kubectl get -w` decodes the watch stream (application/json;stream=watch) and prints the printer columns."""
    _apply(k8s_api, "-f", str(REPO / "crds"))
    k8s_api.create_namespace(NAMESPACE)
    [source] = [example.manifest for example in seed_examples() if example.manifest["kind"] == "ArenaSource"]
    first = {**source, "metadata": {"name": "before-the-watch"}}
    _apply(k8s_api, "-n", NAMESPACE, "-f", "-", manifests=[first])

    with k8s_api.kubectl_stream("get", "arenasources", "-n", NAMESPACE, "-w") as watch:
        watch.wait_for_line(lambda line: line.startswith("before-the-watch "))
        k8s_api.wait_for_watch(API_VERSION, "arenasources", NAMESPACE)
        later = {**source, "metadata": {"name": "after-the-watch", "namespace": NAMESPACE}}
        k8s_api.create(later)
        row = watch.wait_for_line(lambda line: line.startswith("after-the-watch "))
        assert watch.running  # still watching, until stopped
        _, stderr = watch.stop()

    assert "serializer" not in stderr and "error" not in stderr.lower(), stderr
    # The watch events are Table rows too: one header (the CRD's columns) for the listed and the watched objects.
    assert _headers("\n".join(watch.lines)) == ["NAME", "TYPE", "REVISION", "READY", "AGE"]
    assert [line for line in watch.lines if line.startswith("NAME")] == [watch.lines[0]]
    assert row.split()[:2] == ["after-the-watch", source["spec"]["type"]]


def test_kubectl_get_watch_of_a_built_in_kind(k8s_api: K8sApi) -> None:
    with k8s_api.kubectl_stream("get", "configmaps", "-w") as watch:
        k8s_api.wait_for_watch("v1", "configmaps", "default")
        k8s_api.create({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "settings", "namespace": "default"}, "data": {"a": "1"}})
        row = watch.wait_for_line(lambda line: line.startswith("settings "))
        assert watch.running
    assert watch.lines[0].split() == ["NAME", "AGE"]
    assert re.fullmatch(r"settings\s+\d+s", row), row


def test_kubectl_create_secret_generic_stores_the_data_base64_encoded(k8s_api: K8sApi, tmp_path: Path) -> None:
    """kubectl sends built-in kinds as protobuf (application/vnd.kubernetes.protobuf): the emulator decodes them."""
    k8s_api.create_namespace(NAMESPACE)
    blob = bytes(range(256))  # not UTF-8: the body is binary, not text
    (tmp_path / "blob").write_bytes(blob)
    created = k8s_api.kubectl("create", "secret", "generic", "creds", "-n", NAMESPACE, "--from-literal=token=s3cr3t",
                              "--from-literal=user=arena", f"--from-file=blob={tmp_path / 'blob'}")
    assert created.stdout.strip() == "secret/creds created"

    secret = json.loads(k8s_api.kubectl("get", "secret", "creds", "-n", NAMESPACE, "-o", "json").stdout)
    assert (secret["apiVersion"], secret["kind"], secret["metadata"]["name"]) == ("v1", "Secret", "creds")
    assert secret["metadata"]["namespace"] == NAMESPACE and secret["metadata"]["uid"]
    encoded = {key: base64.b64encode(value).decode() for key, value in (
        ("token", b"s3cr3t"), ("user", b"arena"), ("blob", blob))}
    assert secret["data"] == encoded
    assert k8s_api.get("v1", "secrets", NAMESPACE, "creds")["data"] == secret["data"]  # what the operator reads

    again = k8s_api.kubectl("create", "secret", "generic", "creds", "-n", NAMESPACE, "--from-literal=a=b", check=False)
    assert again.returncode != 0 and "already exists" in again.stderr, again.stderr


def test_kubectl_create_namespace_and_configmap(k8s_api: K8sApi) -> None:
    """The other built-in kinds kubectl creates as protobuf: a Namespace and a ConfigMap (with binary data)."""
    assert k8s_api.kubectl("create", "namespace", "other").stdout.strip() == "namespace/other created"
    assert dig(k8s_api.get("v1", "namespaces", None, "other"), "status.phase") == "Active"
    k8s_api.kubectl("create", "configmap", "settings", "-n", "other", "--from-literal=mode=fast")
    configmap = json.loads(k8s_api.kubectl("get", "configmap", "settings", "-n", "other", "-o", "json").stdout)
    assert configmap["data"] == {"mode": "fast"}


def test_protobuf_bodies_of_other_kinds_are_refused_with_415(k8s_api: K8sApi) -> None:
    """Kinds without a protobuf schema in the emulator get 415 (send JSON); a broken body gets 400."""
    pod = b"k8s\x00" + _proto_field(1, _proto_field(1, b"v1") + _proto_field(2, b"Pod")) + _proto_field(2, b"")
    headers = {"Content-Type": "application/vnd.kubernetes.protobuf"}
    refused = httpx.post(f"{k8s_api.url}/api/v1/namespaces/default/pods", content=pod, headers=headers)
    assert refused.status_code == 415 and refused.json()["reason"] == "UnsupportedMediaType"
    broken = httpx.post(f"{k8s_api.url}/api/v1/namespaces/default/secrets", content=b"k8s\x00\x0a\xff", headers=headers)
    assert broken.status_code == 400 and broken.json()["reason"] == "BadRequest"


def _proto_field(number: int, value: bytes) -> bytes:
    """A length-delimited protobuf field (values shorter than 128 bytes)."""
    return bytes([number << 3 | 2, len(value)]) + value
