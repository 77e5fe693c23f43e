"""The JSONPath subset of CRD printer columns, evaluated and printed as client-go's jsonpath does."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

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
JsonPath = tuple[tuple[str, Any], ...]  # ('field', name) | ('index', n) | ('star', None) | ('filter', (path, op, v))


def parse_jsonpath(path: str) -> JsonPath:
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
            steps.append(('filter', (parse_jsonpath(m['filter']), m['op'], value)))
    return tuple(steps)


def eval_jsonpath(obj: Any, steps: JsonPath) -> list[Any]:
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


def _filter_matches(item: Any, path: JsonPath, op: str | None, expected: Any) -> bool:
    found = eval_jsonpath(item, path)
    if not found:
        return False  # as in client-go: an element without the field matches neither == nor !=
    if op is None:
        return True
    actual = found[0]
    comparable = isinstance(actual, bool) == isinstance(expected, bool) and (
        isinstance(actual, str) == isinstance(expected, str))
    return (comparable and actual == expected) == (op == '==')


def jsonpath_text(value: Any) -> str:
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
