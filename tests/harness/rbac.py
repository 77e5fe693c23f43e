"""RBAC for one identity of the emulator: :class:`RbacEnforcer`, set as ``ClusterEmulator.rbac``.

Requests carrying the enforcer's bearer token are authorized as the API server's RBAC authorizer does, against
the PolicyRules bound to that identity (:meth:`Policy.from_manifests` reads them from rendered ClusterRoles,
Roles and their bindings); a refusal is the apiserver's 403 ``Forbidden`` Status, word for word. Requests
without an ``Authorization`` header (the tests' own client, the test kubelet, kubectl) are not restricted;
another bearer token is 401 ``Unauthorized``.

The request attributes follow the apiserver's ``RequestInfoFactory``: GET/HEAD of an object is ``get``, of a
collection ``list`` or, with ``?watch``, ``watch`` (a ``metadata.name`` field selector names the object, for
``resourceNames``); POST ``create``, PUT ``update``, PATCH ``patch``, DELETE ``delete``, or ``deletecollection``
on a collection; ``/namespaces/<ns>/...`` scopes a request to ``<ns>`` (``/api/v1/namespaces/<ns>`` too); the
core group is ``""``; subresources are ``resource/subresource``. As the bootstrap roles every authenticated
user has (``system:discovery``, ``system:basic-user``), discovery paths and self access reviews are allowed.

Like the OwnerReferencesPermissionEnforcement admission plugin (on in OpenShift), creating an object whose
ownerReference has ``blockOwnerDeletion`` also needs ``update`` on the owner's ``finalizers`` subresource (checked
on create only: the operator never changes an owner reference later).
"""

from __future__ import annotations

import collections
import fnmatch
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import aiohttp.web
import attrs

Permission = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb), as PolicyRules spell them
_METHOD_VERBS = {'GET': 'get', 'HEAD': 'get', 'POST': 'create', 'PUT': 'update', 'PATCH': 'patch', 'DELETE': 'delete'}
_NAMESPACE_SUBRESOURCES = {'status', 'finalize'}
_NAME = re.compile(r'[^/%]+')  # path.IsValidPathSegmentName, for a field-selected name
# system:discovery and system:public-info-viewer, bound to system:authenticated in every cluster.
_DISCOVERY_URLS = ('/api', '/api/*', '/apis', '/apis/*', '/healthz', '/livez', '/readyz', '/openapi', '/openapi/*',
                   '/version', '/version/')
# system:basic-user: what anyone may ask about themselves.
_SELF_REVIEWS = {('authorization.k8s.io', 'selfsubjectaccessreviews'),
                 ('authorization.k8s.io', 'selfsubjectrulesreviews'), ('authentication.k8s.io', 'selfsubjectreviews')}


@attrs.frozen
class RequestAttributes:
    """What the authorizer sees of one request (the apiserver's ``RequestInfo``)."""

    verb: str
    path: str
    resource_request: bool = False
    api_group: str = ''
    api_version: str = ''
    resource: str = ''
    subresource: str = ''
    namespace: str = ''
    name: str = ''

    @property
    def permission(self) -> Permission:
        resource = f'{self.resource}/{self.subresource}' if self.subresource else self.resource
        return self.api_group, resource, self.verb


def request_attributes(method: str, path: str, query: Mapping[str, str]) -> RequestAttributes:
    """The attributes of ``method path?query`` as the apiserver's RequestInfoFactory derives them."""
    parts = [part for part in path.split('/') if part]
    verb = method.lower()
    if len(parts) < 3 or parts[0] not in ('api', 'apis') or (parts[0] == 'apis' and len(parts) < 4):
        return RequestAttributes(verb=verb, path=path)
    group = '' if parts[0] == 'api' else parts[1]
    version, parts = (parts[1], parts[2:]) if parts[0] == 'api' else (parts[2], parts[3:])
    verb = _METHOD_VERBS.get(method.upper(), '')
    if parts[0] == 'watch':  # the deprecated /watch/ prefix
        verb, parts = 'watch', parts[1:]
    namespace = ''
    if parts and parts[0] == 'namespaces' and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
            parts = parts[2:]
    resource, name, subresource = [*parts, '', '', ''][:3]
    if not name and verb == 'get':
        verb = 'watch' if query.get('watch', 'false').lower() not in ('false', '0') else 'list'
        selected = _exact_name(query.get('fieldSelector', ''))
        if selected and _NAME.fullmatch(selected) and selected not in ('.', '..'):
            name = selected
    if not name and verb == 'delete':
        verb = 'deletecollection'
    return RequestAttributes(verb=verb, path=path, resource_request=True, api_group=group, api_version=version,
                             resource=resource, subresource=subresource, namespace=namespace, name=name)


def _exact_name(selector: str) -> str:
    """The name a field selector requires exactly (``metadata.name=x`` or ``==x``), if any."""
    for term in filter(None, (t.strip() for t in selector.split(','))):
        key, _, value = term.replace('==', '=').partition('=')
        if key.strip() == 'metadata.name' and not key.endswith('!'):
            return value.strip()
    return ''


@attrs.frozen
class PolicyRule:
    """One rule of a ClusterRole/Role, matched as ``k8s.io/kubernetes/pkg/apis/rbac/v1`` does."""

    verbs: frozenset[str]
    api_groups: frozenset[str] = frozenset()
    resources: frozenset[str] = frozenset()
    resource_names: frozenset[str] = frozenset()
    non_resource_urls: frozenset[str] = frozenset()

    @classmethod
    def of(cls, rule: Mapping[str, Any]) -> PolicyRule:
        return cls(verbs=frozenset(rule.get('verbs') or ()), api_groups=frozenset(rule.get('apiGroups') or ()),
                   resources=frozenset(rule.get('resources') or ()),
                   resource_names=frozenset(rule.get('resourceNames') or ()),
                   non_resource_urls=frozenset(rule.get('nonResourceURLs') or ()))

    def allows(self, request: RequestAttributes) -> bool:
        if not ({'*', request.verb} & self.verbs):
            return False
        if not request.resource_request:
            return any(url == '*' or url == request.path or (url.endswith('*') and request.path.startswith(url[:-1]))
                       for url in self.non_resource_urls)
        combined = request.permission[1]
        return (bool({'*', request.api_group} & self.api_groups)
                and bool({'*', combined} & self.resources
                         or (request.subresource and f'*/{request.subresource}' in self.resources))
                and (not self.resource_names or request.name in self.resource_names))

    def without(self, permission: Permission) -> list[PolicyRule]:
        """This rule minus one (group, resource, verb): split so that nothing else it grants is lost."""
        group, resource, verb = permission
        if group not in self.api_groups or resource not in self.resources or verb not in self.verbs:
            return [self]
        kept = [attrs.evolve(self, verbs=self.verbs - {verb}),  # the other verbs, as they were
                attrs.evolve(self, verbs=frozenset({verb}), resources=self.resources - {resource}),
                attrs.evolve(self, verbs=frozenset({verb}), resources=frozenset({resource}),
                             api_groups=self.api_groups - {group})]
        return [rule for rule in kept if rule.verbs and rule.resources and rule.api_groups]


@attrs.frozen
class Policy:
    """What one subject may do: rules bound cluster-wide (ClusterRoleBindings), and rules bound in a namespace
    (RoleBindings, to a Role or a ClusterRole), which apply only to requests in that namespace."""

    cluster: tuple[PolicyRule, ...] = ()
    namespaced: Mapping[str, tuple[PolicyRule, ...]] = attrs.field(factory=dict)

    @classmethod
    def from_manifests(cls, objects: Iterable[Mapping[str, Any]], namespace: str, service_account: str) -> Policy:
        """The rules bound to ServiceAccount ``namespace/service_account`` by these (rendered) manifests."""
        objects = list(objects)
        roles = {(obj['kind'], obj['metadata'].get('namespace'), obj['metadata']['name']): obj for obj in objects
                 if obj.get('kind') in ('ClusterRole', 'Role')}
        cluster: list[PolicyRule] = []
        namespaced: dict[str, list[PolicyRule]] = collections.defaultdict(list)
        for binding in objects:
            if binding.get('kind') not in ('ClusterRoleBinding', 'RoleBinding') or not any(
                    subject.get('kind') == 'ServiceAccount' and subject.get('name') == service_account
                    and subject.get('namespace', binding['metadata'].get('namespace')) == namespace
                    for subject in binding.get('subjects') or []):
                continue
            ref, scope = binding['roleRef'], binding['metadata'].get('namespace')
            role = roles.get((ref['kind'], scope if ref['kind'] == 'Role' else None, ref['name']))
            if role is None:
                raise LookupError(f'{binding["kind"]} {binding["metadata"]["name"]} refers to a missing {ref}')
            rules = [PolicyRule.of(rule) for rule in role.get('rules') or []]
            (cluster if binding['kind'] == 'ClusterRoleBinding' else namespaced[scope]).extend(rules)
        return cls(tuple(cluster), {ns: tuple(rules) for ns, rules in namespaced.items()})

    def allows(self, request: RequestAttributes) -> bool:
        if not request.resource_request and request.verb == 'get' and any(
                fnmatch.fnmatchcase(request.path, url) for url in _DISCOVERY_URLS):
            return True
        if request.verb == 'create' and (request.api_group, request.resource) in _SELF_REVIEWS:
            return True
        rules = self.cluster + (self.namespaced.get(request.namespace, ()) if request.namespace else ())
        return any(rule.allows(request) for rule in rules)

    def without(self, permission: Permission) -> Policy:
        """The same grants minus one (group, resource, verb), wherever it is granted."""
        def strip(rules: tuple[PolicyRule, ...]) -> tuple[PolicyRule, ...]:
            return tuple(part for rule in rules for part in rule.without(permission))
        return Policy(strip(self.cluster), {ns: strip(rules) for ns, rules in self.namespaced.items()})


@attrs.frozen
class Denial:
    """One refused request: the attributes that were not granted (the request's own, or for an owner reference
    those of the owner's ``finalizers``) and the message of the 403."""

    attributes: RequestAttributes
    message: str


@attrs.define
class RbacEnforcer:
    """Authorizes the requests bearing ``token`` as ``user`` by ``policy``; records what it allowed (``used``: the
    permissions checked, with counts), refused (``denials``: the missing permission and the 403's message), and
    who came without credentials (``unauthenticated``: User-Agents).

    ``denials`` and ``used`` are appended to from the emulator's thread; read them once the requests are done.
    """

    token: str
    user: str
    policy: Policy
    owner_references: bool = True  # also OwnerReferencesPermissionEnforcement, as on OpenShift (on create only)
    denials: list[Denial] = attrs.field(factory=list)
    used: collections.Counter[Permission] = attrs.field(factory=collections.Counter)
    # User-Agents of the requests without credentials (served unrestricted): to tell that they are the tests' own
    unauthenticated: collections.Counter[str] = attrs.field(factory=collections.Counter)

    async def refusal(self, raw_request: aiohttp.web.BaseRequest,
                      plural_of: Callable[[str, str], str | None]) -> aiohttp.web.Response | None:
        """None to serve the request; else the 401/403 response to send instead. ``plural_of(group, kind)`` maps
        the owners of a created object to resources, for the OwnerReferencesPermissionEnforcement check."""
        authorization = raw_request.headers.get('Authorization')
        if authorization is None:
            self.unauthenticated[raw_request.headers.get('User-Agent', '')] += 1
            return None
        if authorization != f'Bearer {self.token}':
            return status_response(401, 'Unauthorized', 'Unauthorized')
        request = request_attributes(raw_request.method, raw_request.path, raw_request.query)
        if not self._authorized(request):
            return self._forbid(request, request, forbidden_message(self.user, request))
        if self.owner_references and request.verb == 'create':
            obj = _json(await raw_request.read())
            for owner in _blocking_owners(obj, request, plural_of):
                if not self._authorized(owner):
                    name = str((obj.get('metadata') or {}).get('name') or '')
                    return self._forbid(owner, attrs.evolve(request, name=name), (
                        f'{_qualified(request, name)} is forbidden: cannot set blockOwnerDeletion if an ownerReference'
                        " refers to a resource you can't set finalizers on: , <nil>"))
        return None

    def _authorized(self, request: RequestAttributes) -> bool:
        if not self.policy.allows(request):
            return False
        if request.resource_request:
            self.used[request.permission] += 1
        return True

    def _forbid(self, missing: RequestAttributes, request: RequestAttributes, message: str) -> aiohttp.web.Response:
        self.denials.append(Denial(missing, message))
        details = {'group': request.api_group, 'kind': request.resource, 'name': request.name}
        return status_response(403, 'Forbidden', message, {key: value for key, value in details.items() if value})


def _json(body: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(body) if body else {}
    except ValueError:  # protobuf, which the operator does not send: not checked
        return {}
    return obj if isinstance(obj, dict) else {}


def _blocking_owners(obj: Mapping[str, Any], request: RequestAttributes,
                     plural_of: Callable[[str, str], str | None]) -> list[RequestAttributes]:
    """What OwnerReferencesPermissionEnforcement authorizes for a created object: ``update`` on the
    ``finalizers`` of every owner it blocks the deletion of."""
    owners = []
    for ref in (obj.get('metadata') or {}).get('ownerReferences') or []:
        group = ref.get('apiVersion', '').rpartition('/')[0]
        plural = plural_of(group, ref.get('kind', ''))
        if ref.get('blockOwnerDeletion') and plural:
            owners.append(RequestAttributes(
                verb='update', path=request.path, resource_request=True, api_group=group,
                api_version=ref['apiVersion'].rpartition('/')[2], resource=plural, subresource='finalizers',
                namespace=request.namespace, name=ref.get('name', '')))
    return owners


def _qualified(request: RequestAttributes, name: str) -> str:
    """``errors.NewForbidden``'s subject: ``resource.group "name"``."""
    qualified = f'{request.resource}.{request.api_group}' if request.api_group else request.resource
    return f'{qualified} "{name}"' if name else qualified


def forbidden_message(user: str, request: RequestAttributes) -> str:
    """The apiserver's words (``responsewriters.Forbidden`` and ``errors.NewForbidden``)."""
    if not request.resource_request:
        return f'forbidden: User "{user}" cannot {request.verb} path "{request.path}"'
    group, resource, verb = request.permission
    scope = f'in the namespace "{request.namespace}"' if request.namespace else 'at the cluster scope'
    return (f'{_qualified(request, request.name)} is forbidden: User "{user}" cannot {verb} resource "{resource}" '
            f'in API group "{group}" {scope}')


def status_response(code: int, reason: str, message: str, details: Mapping[str, str] | None = None
                    ) -> aiohttp.web.Response:
    body: dict[str, Any] = {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure',
                            'message': message, 'reason': reason, 'code': code}
    if details:
        body['details'] = dict(details)
    return aiohttp.web.json_response(body, status=code)


def service_account_user(namespace: str, name: str) -> str:
    return f'system:serviceaccount:{namespace}:{name}'


__all__ = ['Denial', 'Permission', 'Policy', 'PolicyRule', 'RbacEnforcer', 'RequestAttributes', 'forbidden_message',
           'request_attributes', 'service_account_user', 'status_response']
