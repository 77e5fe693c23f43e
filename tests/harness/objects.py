"""Plain helpers on Kubernetes objects (nested dicts), shared by the emulator, the API client and the kubelet."""

from __future__ import annotations

import copy
import datetime
from collections.abc import Mapping
from typing import Any

Body = dict[str, Any]


def now() -> str:
    """The current time as Kubernetes writes timestamps (RFC 3339, UTC, whole seconds)."""
    return datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')


def dig(obj: Mapping[str, Any] | None, path: str, default: Any = None) -> Any:
    """Read a dotted path like ``status.phase`` from a nested dict; ``default`` if any step is missing."""
    value: Any = obj
    for step in path.split('.'):
        if not isinstance(value, Mapping) or step not in value:
            return default
        value = value[step]
    return value


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (kmock's own merge refuses to replace a dict with a scalar)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def spec_of(body: Body) -> Body:
    """What ``generation`` tracks: everything except metadata and status."""
    return {key: value for key, value in body.items() if key not in ('metadata', 'status')}
