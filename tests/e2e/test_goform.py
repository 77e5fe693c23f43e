"""The Go operator's manifests (tests/fixtures/goform) on the e2e cluster of test_arenajob: each job runs to
Succeeded with the same results as its documented-form equivalent (an ArenaConfig, providerOverrides,
toolRegistryOverride) run beside it; the Go form's pod settings reach the worker pods; a spec with both forms
says which wins (SpecWarning); cancelled cancels; a workspace source snapshots a directory of the volume."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.operator_env import NAMESPACE, condition, wait_event
from tests.e2e.test_arenajob import BUCKET, QUICKSTART, SCENARIOS, _OrderTool, finished, mock_provider, s3_output
from tests.e2e.test_arenajob import cluster as cluster  # the fixture: operator, kubelet, git, S3, mock-a
from tests.harness.k8s import ARENA_API_VERSION, K8sApi, dig
from tests.harness.k8s import k8s_api as k8s_api  # the fixture the cluster fixture needs
from tests.unit.test_goform import go_manifest, outcomes

PRODUCTION = {"selector": {"matchLabels": {"tier": "production"}}}  # mock-a of the cluster fixture


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The operator's workspace volume (set before the cluster's operator starts), holding the quickstart as
    projects/support of namespace arena."""
    root = tmp_path / "workspace"
    shutil.copytree(QUICKSTART, root / NAMESPACE / "projects" / "support")
    monkeypatch.setenv("ARENA_WORKSPACE_DIR", str(root))
    return root


def fixture(name: str) -> dict[str, Any]:
    manifest = go_manifest(name)
    manifest["metadata"]["namespace"] = NAMESPACE
    return manifest


def go_source(api: K8sApi) -> None:
    """The Go-form git ArenaSource, pointed at the cluster's git daemon (the one field that cannot be written
    ahead), and Ready."""
    source = fixture("go-prompts")
    source["spec"]["git"]["url"] = api.get(ARENA_API_VERSION, "arenasources", NAMESPACE, "my-prompts")["spec"][
        "git"]["url"]
    api.create(source)
    api.wait_for(ARENA_API_VERSION, "arenasources", NAMESPACE, "go-prompts",
                 lambda o: dig(o, "status.phase") == "Ready", timeout=20)


def documented(api: K8sApi, name: str, config: dict[str, Any], **spec: Any) -> None:
    """A documented-form pair: ArenaConfig <name>-config on the cluster's source, and ArenaJob <name>."""
    api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaConfig",
                "metadata": {"name": f"{name}-config", "namespace": NAMESPACE},
                "spec": {"sourceRef": {"name": "my-prompts"}, **config}})
    api.wait_for(ARENA_API_VERSION, "arenaconfigs", NAMESPACE, f"{name}-config",
                 lambda o: dig(o, "status.phase") == "Ready", timeout=20)
    api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaJob", "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {"configRef": {"name": f"{name}-config"}, **spec}})


def succeeded(api: K8sApi, name: str) -> dict[str, Any]:
    obj = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, name, finished, timeout=90)
    assert obj["status"]["phase"] == "Succeeded", (name, obj["status"])
    return obj


def same_summary(go: dict[str, Any], doc: dict[str, Any]) -> None:
    keys = ("runs", "passed", "failed", "passRate")
    assert {k: go["status"]["result"]["summary"][k] for k in keys} == \
        {k: doc["status"]["result"]["summary"][k] for k in keys}
    assert go["status"]["progress"] == doc["status"]["progress"]


def s3_runs(s3: Any, prefix: str, job: str) -> list[dict[str, Any]]:
    body = s3.get_object(Bucket=BUCKET, Key=f"{prefix}{NAMESPACE}/{job}/results.json")["Body"].read()
    return list(json.loads(body))


@pytest.fixture
def order_tool() -> Iterator[int]:
    _OrderTool.calls = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OrderTool)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_port
    finally:
        server.shutdown()


def test_go_pool_job_runs_as_its_documented_equivalent(workspace: Path, cluster: dict[str, Any],
                                                        order_tool: int) -> None:
    api, s3 = cluster["api"], cluster["s3"]
    api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "eval-settings", "namespace": NAMESPACE},
                "data": {"MODE": "strict"}})
    api.create({"apiVersion": ARENA_API_VERSION, "kind": "ToolRegistry",
                "metadata": {"name": "orders-live", "namespace": NAMESPACE, "labels": {"environment": "test"}},
                "spec": {"handlers": [{"name": "orders", "type": "http", "tool": {"name": "lookup_order"},
                                       "httpConfig": {"endpoint": f"http://127.0.0.1:{order_tool}/o"}}]}})
    go_source(api)
    pool = fixture("go-pool")
    pool["spec"]["output"]["s3"]["endpoint"] = cluster["s3_url"]  # the local S3's address
    api.create(pool)
    doc_output = s3_output(cluster["s3_url"])
    doc_output["s3"]["prefix"] = "doc/"
    documented(api, "doc-pool", {"trials": 2}, evaluation={"outputFormats": ["junit", "json"]},
               workers={"replicas": 2}, providerOverrides={"default": PRODUCTION},
               toolRegistryOverride={"selector": {"matchLabels": {"environment": "test"}}}, output=doc_output)

    go, doc = succeeded(api, "go-pool"), succeeded(api, "doc-pool")
    assert go["status"]["progress"]["total"] == SCENARIOS * 2
    same_summary(go, doc)
    go_runs, doc_runs = s3_runs(s3, "go/", "go-pool"), s3_runs(s3, "doc/", "doc-pool")
    assert outcomes(go_runs) == outcomes(doc_runs) and {r["ProviderID"] for r in go_runs} == {"mock-a"}
    assert len(_OrderTool.calls) == 2 * 2  # the live tool, through toolRegistries, for both jobs' order-status runs
    assert go["status"]["resolvedProviders"] == doc["status"]["resolvedProviders"] == {"default": ["mock-a"]}
    assert go["status"]["resolvedTools"] == doc["status"]["resolvedTools"]
    assert condition(go, "SourceValid")["status"] == "True" and condition(go, "ConfigValid") == {}
    assert condition(go, "Ready")["status"] == "True" and condition(go, "SpecWarning") == {}

    template = api.get("batch/v1", "jobs", NAMESPACE, "go-pool-worker")["spec"]["template"]
    assert template["metadata"]["labels"]["team"] == "evals"
    assert template["metadata"]["annotations"] == {"example.com/owner": "evals-team"}
    pod = template["spec"]
    assert (pod["serviceAccountName"], pod["priorityClassName"]) == ("arena-evals", "batch-low")
    assert pod["tolerations"][0]["key"] == "dedicated" and pod["imagePullSecrets"] == [
        {"name": "registry-credentials"}]
    worker = cluster["kubelet"].pods("go-pool-worker")[0]
    assert worker.env["EVAL_SUITE"] == "nightly" and worker.env["EVAL_MODE"] == "strict"  # extraEnv, extraEnvFrom
    assert worker.env["EVAL_POD"].startswith("go-pool-worker-") and worker.env["ARENA_LOG_LEVEL"] == "DEBUG"
    assert "ARENA_LOG_LEVEL" not in cluster["kubelet"].pods("doc-pool-worker")[0].env

    source = api.get(ARENA_API_VERSION, "arenasources", NAMESPACE, "go-prompts")["status"]["artifact"]
    assert source["checksum"] == source["digest"] and source["version"] == source["digest"][7:19]
    synced = workspace / NAMESPACE / source["contentPath"]
    assert source["contentPath"] == f"arena/go-prompts/.arena/versions/{source['version']}"
    assert (synced / "config.arena.yaml").read_text() == (QUICKSTART / "config.arena.yaml").read_text()


def judge_provider() -> dict[str, Any]:
    judge = mock_provider("mock-judge", {"role": "judge"})
    judge["spec"]["mockConfig"] = yaml.safe_load((QUICKSTART / "mocks" / "judge.yaml").read_text())
    return judge


def pvc_runs(cluster: dict[str, Any], sub_path: str, job: str) -> list[dict[str, Any]]:
    root = cluster["kubelet"].workdir / "pvcs" / NAMESPACE / "results" / sub_path / NAMESPACE / job
    return list(json.loads((root / "results.json").read_text()))


def test_go_map_group_and_a_spec_with_both_forms(workspace: Path, cluster: dict[str, Any]) -> None:
    api = cluster["api"]
    api.create(judge_provider())
    api.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "results",
                                                                                "namespace": NAMESPACE},
                "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}})
    go_source(api)
    api.create(fixture("go-mapping"))
    both = fixture("go-mapping")
    both["metadata"]["name"] = "go-both"
    both["spec"]["output"]["pvc"]["subPath"] = "both/"
    both["spec"]["providerOverrides"] = {"default": {"selector": {"matchLabels": {"speed": "slow"}}}}
    api.create(both)
    documented(api, "doc-selectors", {}, scenarios={"exclude": ["escalation"]}, workers={"replicas": 1},
               providerOverrides={"default": PRODUCTION, "judge": {"selector": {"matchLabels": {"role": "judge"}}}},
               output={"type": "pvc", "pvc": {"claimName": "results", "subPath": "doc/"}})

    go, with_both, doc = succeeded(api, "go-mapping"), succeeded(api, "go-both"), succeeded(api, "doc-selectors")
    assert go["status"]["progress"]["total"] == SCENARIOS - 1
    same_summary(go, doc)
    same_summary(with_both, doc)
    map_ids = {"support-assistant": "mock-a"}  # the map kept the bundle's id, with mock-a's settings
    doc_outcomes = outcomes(pvc_runs(cluster, "doc", "doc-selectors"))
    assert outcomes(pvc_runs(cluster, "go", "go-mapping"), map_ids) == doc_outcomes
    assert outcomes(pvc_runs(cluster, "both", "go-both"), map_ids) == doc_outcomes  # providers won
    assert go["status"]["resolvedProviders"] == doc["status"]["resolvedProviders"] == {
        "default": ["mock-a"], "judge": ["mock-judge"]}
    assert go["status"]["result"]["url"] == f"pvc://results/go/{NAMESPACE}/go-mapping/"

    warning = condition(with_both, "SpecWarning")
    assert (warning["status"], warning["reason"]) == ("True", "BothFormsPresent")
    assert "spec.providers names group(s) default, judge: for those it wins over providerOverrides.default" in \
        warning["message"]
    assert condition(with_both, "Ready")["status"] == "True"  # a warning, not a failure
    assert wait_event(api, "go-both", "BothFormsPresent", "Warning")["message"] == warning["message"]
    assert condition(go, "SpecWarning") == {}


def test_go_workspace_source_and_cancelled(workspace: Path, cluster: dict[str, Any]) -> None:
    api = cluster["api"]
    api.create(fixture("go-workspace"))
    source = api.wait_for(ARENA_API_VERSION, "arenasources", NAMESPACE, "go-workspace",
                          lambda o: dig(o, "status.phase") == "Ready", timeout=20)
    artifact = source["status"]["artifact"]
    assert artifact["revision"].startswith("sha256:") and artifact["contentPath"].startswith(
        "arena/support-snapshots/.arena/versions/")
    assert (workspace / NAMESPACE / "arena" / "support-snapshots" / ".arena" / "HEAD").read_text().strip() == \
        artifact["version"]
    api.create(fixture("go-workspace-eval"))
    documented(api, "doc-git", {"providerRef": {"name": "mock-a"}, "trials": 1})
    go, doc = succeeded(api, "go-workspace-eval"), succeeded(api, "doc-git")
    same_summary(go, doc)  # no spec.output: the summaries in status are the results
    assert go["status"]["revision"] == artifact["revision"] and go["status"]["artifactDigest"] == artifact["digest"]
    assert go["status"]["result"]["summary"]["runs"] == SCENARIOS

    slow = fixture("go-workspace-eval")
    slow["metadata"]["name"] = "go-cancel"
    slow["spec"]["providers"] = {"default": [{"providerRef": {"name": "mock-slow"}}]}
    slow["spec"]["trials"] = 4
    api.create(slow)
    api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "go-cancel",
                 lambda o: condition(o, "JobCreated").get("status") == "True", timeout=30)
    api.patch(ARENA_API_VERSION, "arenajobs", NAMESPACE, "go-cancel", {"spec": {"cancelled": True}})
    obj = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "go-cancel", finished, timeout=30)
    assert obj["status"]["phase"] == "Cancelled" and "spec.cancelled" in condition(obj, "Complete")["message"]
    api.wait_gone("batch/v1", "jobs", NAMESPACE, "go-cancel-worker", timeout=30)
