"""ArenaSource end to end: a real kopf operator, the emulated API, a real git daemon, artifacts over HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from arena_operator.sources.oci_push import push_bundle
from tests.e2e.operator_env import NAMESPACE, arena_operator, condition, source, wait_event
from tests.fakes.services import GitDaemon, OCIRegistry, free_port
from tests.harness.k8s import ARENA_API_VERSION, K8sApi, dig
from tests.harness.k8s import k8s_api as k8s_api

REPO = Path(__file__).resolve().parents[2]
SECRET_VALUE = "hunter2-very-secret-token"


def quickstart_files() -> dict[str, str]:
    root = REPO / "examples" / "quickstart"
    return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}


def git_source(name: str, url: str, **git: Any) -> dict[str, Any]:
    return {"apiVersion": ARENA_API_VERSION, "kind": "ArenaSource",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"type": "git", "interval": "1h", "git": {"url": url, "ref": {"branch": "main"}, **git}}}


def ready(obj: dict[str, Any] | None) -> bool:
    return condition(obj, "Ready").get("status") == "True"


def request_reconcile(api: K8sApi, name: str, token: str) -> None:
    api.patch(ARENA_API_VERSION, "arenasources", NAMESPACE, name,
              {"metadata": {"annotations": {"omnia.altairalabs.ai/reconcile-requested-at": token}}})


def test_git_source_ready_follows_commits_and_cleans_up(k8s_api: K8sApi, git_daemon: GitDaemon, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    git_daemon.create_repo("prompts")
    work = git_daemon.work("prompts")
    first = work.commit(quickstart_files(), "quickstart")
    artifacts = tmp_path / "artifacts"
    with arena_operator(k8s_api, artifacts, monkeypatch):
        k8s_api.create(git_source("my-prompts", git_daemon.url("prompts")))
        obj = k8s_api.wait_for(ARENA_API_VERSION, "arenasources", NAMESPACE, "my-prompts", ready, timeout=15)
        artifact = obj["status"]["artifact"]
        assert artifact["revision"] == f"main@sha1:{first}"
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", artifact["digest"])
        assert obj["status"]["phase"] == "Ready" and obj["status"]["observedGeneration"] == 1
        for kind in ("SourceValid", "ArtifactAvailable"):
            assert condition(obj, kind)["status"] == "True"
        assert obj["status"]["nextFetchTime"] and obj["status"]["lastFetchTime"]

        body = httpx.get(artifact["url"], timeout=5).content
        assert f"sha256:{hashlib.sha256(body).hexdigest()}" == artifact["digest"]
        assert len(body) == artifact["size"]
        wait_event(k8s_api, "my-prompts", "NewArtifact")

        # An unchanged remote costs one ls-remote: asking again does not fetch or repackage.
        fetches = git_daemon.upload_pack_commands().count("fetch")
        request_reconcile(k8s_api, "my-prompts", "1")
        k8s_api.wait_for(ARENA_API_VERSION, "arenasources", NAMESPACE, "my-prompts",
                         lambda o: dig(o, "status.lastHandledReconcileAt") == "1", timeout=10)
        assert git_daemon.upload_pack_commands().count("fetch") == fetches
        assert source(k8s_api, "my-prompts")["status"]["artifact"] == artifact

        second = work.commit({"scenarios/greeting.yaml": quickstart_files()["scenarios/greeting.yaml"] + "\n# v2\n"})
        request_reconcile(k8s_api, "my-prompts", "2")
        obj = k8s_api.wait_for(ARENA_API_VERSION, "arenasources", NAMESPACE, "my-prompts",
                               lambda o: dig(o, "status.artifact.revision") == f"main@sha1:{second}", timeout=10)
        assert obj["status"]["artifact"]["digest"] != artifact["digest"]

        k8s_api.delete(ARENA_API_VERSION, "arenasources", NAMESPACE, "my-prompts")
        k8s_api.wait_gone(ARENA_API_VERSION, "arenasources", NAMESPACE, "my-prompts", timeout=10)
        assert not (artifacts / NAMESPACE / "my-prompts").exists()


FLAT_BUNDLE = {
    "config.arena.yaml": """\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Arena
metadata: {name: cm}
spec:
  providers: [{file: provider.yaml}]
  scenarios: [{file: scenario.yaml}]
  defaults: {}
""",
    "provider.yaml": "kind: Provider\nmetadata: {name: bot}\nspec: {type: mock}\n",
    "scenario.yaml": """\
kind: Scenario
metadata: {name: hello}
spec:
  description: says hello
  turns: [{role: user, content: hi}]
""",
}


def configmap(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NAMESPACE},
            "data": data}


def test_configmap_source_picks_up_edits_within_seconds(k8s_api: K8sApi, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with arena_operator(k8s_api, tmp_path / "artifacts", monkeypatch):
        cm = k8s_api.create(configmap("bundle", FLAT_BUNDLE))
        k8s_api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaSource",
                        "metadata": {"name": "cm-src", "namespace": NAMESPACE},
                        "spec": {"type": "configmap", "interval": "1h", "configMap": {"name": "bundle"}}})
        obj = k8s_api.wait_for(ARENA_API_VERSION, "arenasources", NAMESPACE, "cm-src", ready, timeout=15)
        assert obj["status"]["artifact"]["revision"] == cm["metadata"]["resourceVersion"]
        edited = k8s_api.patch("v1", "configmaps", NAMESPACE, "bundle",
                               {"data": {"scenario.yaml": FLAT_BUNDLE["scenario.yaml"] + "# edited\n"}})
        # interval is 1h: only the watch on the ConfigMap can explain a new revision this soon
        obj = k8s_api.wait_for(ARENA_API_VERSION, "arenasources", NAMESPACE, "cm-src",
                               lambda o: dig(o, "status.artifact.revision") == edited["metadata"]["resourceVersion"],
                               timeout=10)
        assert obj["status"]["artifact"]["digest"]


def test_bad_sources_fail_precisely_and_keep_the_last_good_artifact(
        k8s_api: K8sApi, git_daemon: GitDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    git_daemon.create_repo("prompts")
    work = git_daemon.work("prompts")
    work.commit(quickstart_files())
    with arena_operator(k8s_api, tmp_path / "artifacts", monkeypatch):
        k8s_api.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "unused", "namespace": NAMESPACE},
                        "stringData": {"password": SECRET_VALUE}})
        k8s_api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaSource",
                        "metadata": {"name": "no-cm", "namespace": NAMESPACE},
                        "spec": {"type": "configmap", "configMap": {"name": "missing"}}})
        k8s_api.create(git_source("no-secret", git_daemon.url("prompts"), secretRef={"name": "absent"}))
        k8s_api.create(git_source("wrong-branch", git_daemon.url("prompts")) | {})
        k8s_api.patch(ARENA_API_VERSION, "arenasources", NAMESPACE, "wrong-branch",
                      {"spec": {"git": {"ref": {"branch": "nope"}}}})
        k8s_api.create(git_source("good", git_daemon.url("prompts")))

        def failed(reason: str) -> Any:
            return lambda o: dig(o, "status.phase") == "Error" and condition(o, "Ready").get("reason") == reason

        for name, reason, words in (("no-cm", "ConfigMapNotFound", "configmap arena/missing not found"),
                                    ("no-secret", "SecretNotFound", "secret arena/absent"),
                                    ("wrong-branch", "RevisionNotFound", "nope")):
            obj = k8s_api.wait_for(ARENA_API_VERSION, "arenasources", NAMESPACE, name, failed(reason), timeout=15)
            assert words in condition(obj, "Ready")["message"], condition(obj, "Ready")
            wait_event(k8s_api, name, reason, "Warning")

        good = k8s_api.wait_for(ARENA_API_VERSION, "arenasources", NAMESPACE, "good", ready, timeout=15)
        last_good = good["status"]["artifact"]
        work.commit({"scenarios/greeting.yaml": quickstart_files()["scenarios/greeting.yaml"].replace(
            "type: contains", "type: contians")}, "typo")
        request_reconcile(k8s_api, "good", "typo")
        obj = k8s_api.wait_for(ARENA_API_VERSION, "arenasources", NAMESPACE, "good",
                               lambda o: condition(o, "SourceValid").get("status") == "False", timeout=10)
        message = condition(obj, "SourceValid")["message"]
        assert "scenarios/greeting.yaml:12:11: turns[0].assertions[0].type: unknown assertion 'contians'" in message
        assert obj["status"]["artifact"] == last_good
        assert condition(obj, "ArtifactAvailable")["status"] == "True"

        everything = json.dumps([k8s_api.list(ARENA_API_VERSION, "arenasources", NAMESPACE),
                                 k8s_api.list("v1", "events", NAMESPACE)])
        assert SECRET_VALUE not in everything


def test_restart_does_not_refetch_an_unchanged_source(k8s_api: K8sApi, git_daemon: GitDaemon, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    git_daemon.create_repo("prompts")
    git_daemon.work("prompts").commit(quickstart_files())
    artifacts = tmp_path / "artifacts"
    port = free_port()
    with arena_operator(k8s_api, artifacts, monkeypatch, port):
        k8s_api.create(git_source("my-prompts", git_daemon.url("prompts")))
        before = k8s_api.wait_for(ARENA_API_VERSION, "arenasources", NAMESPACE, "my-prompts", ready, timeout=15)
    commands = list(git_daemon.upload_pack_commands())
    with arena_operator(k8s_api, artifacts, monkeypatch, port):
        time.sleep(1.0)  # five timer ticks of the restarted operator: each must decide "not due"
        after = source(k8s_api, "my-prompts")
        served = httpx.get(after["status"]["artifact"]["url"], timeout=5)
    assert git_daemon.upload_pack_commands() == commands  # not even an ls-remote
    assert after["status"]["artifact"] == before["status"]["artifact"]
    assert f"sha256:{hashlib.sha256(served.content).hexdigest()}" == after["status"]["artifact"]["digest"]


def test_oci_source_from_a_real_registry(k8s_api: K8sApi, oci_registry: OCIRegistry, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    url = oci_registry.url("prompts/quickstart", "v1")
    digest = asyncio.run(push_bundle(REPO / "examples" / "quickstart", url, insecure=True))
    with arena_operator(k8s_api, tmp_path / "artifacts", monkeypatch):
        k8s_api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaSource",
                        "metadata": {"name": "oci-src", "namespace": NAMESPACE},
                        "spec": {"type": "oci", "oci": {"url": url, "insecure": True}}})
        obj = k8s_api.wait_for(ARENA_API_VERSION, "arenasources", NAMESPACE, "oci-src", ready, timeout=15)
    assert obj["status"]["artifact"]["revision"] == f"v1@{digest}"
