"""An emulated Kubernetes API for e2e tests: kmock 0.8 made realistic enough for kopf and kubectl.

kmock's ``KubernetesEmulator`` stores objects and serves list/watch/fetch/create/patch/delete, but it
assigns no ``resourceVersion``/``uid``/``creationTimestamp``/``generation``, cannot parse
``/api/v1/namespaces``, returns LISTs without ``kind``, replays every object on each watch, streams watches as
``application/octet-stream``, reads only JSON bodies, and knows nothing of ownerReferences or status
subresources. :class:`ClusterEmulator` closes those gaps, so a real kopf operator (whose finalizer patches test
``/metadata/resourceVersion``) and a real ``kubectl`` behave as against a cluster. Its write semantics are in
:mod:`tests.harness.storage`; it is served by :mod:`tests.harness.server`.

Deliberate simplifications: no admission/validation (kubectl needs ``--validate=false``), watches ignore
``timeoutSeconds``, there are no controllers (no pods for Jobs: see :mod:`tests.harness.kubelet`), and
``kubectl get`` tables come from CRD printer columns only (:mod:`tests.harness.tables`): built-in kinds
print NAME and AGE.
"""

from __future__ import annotations

import collections
import contextlib
import json
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import parsing as kmock_parsing  # to parse paths exactly as kmock does
from kmock._internal.rendering import StreamingError  # to mirror RawHandler.__call__ exactly

from tests.harness import protobuf
from tests.harness.faults import Faults
from tests.harness.objects import Body, dig
from tests.harness.rbac import RbacEnforcer
from tests.harness.resources import NAMESPACES, api_version, error
from tests.harness.selectors import selected
from tests.harness.storage import EmulatorStorage
from tests.harness.tables import DEFAULT_PRINTER_COLUMNS, build_table, table_version

# kmock's path parser reads "namespaces" as the prefix of a namespaced URL, so it fails (500) on
# /api/v1/namespaces and mis-parses /api/v1/namespaces/<name>: these paths are parsed here instead.
_NAMESPACES_PATH = re.compile(r'/api/v1/namespaces(?:/(?P<name>[^/]+)(?:/(?P<subresource>status|finalize))?)?/?')
# What the apiserver's JSON watch streams say (kmock says application/octet-stream, which kubectl cannot decode).
WATCH_CONTENT_TYPE = 'application/json;stream=watch'


@attrs.define(kw_only=True)
class ClusterEmulator(EmulatorStorage):
    """kmock's emulator plus the apiserver semantics that kopf and kubectl rely on.

    * the storage rules of :class:`~tests.harness.storage.EmulatorStorage` for every write;
    * ``/api/v1/namespaces`` list/get/watch/create/delete (deleting a namespace deletes its objects);
    * request bodies in JSON (whatever the ``Content-Type``) or, for the kinds typed clients send that way,
      Kubernetes protobuf (:mod:`tests.harness.protobuf`); responses are always JSON;
    * LIST responses with ``apiVersion``, ``kind: <Kind>List`` and the current ``resourceVersion``;
    * watches as ``application/json;stream=watch`` that resume from ``?resourceVersion=`` (kopf lists first,
      then watches from the list's version; kmock would replay everything as ADDED), emit 410 Gone when
      history is compacted, and honour ``sendInitialEvents``;
    * server-side printing: GET/LIST/WATCH with ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` (as
      a plain ``kubectl get [-w]`` sends) get a ``meta.k8s.io`` ``Table`` with the CRD's printer columns (the
      object of a watch event is a one-row Table);
    * with :attr:`rbac` set, RBAC for the requests bearing its token (:mod:`tests.harness.rbac`);
    * :attr:`faults`: failures and delays a test injects (:mod:`tests.harness.faults`).
    """

    open_watches: collections.Counter[tuple[str, str | None]] = attrs.field(
        factory=collections.Counter, init=False)  # (group/version/plural, namespace) → open streams
    _results: dict[kmock.Request, Any] = attrs.field(factory=dict, init=False)
    # kmock keeps every request and matches each new one by scanning them all, per reaction: a cost that grows
    # with the test's length (a polling kubelet made requests 50x slower within seconds). Served requests are
    # therefore forgotten (watches once they end); set True to keep the history for assertions on it.
    keep_requests: bool = False
    # Optional RBAC for one identity (the operator's bearer token); other requests stay unrestricted.
    rbac: RbacEnforcer | None = None
    faults: Faults = attrs.field(factory=Faults)  # injected apiserver failures (tests.harness.faults)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        # kmock has no action for PUT and DELETE-on-collection; they get the stored results too.
        self.fallback[kmock.method.PUT] << self._serve_written
        self.fallback[kmock.method.DELETE] << self._serve_written

    # -- request intake ------------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if (injected := await self.faults.apply(raw_request)) is not None:
            return injected
        if self.rbac is not None and (refusal := await self.rbac.refusal(raw_request, self._plural_of)) is not None:
            return refusal  # as the apiserver's authorization (and admission): before anything is stored
        namespaces = _NAMESPACES_PATH.fullmatch(raw_request.path)
        if namespaces is None and not protobuf.is_protobuf(raw_request.headers.get('Content-Type')):
            return await super().__call__(raw_request)

        # The same as RawHandler.__call__, but with our parsing of namespace paths and protobuf bodies.
        raw_response: aiohttp.web.StreamResponse | None = None
        try:
            try:
                request = await self._parse(raw_request, namespaces)
                self._requests.append(request)
                return await self._handle(request)
            except StreamingError as e:
                raw_response = e.args[0]
                raise (e.__cause__ or e) from None
        except Exception as e:
            if not self._errors:
                raise
            self._errors[-1].append(e)
            if raw_response is None or not raw_response.prepared:
                return await self._render_error(e)
            await self._stream_error(e, raw_response)
            await raw_response.write_eof()
            return raw_response

    def _plural_of(self, group: str, kind: str) -> str | None:
        return next((resource.plural for resource, info in self.resources.items()
                     if resource.group == group and info.kind == kind), None)

    async def _parse(self, raw_request: aiohttp.web.BaseRequest, namespaces: re.Match[str] | None) -> kmock.Request:
        """A kmock request, as ``kmock.Request._parse`` makes it, but for the paths and bodies kmock misreads."""
        body = await raw_request.read()
        data: Any = None
        if protobuf.is_protobuf(raw_request.headers.get('Content-Type')):
            try:
                data = protobuf.decode(body) if body else None
            except protobuf.UnsupportedKind as e:
                raise error(415, 'UnsupportedMediaType', str(e)) from e
            except protobuf.ProtobufError as e:
                raise error(400, 'BadRequest', f'the protobuf body cannot be decoded: {e}') from e
        elif body:
            with contextlib.suppress(ValueError):
                data = json.loads(body)
        query = dict(raw_request.query)
        if namespaces is not None:
            name, subresource = namespaces['name'], namespaces['subresource']
            watch = query.get('watch') in ('true', '1')
            action = {
                ('GET', True): kmock.action.WATCH if watch else kmock.action.FETCH,
                ('GET', False): kmock.action.WATCH if watch else kmock.action.LIST,
                ('POST', False): kmock.action.CREATE,
                ('PATCH', True): kmock.action.UPDATE,
                ('DELETE', True): kmock.action.DELETE,
            }.get((raw_request.method, name is not None))
            resource, namespace = NAMESPACES, None
        else:
            k8s = kmock_parsing.parse_path(raw_request.path)
            resource = None if k8s.group is None else kmock.resource(k8s.group, k8s.version, k8s.plural)
            action = kmock_parsing.guess_k8s(k8s, kmock.method(raw_request.method), query)
            namespace, name, subresource = k8s.namespace, k8s.name, k8s.subresource
        return kmock.Request(
            id=len(self._requests), raw_request=raw_request, url=raw_request.url,
            method=raw_request.method, params=query, headers=dict(raw_request.headers),
            cookies=dict(raw_request.cookies), body=body, text=body.decode('utf-8', 'replace'), data=data,
            action=action, resource=resource, namespace=namespace, name=name, subresource=subresource,
        )

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        try:
            return await self._handle_request(request)
        finally:
            if not self.keep_requests:
                for index, seen in enumerate(self._requests):
                    if seen is request:
                        del self._requests[index]
                        break

    async def _handle_request(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        writing = request.resource is not None and request.method in (
            kmock.method.POST, kmock.method.PATCH, kmock.method.PUT, kmock.method.DELETE)
        if not writing:
            return await super()._handle(request)

        # Change the state first, even if a user-defined reaction intercepts the response (as kmock does),
        # but by our rules: kmock's own state logic in KubernetesEmulator._handle is skipped entirely.
        async with self._lock:
            try:
                self._results[request] = self._write(request)
            finally:
                await self._publish()
        try:
            return await super(kmock.KubernetesEmulator, self)._handle(request)
        finally:
            self._results.pop(request, None)

    async def _serve_written(self, request: kmock.Request) -> Any:
        return self._results[request]

    _serve_create = _serve_update = _serve_delete = _serve_written

    # -- reading ---------------------------------------------------------------------------------

    async def _serve_version(self, request: kmock.Request) -> Any:
        # kmock says ``groupVersion: /v1`` for the core group (kubectl then maps no core resources), and
        # copies shortNames onto subresources (``namespaces/status``), which kubectl finds ambiguous.
        discovery = await super()._serve_version(request)
        discovery['groupVersion'] = discovery['groupVersion'].lstrip('/')
        for entry in discovery['resources']:
            if '/' in entry['name']:
                entry['shortNames'], entry['categories'] = [], []
        return discovery

    async def _serve_fetch(self, request: kmock.Request) -> Body:
        assert request.resource is not None
        info = self._info(request.resource)
        namespace = request.namespace if info.namespaced else None
        async with self._lock:
            obj = self._live(request.resource, namespace, request.name or '').raw
        if (version := self._wants_table(request)) is not None:
            return self._table(request, version, [obj], dig(obj, 'metadata.resourceVersion'))
        return obj

    async def _serve_list(self, request: kmock.Request) -> Body:
        resource = request.resource
        assert resource is not None
        info = self._info(resource)
        async with self._lock:
            items = self._stored(resource, namespace=request.namespace, name=request.name, params=request.params)
            resource_version = str(self._rv)
        if (version := self._wants_table(request)) is not None:
            return self._table(request, version, items, resource_version)
        return {
            'apiVersion': api_version(resource),
            'kind': f'{info.kind}List',
            'metadata': {'resourceVersion': resource_version},
            'items': items,
        }

    @staticmethod
    def _wants_table(request: kmock.Request) -> str | None:
        """The meta.k8s.io version of the Table the request accepts (before plain JSON), if any."""
        return table_version([value for key, value in request.headers.items() if key.lower() == 'accept'])

    def _table(self, request: kmock.Request, version: str, objects: Sequence[Body],
               resource_version: str | None) -> Body:
        assert request.resource is not None
        return build_table(version, objects, self.printer_columns.get(request.resource, DEFAULT_PRINTER_COLUMNS),
                           include=request.params.get('includeObject'), resource_version=resource_version)

    # -- watching --------------------------------------------------------------------------------

    async def _serve_watch(self, request: kmock.Request) -> kmock.Response:  # type: ignore[override]
        return kmock.Response(headers={'Content-Type': WATCH_CONTENT_TYPE}, payload=self._watch(request))

    async def _watch(self, request: kmock.Request) -> AsyncIterator[Any]:
        resource = request.resource
        assert resource is not None
        self._info(resource)
        yield b''  # send the headers now, as kmock does, even if nothing happens for a while
        since = request.params.get('resourceVersion', '')
        initial_events = request.params.get('sendInitialEvents') == 'true'
        bus = self._buses[resource]
        async with self._lock:  # the snapshot and the bus mark must be atomic, or events are lost/doubled
            backlog: list[Body]
            if initial_events or since in ('', '0') or not since.isdigit():
                backlog = [{'type': 'ADDED', 'object': obj} for obj in self._stored(
                    resource, namespace=request.namespace, name=request.name, params=request.params)]
                if initial_events:
                    backlog.append({'type': 'BOOKMARK', 'object': {
                        'apiVersion': api_version(resource), 'kind': self._info(resource).kind,
                        'metadata': {'resourceVersion': str(self._rv),
                                     'annotations': {'k8s.io/initial-events-end': 'true'}}}})
            elif int(since) < self._compacted_rv:
                backlog = [{'type': 'ERROR', 'object': {
                    'apiVersion': 'v1', 'kind': 'Status', 'status': 'Failure', 'code': 410, 'reason': 'Expired',
                    'message': f'too old resource version: {since} ({self._compacted_rv})'}}]
            else:
                backlog = [event for rv, res, event in self._log
                           if res == resource and rv > int(since) and self._watched(request, event)]
            marker = await bus.mark()
        key = (f'{api_version(resource)}/{resource.plural}', request.namespace)
        self.open_watches[key] += 1
        try:
            for event in backlog:
                yield self._watch_event(request, event)
            if backlog and backlog[-1]['type'] == 'ERROR':
                return
            async for event in bus.stream(since=marker):
                if self._watched(request, event):
                    yield self._watch_event(request, event)
        finally:
            self.open_watches[key] -= 1
            if not self.open_watches[key]:
                del self.open_watches[key]
            with contextlib.suppress(ValueError):
                await bus.unmark(marker)

    def _watch_event(self, request: kmock.Request, event: Body) -> Body:
        """The event as the watch asked for it: its object as a one-row Table for ``kubectl get -w``."""
        version = self._wants_table(request)
        if version is None or event['type'] in ('ERROR', 'BOOKMARK'):
            return event
        obj = event['object']
        return {'type': event['type'],
                'object': self._table(request, version, [obj], dig(obj, 'metadata.resourceVersion'))}

    @staticmethod
    def _watched(request: kmock.Request, event: Body) -> bool:
        return selected(event['object'], namespace=request.namespace, name=request.name, params=request.params)
