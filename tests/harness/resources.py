"""The resources the emulated Kubernetes API serves, and the ``Status`` errors it answers with.

kopf discovers resources before watching (and waits for ``v1/namespaces``), kubectl discovers them to build
URLs, and kmock serves nothing it was not told about: :func:`declare_resources` declares every resource the
arena operator, its tests and ``kubectl apply -f crds/`` touch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import kmock

ARENA_GROUP = 'omnia.altairalabs.ai'
ARENA_VERSION = 'v1alpha1'
ARENA_API_VERSION = f'{ARENA_GROUP}/{ARENA_VERSION}'
ARENA_KINDS: dict[str, str] = {
    'arenasources': 'ArenaSource',
    'arenaconfigs': 'ArenaConfig',
    'arenajobs': 'ArenaJob',
    'providers': 'Provider',
    'toolregistries': 'ToolRegistry',
}
ALL_VERBS = frozenset({'create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'})
NAMESPACES = kmock.resource('', 'v1', 'namespaces')
SECRETS = kmock.resource('', 'v1', 'secrets')
PVCS = kmock.resource('', 'v1', 'persistentvolumeclaims')
CRDS = kmock.resource('apiextensions.k8s.io', 'v1', 'customresourcedefinitions')


def api_version(resource: kmock.resource) -> str:
    """``v1`` for the core group, else ``group/version``."""
    return resource.version if resource.group == '' else f'{resource.group}/{resource.version}'


def error(status: int, reason: str, message: str, **details: Any) -> kmock.KubernetesError:
    """A Status error as the apiserver sends it (kubectl and kopf look at ``reason`` and ``code``)."""
    return kmock.KubernetesError(status=status, reason=reason, message=message, details=details or {})


def not_found(resource: kmock.resource, name: str | None) -> kmock.KubernetesError:
    return error(404, 'NotFound', f'{resource.plural}.{resource.group} "{name}" not found',
                 name=name, group=resource.group, kind=resource.plural)


def declare_resources(emulator: kmock.KubernetesEmulator) -> None:
    """Declare the arena kinds and the built-in kinds the operator and the kubelet use."""
    def declare(group: str, version: str, plural: str, kind: str, *, namespaced: bool = True,
                subresources: Sequence[str] = (), shortnames: Sequence[str] = (),
                categories: Sequence[str] = ()) -> None:
        emulator.resources[kmock.resource(group, version, plural)] = kmock.ResourceInfo(
            kind=kind, singular=kind.lower(), namespaced=namespaced, verbs=ALL_VERBS,
            subresources=subresources, shortnames=shortnames, categories=categories)

    for plural, kind in ARENA_KINDS.items():
        declare(ARENA_GROUP, ARENA_VERSION, plural, kind, subresources=['status'])
    declare('', 'v1', 'namespaces', 'Namespace', namespaced=False, subresources=['status'], shortnames=['ns'])
    declare('', 'v1', 'configmaps', 'ConfigMap', shortnames=['cm'])
    declare('', 'v1', 'secrets', 'Secret')
    declare('', 'v1', 'persistentvolumeclaims', 'PersistentVolumeClaim', subresources=['status'], shortnames=['pvc'])
    declare('', 'v1', 'pods', 'Pod', subresources=['status'], shortnames=['po'], categories=['all'])
    declare('', 'v1', 'services', 'Service', subresources=['status'], shortnames=['svc'], categories=['all'])
    declare('', 'v1', 'events', 'Event', shortnames=['ev'])
    declare('batch', 'v1', 'jobs', 'Job', subresources=['status'], categories=['all'])
    declare('apiextensions.k8s.io', 'v1', 'customresourcedefinitions', 'CustomResourceDefinition',
            namespaced=False, subresources=['status'], shortnames=['crd', 'crds'])
