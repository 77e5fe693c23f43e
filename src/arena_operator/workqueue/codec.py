"""How the work queue's values travel to and from its Lua scripts (workqueue.scripts), and the records it returns.

A batch is a few large arguments rather than several per unit — packing each argument costs redis-py (pure Python)
about as much as Redis spends running the command for it: unit ids as one JSON array, unit and summary JSON texts
joined by newlines (JSON text never holds a raw newline), message ids joined by spaces. A claim's units come back
as one text as well and are parsed in one `json.loads`.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

OUTCOMES = {"passed": "passed", "assertion_failed": "assertion_failed", "error": "errors"}
SECRET_KEYS = {"apikey", "password", "passwd", "secret", "token", "accesstoken", "bearertoken", "secretaccesskey",
               "sessiontoken", "privatekey", "clientsecret", "authorization"}
SUMMARY_STRING_CHARS = 300


@dataclass
class Claimed:
    """One delivery of a unit to a consumer; `attempt` counts deliveries of this unit id (1 = first)."""

    unit: dict
    unit_id: str
    message_id: str
    attempt: int


@dataclass
class Counters:
    total: int
    completed: int
    failed: int
    pending: int
    in_flight: int
    retried: int
    passed: int
    assertion_failed: int
    errors: int


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _not_serializable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_C_ENCODER = json.encoder.c_make_encoder  # type: ignore[attr-defined]
if _C_ENCODER is not None:  # compact JSON with the C encoder called directly: json.dumps' Python layers cost ~1 µs
    _encode = _C_ENCODER(None, _not_serializable, json.encoder.encode_basestring, None, ":", ",", False, False, True)

    def _dumps(value: Any) -> str:
        return "".join(_encode(value, 0))
else:  # pragma: no cover - interpreters without the C accelerator
    _dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_SCALARS = (bool, int, float, type(None))


def _compact(result: dict) -> dict:
    """The part of a result kept in `:done`: top-level scalars and flat maps of numbers (e.g. cost, tokens)."""
    summary: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(value, str):
            summary[key] = value[:SUMMARY_STRING_CHARS]
        elif isinstance(value, _SCALARS) or (isinstance(value, dict)
                                             and all(isinstance(v, _SCALARS) for v in value.values())):
            summary[key] = value
    return summary


def _claimed(reply: Any) -> list[Claimed]:
    """The units of a claim reply {cursor, msgids, attempts, units} (see scripts.claim): the unit JSON of the
    whole batch is parsed in one `json.loads` (the texts hold no raw newline), and the unit id is the unit's own."""
    msgids = _text(reply[1])
    if not msgids:
        return []
    units = json.loads("[" + _text(reply[3]).replace("\n", ",") + "]")
    return [Claimed(unit, unit["id"], msgid, int(attempt))
            for unit, msgid, attempt in zip(units, msgids.split(" "), _text(reply[2]).split(" "), strict=True)]


def _stream_entries(response: Any) -> list[tuple[Any, dict]]:
    """The entries of an XREADGROUP reply on one stream, as redis-py parses it in RESP2 or RESP3."""
    if not response:
        return []
    if isinstance(response, dict):  # RESP3: {stream: [[(id, fields), ...]]}
        return list(next(iter(response.values()))[0])
    return list(response[0][1])  # RESP2: [[stream, [(id, fields), ...]]]


def _check_no_secrets(value: Any, path: str = "config") -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            normalized = str(key).lower().replace("_", "").replace("-", "")
            # `${ENV}` references are expanded by the worker from its own environment: not a secret here.
            if normalized in SECRET_KEYS and isinstance(item, str) and item and "${" not in item:
                raise ValueError(f"{path}.{key} holds a secret value; store a reference (secret or env name)")
            _check_no_secrets(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_no_secrets(item, f"{path}[{index}]")


def _outcome_args(items: Iterable[tuple[Claimed, dict, str]]) -> list[str] | None:
    """The COMPLETE script's arguments for a batch of outcomes (see scripts.complete_all); None for no items."""
    msgids, uids, summaries, fields = [], [], [], []
    for claimed, result, outcome in items:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}: {outcome!r}")
        msgids.append(claimed.message_id)
        uids.append(claimed.unit_id)
        summaries.append(_dumps({"outcome": outcome, "attempt": claimed.attempt, "result": _compact(result)}))
        fields.append(OUTCOMES[outcome])
    if not msgids:
        return None
    return [" ".join(msgids), _dumps(uids), "\n".join(summaries), ",".join(fields)]


