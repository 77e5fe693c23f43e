"""Server-side printing: the meta.k8s.io ``Table`` behind a plain ``kubectl get``.

Columns come from a CRD's ``additionalPrinterColumns`` (a JSONPath subset, :mod:`tests.harness.jsonpath`);
built-in kinds print only NAME and AGE. A date column holds the age (``duration.HumanDuration``), as the
apiserver sends it, since kubectl prints Table cells verbatim.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from tests.harness.jsonpath import JsonPath, eval_jsonpath, jsonpath_text, parse_jsonpath
from tests.harness.objects import Body, dig
from tests.harness.resources import error


def human_duration(seconds: float) -> str:
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


def cell(column_type: str, value: Any) -> Any:
    """A Table cell as the CRD table convertor makes it; ``None`` (printed empty) when nothing fits."""
    if value is None:
        return None
    if column_type == 'string':
        return jsonpath_text(value)
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
        return human_duration((datetime.datetime.now(datetime.UTC) - timestamp).total_seconds())
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
    steps: JsonPath = attrs.field(init=False, eq=False, repr=False)

    @steps.default
    def _parse(self) -> JsonPath:
        return parse_jsonpath(self.json_path)

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
NAME_COLUMN = {'name': 'Name', 'type': 'string', 'format': 'name',
               'description': 'Name must be unique within a namespace.', 'priority': 0}
TABLE_VERSIONS = ('v1', 'v1beta1')  # of meta.k8s.io; kubectl asks for v1, then v1beta1, then plain JSON
INCLUDE_OBJECT = ('None', 'Metadata', 'Object')


def table_version(accept_headers: Sequence[str]) -> str | None:
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
                and options.get('v') in TABLE_VERSIONS):
            return options['v']
    return None


def build_table(version: str, objects: Sequence[Body], columns: Sequence[PrinterColumn], *,
                include: str | None, resource_version: str | None) -> Body:
    """Objects as the apiserver's ``Table`` (TableConvertor plus the handler's ``?includeObject=``)."""
    include = include or 'Metadata'
    if include not in INCLUDE_OBJECT:
        raise error(400, 'BadRequest', f'unrecognized includeObject value: "{include}"')
    rows = []
    for obj in objects:
        cells: list[Any] = [dig(obj, 'metadata.name')]
        for column in columns:
            found = eval_jsonpath(obj, column.steps)
            cells.append(cell(column.type, found[0]) if found else None)
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
        'columnDefinitions': [dict(NAME_COLUMN), *(column.definition() for column in columns)],
        'rows': rows,
    }
