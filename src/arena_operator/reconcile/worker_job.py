"""The worker ``batch/v1`` Job of an ArenaJob, built by a pure function (same parameters → identical dict).

Work-queue pattern: ``parallelism`` pods claim work units from Redis and exit 0 once the queue is drained,
so ``completions`` stays unset and the Job succeeds when any pod succeeded and all have finished.

The pod runs as a non-root user with a read-only root file system; ``/tmp`` is an emptyDir (the worker
unpacks the bundle there, and ``HOME`` points there for libraries that write caches). Its environment holds
settings and references only: provider API keys, S3 credentials and the Redis URL (it may carry the password) are
``secretKeyRef``s, never values — the Redis URL's Secret is the operator's own (:func:`build_worker_secret`). S3
credentials come from ``output.s3.secretRef`` with the keys the AWS SDKs read from the environment,
``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` (required) and ``AWS_SESSION_TOKEN`` (optional); without a
secretRef the SDK's ambient credentials apply (IRSA, instance profile). A PVC output is mounted whole at
``/results``; its ``subPath`` reaches the worker through ``ARENA_OUTPUT`` (the job's ``spec.output`` as
compact JSON, ``{}`` without one), not through the mount.

``spec.workers.podOverrides`` is merged in last (:func:`_apply_pod_overrides`): labels under the operator's,
annotations, nodeSelector, affinity, priorityClassName and serviceAccountName set, tolerations, imagePullSecrets,
env, envFrom, volumes and mounts appended, resources key by key over the defaults. What the operator relies on
cannot be overridden; :func:`pod_override_problems` names such clashes before anything is created.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from ..api.common import API_VERSION, LABEL_ARENAJOB, LABEL_MANAGED_BY, LABEL_NAME
from ..engine.egress import ALLOW_EXEC_VARIABLE, EXEC_ALLOW_NETWORK_VARIABLE
from ..engine.egress import ALLOW_MCP_STDIO_VARIABLE as ALLOW_MCP_STDIO
from ..engine.egress import SETTING_VARIABLES as EGRESS_SETTINGS
from ..engine.envexpand import GRANT_VARIABLE
from ..engine.mcp_policy import STDIO_COMMANDS_VARIABLE, encode_commands
from ..runplan.providers import SecretEnv

WORKER_SUFFIX = "-worker"
GATES = (ALLOW_MCP_STDIO, ALLOW_EXEC_VARIABLE, EXEC_ALLOW_NETWORK_VARIABLE)  # always set in worker pods
MAX_NAME = 63  # a Job's name becomes the job-name label value of its pods: at most 63 characters
WORKER_APP = "arena-worker"
MANAGER = "arena-operator"
CONTAINER = "worker"
COMMAND = ["arena", "worker"]
NONROOT_UID = 65532
RESULTS_DIR = "/results"
SCRATCH_DIR = "/tmp"
DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "250m", "memory": "256Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}
S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
S3_OPTIONAL_KEYS = ("AWS_SESSION_TOKEN",)
OPERATOR_VOLUMES = {"tmp": SCRATCH_DIR, "results": RESULTS_DIR}
OVERRIDES = "spec.workers.podOverrides"
REDIS_URL_KEY = "ARENA_REDIS_URL"  # the key of the worker Secret holding the Redis URL


@dataclass(frozen=True)
class SecretKeyRef:
    """One key of a Secret in the job's namespace."""

    name: str
    key: str


@dataclass
class WorkerJobParams:
    """Everything the worker Job depends on; ``output`` is the ArenaJob's ``spec.output`` in wire (camelCase) form."""

    namespace: str
    job_name: str
    job_uid: str
    image: str
    artifact_url: str
    artifact_digest: str
    job_key: str
    replicas: int = 1
    backoff_limit: int = 6
    redis_url: str | None = None
    redis_secret: SecretKeyRef | None = None
    output: Mapping[str, Any] | None = None
    secrets: list[SecretEnv] = field(default_factory=list)
    resources: Mapping[str, Any] | None = None
    concurrency: int = 4
    service_account: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    active_deadline_seconds: int | None = None
    ttl_seconds_after_finished: int | None = None
    metrics_port: int = 9090
    pod_overrides: Mapping[str, Any] | None = None  # spec.workers.podOverrides, wire (camelCase) form
    pod_defaults: Mapping[str, Any] | None = None  # the operator's worker defaults, applied before pod_overrides
    verbose: bool = False  # spec.verbose: the worker logs at DEBUG
    egress: Mapping[str, str] = field(default_factory=dict)  # the operator's egress settings (engine/egress.py)
    mcp_stdio_commands: tuple[str, ...] = ()  # spec.mcp.allowStdioCommands (engine/mcp_policy.py)
    exec_tools: bool = False  # spec.exec.allowTools: with the admin's ARENA_ALLOW_EXEC, exec runs (engine/sandbox.py)


def _gate(p: WorkerJobParams, name: str) -> str:
    """A gate's value in the pod: the operator's; exec is on only when the job allows it too."""
    value = p.egress.get(name, "false")
    if name == ALLOW_EXEC_VARIABLE and not p.exec_tools:
        return "false"
    return value


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _fit(name: str, room: int) -> str:
    """``name`` if it fits in ``room`` characters, else a prefix of it plus a hash of the whole name."""
    if len(name) <= room:
        return name
    return f"{name[:room - 9].rstrip('-.')}-{_short_hash(name)}"


def worker_job_name(job_name: str) -> str:
    """``<job>-worker``; a long job name is cut and given a hash of the full name, to stay within 63 characters."""
    return _fit(job_name, MAX_NAME - len(WORKER_SUFFIX)) + WORKER_SUFFIX


def arenajob_label_value(job_name: str) -> str:
    """The ``omnia.altairalabs.ai/arenajob`` label value: the job's name, shortened like the Job's if too long."""
    return _fit(job_name, MAX_NAME)


def worker_secret_name(job_name: str, job_uid: str) -> str:
    """``<job>-worker-<hash of the uid>``: a re-created job of the same name never meets the Secret of the one
    before it (which garbage collection may not have deleted yet)."""
    return f"{worker_job_name(job_name)}-{_short_hash(job_uid)}"


def build_worker_secret(namespace: str, job_name: str, job_uid: str, data: Mapping[str, str]) -> dict[str, Any]:
    """The Secret the worker pods of one ArenaJob read what must not be a literal in their spec (the Redis URL, which
    may carry the password) from, as secretKeyRefs; owned by the ArenaJob, so deleting it deletes the Secret."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": worker_secret_name(job_name, job_uid), "namespace": namespace,
                     "labels": worker_labels(job_name),
                     "ownerReferences": [{"apiVersion": API_VERSION, "kind": "ArenaJob", "name": job_name,
                                          "uid": job_uid, "controller": True, "blockOwnerDeletion": True}]},
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in sorted(data.items())},
    }


def worker_labels(job_name: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Labels of the worker Job and its pods (``extra`` cannot override the three the operator selects by)."""
    return {**dict(extra or {}), LABEL_NAME: WORKER_APP, LABEL_MANAGED_BY: MANAGER,
            LABEL_ARENAJOB: arenajob_label_value(job_name)}


def _value(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _secret(name: str, secret: str, key: str, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def _env(p: WorkerJobParams) -> list[dict[str, Any]]:
    if (p.redis_url is None) == (p.redis_secret is None):
        raise ValueError("give exactly one of redis_url and redis_secret")
    redis = (_value("ARENA_REDIS_URL", p.redis_url) if p.redis_url is not None else
             _secret("ARENA_REDIS_URL", p.redis_secret.name, p.redis_secret.key))  # type: ignore[union-attr]
    env = [
        _value("ARENA_ARTIFACT_URL", p.artifact_url),
        _value("ARENA_ARTIFACT_DIGEST", p.artifact_digest),
        redis,
        _value("ARENA_JOB_KEY", p.job_key),
        _value("ARENA_NAMESPACE", p.namespace),
        _value("ARENA_JOB_NAME", p.job_name),
        _value("ARENA_OUTPUT", json.dumps(dict(p.output or {}), separators=(",", ":"), sort_keys=True)),
        _value("ARENA_CONCURRENCY", str(p.concurrency)),
        _value("ARENA_METRICS_PORT", str(p.metrics_port)),
        _value("HOME", SCRATCH_DIR),
        *([_value("ARENA_LOG_LEVEL", "DEBUG")] if p.verbose else []),
        *(_value(name, p.egress[name]) for name in EGRESS_SETTINGS if name in p.egress and name not in GATES),
        # The gates on a bundle's commands (stdio MCP, exec) are always set (default: off, none), so
        # podOverrides.extraEnvFrom cannot supply them.
        *(_value(name, _gate(p, name)) for name in GATES),
        _value(STDIO_COMMANDS_VARIABLE, encode_commands(p.mcp_stdio_commands)),
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
    ]
    output = p.output or {}
    if output.get("type") == "pvc":
        env.append(_value("ARENA_RESULTS_DIR", RESULTS_DIR))
    s3_secret = ((output.get("s3") or {}).get("secretRef") or {}).get("name") if output.get("type") == "s3" else None
    if s3_secret:
        env += [_secret(key, s3_secret, key) for key in S3_KEYS]
        env += [_secret(key, s3_secret, key, optional=True) for key in S3_OPTIONAL_KEYS]
    env += [_secret(s.env, s.secret_name, s.key) for s in sorted(p.secrets)]
    granted = []
    for overrides in (p.pod_defaults or {}, p.pod_overrides or {}):
        env += copy.deepcopy(list(overrides.get("extraEnv") or []))
        granted += [item["name"] for item in overrides.get("extraEnv") or [] if "valueFrom" not in item]
    if granted:  # what `${VAR}` in the bundle may read: plain values the admin or the job owner set, no Secret
        env.append(_value(GRANT_VARIABLE, ",".join(sorted(set(granted)))))
    names = [item["name"] for item in env]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"environment variables set twice: {', '.join(duplicates)}")
    return env


def _volumes(p: WorkerJobParams) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": SCRATCH_DIR}]
    output = p.output or {}
    if output.get("type") == "pvc":
        claim = (output.get("pvc") or {}).get("claimName")
        if not claim:
            raise ValueError("output.pvc.claimName is required when output.type is pvc")
        volumes.append({"name": "results", "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": "results", "mountPath": RESULTS_DIR})
    return volumes, mounts


def _container_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": NONROOT_UID,
        "runAsGroup": NONROOT_UID,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _pod_security() -> dict[str, Any]:
    # fsGroup makes a results PVC writable by the non-root user.
    return {"runAsNonRoot": True, "runAsUser": NONROOT_UID, "runAsGroup": NONROOT_UID, "fsGroup": NONROOT_UID,
            "seccompProfile": {"type": "RuntimeDefault"}}


def build_worker_job(p: WorkerJobParams) -> dict[str, Any]:
    """The worker Job manifest, owned by the ArenaJob (deleting the ArenaJob deletes the Job and its pods).

    Workers never call the Kubernetes API, so the service-account token is not mounted. Raises ValueError
    for inconsistent parameters (both or neither Redis setting, PVC output without claim, an env var twice).
    """
    if p.replicas < 1:
        raise ValueError(f"replicas must be at least 1, got {p.replicas}")
    labels = worker_labels(p.job_name, p.labels)
    volumes, mounts = _volumes(p)
    container = {
        "name": CONTAINER,
        "image": p.image,
        "command": list(COMMAND),
        "env": _env(p),
        "ports": [{"name": "metrics", "containerPort": p.metrics_port, "protocol": "TCP"}],
        "resources": copy.deepcopy(dict(p.resources) if p.resources is not None else DEFAULT_RESOURCES),
        "securityContext": _container_security(),
        "volumeMounts": mounts,
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 30,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": _pod_security(),
        "containers": [container],
        "volumes": volumes,
    }
    if p.service_account:
        pod_spec["serviceAccountName"] = p.service_account
    job_spec: dict[str, Any] = {
        "parallelism": p.replicas,
        "backoffLimit": p.backoff_limit,
        "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
    }
    _apply_pod_overrides(job_spec["template"], container, p.pod_defaults or {})
    _apply_pod_overrides(job_spec["template"], container, p.pod_overrides or {})
    if p.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = p.active_deadline_seconds
    if p.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = p.ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": worker_job_name(p.job_name),
            "namespace": p.namespace,
            "labels": labels,
            "ownerReferences": [{"apiVersion": API_VERSION, "kind": "ArenaJob", "name": p.job_name,
                                 "uid": p.job_uid, "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": job_spec,
    }


def _apply_pod_overrides(template: dict[str, Any], container: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    """Merge ``spec.workers.podOverrides`` (wire form) into the pod template (extraEnv is added by ``_env``)."""
    o = copy.deepcopy(dict(overrides))
    pod, meta = template["spec"], template["metadata"]
    meta["labels"] = {**(o.get("labels") or {}), **meta["labels"]}  # the operator's labels win
    if o.get("annotations"):
        meta["annotations"] = o["annotations"]
    for key in ("nodeSelector", "affinity", "priorityClassName", "serviceAccountName"):
        if o.get(key):
            pod[key] = o[key]
    for key, source in (("tolerations", "tolerations"), ("imagePullSecrets", "imagePullSecrets"),
                        ("volumes", "extraVolumes")):
        if o.get(source):
            pod[key] = [*pod.get(key, []), *o[source]]
    if o.get("extraEnvFrom"):
        container["envFrom"] = o["extraEnvFrom"]
    if o.get("extraVolumeMounts"):
        container["volumeMounts"] = [*container["volumeMounts"], *o["extraVolumeMounts"]]
    for key, values in (o.get("resources") or {}).items():
        container["resources"][key] = {**container["resources"].get(key, {}), **values}


def pod_override_problems(overrides: Mapping[str, Any] | None, output: Mapping[str, Any] | None,
                          secrets: list[SecretEnv]) -> list[str]:
    """``field: message`` for each podOverrides setting that would replace what the operator relies on: its
    environment variables (all of ARENA_*), its volumes and their mount paths. Empty when all is well."""
    o = overrides or {}
    probe = WorkerJobParams(namespace="-", job_name="-", job_uid="-", image="-", artifact_url="-",
                            artifact_digest="-", job_key="-", redis_url="-", output=output, secrets=secrets)
    ours = {item["name"] for item in _env(probe)}
    problems = [f"{OVERRIDES}.extraEnv[{i}].name: {var['name']} is set by the operator"
                for i, var in enumerate(o.get("extraEnv") or [])
                if var["name"] in ours or var["name"].startswith("ARENA_")]
    for i, volume in enumerate(o.get("extraVolumes") or []):
        name = volume.get("name")
        if not isinstance(name, str) or not name:
            problems.append(f"{OVERRIDES}.extraVolumes[{i}].name: required")
        elif name in OPERATOR_VOLUMES:
            problems.append(f"{OVERRIDES}.extraVolumes[{i}].name: {name} is the operator's volume")
    for i, mount in enumerate(o.get("extraVolumeMounts") or []):
        path = mount.get("mountPath")
        if not isinstance(mount.get("name"), str) or not isinstance(path, str) or not path:
            problems.append(f"{OVERRIDES}.extraVolumeMounts[{i}]: name and mountPath are required")
        elif str(PurePosixPath(path)) in OPERATOR_VOLUMES.values():
            problems.append(f"{OVERRIDES}.extraVolumeMounts[{i}].mountPath: {path} is the operator's mount")
    return problems
