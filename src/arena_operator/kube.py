"""The one module that calls the Kubernetes API (besides kopf itself): reads of Secrets and ConfigMaps,
and the few writes handlers cannot express as a status patch. Blocking client calls run in threads."""

from __future__ import annotations

import asyncio
import base64
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


class Kube:
    """Async facade over the official client; one instance lives on kopf's `memo`."""

    def __init__(self, api_client: kubernetes.client.ApiClient | None = None) -> None:
        self.api_client = api_client or load_config()
        self.core = kubernetes.client.CoreV1Api(self.api_client)
        self.custom = kubernetes.client.CustomObjectsApi(self.api_client)

    async def secret_data(self, namespace: str, name: str) -> dict[str, str]:
        """Decoded values of a Secret. Callers must never log or store them."""
        try:
            secret = await asyncio.to_thread(self.core.read_namespaced_secret, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise NotFound("Secret", namespace, name) from None
            raise
        data = secret.data or {}
        out = {key: base64.b64decode(value).decode("utf-8", errors="replace") for key, value in data.items()}
        out.update(secret.string_data or {})
        return out

    async def config_map(self, namespace: str, name: str) -> tuple[dict[str, str], str]:
        """(data, resourceVersion) of a ConfigMap."""
        try:
            cm = await asyncio.to_thread(self.core.read_namespaced_config_map, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise NotFound("ConfigMap", namespace, name) from None
            raise
        return dict(cm.data or {}), str(cm.metadata.resource_version or "")

    async def list_custom(self, group: str, version: str, plural: str, namespace: str) -> list[dict[str, Any]]:
        result = await asyncio.to_thread(self.custom.list_namespaced_custom_object, group, version, namespace,
                                         plural)
        return list(result.get("items", []))

    def close(self) -> None:
        self.api_client.close()
