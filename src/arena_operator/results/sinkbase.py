"""What every result sink shares: the protocol, the error reasons, unit naming and encoding. No cloud client here,
so a local run (DirSink only) does not import boto3. The layout is described in sinks.py."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

# Reasons, for the worker's error report and the job's conditions.
BUCKET_NOT_FOUND = "BucketNotFound"
ACCESS_DENIED = "AccessDenied"
CREDENTIALS_NOT_FOUND = "CredentialsNotFound"
ENDPOINT_UNREACHABLE = "EndpointUnreachable"
INVALID_ENDPOINT = "InvalidEndpoint"
INVALID_OUTPUT = "InvalidOutput"
CLAIM_NOT_MOUNTED = "ClaimNotMounted"
INVALID_UNIT = "InvalidUnit"
WRITE_FAILED = "WriteFailed"
READ_FAILED = "ReadFailed"
NO_RESULTS = "NoResults"
INVALID_LOCATION = "InvalidLocation"

UNITS = "units/"
_T = TypeVar("_T")


class SinkError(Exception):
    """A result sink failed; `reason` is a CamelCase constant, `message` says what and where."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class ResultSink(Protocol):
    url: str

    async def check(self) -> None:
        """Fail fast with a SinkError when the destination is missing, denied or not writable."""

    async def put_unit(self, unit_id: str, run: dict[str, Any]) -> None:
        """Write `units/<unit_id>.json`; writing the same id again overwrites it."""

    def iter_units(self, *, ordered: bool = True) -> AsyncIterator[dict[str, Any]]:
        """Every unit result, streamed in key order; `ordered=False` lets a sink stream them in whatever order is
        cheapest (a directory's own order, without listing it all first)."""

    async def put_file(self, name: str, path: Path, content_type: str) -> None:
        """Store a finished report file under the job's root as `name`."""

    async def put_object(self, name: str, path: Path, content_type: str) -> None:
        """Store a file as `name`, a path of plain segments under the job's root (`shards/<id>.jsonl`)."""

    async def get_object(self, name: str, dest: Path) -> None:
        """Copy the file stored as `name` (see put_object) to the local file `dest`."""


def safe_prefix(prefix: str | None, what: str = "prefix") -> str:
    """`a/b`, `/a/b/`, `a//b/.` → `a/b/`; empty → ``; any `..` segment is refused."""
    parts = [p for p in (prefix or "").replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SinkError(INVALID_OUTPUT, f"{what} {prefix!r} must not contain '..'")
    return "/".join(parts) + "/" if parts else ""


def segment(value: str, what: str) -> str:
    if not value or value in (".", "..") or "/" in value or "\\" in value:
        raise SinkError(INVALID_OUTPUT, f"{what} {value!r} is not a single path segment")
    return value


def unit_name(unit_id: str) -> str:
    """The file/object name of a unit: the id percent-encoded, so any id is one safe path segment."""
    name = quote(unit_id, safe="-_.~@+=,")
    if not unit_id or name.startswith(".") or len(name) > 200:
        raise ValueError(f"unit id {unit_id!r} must be non-empty, not start with '.', and be at most 200 bytes")
    return name + ".json"


def file_name(name: str) -> str:
    if not name or name.startswith(".") or "/" in name or "\\" in name:
        raise ValueError(f"report file name {name!r} must be a plain file name")
    return name


def object_name(name: str) -> str:
    """`dir/file`: every segment a plain file name (see file_name)."""
    for part in name.split("/"):
        file_name(part)
    return name


def unit_bytes(run: dict[str, Any]) -> bytes:
    return json.dumps(run, sort_keys=True, separators=(",", ":")).encode()


def parse_unit(data: bytes, where: str) -> dict[str, Any]:
    try:
        run = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SinkError(INVALID_UNIT, f"{where} is not valid JSON: {exc}") from None
    if not isinstance(run, dict):
        raise SinkError(INVALID_UNIT, f"{where} is not a JSON object")
    return run


async def ordered_calls(calls: AsyncGenerator[Callable[[], _T], None], window: int) -> AsyncIterator[_T]:
    """Run blocking calls in threads, up to `window` at once, yielding results in the calls' order."""
    pending: deque[asyncio.Task[_T]] = deque()
    try:
        async for call in calls:
            pending.append(asyncio.ensure_future(asyncio.to_thread(call)))
            if len(pending) >= window:
                yield await pending.popleft()
        while pending:
            yield await pending.popleft()
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await calls.aclose()
