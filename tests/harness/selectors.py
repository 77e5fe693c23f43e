"""Kubernetes label and field selectors, as the emulator applies them to LIST, WATCH and DELETE-collection."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tests.harness.objects import dig
from tests.harness.resources import error


def _split_selector(selector: str) -> list[str]:
    return [term.strip() for term in re.split(r',(?![^(]*\))', selector) if term.strip()]


def match_labels(labels: Mapping[str, str], selector: str) -> bool:
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


def match_fields(obj: Mapping[str, Any], selector: str) -> bool:
    """Kubernetes field selector: ``metadata.name=x``, ``status.phase!=Running`` (equality only)."""
    for term in _split_selector(selector):
        m = re.fullmatch(r'([^\s!=]+)\s*(==|=|!=)\s*(.*)', term)
        if m is None:
            raise error(400, 'BadRequest', f'invalid field selector: {term!r}')
        actual = dig(obj, m[1])
        if (m[2] == '!=') == ((str(actual) if actual is not None else '') == m[3].strip()):
            return False
    return True


def selected(obj: Mapping[str, Any], *, namespace: str | None, name: str | None,
             params: Mapping[str, str]) -> bool:
    """Whether a request for ``namespace``/``name`` (None: any) with ``?labelSelector=&fieldSelector=`` sees ``obj``."""
    meta = obj.get('metadata', {})
    if namespace is not None and meta.get('namespace') != namespace:
        return False
    if name is not None and meta.get('name') != name:
        return False
    labels = params.get('labelSelector')
    fields = params.get('fieldSelector')
    return (not labels or match_labels(meta.get('labels') or {}, labels)) and (
        not fields or match_fields(obj, fields))
