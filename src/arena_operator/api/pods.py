"""``spec.workers.podOverrides`` of an ArenaJob: scheduling, identity and injection settings merged into the
worker pods, in the shape of the Go operator's ``PodOverrides`` (plus ``affinity`` and ``resources``).

How each field is merged is said in its description (``reconcile/worker_job.py`` does it). What the operator
itself relies on — its labels, its environment variables, its ``tmp`` and ``results`` volumes and their mount
paths — cannot be overridden: a clash is refused when the job is planned, naming the field.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .common import ApiModel, FreeObject, LocalObjectReference, Quantity, free_form


class Toleration(ApiModel):
    """A core/v1 Toleration: the pod tolerates nodes' taints that match it."""

    key: str | None = Field(None, description="Taint key to match; empty with operator Exists matches every key.")
    operator: Literal["Exists", "Equal"] | None = Field(None, description="Exists or Equal (default Equal).")
    value: str | None = Field(None, description="Taint value to match, for operator Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to match: NoSchedule, PreferNoSchedule or NoExecute; empty matches all.")
    toleration_seconds: int | None = Field(None, description="For NoExecute: how long the pod stays bound after "
                                                             "the taint appears.")


class EnvVar(ApiModel):
    """A core/v1 EnvVar of the worker container."""

    name: str = Field(min_length=1, description="Variable name; the operator's own (ARENA_*, HOME, POD_NAME, and "
                                                "the S3 keys when output.s3.secretRef is set) are refused.")
    value: str | None = Field(None, description="Literal value.")
    value_from: dict[str, Any] | None = free_form("Where the value comes from (secretKeyRef, configMapKeyRef, "
                                                  "fieldRef, resourceFieldRef), as in core/v1.")


class KeyedSource(ApiModel):
    """A ConfigMap or Secret of the job's namespace whose keys become variables."""

    name: str = Field(min_length=1, description="Name of the ConfigMap or Secret.")
    optional: bool | None = Field(None, description="Start the pod even when it does not exist.")


class EnvFromSource(ApiModel):
    """A core/v1 EnvFromSource: every key of a ConfigMap or Secret as a variable."""

    prefix: str | None = Field(None, description="Prepended to every key.")
    config_map_ref: KeyedSource | None = Field(None, description="The ConfigMap.")
    secret_ref: KeyedSource | None = Field(None, description="The Secret.")


class ResourceRequirements(ApiModel):
    """Container resources; the keys given replace the worker's defaults (requests cpu 250m, memory 256Mi;
    limits cpu 1, memory 1Gi), the others keep them."""

    requests: dict[str, Quantity] | None = Field(None, description="Minimum resources, e.g. cpu: 500m.")
    limits: dict[str, Quantity] | None = Field(None, description="Maximum resources, e.g. memory: 2Gi.")


class PodOverrides(ApiModel):
    """Settings merged into every worker pod (the Go operator's PodOverrides, plus affinity and resources)."""

    service_account_name: str | None = Field(
        None, description="Service account of the worker pods (e.g. for IRSA or workload identity). Its API token "
                          "is still not mounted: workers never call the Kubernetes API.")
    labels: dict[str, str] | None = Field(None, description="Merged into the pod labels; the operator's labels win "
                                                            "on a clash (it selects pods by them).")
    annotations: dict[str, str] | None = Field(None, description="Merged into the pod annotations.")
    node_selector: dict[str, str] | None = Field(None, description="The pod's nodeSelector.")
    tolerations: list[Toleration] | None = Field(None, description="Appended to the pod's tolerations.")
    affinity: dict[str, Any] | None = free_form("The pod's affinity (nodeAffinity, podAffinity, "
                                                "podAntiAffinity), as in core/v1.")
    priority_class_name: str | None = Field(None, description="The pod's priorityClassName.")
    image_pull_secrets: list[LocalObjectReference] | None = Field(None, description="Appended to the pod's "
                                                                                    "imagePullSecrets.")
    resources: ResourceRequirements | None = Field(None, description="The worker container's resources, key by "
                                                                     "key over the defaults.")
    extra_env: list[EnvVar] | None = Field(None, description="Appended to the worker container's env.")
    extra_env_from: list[EnvFromSource] | None = Field(None, description="Appended to the worker container's "
                                                                         "envFrom.")
    extra_volumes: list[FreeObject] | None = Field(
        None, description="core/v1 Volumes appended to the pod (each needs a name; tmp and results are the "
                          "operator's); validated by the API server when the worker Job is created.")
    extra_volume_mounts: list[FreeObject] | None = Field(
        None, description="core/v1 VolumeMounts appended to the worker container (each needs name and "
                          "mountPath; /tmp and /results are the operator's).")
