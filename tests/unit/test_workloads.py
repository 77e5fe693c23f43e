"""workloads.py: the worker batch/v1 Job — security, env references only, ownership, names, outputs, schema."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import replace
from typing import Any

import kubernetes
import pytest

from arena_operator.operator.config import worker_pod_defaults
from arena_operator.reconcile.worker_job import (
    SecretKeyRef,
    WorkerJobParams,
    arenajob_label_value,
    build_worker_job,
    worker_job_name,
)
from arena_operator.runplan.providers import SecretEnv

SECRET_VALUE = "sk-live-DO-NOT-LEAK-0123456789"  # never given to the builder: it must not be able to leak it
S3_OUTPUT = {"type": "s3", "s3": {"bucket": "arena-results", "prefix": "evals/nightly/", "region": "us-west-2",
                                  "secretRef": {"name": "s3-credentials"}}}
PVC_OUTPUT = {"type": "pvc", "pvc": {"claimName": "arena-results-pvc", "subPath": "evals/"}}
PARAMS = WorkerJobParams(
    namespace="arena", job_name="nightly-eval", job_uid="0b6c1c2e-8d1f-4a57-9a8e-3c1f2f6a7b90",
    image="ghcr.io/example/arena:1.0", replicas=5, artifact_url="http://arena-artifacts.arena.svc/a.tar.gz",
    artifact_digest="sha256:" + "ab" * 32, redis_url="redis://redis.arena.svc:6379/0",
    job_key="arena:{arena/nightly-eval/0b6c1c2e}", output=S3_OUTPUT, concurrency=8,
    secrets=[SecretEnv("ARENA_PROVIDER_GPT4_PROD_API_KEY", "openai-creds", "OPENAI_API_KEY"),
             SecretEnv("ARENA_PROVIDER_CLAUDE_JUDGE_API_KEY", "anthropic-creds", "ANTHROPIC_API_KEY")],
)


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    (only,) = manifest["spec"]["template"]["spec"]["containers"]
    return only


def env_of(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container(manifest)["env"]}


def roundtrip(manifest: dict[str, Any]) -> dict[str, Any]:
    """Through the official client's V1Job model: unknown or misspelt fields are dropped, wrong types raise."""

    class Response:
        data = json.dumps(manifest)

    api = kubernetes.client.ApiClient()
    job = api.deserialize(Response(), "V1Job")
    assert isinstance(job, kubernetes.client.V1Job)
    return api.sanitize_for_serialization(job)


def test_roundtrip_detects_unknown_fields() -> None:
    manifest = build_worker_job(PARAMS)
    broken = copy.deepcopy(manifest)
    container(broken)["securityContext"]["readOnlyRootFS"] = True
    assert roundtrip(broken) != broken
    assert roundtrip(manifest) == manifest


@pytest.mark.parametrize("params", [
    PARAMS,
    replace(PARAMS, output=PVC_OUTPUT, secrets=[]),
    replace(PARAMS, output=None, redis_url=None, redis_secret=SecretKeyRef("redis-auth", "url"),
            service_account="arena-worker", active_deadline_seconds=3600, ttl_seconds_after_finished=600,
            resources={"requests": {"cpu": "2", "memory": "4Gi"}}, labels={"team": "ml"}),
])
def test_manifest_is_a_valid_batch_v1_job(params: WorkerJobParams) -> None:
    manifest = build_worker_job(params)
    assert roundtrip(manifest) == manifest
    assert build_worker_job(params) == manifest  # deterministic
    assert json.dumps(build_worker_job(params), sort_keys=True) == json.dumps(manifest, sort_keys=True)


def test_metadata_owner_and_job_spec() -> None:
    manifest = build_worker_job(PARAMS)
    assert manifest["apiVersion"] == "batch/v1" and manifest["kind"] == "Job"
    meta = manifest["metadata"]
    assert meta["name"] == "nightly-eval-worker" and meta["namespace"] == "arena"
    labels = {"app.kubernetes.io/name": "arena-worker", "app.kubernetes.io/managed-by": "arena-operator",
              "omnia.altairalabs.ai/arenajob": "nightly-eval"}
    assert meta["labels"] == labels
    assert manifest["spec"]["template"]["metadata"]["labels"] == labels
    assert meta["ownerReferences"] == [{
        "apiVersion": "omnia.altairalabs.ai/v1alpha1", "kind": "ArenaJob", "name": "nightly-eval",
        "uid": PARAMS.job_uid, "controller": True, "blockOwnerDeletion": True}]
    spec = manifest["spec"]
    assert spec["parallelism"] == 5 and spec["backoffLimit"] == 6
    assert "completions" not in spec and "podFailurePolicy" not in spec
    assert "activeDeadlineSeconds" not in spec and "ttlSecondsAfterFinished" not in spec
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["terminationGracePeriodSeconds"] == 30
    assert "serviceAccountName" not in pod and pod["automountServiceAccountToken"] is False
    c = container(manifest)
    assert c["name"] == "worker" and c["command"] == ["arena", "worker"] and c["image"] == PARAMS.image
    assert c["ports"] == [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]
    assert c["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}


def test_optional_settings() -> None:
    manifest = build_worker_job(replace(
        PARAMS, service_account="arena-worker", active_deadline_seconds=3600, ttl_seconds_after_finished=600,
        backoff_limit=2, metrics_port=9100, resources={"limits": {"memory": "2Gi"}},
        labels={"team": "ml", "app.kubernetes.io/name": "hijack"}))
    spec = manifest["spec"]
    assert (spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"], spec["backoffLimit"]) == (3600, 600, 2)
    assert spec["template"]["spec"]["serviceAccountName"] == "arena-worker"
    assert manifest["metadata"]["labels"]["team"] == "ml"
    assert manifest["metadata"]["labels"]["app.kubernetes.io/name"] == "arena-worker"
    c = container(manifest)
    assert c["resources"] == {"limits": {"memory": "2Gi"}}
    assert c["ports"][0]["containerPort"] == 9100 and env_of(manifest)["ARENA_METRICS_PORT"]["value"] == "9100"


def test_security_context() -> None:
    manifest = build_worker_job(PARAMS)
    pod = manifest["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 65532
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(manifest)["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = manifest["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tmp", "emptyDir": {}} in volumes
    assert {"name": "tmp", "mountPath": "/tmp"} in container(manifest)["volumeMounts"]


def test_env_names_and_references_only() -> None:
    manifest = build_worker_job(PARAMS)
    env = env_of(manifest)
    assert [item["name"] for item in container(manifest)["env"]] == [
        "ARENA_ARTIFACT_URL", "ARENA_ARTIFACT_DIGEST", "ARENA_REDIS_URL", "ARENA_JOB_KEY", "ARENA_NAMESPACE",
        "ARENA_JOB_NAME", "ARENA_OUTPUT", "ARENA_CONCURRENCY", "ARENA_METRICS_PORT", "HOME",
        "ARENA_ALLOW_MCP_STDIO", "ARENA_ALLOW_EXEC", "ARENA_EXEC_ALLOW_NETWORK", "ARENA_MCP_STDIO_COMMANDS", "POD_NAME",
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN", "ARENA_PROVIDER_CLAUDE_JUDGE_API_KEY",
        "ARENA_PROVIDER_GPT4_PROD_API_KEY"]
    assert (env["ARENA_NAMESPACE"]["value"], env["ARENA_JOB_NAME"]["value"]) == ("arena", "nightly-eval")
    assert env["ARENA_CONCURRENCY"]["value"] == "8" and env["ARENA_JOB_KEY"]["value"] == PARAMS.job_key
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}
    assert json.loads(env["ARENA_OUTPUT"]["value"]) == S3_OUTPUT
    assert " " not in env["ARENA_OUTPUT"]["value"]  # compact
    assert env["ARENA_PROVIDER_GPT4_PROD_API_KEY"] == {"name": "ARENA_PROVIDER_GPT4_PROD_API_KEY", "valueFrom": {
        "secretKeyRef": {"name": "openai-creds", "key": "OPENAI_API_KEY"}}}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"] == {"secretKeyRef": {"name": "s3-credentials",
                                                                      "key": "AWS_ACCESS_KEY_ID"}}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "AWS_SECRET_ACCESS_KEY"
    assert env["AWS_SESSION_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "s3-credentials", "key": "AWS_SESSION_TOKEN", "optional": True}
    # every credential-looking variable is a reference, never a value
    for name, item in env.items():
        if re.search(r"API_KEY$|^AWS_|SECRET|TOKEN|PASSWORD", name):
            assert "value" not in item and "secretKeyRef" in item["valueFrom"], name
    assert SECRET_VALUE not in json.dumps(manifest)


def test_secret_names_appear_only_in_secret_key_refs() -> None:
    fake = "fake-secret-name-7f3a"
    manifest = build_worker_job(replace(
        PARAMS, secrets=[SecretEnv("ARENA_PROVIDER_X_API_KEY", fake, "OPENAI_API_KEY")],
        redis_url=None, redis_secret=SecretKeyRef(fake, "url"),
        output={"type": "s3", "s3": {"bucket": "b", "secretRef": {"name": fake}}}))
    env = container(manifest)["env"]
    refs = [item for item in env if item.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == fake]
    assert [item["name"] for item in refs] == ["ARENA_REDIS_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                               "AWS_SESSION_TOKEN", "ARENA_PROVIDER_X_API_KEY"]
    # elsewhere the name shows only in ARENA_OUTPUT, as the reference the user wrote ({"secretRef":{"name":…}})
    others = [item for item in env if item not in refs and fake in json.dumps(item)]
    assert [item["name"] for item in others] == ["ARENA_OUTPUT"]
    assert json.loads(others[0]["value"])["s3"]["secretRef"] == {"name": fake}
    assert fake not in json.dumps({k: v for k, v in manifest.items() if k != "spec"})


def test_pvc_output() -> None:
    manifest = build_worker_job(replace(PARAMS, output=PVC_OUTPUT))
    pod = manifest["spec"]["template"]["spec"]
    assert {"name": "results", "persistentVolumeClaim": {"claimName": "arena-results-pvc"}} in pod["volumes"]
    mounts = container(manifest)["volumeMounts"]
    assert {"name": "results", "mountPath": "/results"} in mounts  # whole claim: subPath is the worker's job
    env = env_of(manifest)
    assert env["ARENA_RESULTS_DIR"]["value"] == "/results"
    assert json.loads(env["ARENA_OUTPUT"]["value"])["pvc"]["subPath"] == "evals/"
    assert not any(name.startswith("AWS_") for name in env)
    assert pod["securityContext"]["fsGroup"] == 65532  # the claim is writable by the non-root user


def test_s3_output_without_secret_and_no_output() -> None:
    ambient = build_worker_job(replace(PARAMS, output={"type": "s3", "s3": {"bucket": "b"}}))
    env = env_of(ambient)
    assert not any(name.startswith("AWS_") for name in env) and "ARENA_RESULTS_DIR" not in env
    assert [v["name"] for v in ambient["spec"]["template"]["spec"]["volumes"]] == ["tmp"]
    none = env_of(build_worker_job(replace(PARAMS, output=None)))
    assert none["ARENA_OUTPUT"]["value"] == "{}" and "ARENA_RESULTS_DIR" not in none


def test_redis_from_secret() -> None:
    env = env_of(build_worker_job(replace(PARAMS, redis_url=None, redis_secret=SecretKeyRef("redis-auth", "url"))))
    assert env["ARENA_REDIS_URL"] == {"name": "ARENA_REDIS_URL",
                                      "valueFrom": {"secretKeyRef": {"name": "redis-auth", "key": "url"}}}


@pytest.mark.parametrize(("change", "message"), [
    ({"redis_url": None}, "exactly one of redis_url and redis_secret"),
    ({"redis_secret": SecretKeyRef("r", "url")}, "exactly one of redis_url and redis_secret"),
    ({"output": {"type": "pvc", "pvc": {}}}, "claimName is required"),
    ({"secrets": [SecretEnv("ARENA_JOB_KEY", "s", "k")]}, "set twice: ARENA_JOB_KEY"),
    ({"replicas": 0}, "replicas must be at least 1"),
])
def test_invalid_params(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_worker_job(replace(PARAMS, **change))


@pytest.mark.parametrize("job_name", [
    "a", "nightly-eval", "x" * 56, "x" * 57, "x" * 253, "a" * 50 + "." + "b" * 60, "a" * 54 + "-" * 10 + "z" * 40])
def test_names_stay_within_63(job_name: str) -> None:
    name = worker_job_name(job_name)
    label = arenajob_label_value(job_name)
    assert len(name) <= 63 and name.endswith("-worker")
    assert len(label) <= 63
    dns_label = r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?"
    assert re.fullmatch(dns_label, name) and re.fullmatch(dns_label, label)
    if len(job_name) + len("-worker") <= 63:
        assert name == f"{job_name}-worker"
    if len(job_name) <= 63:
        assert label == job_name
    manifest = build_worker_job(replace(PARAMS, job_name=job_name))
    assert manifest["metadata"]["name"] == name
    assert manifest["metadata"]["ownerReferences"][0]["name"] == job_name  # the owner keeps its full name
    assert roundtrip(manifest) == manifest


def test_long_names_stay_distinct() -> None:
    first, second = "x" * 100 + "-a", "x" * 100 + "-b"
    assert worker_job_name(first) != worker_job_name(second)
    assert worker_job_name(first) == worker_job_name(first)


def test_operator_worker_defaults_then_the_jobs_own_overrides() -> None:
    defaults = worker_pod_defaults({
        "ARENA_WORKER_SERVICE_ACCOUNT": "arena-worker",
        "ARENA_WORKER_RESOURCES": json.dumps({"requests": {"cpu": "250m", "memory": "256Mi"}}),
        "ARENA_WORKER_NODE_SELECTOR": json.dumps({"pool": "llm"}),
        "ARENA_WORKER_TOLERATIONS": json.dumps([{"key": "llm", "operator": "Exists", "effect": "NoSchedule"}]),
        "ARENA_WORKER_POD_OVERRIDES": json.dumps({"priorityClassName": "batch-low",
                                                  "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy"}]}),
    })
    job = replace(PARAMS, pod_defaults=defaults,
                  pod_overrides={"nodeSelector": {"pool": "gpu"}, "resources": {"requests": {"cpu": "1"}}})
    pod = build_worker_job(job)["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["serviceAccountName"] == "arena-worker" and pod["priorityClassName"] == "batch-low"
    assert pod["nodeSelector"] == {"pool": "gpu"}  # the job's own setting wins
    assert pod["tolerations"] == [{"key": "llm", "operator": "Exists", "effect": "NoSchedule"}]
    assert container["resources"]["requests"] == {"cpu": "1", "memory": "256Mi"}
    assert {"name": "HTTPS_PROXY", "value": "http://proxy"} in container["env"]
    plain = build_worker_job(PARAMS)["spec"]["template"]["spec"]
    assert "serviceAccountName" not in plain and "nodeSelector" not in plain


@pytest.mark.parametrize(("env", "message"), [
    ({"ARENA_WORKER_RESOURCES": "{cpu: 1"}, "ARENA_WORKER_RESOURCES is not valid JSON"),
    ({"ARENA_WORKER_TOLERATIONS": "{}"}, "ARENA_WORKER_TOLERATIONS must be a JSON list, got dict"),
])
def test_malformed_worker_defaults_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        worker_pod_defaults(env)
