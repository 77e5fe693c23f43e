"""ArenaSource: where a PromptKit bundle lives (git, OCI, ConfigMap, a workspace directory) and the artifact
made from it.

The shape follows Flux's source-controller (interval, timeout, suspend, ``status.artifact`` with revision,
URL and digest), because users of GitOps tooling already know it and because it makes change detection
cheap: the revision names what was fetched, the digest proves what was packaged. The Go operator's fields
(``type: workspace``, ``targetPath``, ``createVersionOnSync``, ``status.artifact.{contentPath, version,
checksum}``) are accepted and filled too.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from .common import (
    MIN_SOURCE_INTERVAL,
    ApiModel,
    ArenaObject,
    Condition,
    Duration,
    RelativePath,
    Time,
    check_type_block,
    conditions_field,
    duration_at_least,
    observed_generation_field,
    type_block_rules,
)

SourceType = Literal["git", "oci", "configmap", "workspace"]
SourcePhase = Literal["Pending", "Ready", "Error", "Suspended"]

#: Which spec block each ``type`` needs; shared by the pydantic check and the CEL rules.
SOURCE_BLOCKS: dict[str, str] = {"git": "git", "oci": "oci", "configmap": "configMap", "workspace": "workspace"}


class SourceSecretReference(ApiModel):
    """The Secret with a source's credentials, in the same namespace."""

    name: str = Field(min_length=1, description="Name of the Secret, in the same namespace.")
    key: str | None = Field(None, description="Accepted for the Go operator's manifests (its SecretKeyRef); the "
                                              "keys read are fixed (see secretRef), so it is not used.")


class GitRef(ApiModel):
    """What to check out; at most one of branch, tag, commit (none means the remote's default branch)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [{
        "rule": "(has(self.branch) ? 1 : 0) + (has(self.tag) ? 1 : 0) + (has(self.commit) ? 1 : 0) <= 1",
        "message": "at most one of branch, tag and commit may be set",
    }]})

    branch: str | None = Field(None, min_length=1, description="Branch to follow; the revision becomes "
                                                                "<branch>@sha1:<commit>.")
    tag: str | None = Field(None, min_length=1, description="Tag to check out; the revision becomes "
                                                             "<tag>@sha1:<commit>.")
    commit: str | None = Field(None, pattern=r"^[0-9a-f]{7,40}$",
                               description="Commit SHA-1 to pin (full 40 hex digits, or an abbreviation of at "
                                           "least 7); the revision becomes sha1:<commit>.")

    @model_validator(mode="after")
    def _one_ref(self) -> GitRef:
        chosen = [name for name in ("branch", "tag", "commit") if getattr(self, name) is not None]
        if len(chosen) > 1:
            raise ValueError(f"at most one of branch, tag and commit may be set (got {', '.join(chosen)})")
        return self


class GitSource(ApiModel):
    """A Git repository holding the bundle."""

    url: str = Field(pattern=r"^(https?|ssh|git)://",
                     description="Repository URL: http(s)://, ssh:// or git://.")
    ref: GitRef | None = Field(None, description="Branch, tag or commit to fetch; defaults to the remote's "
                                                 "default branch.")
    path: str | None = Field(None, description="Directory of the bundle inside the repository; defaults to the "
                                               "repository root.")
    secret_ref: SourceSecretReference | None = Field(
        None, description="Secret with credentials: username and password (or token) for HTTPS, identity and "
                          "known_hosts for SSH.")


class OCISource(ApiModel):
    """An OCI artifact (e.g. pushed with ``oras``) holding the bundle."""

    url: str = Field(pattern=r"^oci://", description="Artifact reference: oci://registry/repository[:tag]; "
                                                      "the revision becomes <tag>@sha256:<manifest digest>.")
    secret_ref: SourceSecretReference | None = Field(
        None, description="Secret of type kubernetes.io/dockerconfigjson with registry credentials.")
    insecure: bool = Field(False, description="Talk plain HTTP to the registry instead of HTTPS "
                                              "(in-cluster registries without TLS).")


class ConfigMapSource(ApiModel):
    """A ConfigMap in the same namespace holding the bundle's files as keys (small bundles)."""

    name: str = Field(min_length=1, description="Name of the ConfigMap, in the same namespace.")
    key: str | None = Field(None, description="Only this key (a single arena file or a tar.gz archive); "
                                              "defaults to every key as one file each.")


class WorkspaceSource(ApiModel):
    """A directory on the workspace volume the operator mounts ($ARENA_WORKSPACE_DIR), snapshotted as it is."""

    path: RelativePath = Field(description="Directory of the bundle, relative to the namespace's workspace root "
                                           "(<ARENA_WORKSPACE_DIR>/<namespace>/); absolute paths, '..' and "
                                           "symlinks leading out are refused. The revision is sha256:<content "
                                           "hash>, so an edit is a new revision.")


class ArenaSourceSpec(ApiModel):
    """Desired state of an ArenaSource."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": type_block_rules(SOURCE_BLOCKS)})

    type: SourceType = Field(description="Kind of source: git, oci or configmap. The block of the same name "
                                         "(git, oci, configMap) must be set.")
    git: GitSource | None = Field(None, description="Git repository settings, for type git.")
    oci: OCISource | None = Field(None, description="OCI artifact settings, for type oci.")
    config_map: ConfigMapSource | None = Field(None, description="ConfigMap settings, for type configmap.")
    workspace: WorkspaceSource | None = Field(None, description="Workspace directory settings, for type "
                                                                "workspace.")
    interval: duration_at_least(MIN_SOURCE_INTERVAL) = Field(  # type: ignore[valid-type]
        "5m", description=f"How often to check the source for a new revision (with a little jitter), e.g. 1m, 5m, "
                          f"1h; at least {MIN_SOURCE_INTERVAL}.")
    timeout: Duration = Field("60s", description="Time limit for one fetch, e.g. 60s.")
    suspend: bool = Field(False, description="Stop polling; the last artifact stays available.")
    target_path: RelativePath | None = Field(
        None, description="Where each artifact's content is also written on the workspace volume, relative to the "
                          "namespace's workspace root: <targetPath>/.arena/versions/<version>/ (recorded in "
                          "status.artifact.contentPath). Default arena/<source name>. Only when the operator has "
                          "a workspace volume.")
    create_version_on_sync: bool | None = Field(
        None, description="Accepted for the Go operator's manifests: every artifact here is an immutable, "
                          "content-addressed version whatever its value.")

    @model_validator(mode="after")
    def _block_for_type(self) -> ArenaSourceSpec:
        check_type_block(self, SOURCE_BLOCKS)
        return self


class Artifact(ApiModel):
    """The packaged bundle that workers download."""

    revision: str = Field(description="What was fetched: <branch>@sha1:<commit>, <tag>@sha1:<commit>, "
                                      "sha1:<commit>, <tag>@sha256:<digest> or a ConfigMap resourceVersion.")
    url: str = Field(description="HTTP URL of the tar.gz artifact, served by the operator.")
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$",
                        description="sha256:<hex> of the tar.gz, verified by workers before use.")
    size: int | None = Field(None, ge=0, description="Size of the tar.gz in bytes.")
    checksum: str | None = Field(None, description="sha256:<hex> of the content (the Go operator's name; equal to "
                                                   "digest, as the artifact is deterministic).")
    version: str | None = Field(None, description="Content-addressed version: the first 12 hex digits of the "
                                                  "checksum.")
    content_path: str | None = Field(
        None, description="Where the content is on the workspace volume, relative to the namespace's workspace "
                          "root: <targetPath>/.arena/versions/<version>. Set only when the operator has one.")
    last_update_time: Time | None = Field(None, description="When this artifact was produced.")


class ArenaSourceStatus(ApiModel):
    """Observed state of an ArenaSource."""

    phase: SourcePhase | None = Field(None, description="Summary for display: Pending, Ready, Error or "
                                                        "Suspended. Conditions carry the details.")
    artifact: Artifact | None = Field(None, description="The latest artifact produced from the source.")
    conditions: list[Condition] = conditions_field("Ready, SourceValid, ArtifactAvailable")
    observed_generation: int | None = observed_generation_field()
    last_fetch_time: Time | None = Field(None, description="When the source was last checked.")
    next_fetch_time: Time | None = Field(None, description="When the source will next be checked.")
    last_handled_reconcile_at: str | None = Field(
        None, description="Value of the omnia.altairalabs.ai/reconcile-requested-at annotation last acted on. "
                          "Set that annotation to a new value (e.g. the current time) to fetch now.")
    consecutive_failures: int | None = Field(
        None, ge=0, description="Failed passes in a row since the last success; retries back off with it.")


class ArenaSource(ArenaObject):
    """An ArenaSource object as stored by the API server."""

    kind: Literal["ArenaSource"] = Field("ArenaSource", description="Kind.")
    spec: ArenaSourceSpec = Field(description="Desired state.")
    status: ArenaSourceStatus | None = Field(None, description="Observed state.")
