"""The one module that calls the Kubernetes API (besides kopf itself): reads of Secrets and ConfigMaps,
and the few writes handlers cannot express as a status patch. Blocking client calls run in threads."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException


class NotFound(LookupError):
    """The referenced object does not exist; `kind`/`name` say which, for conditions and events."""

    def __init__(self, kind: str, namespace: str, name: str) -> None:
        super().__init__(f"{kind} {namespace}/{name} not found")
        self.kind = kind
        self.name = name


def load_config() -> kubernetes.client.ApiClient:
    """In-cluster service account when running in a pod, else the current kubeconfig context."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    return kubernetes.client.ApiClient()


def refusal(exc: BaseException) -> str | None:
    """The API server's message when `exc` is a refusal the operator cannot retry its way out of (401/403), else
    None: the caller says so on the object instead of failing silently in its log."""
    if isinstance(exc, ApiException) and exc.status in (401, 403):
        try:
            return str(json.loads(exc.body or "{}").get("message") or exc.reason)
        except (ValueError, AttributeError):
            return str(exc.reason)
    return None


def transient(exc: BaseException) -> int | None:
    """The status of an API failure worth retrying in seconds (409 conflict, 429 throttling, 5xx), else None."""
    if isinstance(exc, ApiException) and (exc.status in (409, 429) or (exc.status or 0) >= 500):
        return int(exc.status)
    return None


class Kube:
    """Async facade over the official client; one instance lives on kopf's `memo`."""

    def __init__(self, api_client: kubernetes.client.ApiClient | None = None) -> None:
        self.api_client = api_client or load_config()
        self.core = kubernetes.client.CoreV1Api(self.api_client)
        self.custom = kubernetes.client.CustomObjectsApi(self.api_client)

    async def _read(self, kind: str, read: Callable[[str, str], Any], namespace: str, name: str) -> Any:
        """One namespaced read; a 404 becomes NotFound naming the object, anything else propagates."""
        try:
            return await asyncio.to_thread(read, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise NotFound(kind, namespace, name) from None
            raise

    async def secret_data(self, namespace: str, name: str) -> dict[str, str]:
        """Decoded values of a Secret. Callers must never log or store them."""
        secret = await self._read("Secret", self.core.read_namespaced_secret, namespace, name)
        data = secret.data or {}
        out = {key: base64.b64decode(value).decode("utf-8", errors="replace") for key, value in data.items()}
        out.update(secret.string_data or {})
        return out

    async def secret_keys(self, namespace: str, name: str) -> set[str]:
        """The keys of a Secret, to check a reference without handling its values."""
        secret = await self._read("Secret", self.core.read_namespaced_secret, namespace, name)
        return set(secret.data or {}) | set(secret.string_data or {})

    async def config_map(self, namespace: str, name: str) -> tuple[dict[str, str], str]:
        """(data, resourceVersion) of a ConfigMap."""
        cm = await self._read("ConfigMap", self.core.read_namespaced_config_map, namespace, name)
        return dict(cm.data or {}), str(cm.metadata.resource_version or "")

    async def has_pvc(self, namespace: str, name: str) -> bool:
        try:
            await self._read("PersistentVolumeClaim", self.core.read_namespaced_persistent_volume_claim, namespace,
                             name)
        except NotFound:
            return False
        return True

    def close(self) -> None:
        self.api_client.close()


class Workloads:
    """Writes the operator makes besides status patches: worker Jobs and their Secrets, a template's child
    ArenaJobs, and deleting a finished ArenaJob (TTL, history)."""

    def __init__(self, kube: Kube) -> None:
        self.batch = kubernetes.client.BatchV1Api(kube.api_client)
        self.core = kube.core
        self.custom = kube.custom

    async def create_job(self, namespace: str, manifest: dict[str, Any]) -> bool:
        """Create-if-absent; False when it already existed (a re-run of the same step is harmless)."""
        try:
            await asyncio.to_thread(self.batch.create_namespaced_job, namespace, manifest)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def create_secret(self, namespace: str, manifest: dict[str, Any]) -> bool:
        """Create-if-absent (the worker Secret of a job; its name carries the job's uid); False when it existed."""
        try:
            await asyncio.to_thread(self.core.create_namespaced_secret, namespace, manifest)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def scale_job(self, namespace: str, name: str, parallelism: int) -> None:
        body = {"spec": {"parallelism": parallelism}}
        await asyncio.to_thread(self.batch.patch_namespaced_job, name, namespace, body)

    async def delete_job(self, namespace: str, name: str) -> None:
        """Delete the Job and (background propagation) its pods; a missing Job is fine."""
        try:
            await asyncio.to_thread(self.batch.delete_namespaced_job, name, namespace,
                                    propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def create_custom(self, group: str, version: str, plural: str, namespace: str,
                            body: dict[str, Any]) -> bool:
        """Create-if-absent (the name is the idempotency key); False when it already existed."""
        try:
            await asyncio.to_thread(self.custom.create_namespaced_custom_object, group, version, namespace, plural,
                                    body)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def patch_custom(self, group: str, version: str, plural: str, namespace: str, name: str,
                           body: dict[str, Any]) -> None:
        """A merge patch of the object (not its status); a missing object is fine."""
        try:
            await asyncio.to_thread(self.custom.patch_namespaced_custom_object, group, version, namespace, plural,
                                    name, body)
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def delete_custom(self, group: str, version: str, plural: str, namespace: str, name: str) -> None:
        try:
            await asyncio.to_thread(self.custom.delete_namespaced_custom_object, group, version, namespace, plural,
                                    name)
        except ApiException as exc:
            if exc.status != 404:
                raise
