"""The emulator's state and write semantics: kmock's object store made to behave like the apiserver's.

* metadata: ``uid``, ``creationTimestamp``, ``generation`` (+1 when anything but metadata/status changes), and
  a cluster-wide monotonic ``resourceVersion`` bumped on every write; ``generateName``;
* status subresources: the main endpoint ignores ``status``, ``/status`` changes only ``status``;
* JSON-patch ``test`` failures → 422 (kopf retries them), stale ``resourceVersion`` → 409; strategic merge
  patches are treated as JSON merge patches; PUT replaces;
* finalizers: DELETE sets ``deletionTimestamp``; the object goes when its last finalizer goes (foreground
  deletion behaves as background); DELETE on collections;
* garbage collection: objects whose every ``ownerReferences`` uid is gone are deleted (cascading), or orphaned;
  deleting a namespace deletes its objects;
* per kind: secret ``stringData``, namespace ``status.phase``, and CRDs: storing one registers its resource
  (and its printer columns) so its objects can be served;
* an event log of every change, for watches that resume from a ``resourceVersion`` (see ``emulator.py``).

No admission or validation: objects are stored as sent.
"""

from __future__ import annotations

import base64
import collections
import copy
import random
import uuid
from collections.abc import Mapping
from typing import Any

import attrs
import jsonpatch
import jsonpointer
import kmock

from tests.harness.objects import Body, dig, merge_patch, now, spec_of
from tests.harness.resources import ALL_VERBS, CRDS, NAMESPACES, SECRETS, api_version, error, not_found
from tests.harness.selectors import selected
from tests.harness.tables import DEFAULT_PRINTER_COLUMNS, PrinterColumn

_GENERATE_NAME_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789'  # the same alphabet as the apiserver's


@attrs.define(kw_only=True)
class EmulatorStorage(kmock.KubernetesEmulator):
    """kmock's emulator with the apiserver's storage rules (see the module docstring); all writes under ``_lock``."""

    history_limit: int = 10_000  # watch events kept for resuming watches; older versions get 410 Gone
    # The printer columns (after NAME) of each resource a CRD registered; other resources get the defaults.
    printer_columns: dict[kmock.resource, tuple[PrinterColumn, ...]] = attrs.field(factory=dict, init=False)
    _rv: int = attrs.field(default=0, init=False)
    _compacted_rv: int = attrs.field(default=0, init=False)
    _log: collections.deque[tuple[int, kmock.resource, Body]] = attrs.field(init=False)
    _outbox: list[tuple[kmock.resource, Body]] = attrs.field(factory=list, init=False)

    @_log.default
    def _make_log(self) -> collections.deque[tuple[int, kmock.resource, Body]]:
        return collections.deque(maxlen=self.history_limit)

    def _stored(self, resource: kmock.resource, *, namespace: str | None = None, name: str | None = None,
                params: Mapping[str, str] | None = None) -> list[Body]:
        """The live objects of ``resource`` a request for ``namespace``/``name`` with these selectors sees, sorted."""
        return [obj.raw for (res, _, _), obj in sorted(self._objects.items(), key=_sort_key)
                if res == resource and not obj.deleted
                and selected(obj.raw, namespace=namespace, name=name, params=params or {})]

    def _write(self, request: kmock.Request) -> Any:
        resource = request.resource
        assert resource is not None
        info = self._info(resource)
        namespace = request.namespace if info.namespaced else None
        method, name, data = request.method, request.name, request.data
        if method == kmock.method.POST and name is None:
            return self._create(resource, info, namespace, data)
        if method == kmock.method.DELETE and name is None:
            return self._delete_collection(resource, namespace, request.params)
        if name is None or request.subresource not in (None, 'status'):
            raise error(405, 'MethodNotAllowed', f'{method} is not supported on {request.url.path}')
        if method == kmock.method.PATCH:
            return self._patch(resource, info, namespace, name, data, request.subresource)
        if method == kmock.method.PUT:
            return self._replace(resource, info, namespace, name, data, request.subresource)
        return self._delete(resource, namespace, name, data if isinstance(data, Mapping) else {})

    # -- writing (all under self._lock) ----------------------------------------------------------

    def _create(self, resource: kmock.resource, info: kmock.ResourceInfo,
                namespace: str | None, data: Any) -> Body:
        if not isinstance(data, Mapping):
            raise error(400, 'BadRequest', 'the body of a create request must be a JSON object')
        body: Body = copy.deepcopy(dict(data))
        meta = body.setdefault('metadata', {})
        if info.namespaced:
            if namespace and meta.get('namespace') and meta['namespace'] != namespace:
                raise error(400, 'BadRequest', 'the namespace of the object does not match the request')
            namespace = namespace or meta.get('namespace')
            if not namespace:
                raise error(400, 'BadRequest', f'a namespace is required to create {resource.plural}')
            meta['namespace'] = namespace
        else:
            meta.pop('namespace', None)
        if not meta.get('name') and meta.get('generateName'):
            meta['name'] = meta['generateName'] + ''.join(random.choices(_GENERATE_NAME_ALPHABET, k=5))
        if not meta.get('name'):
            raise error(422, 'Invalid', 'metadata.name or metadata.generateName is required')
        key = (resource, namespace, meta['name'])
        if key in self._objects and not self._objects[key].deleted:
            raise error(409, 'AlreadyExists', f'{resource.plural}.{resource.group} "{meta["name"]}" already exists',
                        name=meta['name'], group=resource.group, kind=resource.plural)

        body['apiVersion'] = api_version(resource)
        body['kind'] = info.kind
        if 'status' in info.subresources:
            body.pop('status', None)
        for field in ('deletionTimestamp', 'deletionGracePeriodSeconds', 'resourceVersion'):
            meta.pop(field, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1, resourceVersion=self._next_rv())
        self._default(resource, body)
        if key in self._objects:
            self._objects[key].history.append(body)  # re-creation after deletion keeps the history
        else:
            self._objects[key] = body
        self._emit(resource, 'ADDED', body)
        return body

    def _patch(self, resource: kmock.resource, info: kmock.ResourceInfo, namespace: str | None,
               name: str, patch: Any, subresource: str | None) -> Body:
        old = self._live(resource, namespace, name).raw
        has_status = 'status' in info.subresources
        if isinstance(patch, list):  # RFC 6902 JSON patch
            if not all(isinstance(op, Mapping) for op in patch):
                raise error(422, 'Invalid', 'a JSON patch must be a list of operation objects')
            ops = [op for op in patch if op.get('op') == 'test' or not has_status
                   or (subresource == 'status') == (str(op.get('path', '')).split('/')[:2] == ['', 'status'])]
            try:
                new = jsonpatch.apply_patch(copy.deepcopy(old), ops)
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as e:
                raise error(422, 'Invalid', f'the JSON patch cannot be applied: {e}') from e
        elif isinstance(patch, Mapping):  # RFC 7386 merge patch (also used for strategic merge patches)
            self._check_precondition(old, dig(patch, 'metadata.resourceVersion'))
            if has_status and subresource == 'status':
                patch = {'status': patch['status']} if 'status' in patch else {}
            elif has_status:
                patch = {key: value for key, value in patch.items() if key != 'status'}
            new = merge_patch(old, patch)
        else:
            raise error(400, 'BadRequest', 'a patch must be a JSON object or a JSON-patch list')
        return self._update(resource, old, new)

    def _replace(self, resource: kmock.resource, info: kmock.ResourceInfo, namespace: str | None,
                 name: str, data: Any, subresource: str | None) -> Body:
        old = self._live(resource, namespace, name).raw
        if not isinstance(data, Mapping):
            raise error(400, 'BadRequest', 'the body of a replace request must be a JSON object')
        self._check_precondition(old, dig(data, 'metadata.resourceVersion'))
        new = copy.deepcopy(dict(data))
        if 'status' in info.subresources:
            if subresource == 'status':
                new = {**copy.deepcopy(old), 'status': new.get('status')}
            else:
                new['status'] = copy.deepcopy(old.get('status'))
            if new['status'] is None:
                del new['status']
        return self._update(resource, old, new)

    def _update(self, resource: kmock.resource, old: Body, new: Body) -> Body:
        """Store a new version: server-owned fields kept, generation and resourceVersion bumped."""
        old_meta = old.get('metadata', {})
        meta = new.setdefault('metadata', {})
        if not isinstance(meta, dict):
            raise error(422, 'Invalid', 'metadata must be an object')
        new['apiVersion'], new['kind'] = old['apiVersion'], old['kind']
        for field in ('name', 'namespace', 'uid', 'creationTimestamp', 'generation', 'resourceVersion',
                      'deletionTimestamp', 'deletionGracePeriodSeconds'):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        self._default(resource, new)
        if new == old:
            return old  # a no-op write does not bump the resourceVersion (as in Kubernetes)
        if spec_of(new) != spec_of(old):
            meta['generation'] = int(old_meta.get('generation', 0)) + 1
        meta['resourceVersion'] = self._next_rv()
        obj = self._objects[resource, meta.get('namespace'), meta['name']]
        obj.history.append(new)
        if meta.get('deletionTimestamp') and not meta.get('finalizers'):
            self._remove(resource, new, bump=False)  # the last finalizer is gone: the object is gone
        else:
            self._emit(resource, 'MODIFIED', new)
        return new

    def _delete(self, resource: kmock.resource, namespace: str | None, name: str,
                options: Mapping[str, Any]) -> Body:
        current = self._live(resource, namespace, name).raw
        preconditions = options.get('preconditions') or {}
        for field in ('uid', 'resourceVersion'):
            if preconditions.get(field) and preconditions[field] != dig(current, f'metadata.{field}'):
                raise error(409, 'Conflict', f'precondition failed: {field} mismatch for "{name}"')
        orphan = options.get('propagationPolicy') == 'Orphan' or options.get('orphanDependents') is True
        return self._delete_object(resource, current, orphan=orphan)

    def _delete_object(self, resource: kmock.resource, current: Body, *, orphan: bool = False) -> Body:
        if dig(current, 'metadata.deletionTimestamp'):
            return current  # already terminating, waiting for its finalizers
        if dig(current, 'metadata.finalizers'):
            new = copy.deepcopy(current)
            new['metadata'].update(deletionTimestamp=now(), deletionGracePeriodSeconds=0,
                                   resourceVersion=self._next_rv())
            self._objects[resource, dig(new, 'metadata.namespace'), dig(new, 'metadata.name')].history.append(new)
            self._emit(resource, 'MODIFIED', new)
            return new
        return self._remove(resource, current, orphan=orphan)

    def _delete_collection(self, resource: kmock.resource, namespace: str | None,
                           params: Mapping[str, str]) -> Body:
        victims = self._stored(resource, namespace=namespace, params=params)
        items = [self._delete_object(resource, victim) for victim in victims]
        return {'apiVersion': api_version(resource), 'kind': f'{self._info(resource).kind}List',
                'metadata': {'resourceVersion': str(self._rv)}, 'items': items}

    def _remove(self, resource: kmock.resource, body: Body, *, bump: bool = True, orphan: bool = False) -> Body:
        """Remove the object for real, then collect what depended on it (like kube-controller-manager)."""
        meta = body['metadata']
        if bump:
            body = copy.deepcopy(body)
            body['metadata']['resourceVersion'] = self._next_rv()
        self._objects[resource, meta.get('namespace'), meta['name']].delete()
        self._emit(resource, 'DELETED', body)
        if resource == NAMESPACES:
            for (res, ns, _), obj in list(self._objects.items()):
                if ns == meta['name'] and not obj.deleted:
                    self._delete_object(res, obj.raw)
        self._collect_garbage(meta['uid'], orphan=orphan)
        return body

    def _collect_garbage(self, owner_uid: str, *, orphan: bool) -> None:
        live_uids = {dig(obj.raw, 'metadata.uid') for obj in self._objects.values() if not obj.deleted}
        for (res, _, _), obj in list(self._objects.items()):
            if obj.deleted:  # may have been collected earlier in this very loop (cascades)
                continue
            refs = dig(obj.raw, 'metadata.ownerReferences') or []
            if not any(ref.get('uid') == owner_uid for ref in refs):
                continue
            if orphan:
                others = [ref for ref in refs if ref.get('uid') != owner_uid]
                self._update(res, obj.raw, merge_patch(obj.raw, {'metadata': {'ownerReferences': others or None}}))
            elif not any(ref.get('uid') in live_uids for ref in refs):
                self._delete_object(res, obj.raw)

    def _default(self, resource: kmock.resource, body: Body) -> None:
        """Per-kind server-side behaviour: secret stringData, namespace phase, CRD registration."""
        if resource == SECRETS and body.get('stringData'):
            encoded = {k: base64.b64encode(str(v).encode()).decode() for k, v in body.pop('stringData').items()}
            body['data'] = {**(body.get('data') or {}), **encoded}
        elif resource == NAMESPACES:
            body.setdefault('status', {})['phase'] = (
                'Terminating' if dig(body, 'metadata.deletionTimestamp') else 'Active')
        elif resource == CRDS:
            self._register_crd(body)

    def _register_crd(self, crd: Body) -> None:
        spec = crd.get('spec') or {}
        names = spec.get('names') or {}
        if not spec.get('group') or not names.get('plural') or not names.get('kind'):
            raise error(422, 'Invalid', 'a CRD needs spec.group, spec.names.plural and spec.names.kind')
        served = [version for version in spec.get('versions') or [] if version.get('served', True)]
        columns: dict[str, tuple[PrinterColumn, ...]] = {}
        for i, version in enumerate(served):
            try:
                columns[version['name']] = tuple(
                    PrinterColumn.from_crd(column) for column in version.get('additionalPrinterColumns') or ())
            except (KeyError, TypeError, ValueError) as e:
                raise error(422, 'Invalid', f'spec.versions[{i}].additionalPrinterColumns: {e}') from e
        for version in served:
            resource = kmock.resource(spec['group'], version['name'], names['plural'])
            self.resources[resource] = kmock.ResourceInfo(
                kind=names['kind'], singular=names.get('singular') or names['kind'].lower(),
                namespaced=spec.get('scope', 'Namespaced') == 'Namespaced',
                shortnames=names.get('shortNames') or (), categories=names.get('categories') or (),
                subresources=(version.get('subresources') or {}).keys(), verbs=ALL_VERBS)
            self.printer_columns[resource] = columns[version['name']] or DEFAULT_PRINTER_COLUMNS
        conditions = [{'type': kind, 'status': 'True', 'reason': reason, 'message': '',
                       'lastTransitionTime': now()}
                      for kind, reason in (('NamesAccepted', 'NoConflicts'), ('Established', 'InitialNamesAccepted'))]
        crd['status'] = {'acceptedNames': names, 'conditions': conditions,
                         'storedVersions': [v['name'] for v in spec.get('versions') or [] if v.get('storage')]}

    # -- helpers -----------------------------------------------------------------------------------

    def _info(self, resource: kmock.resource) -> kmock.ResourceInfo:
        if resource not in self.resources:
            raise error(404, 'NotFound', 'the server could not find the requested resource',
                        group=resource.group, kind=resource.plural)
        return self.resources[resource]

    def _live(self, resource: kmock.resource, namespace: str | None, name: str) -> kmock.Object:
        key = (resource, namespace, name)
        if key not in self._objects or self._objects[key].deleted:
            raise not_found(resource, name)
        return self._objects[key]

    @staticmethod
    def _check_precondition(old: Body, expected: Any) -> None:
        actual = dig(old, 'metadata.resourceVersion')
        if expected is not None and str(expected) != actual:
            raise error(409, 'Conflict', 'Operation cannot be fulfilled: the object has been modified; '
                        f'resourceVersion {expected} is not the latest {actual}')

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _emit(self, resource: kmock.resource, event_type: str, body: Body) -> None:
        event = {'type': event_type, 'object': body}
        if len(self._log) == self._log.maxlen:
            self._compacted_rv = self._log[0][0]
        self._log.append((int(body['metadata']['resourceVersion']), resource, event))
        self._outbox.append((resource, event))

    async def _publish(self) -> None:
        outbox, self._outbox = self._outbox, []
        for resource, event in outbox:
            await self._buses[resource].put(event)


def _sort_key(item: tuple[tuple[kmock.resource, str | None, str], kmock.Object]) -> tuple[str, str]:
    (_, namespace, name), _ = item
    return namespace or '', name
