"""Kubernetes protobuf request bodies, decoded into the JSON objects the emulator works with.

Typed clients send built-in kinds as ``Content-Type: application/vnd.kubernetes.protobuf`` — kubectl's
``create secret|configmap|namespace`` do (client-go prefers protobuf for built-in kinds). Such a body is the
magic ``k8s\\x00`` and a ``runtime.Unknown`` envelope (``typeMeta``, ``raw``, ``contentEncoding``,
``contentType``) around the object's own message. The kinds in :data:`SCHEMAS` are decoded, from the field
numbers of their ``generated.proto`` (unknown fields are skipped); any other kind raises
:class:`UnsupportedKind`, which the emulator answers with 415 (send that kind as JSON).

Values come out as Go's ``encoding/json`` writes the same object: empty strings, zero numbers, empty maps and
lists and zero ``Time`` values are left out (the fields are ``omitempty``), messages stay (``{}`` when empty),
``bytes`` become base64 and a ``Time`` an RFC 3339 string (whole seconds, as metav1.Time keeps them).
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Iterator, Mapping
from typing import Any

from tests.harness.objects import Body

MEDIA_TYPE = 'application/vnd.kubernetes.protobuf'
MAGIC = b'k8s\x00'

# A message schema: field number → (JSON name, type, repeated). A type is 'string', 'bytes' (base64 in JSON),
# 'raw' (bytes kept as bytes), 'int' (int64), 'bool', 'time' (metav1.Time), ('map', value type) or a schema.
Schema = Mapping[int, tuple[str, Any, bool]]


def _fields(*specs: tuple[int, str, Any] | tuple[int, str, Any, bool]) -> Schema:
    return {spec[0]: (spec[1], spec[2], bool(spec[3:] and spec[3])) for spec in specs}


_TIMESTAMP = _fields((1, 'seconds', 'int'), (2, 'nanos', 'int'))
_TYPE_META = _fields((1, 'apiVersion', 'string'), (2, 'kind', 'string'))
_UNKNOWN = _fields((1, 'typeMeta', _TYPE_META), (2, 'raw', 'raw'), (3, 'contentEncoding', 'string'),
                   (4, 'contentType', 'string'))
_OWNER_REFERENCE = _fields((5, 'apiVersion', 'string'), (1, 'kind', 'string'), (3, 'name', 'string'),
                           (4, 'uid', 'string'), (6, 'controller', 'bool'), (7, 'blockOwnerDeletion', 'bool'))
_OBJECT_META = _fields(
    (1, 'name', 'string'), (2, 'generateName', 'string'), (3, 'namespace', 'string'), (4, 'selfLink', 'string'),
    (5, 'uid', 'string'), (6, 'resourceVersion', 'string'), (7, 'generation', 'int'),
    (8, 'creationTimestamp', 'time'), (9, 'deletionTimestamp', 'time'), (10, 'deletionGracePeriodSeconds', 'int'),
    (11, 'labels', ('map', 'string')), (12, 'annotations', ('map', 'string')),
    (13, 'ownerReferences', _OWNER_REFERENCE, True), (14, 'finalizers', 'string', True))
_NAMESPACE_CONDITION = _fields((1, 'type', 'string'), (2, 'status', 'string'), (4, 'lastTransitionTime', 'time'),
                               (5, 'reason', 'string'), (6, 'message', 'string'))
SCHEMAS: dict[tuple[str, str], Schema] = {
    ('v1', 'Secret'): _fields((1, 'metadata', _OBJECT_META), (5, 'immutable', 'bool'),
                              (2, 'data', ('map', 'bytes')), (4, 'stringData', ('map', 'string')),
                              (3, 'type', 'string')),
    ('v1', 'ConfigMap'): _fields((1, 'metadata', _OBJECT_META), (4, 'immutable', 'bool'),
                                 (2, 'data', ('map', 'string')), (3, 'binaryData', ('map', 'bytes'))),
    ('v1', 'Namespace'): _fields(
        (1, 'metadata', _OBJECT_META), (2, 'spec', _fields((1, 'finalizers', 'string', True))),
        (3, 'status', _fields((1, 'phase', 'string'), (2, 'conditions', _NAMESPACE_CONDITION, True)))),
}


class ProtobufError(ValueError):
    """The body is not a well-formed Kubernetes protobuf message."""


class UnsupportedKind(ProtobufError):
    """The body is a kind this decoder has no schema for."""


def is_protobuf(content_type: str | None) -> bool:
    return (content_type or '').partition(';')[0].strip().lower() == MEDIA_TYPE


def decode(body: bytes) -> Body:
    """The object of a protobuf request body, as the JSON body of the same request would have it."""
    if not body.startswith(MAGIC):
        raise ProtobufError('a Kubernetes protobuf body starts with the magic bytes "k8s\\x00"')
    envelope = _message(body[len(MAGIC):], _UNKNOWN)
    if envelope.get('contentEncoding'):
        raise ProtobufError(f'unsupported contentEncoding {envelope["contentEncoding"]!r}')
    type_meta = envelope.get('typeMeta') or {}
    api_version, kind = type_meta.get('apiVersion', ''), type_meta.get('kind', '')
    schema = SCHEMAS.get((api_version, kind))
    if schema is None:
        known = ', '.join(f'{v}/{k}' for v, k in SCHEMAS)
        raise UnsupportedKind(f'the emulator decodes protobuf bodies of {known} only, not {api_version}/{kind}: '
                              'send it as application/json')
    return {'apiVersion': api_version, 'kind': kind, **_message(envelope.get('raw', b''), schema)}


def _varint(buf: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(buf):
            raise ProtobufError('truncated varint')
        byte = buf[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
        if shift >= 64:
            raise ProtobufError('varint longer than 64 bits')


def _wire(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of each field: an int for varints, bytes for everything else."""
    position = 0
    while position < len(buf):
        key, position = _varint(buf, position)
        number, wire_type = key >> 3, key & 7
        value: int | bytes
        if wire_type == 0:
            value, position = _varint(buf, position)
        elif wire_type in (1, 2, 5):
            if wire_type == 2:
                size, position = _varint(buf, position)
            else:
                size = 8 if wire_type == 1 else 4
            if position + size > len(buf):
                raise ProtobufError(f'field {number} runs past the end of its message')
            value, position = buf[position:position + size], position + size
        else:
            raise ProtobufError(f'unsupported wire type {wire_type} (field {number})')
        yield number, wire_type, value


def _scalar(kind: Any, wire_type: int, value: int | bytes) -> Any:
    if wire_type != (0 if kind in ('int', 'bool') else 2):
        raise ProtobufError(f'wire type {wire_type} does not fit a {kind} field')
    if isinstance(value, int):
        return value != 0 if kind == 'bool' else value - (1 << 64) if value >= 1 << 63 else value
    if kind == 'string':
        try:
            return value.decode('utf-8')
        except UnicodeDecodeError as e:
            raise ProtobufError(f'a string field is not UTF-8: {e}') from e
    if kind == 'bytes':
        return base64.b64encode(value).decode()
    if kind == 'raw':
        return value
    if kind == 'time':
        if not value:
            return None  # the zero time (null in JSON)
        seconds = _message(value, _TIMESTAMP).get('seconds', 0)
        return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')
    if isinstance(kind, tuple):  # a map entry: key = 1, value = 2
        entry = _message(value, _fields((1, 'key', 'string'), (2, 'value', kind[1])))
        return entry.get('key', ''), entry.get('value', '')
    return _message(value, kind)


def _message(buf: bytes, schema: Schema) -> Body:
    result: Body = {}
    for number, wire_type, value in _wire(buf):
        if number not in schema:
            continue  # a field this schema does not know (a newer Kubernetes): skipped
        name, kind, repeated = schema[number]
        decoded = _scalar(kind, wire_type, value)
        if isinstance(kind, tuple):
            key, item = decoded
            result.setdefault(name, {})[key] = item
        elif repeated:
            result.setdefault(name, []).append(decoded)
        else:
            result[name] = decoded
    return {name: value for name, value in result.items()
            if not (value is None or value == '' or value == b'' or (value == 0 and value is not False))}
