"""The Go operator's forms in the controllers: an ArenaJob with sourceRef (SourceValid, then the same pass as any
job), SpecWarning when both forms are set, cancelled, podOverrides and verbose in the worker pod, and ArenaSource
type workspace with the Go operator's artifact fields and content layout."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from arena_operator.api.arenajob import ArenaJobSpec
from arena_operator.api.arenasource import ArenaSourceSpec
from arena_operator.reconcile import arenajob as rjob
from arena_operator.reconcile import arenasource as rsource
from arena_operator.reconcile.jobspec import pod_overrides_of
from arena_operator.reconcile.worker_job import build_worker_job, pod_override_problems
from arena_operator.runplan.providers import SecretEnv
from arena_operator.sources.errors import SourceError
from arena_operator.sources.store import ArtifactStore
from arena_operator.sources.workspace import WorkspaceFetcher, content_hash, sync_version, version_of
from tests.unit.test_reconcile_steps import NOW, REVISION, RUNNING, WORKER, JobWorld, cond, job_world, ready_of
from tests.unit.test_reconcile_steps import store as store  # the fixture: the quickstart stored as ns/src
from tests.unit.test_workloads import PARAMS, container, env_of, roundtrip

REPO = Path(__file__).resolve().parents[2]
MOCK = {"metadata": {"name": "mock-a", "labels": {}}, "spec": {"type": "mock", "mockConfig": {"defaultResponse": "x"}}}


def go_world(store: tuple[ArtifactStore, str], spec: dict[str, Any] | None = None, *, source: str = "ready",
             status: dict[str, Any] | None = None, age: float = 1.0, **kwargs: Any) -> JobWorld:
    """A job in the Go form (sourceRef src, no ArenaConfig) in the world of test_reconcile_steps."""
    world = job_world(store, status=status, age=age, **kwargs)
    raw = {"sourceRef": {"name": "src"}, "providers": {"default": [{"providerRef": {"name": "mock-a"}}]},
           **(spec or {})}
    world.ctx.spec = ArenaJobSpec.model_validate(raw)
    world.ctx.config = None
    world.ctx.providers = [MOCK]
    if source == "absent":
        world.ctx.source = None
    elif source == "pending":
        world.ctx.source = {"status": {"conditions": [cond("Ready", "False", "FetchFailed", "cloning")]}}
    return world


async def test_a_source_ref_job_validates_its_source_then_runs(store: tuple[ArtifactStore, str]) -> None:
    world = go_world(store, {"trials": 2, "workers": {"replicas": 2}})
    out = await rjob.reconcile_job(world.ctx)
    statuses = {t: u.status for t, u in out.conditions.items()}
    assert statuses == {"SourceValid": True, "Planned": True, "JobCreated": True, "Complete": "Unknown",
                        "Progressing": True, "Ready": "Unknown"}
    assert out.conditions["SourceValid"].reason == "Validated"
    assert f"ArenaSource src at {REVISION}: config.arena.yaml" in out.conditions["SourceValid"].message
    assert len(world.queue.units) == 6 * 2 and {u["provider"] for u in world.queue.units} == {"mock-a"}
    assert out.status["resolvedProviders"] == {"default": ["mock-a"]}
    assert world.queue.config and world.queue.config["arenaFile"] == "config.arena.yaml"
    assert "planned 12 work units from ArenaSource src at" in out.conditions["Planned"].message
    assert world.workloads.created[0]["spec"]["parallelism"] == 2


@pytest.mark.parametrize(("source", "age", "phase", "reason"), [
    ("absent", 1.0, "Pending", "SourceNotFound"),
    ("pending", 1.0, "Pending", "SourceNotReady"),
    ("absent", 120.0, "Failed", "SourceNotFound"),  # waited longer than config_wait (60 s)
])
async def test_a_source_ref_job_waits_for_its_source_then_gives_up(store: tuple[ArtifactStore, str], source: str,
                                                                   age: float, phase: str, reason: str) -> None:
    world = go_world(store, source=source, age=age)
    out = await rjob.reconcile_job(world.ctx)
    assert out.status["phase"] == phase and ready_of(out) == (False, reason)
    assert out.conditions["SourceValid"].status is False and "ConfigValid" not in out.conditions
    assert not world.queue.units and not world.workloads.created


@pytest.mark.parametrize(("spec", "reason", "words"), [
    ({"arenaFile": "bundles/missing.arena.yaml"}, "InvalidBundle", "bundle bundles/missing.arena.yaml at"),
    ({"arenaFile": "evals/*.arena.yaml"}, "Unsupported", "spec.arenaFile 'evals/*.arena.yaml' is a glob pattern"),
])
async def test_a_source_ref_job_with_a_bad_arena_file_fails_source_valid(store: tuple[ArtifactStore, str],
                                                                        spec: dict[str, Any], reason: str,
                                                                        words: str) -> None:
    out = await rjob.reconcile_job(go_world(store, spec).ctx)
    assert out.status["phase"] == "Failed" and ready_of(out) == (False, reason)
    assert out.conditions["SourceValid"].status is False and words in out.conditions["SourceValid"].message


@pytest.mark.parametrize(("spec", "reason", "words"), [
    ({"providers": {"default": [{"agentRef": {"name": "support-agent"}}]}}, "Unsupported",
     "agentRef support-agent needs an AgentRuntime"),
    ({"providers": {"default": [{"providerRef": {"name": "mock-a", "namespace": "elsewhere"}}]}}, "Unsupported",
     "Provider elsewhere/mock-a is in another namespace than the job (ns)"),
    ({"workers": {"podOverrides": {"extraEnv": [{"name": "ARENA_REDIS_URL", "value": "redis://evil"}]}}},
     "InvalidSpec", "spec.workers.podOverrides.extraEnv[0].name: ARENA_REDIS_URL is set by the operator"),
    ({"toolRegistries": [{"name": "absent"}]}, "ToolRegistryNotFound", "ToolRegistry absent not found"),
])
async def test_go_form_planning_failures_name_the_cause(store: tuple[ArtifactStore, str], spec: dict[str, Any],
                                                        reason: str, words: str) -> None:
    world = go_world(store, spec)
    out = await rjob.reconcile_job(world.ctx)
    assert out.status["phase"] == "Failed" and ready_of(out) == (False, reason)
    assert words in out.conditions["Planned"].message, out.conditions["Planned"].message
    assert not world.queue.units and not world.workloads.created


async def test_spec_warning_names_the_winner_once_and_goes_when_fixed(store: tuple[ArtifactStore, str]) -> None:
    both = {"providerOverrides": {"default": {"selector": {"matchLabels": {"tier": "none"}}}}}
    world = go_world(store, both)
    out = await rjob.reconcile_job(world.ctx)
    warning = out.conditions["SpecWarning"]
    assert (warning.status, warning.reason) == (True, "BothFormsPresent")
    assert "spec.providers names group(s) default: for those it wins over providerOverrides.default" in \
        warning.message
    assert out.status["resolvedProviders"] == {"default": ["mock-a"]}  # the selector (matching none) lost
    assert ready_of(out) == ("Unknown", "Running")  # a warning, not a failure
    assert [e.type for e in out.events if e.reason == "BothFormsPresent"] == ["Warning"]
    again = go_world(store, both, status={**RUNNING, "conditions": [
        *RUNNING["conditions"], cond("SpecWarning", "True", "BothFormsPresent", warning.message)]}, worker_job=WORKER)
    out = await rjob.reconcile_job(again.ctx)
    assert out.conditions["SpecWarning"].status is True and not [e for e in out.events
                                                                  if e.reason == "BothFormsPresent"]
    fixed = go_world(store, status={**RUNNING, "conditions": [cond("SpecWarning", "True", "BothFormsPresent")]},
                     worker_job=WORKER)
    out = await rjob.reconcile_job(fixed.ctx)
    assert out.conditions["SpecWarning"].status is None  # removed


async def test_cancelled_cancels_like_suspend(store: tuple[ArtifactStore, str]) -> None:
    world = go_world(store, {"cancelled": True}, status=RUNNING, worker_job=WORKER)
    out = await rjob.reconcile_job(world.ctx)
    assert out.status["phase"] == "Cancelled" and ready_of(out) == (False, "Cancelled")
    assert "spec.cancelled" in out.conditions["Complete"].message
    assert world.queue.cancelled and world.workloads.deleted == ["job-worker"]


async def test_pod_overrides_and_verbose_reach_the_worker_job(store: tuple[ArtifactStore, str]) -> None:
    world = go_world(store, {"verbose": True, "workers": {"podOverrides": {
        "labels": {"team": "evals"}, "tolerations": [{"key": "dedicated", "operator": "Exists"}]}}})
    await rjob.reconcile_job(world.ctx)
    [manifest] = world.workloads.created
    pod = manifest["spec"]["template"]
    assert pod["metadata"]["labels"]["team"] == "evals"
    assert pod["spec"]["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert env_of(manifest)["ARENA_LOG_LEVEL"] == {"name": "ARENA_LOG_LEVEL", "value": "DEBUG"}


# -- the worker pod -------------------------------------------------------------------------------------------

OVERRIDES = ArenaJobSpec.model_validate({"sourceRef": {"name": "s"}, "workers": {"podOverrides": {
    "serviceAccountName": "arena-evals",
    "labels": {"team": "evals", "app.kubernetes.io/name": "mine"},
    "annotations": {"example.com/owner": "evals"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "evals", "effect": "NoSchedule"}],
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["evals"]}]}]}}},
    "priorityClassName": "batch-low",
    "imagePullSecrets": [{"name": "registry-credentials"}],
    "resources": {"requests": {"cpu": "500m"}, "limits": {"memory": "2Gi", "nvidia.com/gpu": "1"}},
    "extraEnv": [{"name": "EVAL_SUITE", "value": "nightly"},
                 {"name": "EVAL_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
    "extraEnvFrom": [{"prefix": "EVAL_", "configMapRef": {"name": "eval-settings"}}],
    "extraVolumes": [{"name": "eval-settings", "configMap": {"name": "eval-settings"}}],
    "extraVolumeMounts": [{"name": "eval-settings", "mountPath": "/etc/eval", "readOnly": True}],
}}})


def test_pod_overrides_are_merged_into_a_valid_worker_job() -> None:
    from dataclasses import replace

    manifest = build_worker_job(replace(PARAMS, pod_overrides=pod_overrides_of(OVERRIDES)))
    assert roundtrip(manifest) == manifest  # a valid batch/v1 Job: nothing misspelt, nothing mistyped
    template, work = manifest["spec"]["template"], container(manifest)
    pod = template["spec"]
    assert template["metadata"]["labels"]["app.kubernetes.io/name"] == "arena-worker"  # the operator's label won
    assert template["metadata"]["labels"]["team"] == "evals" and "team" not in manifest["metadata"]["labels"]
    assert template["metadata"]["annotations"] == {"example.com/owner": "evals"}
    assert (pod["serviceAccountName"], pod["priorityClassName"], pod["nodeSelector"]) == (
        "arena-evals", "batch-low", {"kubernetes.io/os": "linux"})
    assert pod["automountServiceAccountToken"] is False  # still: workers never call the API
    assert pod["affinity"]["nodeAffinity"] and pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert pod["tolerations"][0]["effect"] == "NoSchedule"
    assert [v["name"] for v in pod["volumes"]] == ["tmp", "eval-settings"]
    assert [m["mountPath"] for m in work["volumeMounts"]] == ["/tmp", "/etc/eval"]
    assert work["resources"] == {"requests": {"cpu": "500m", "memory": "256Mi"},
                                 "limits": {"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": "1"}}
    env = env_of(manifest)
    assert env["EVAL_SUITE"]["value"] == "nightly" and "fieldRef" in env["EVAL_POD"]["valueFrom"]
    assert work["envFrom"] == [{"prefix": "EVAL_", "configMapRef": {"name": "eval-settings"}}]
    assert work["securityContext"]["readOnlyRootFilesystem"] is True  # security is not overridable
    assert build_worker_job(replace(PARAMS, pod_overrides=pod_overrides_of(OVERRIDES))) == manifest


S3 = {"type": "s3", "s3": {"bucket": "b", "secretRef": {"name": "s3"}}}


@pytest.mark.parametrize(("overrides", "output", "expected"), [
    ({}, None, []),
    ({"extraEnv": [{"name": "ARENA_LOG_LEVEL", "value": "INFO"}, {"name": "HOME", "value": "/"},
                   {"name": "OK", "value": "1"}]}, None,
     ["spec.workers.podOverrides.extraEnv[0].name: ARENA_LOG_LEVEL is set by the operator",
      "spec.workers.podOverrides.extraEnv[1].name: HOME is set by the operator"]),
    ({"extraEnv": [{"name": "AWS_ACCESS_KEY_ID", "value": "x"}]}, S3,
     ["spec.workers.podOverrides.extraEnv[0].name: AWS_ACCESS_KEY_ID is set by the operator"]),
    ({"extraEnv": [{"name": "AWS_ACCESS_KEY_ID", "value": "x"}]}, None, []),  # no secretRef: the user's to give
    ({"extraEnv": [{"name": "ARENA_PROVIDER_X_API_KEY", "value": "x"}]}, None,
     ["spec.workers.podOverrides.extraEnv[0].name: ARENA_PROVIDER_X_API_KEY is set by the operator"]),
    ({"extraVolumes": [{"name": "tmp", "emptyDir": {}}, {"emptyDir": {}}],
      "extraVolumeMounts": [{"name": "x", "mountPath": "/results/"}, {"name": "y"}]}, None,
     ["spec.workers.podOverrides.extraVolumes[0].name: tmp is the operator's volume",
      "spec.workers.podOverrides.extraVolumes[1].name: required",
      "spec.workers.podOverrides.extraVolumeMounts[0].mountPath: /results/ is the operator's mount",
      "spec.workers.podOverrides.extraVolumeMounts[1]: name and mountPath are required"]),
])
def test_pod_override_clashes_are_named(overrides: dict[str, Any], output: dict[str, Any] | None,
                                        expected: list[str]) -> None:
    secrets = [SecretEnv("ARENA_PROVIDER_X_API_KEY", "x", "k")]
    assert pod_override_problems(overrides, output, secrets) == expected


# -- ArenaSource type workspace -------------------------------------------------------------------------------

@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace volume holding the quickstart as projects/support of namespace ns."""
    root = tmp_path / "workspace"
    shutil.copytree(REPO / "examples" / "quickstart", root / "ns" / "projects" / "support")
    return root


async def test_workspace_fetcher_snapshots_the_directory(workspace: Path, tmp_path: Path) -> None:
    fetcher = WorkspaceFetcher(workspace / "ns", "projects/support")
    revision = await fetcher.remote_revision()
    assert revision.startswith("sha256:") and len(revision) == 71
    assert await fetcher.fetch(tmp_path / "out") == revision == content_hash(tmp_path / "out")
    assert (tmp_path / "out" / "config.arena.yaml").is_file()
    (workspace / "ns" / "projects" / "support" / ".arena" / "versions").mkdir(parents=True)  # synced versions
    assert await fetcher.remote_revision() == revision  # .arena is not content
    (workspace / "ns" / "projects" / "support" / "README.md").write_text("edited\n")
    assert await fetcher.remote_revision() != revision  # an edit is a new revision


@pytest.mark.parametrize(("root", "path", "reason"), [
    (None, "projects/support", "WorkspaceNotConfigured"),
    ("ns", "projects/absent", "WorkspacePathNotFound"),
    ("other", "projects/support", "WorkspacePathNotFound"),  # another namespace's subtree is not reachable
    ("ns", "../ns/projects/support", "UnsafeArtifact"),
    ("ns", "link-out", "UnsafeArtifact"),  # a symlink into another namespace's subtree
])
async def test_workspace_fetcher_errors(workspace: Path, root: str | None, path: str, reason: str) -> None:
    (workspace / "other").mkdir()
    os.symlink(workspace / "other", workspace / "ns" / "link-out")
    with pytest.raises(SourceError) as err:
        await WorkspaceFetcher(workspace / root if root else None, path).remote_revision()
    assert err.value.reason == reason


def test_sync_version_writes_the_go_layout_and_keeps_the_newest(tmp_path: Path) -> None:
    content = tmp_path / "content"
    content.mkdir()
    (content / "config.arena.yaml").write_text("x\n")
    paths = []
    for index in range(4):
        version = version_of("sha256:" + f"{index}" * 64)
        paths.append(sync_version(tmp_path / "ws", "arena/src", version, content, keep=2))
    assert paths[0] == "arena/src/.arena/versions/000000000000"
    versions = tmp_path / "ws" / "arena" / "src" / ".arena" / "versions"
    assert sorted(p.name for p in versions.iterdir()) == ["222222222222", "333333333333"]
    assert (versions / "333333333333" / "config.arena.yaml").read_text() == "x\n"
    assert (tmp_path / "ws" / "arena" / "src" / ".arena" / "HEAD").read_text() == "333333333333\n"


async def test_a_workspace_source_records_the_go_artifact_fields(workspace: Path, tmp_path: Path) -> None:
    async def unused(namespace: str, name: str) -> Any:
        raise LookupError(name)

    spec = ArenaSourceSpec.model_validate({"type": "workspace", "workspace": {"path": "projects/support"},
                                           "targetPath": "arena/snapshots"})
    ctx = rsource.SourceContext("ns", "src", 1, spec, {}, {}, ArtifactStore(tmp_path / "store"), "http://op:8080",
                                unused, unused, workspace_dir=workspace, now=NOW)
    out = await rsource.reconcile_source(ctx)
    artifact = out.status["artifact"]
    assert out.status["phase"] == "Ready" and artifact["revision"].startswith("sha256:")
    assert artifact["checksum"] == artifact["digest"] and artifact["version"] == artifact["digest"][7:19]
    assert artifact["contentPath"] == f"arena/snapshots/.arena/versions/{artifact['version']}"
    assert (workspace / "ns" / artifact["contentPath"] / "config.arena.yaml").is_file()
    without = rsource.SourceContext("ns", "git", 1, spec, {}, {}, ArtifactStore(tmp_path / "store2"), "http://op",
                                    unused, unused, now=NOW)
    out = await rsource.reconcile_source(without)
    assert out.status["phase"] == "Error" and out.conditions["FetchFailed"].reason == "WorkspaceNotConfigured"
