"""Where a distributed job's results go: an S3 bucket or a mounted PVC directory.

Layout under the job's root (`s3://bucket/<prefix><namespace>/<job>/` or `pvc://<claim>/<subPath><namespace>/<job>/`):
`units/<unit-id>.json`, one per work unit, written by the worker that ran it (overwriting is idempotent), and the
report files (`results.json`, `junit.xml`, ...) written once by the aggregating worker.

Both sinks list units in key order: the unit id, percent-encoded, sorted as bytes (S3's listing order).
Errors are `SinkError`s with a CamelCase reason for conditions and a message naming the bucket or path; a message
never holds a credential.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shutil
import tempfile
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import suppress
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar
from urllib.parse import quote

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)

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

UNITS = "units/"
_CHECK_OBJECT = ".arena-write-check"
# S3 error codes that mean "these credentials may not do this".
_DENIED_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
                 "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem", "InvalidClientTokenId", "403"}
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")
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

    def iter_units(self) -> AsyncIterator[dict[str, Any]]:
        """Every unit result, streamed in key order."""

    async def put_file(self, name: str, path: Path, content_type: str) -> None:
        """Store a finished report file under the job's root as `name`."""


def safe_prefix(prefix: str | None, what: str = "prefix") -> str:
    """`a/b`, `/a/b/`, `a//b/.` → `a/b/`; empty → ``; any `..` segment is refused."""
    parts = [p for p in (prefix or "").replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SinkError(INVALID_OUTPUT, f"{what} {prefix!r} must not contain '..'")
    return "/".join(parts) + "/" if parts else ""


def _segment(value: str, what: str) -> str:
    if not value or value in (".", "..") or "/" in value or "\\" in value:
        raise SinkError(INVALID_OUTPUT, f"{what} {value!r} is not a single path segment")
    return value


def unit_name(unit_id: str) -> str:
    """The file/object name of a unit: the id percent-encoded, so any id is one safe path segment."""
    name = quote(unit_id, safe="-_.~@+=,")
    if not unit_id or name.startswith(".") or len(name) > 200:
        raise ValueError(f"unit id {unit_id!r} must be non-empty, not start with '.', and be at most 200 bytes")
    return name + ".json"


def _file_name(name: str) -> str:
    if not name or name.startswith(".") or "/" in name or "\\" in name:
        raise ValueError(f"report file name {name!r} must be a plain file name")
    return name


def _unit_bytes(run: dict[str, Any]) -> bytes:
    return json.dumps(run, sort_keys=True, separators=(",", ":")).encode()


def _parse_unit(data: bytes, where: str) -> dict[str, Any]:
    try:
        run = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SinkError(INVALID_UNIT, f"{where} is not valid JSON: {exc}") from None
    if not isinstance(run, dict):
        raise SinkError(INVALID_UNIT, f"{where} is not a JSON object")
    return run


async def _ordered(calls: AsyncGenerator[Callable[[], _T], None], window: int) -> AsyncIterator[_T]:
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


# --- S3 -------------------------------------------------------------------------------------------------------------


class S3Sink:
    """Results in an S3 (or S3-compatible) bucket.

    Credentials come from boto3's standard chain: on a worker pod, the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
    AWS_SESSION_TOKEN env vars set from the output secret, else the pod's ambient identity. boto3 calls block, so
    they run in threads; botocore retries throttling and transient errors (`max_attempts`, standard mode).
    """

    def __init__(self, bucket: str, prefix: str | None, namespace: str, job: str, region: str | None = None,
                 endpoint: str | None = None, *, page_size: int = 1000, concurrency: int = 16,
                 max_attempts: int = 5) -> None:
        self.bucket = bucket
        self.base = f"{safe_prefix(prefix)}{_segment(namespace, 'namespace')}/{_segment(job, 'job')}/"
        self.url = f"s3://{bucket}/{self.base}"
        self.page_size = page_size
        self.concurrency = max(1, concurrency)
        config = Config(retries={"max_attempts": max_attempts, "mode": "standard"}, connect_timeout=10,
                        read_timeout=60, max_pool_connections=self.concurrency,
                        s3={"addressing_style": "path"} if endpoint else None)
        try:
            self._client = boto3.session.Session().client("s3", region_name=region or None,
                                                          endpoint_url=endpoint or None, config=config)
        except ValueError as exc:  # botocore: "Invalid endpoint: ..."
            raise SinkError(INVALID_ENDPOINT, f"S3 endpoint {endpoint!r} for bucket {bucket}: {exc}") from None

    def key(self, name: str) -> str:
        return self.base + name

    async def check(self) -> None:
        """The bucket exists and may be listed (needed to aggregate) and written (a small marker object)."""
        await self._call("list", self.base, self._client.list_objects_v2, Bucket=self.bucket, Prefix=self.base,
                         MaxKeys=1)
        await self._call("write", self.key(_CHECK_OBJECT), self._client.put_object, Bucket=self.bucket,
                         Key=self.key(_CHECK_OBJECT), Body=b"ok\n", ContentType="text/plain")

    async def put_unit(self, unit_id: str, run: dict[str, Any]) -> None:
        key = self.key(UNITS + unit_name(unit_id))
        await self._call("write", key, self._client.put_object, Bucket=self.bucket, Key=key, Body=_unit_bytes(run),
                         ContentType="application/json")

    async def iter_units(self) -> AsyncIterator[dict[str, Any]]:
        async for run in _ordered(self._unit_reads(), self.concurrency):
            yield run

    async def _unit_reads(self) -> AsyncGenerator[Callable[[], dict[str, Any]], None]:
        async for key in self._unit_keys():
            yield lambda key=key: self._get_unit(key)

    async def _unit_keys(self) -> AsyncIterator[str]:
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.key(UNITS), "MaxKeys": self.page_size}
        while True:
            page = await self._call("list", self.key(UNITS), self._client.list_objects_v2, **request)
            for item in page.get("Contents", []):
                if item["Key"].endswith(".json"):
                    yield item["Key"]
            if not page.get("IsTruncated"):
                return
            request["ContinuationToken"] = page["NextContinuationToken"]

    def _get_unit(self, key: str) -> dict[str, Any]:
        try:
            data = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, "read", key) from None
        return _parse_unit(data, f"s3://{self.bucket}/{key}")

    async def put_file(self, name: str, path: Path, content_type: str) -> None:
        key = self.key(_file_name(name))
        # upload_file switches to a multipart upload for large files (results.json of a big job).
        await self._call("write", key, self._client.upload_file, Filename=str(path), Bucket=self.bucket, Key=key,
                         ExtraArgs={"ContentType": content_type},
                         Config=TransferConfig(max_concurrency=4, use_threads=True))

    async def _call(self, op: str, key: str, fn: Callable[..., _T], /, **kwargs: Any) -> _T:
        try:
            return await asyncio.to_thread(fn, **kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, op, key) from None
        except Exception as exc:
            # boto3's managed transfer wraps the ClientError (S3UploadFailedError); map the original.
            if isinstance(exc.__context__, BotoCoreError | ClientError):
                raise self._error(exc.__context__, op, key) from None
            raise

    def _error(self, exc: BaseException, op: str, key: str) -> SinkError:
        where = f"s3://{self.bucket}/{key}"
        fallback = WRITE_FAILED if op == "write" else READ_FAILED
        if isinstance(exc, ClientError):
            error = exc.response.get("Error") or {}
            status = (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            code = str(error.get("Code") or status or "Unknown")
            detail = str(error.get("Message") or "")
            if code == "NoSuchBucket":
                reason = BUCKET_NOT_FOUND
            elif code in _DENIED_CODES or status == 403:
                reason = ACCESS_DENIED
            else:
                reason = fallback
            message = f"{op} {where} (bucket {self.bucket}): {code}" + (f": {detail}" if detail else "")
        elif isinstance(exc, NoCredentialsError | PartialCredentialsError):
            reason = CREDENTIALS_NOT_FOUND
            message = (f"{op} {where}: no usable AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                       f"from the output secret)")
        elif isinstance(exc, EndpointConnectionError):
            reason, message = ENDPOINT_UNREACHABLE, f"{op} {where}: {exc}"
        elif isinstance(exc, ParamValidationError):
            reason, message = INVALID_OUTPUT, f"{op} {where}: {exc}"
        else:
            reason, message = fallback, f"{op} {where}: {type(exc).__name__}: {exc}"
        return SinkError(reason, _scrub(message))


def _scrub(message: str) -> str:
    """Defence in depth: botocore messages carry no secrets, but never let a credential value through."""
    for name in _SECRET_ENV:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            message = message.replace(value, "***")
    return message


# --- PVC / directory ------------------------------------------------------------------------------------------------


class DirSink:
    """Results in a directory: a PVC mounted at `root`. Writes are atomic (temp file in place + os.replace)."""

    def __init__(self, root: Path, claim: str, sub_path: str | None, namespace: str, job: str) -> None:
        self.root = Path(root)
        self.claim = claim
        relative = f"{safe_prefix(sub_path, 'subPath')}{_segment(namespace, 'namespace')}/{_segment(job, 'job')}/"
        self.dir = self.root / relative
        self.units = self.dir / UNITS
        self.url = f"pvc://{claim}/{relative}"
        self._ready = False

    async def check(self) -> None:
        await asyncio.to_thread(self._check)

    def _check(self) -> None:
        if not self.root.is_dir():
            raise SinkError(CLAIM_NOT_MOUNTED, f"claim {self.claim} is not mounted: {self.root} is not a directory")
        self._prepare()
        try:
            fd, probe = tempfile.mkstemp(dir=self.units, prefix=".write-check-")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise self._error(exc, "write", self.units) from None

    def _prepare(self) -> None:
        if self._ready:
            return
        if not self.root.is_dir():
            raise SinkError(CLAIM_NOT_MOUNTED, f"claim {self.claim} is not mounted: {self.root} is not a directory")
        try:
            self.units.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._error(exc, "create", self.units) from None
        self._ready = True

    async def put_unit(self, unit_id: str, run: dict[str, Any]) -> None:
        target = self.units / unit_name(unit_id)
        data = _unit_bytes(run)
        await asyncio.to_thread(self._write, target, lambda out: out.write(data))

    async def put_file(self, name: str, path: Path, content_type: str) -> None:
        target = self.dir / _file_name(name)

        def copy(out: IO[bytes]) -> None:
            with path.open("rb") as source:
                shutil.copyfileobj(source, out, 1 << 20)

        await asyncio.to_thread(self._write, target, copy)

    def _write(self, target: Path, fill: Callable[[IO[bytes]], object]) -> None:
        self._prepare()
        try:
            fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        except OSError as exc:
            raise self._error(exc, "write", target) from None
        try:
            with os.fdopen(fd, "wb") as out:
                fill(out)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp, 0o644)  # mkstemp makes 0600; readers of the volume need to read the results
            os.replace(temp, target)
        except OSError as exc:
            with suppress(OSError):
                os.unlink(temp)
            raise self._error(exc, "write", target) from None
        except BaseException:
            with suppress(OSError):
                os.unlink(temp)
            raise

    async def iter_units(self) -> AsyncIterator[dict[str, Any]]:
        names = await asyncio.to_thread(self._unit_names)

        async def reads() -> AsyncGenerator[Callable[[], dict[str, Any]], None]:
            for name in names:
                yield lambda name=name: self._read_unit(self.units / name)

        async for run in _ordered(reads(), 8):
            yield run

    def _unit_names(self) -> list[str]:
        if not self.root.is_dir():
            raise SinkError(CLAIM_NOT_MOUNTED, f"claim {self.claim} is not mounted: {self.root} is not a directory")
        try:
            names = os.listdir(self.units)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise self._error(exc, "list", self.units) from None
        # Byte order of the (ASCII, percent-encoded) names: the same order as an S3 listing.
        return sorted(n for n in names if n.endswith(".json") and not n.startswith("."))

    def _read_unit(self, path: Path) -> dict[str, Any]:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise self._error(exc, "read", path) from None
        return _parse_unit(data, f"{self.url}{UNITS}{path.name}")

    def _error(self, exc: OSError, op: str, path: Path) -> SinkError:
        if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            reason = ACCESS_DENIED
        else:
            reason = READ_FAILED if op in ("read", "list") else WRITE_FAILED
        return SinkError(reason, f"{op} {path} (claim {self.claim}): {exc.strerror or exc}")


# --- from the ArenaJob spec -----------------------------------------------------------------------------------------


def sink_for(output: dict[str, Any], namespace: str, job: str, results_dir: Path | None) -> ResultSink:
    """The sink of an ArenaJob's `spec.output` (camelCase dict). `results_dir` is where a pvc output is mounted."""
    kind = (output or {}).get("type")
    if kind == "s3":
        s3 = output.get("s3") or {}
        if not s3.get("bucket"):
            raise SinkError(INVALID_OUTPUT, "spec.output.s3.bucket is required when type is s3")
        return S3Sink(s3["bucket"], s3.get("prefix"), namespace, job, region=s3.get("region"),
                      endpoint=s3.get("endpoint"))
    if kind == "pvc":
        pvc = output.get("pvc") or {}
        claim = pvc.get("claimName")
        if not claim:
            raise SinkError(INVALID_OUTPUT, "spec.output.pvc.claimName is required when type is pvc")
        if results_dir is None:
            raise SinkError(CLAIM_NOT_MOUNTED, f"claim {claim} is not mounted: no results directory was given")
        return DirSink(results_dir, claim, pvc.get("subPath"), namespace, job)
    raise SinkError(INVALID_OUTPUT, f"spec.output.type {kind!r} is not one of s3, pvc")
