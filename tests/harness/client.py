"""The one blocking HTTP client of the harness: CRUD on the emulated Kubernetes API, as JSON over HTTP.

Tests use it through :class:`~tests.harness.server.K8sApi`; the kubelet thread has its own instance (an
``httpx.Client`` stays in the thread that uses it). Helpers go through HTTP (not into the emulator's objects)
so callers see exactly what clients see, and nothing touches the emulator's state from another thread.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from tests.harness.objects import Body


class ApiError(Exception):
    """A non-2xx answer of the emulated API, with the Kubernetes ``Status`` body."""

    def __init__(self, status: int, body: Any) -> None:
        reason = body.get('reason') if isinstance(body, dict) else None
        message = body.get('message') if isinstance(body, dict) else body
        super().__init__(f'HTTP {status} {reason}: {message}')
        self.status, self.reason, self.body = status, reason, body


def api_path(api_version: str, plural: str, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
    """The URL path of a collection or an object: ``api_path('batch/v1', 'jobs', 'ns', 'x')``."""
    parts = ['/api/v1' if api_version == 'v1' else f'/apis/{api_version}']
    if namespace:
        parts += ['namespaces', namespace]
    parts.append(plural)
    parts += [part for part in (name, subresource) if part]
    return '/'.join(parts)


class ApiClient:
    """Blocking CRUD helpers over HTTP for the API server at ``url`` (ApiError for non-2xx answers)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self._http = httpx.Client(base_url=url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, body: Any = None, *, params: Mapping[str, str] | None = None,
                content_type: str | None = None) -> Any:
        """One request with a JSON body; a PATCH is a merge patch for a dict, a JSON patch for a list."""
        if content_type is None:
            content_type = 'application/json' if method != 'PATCH' else (
                'application/merge-patch+json' if isinstance(body, Mapping) else 'application/json-patch+json')
        response = self._http.request(method, path, content=None if body is None else json.dumps(body),
                                      params=params, headers={'Content-Type': content_type})
        result = response.json() if response.content else None
        if response.status_code >= 400:
            raise ApiError(response.status_code, result)
        return result

    def plural_of(self, api_version: str, kind: str) -> str:
        """Find the plural of a kind via discovery (as kubectl does), including CRD-registered kinds."""
        discovery = self.request('GET', '/api/v1' if api_version == 'v1' else f'/apis/{api_version}')
        for resource in discovery['resources']:
            if resource['kind'] == kind and '/' not in resource['name']:
                return str(resource['name'])
        raise LookupError(f'kind {kind!r} is not served in {api_version!r}')

    def create(self, obj: Mapping[str, Any], *, plural: str | None = None) -> Body:
        """Create an object (``plural`` found by discovery if not given); its ``status`` (dropped by the API)
        is then written via ``/status``."""
        api_version, meta = obj['apiVersion'], obj.get('metadata', {})
        plural = plural or self.plural_of(api_version, obj['kind'])
        created: Body = self.request('POST', api_path(api_version, plural, meta.get('namespace')), obj)
        if obj.get('status') and 'status' not in created:
            created = self.patch(api_version, plural, meta.get('namespace'), created['metadata']['name'],
                                 {'status': obj['status']}, subresource='status')
        return created

    def create_namespace(self, name: str) -> Body:
        """Create a namespace, or return the existing one."""
        try:
            return self.create({'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': name}})
        except ApiError as e:
            if e.status != 409:
                raise
            return self.get('v1', 'namespaces', None, name) or {}

    def get(self, api_version: str, plural: str, namespace: str | None, name: str) -> Body | None:
        """Fetch an object, or ``None`` if it does not exist."""
        try:
            result: Body = self.request('GET', api_path(api_version, plural, namespace, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        return result

    def patch(self, api_version: str, plural: str, namespace: str | None, name: str,
              patch: Mapping[str, Any] | Sequence[Mapping[str, Any]], *, subresource: str | None = None) -> Body:
        """Merge-patch (a dict) or JSON-patch (a list); ``subresource='status'`` to write the status."""
        result: Body = self.request('PATCH', api_path(api_version, plural, namespace, name, subresource), patch)
        return result

    def delete(self, api_version: str, plural: str, namespace: str | None, name: str, *,
               propagation_policy: str | None = None, missing_ok: bool = False) -> Body | None:
        """Delete an object (it stays, with ``deletionTimestamp``, while it has finalizers)."""
        options = {'propagationPolicy': propagation_policy} if propagation_policy else None
        try:
            result: Body = self.request('DELETE', api_path(api_version, plural, namespace, name), options)
        except ApiError as e:
            if e.status == 404 and missing_ok:
                return None
            raise
        return result

    def collection(self, api_version: str, plural: str, namespace: str | None = None, *,
                   label_selector: str | None = None, field_selector: str | None = None) -> Body:
        """The ``<Kind>List`` of a collection, in one namespace or (``namespace=None``) in all of them."""
        params = {key: value for key, value in (('labelSelector', label_selector),
                                                ('fieldSelector', field_selector)) if value}
        result: Body = self.request('GET', api_path(api_version, plural, namespace), params=params)
        return result

    def list(self, api_version: str, plural: str, namespace: str | None = None, *,
             label_selector: str | None = None, field_selector: str | None = None) -> list[Body]:
        """List objects, in one namespace or (``namespace=None``) in all of them."""
        return list(self.collection(api_version, plural, namespace, label_selector=label_selector,
                                    field_selector=field_selector)['items'])

    def wait_for(self, api_version: str, plural: str, namespace: str | None, name: str,
                 predicate: Callable[[Body | None], bool], *, timeout: float = 5.0) -> Body | None:
        """Poll an object (``None`` when absent) until ``predicate`` holds; return it or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            obj = self.get(api_version, plural, namespace, name)
            if predicate(obj):
                return obj
            if time.monotonic() > deadline:
                raise TimeoutError(f'{plural}/{name} in {namespace!r} did not satisfy the predicate in {timeout}s; '
                                   f'last seen: {json.dumps(obj, indent=1)}')
            time.sleep(0.02)

    def wait_gone(self, api_version: str, plural: str, namespace: str | None, name: str, *,
                  timeout: float = 5.0) -> None:
        """Wait until the object does not exist (deleted and finalized, or garbage-collected)."""
        self.wait_for(api_version, plural, namespace, name, lambda obj: obj is None, timeout=timeout)
