"""One way to turn an ArenaSource spec into a fetcher, used by the operator and by `arena run job.yaml`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from ..api.conditions import CONFIG_MAP_NOT_FOUND, INVALID_BUNDLE_LAYOUT, INVALID_SECRET
from .artifact import files_from_mapping
from .errors import SourceError
from .git import DEFAULT_TIMEOUT, GitAuth, GitSource
from .oci import OCIAuth, OCISource
from .workspace import WorkspaceFetcher


class Fetcher(Protocol):
    async def remote_revision(self) -> str: ...

    async def fetch(self, dest: Path) -> str: ...


ConfigMapReader = Callable[[str], Awaitable[tuple[dict[str, str], str]]]  # name -> (data, resourceVersion)


class ConfigMapFetcher:
    """A ConfigMap's data as bundle files; its resourceVersion is the revision."""

    def __init__(self, name: str, key: str | None, read: ConfigMapReader, namespace: str = "") -> None:
        self.name, self.key, self.read, self.namespace = name, key, read, namespace

    async def _read(self) -> tuple[dict[str, str], str]:
        try:
            return await self.read(self.name)
        except LookupError:
            where = f"{self.namespace}/{self.name}" if self.namespace else self.name
            raise SourceError(CONFIG_MAP_NOT_FOUND, f"configmap {where} not found", retryable=True) from None

    async def remote_revision(self) -> str:
        return (await self._read())[1]

    async def fetch(self, dest: Path) -> str:
        data, version = await self._read()
        if self.key:
            if self.key not in data:
                raise SourceError(INVALID_BUNDLE_LAYOUT, f"configmap {self.name} has no key {self.key!r} "
                                  f"(keys: {sorted(data)})")
            data = {self.key: data[self.key]}
        files_from_mapping(data, dest)
        return version


def fetcher_for(spec: Any, secret: Mapping[str, str] | None, read_config_map: ConfigMapReader | None = None, *,
                timeout: float = DEFAULT_TIMEOUT, namespace: str = "", workspace_root: Path | None = None) -> Fetcher:
    """The fetcher an ArenaSourceSpec describes; ``secret`` is the data of its secretRef (None: anonymous);
    ``workspace_root`` is the directory a workspace source's path is relative to (None: there is none)."""
    if spec.type == "git":
        git = spec.git
        ref = git.ref
        return GitSource(git.url, branch=ref.branch if ref else None, tag=ref.tag if ref else None,
                         commit=ref.commit if ref else None, path=git.path,
                         auth=GitAuth.from_secret(dict(secret)) if secret else None, timeout=timeout)
    if spec.type == "oci":
        oci = spec.oci
        auth = None
        if secret:
            config = secret.get(".dockerconfigjson")
            if config is None:
                raise SourceError(INVALID_SECRET, f"secret {oci.secret_ref.name} is not of type "
                                  "kubernetes.io/dockerconfigjson (no .dockerconfigjson key)")
            auth = OCIAuth.from_dockerconfigjson(config, OCISource.host_of(oci.url))
        return OCISource(oci.url, auth=auth, insecure=oci.insecure, timeout=timeout)
    if spec.type == "workspace":
        return WorkspaceFetcher(workspace_root, spec.workspace.path)
    if read_config_map is None:
        raise SourceError(CONFIG_MAP_NOT_FOUND, f"configmap {spec.config_map.name}: no ConfigMaps to read here")
    return ConfigMapFetcher(spec.config_map.name, spec.config_map.key, read_config_map, namespace)


def secret_ref_of(spec: Any) -> Any:
    """The secretRef a source's fetcher needs, or None."""
    inner = spec.git if spec.type == "git" else spec.oci if spec.type == "oci" else None
    return getattr(inner, "secret_ref", None)
