"""Where a job's results go: an S3 bucket or a directory (a PVC mounted in the worker pods; `arena run`'s `--out`).

Layout under the job's root (`s3://bucket/<prefix><namespace>/<job>/` or `pvc://<claim>/<subPath><namespace>/<job>/`):
`units/<unit-id>.json`, one per work unit, written by the worker that ran it (overwriting is idempotent), and the
report files (`results.json`, `junit.xml`, ...) written once by the aggregating worker.

Both sinks list units in key order: the unit id, percent-encoded, sorted as bytes (S3's listing order); a directory
can also stream them unsorted (`iter_units(ordered=False)`), which is what the aggregation uses. The shared parts
are in sinkbase.py, the directory sink in dirsink.py (neither imports boto3); this module re-exports them.
For `arena run` the job's root is the `--out` directory itself (`DirSink.at`).
Errors are `SinkError`s with a CamelCase reason for conditions and a message naming the bucket or path; a message
never holds a credential.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from .dirsink import DirSink
from .sinkbase import (
    ACCESS_DENIED,
    BUCKET_NOT_FOUND,
    CLAIM_NOT_MOUNTED,
    CREDENTIALS_NOT_FOUND,
    ENDPOINT_UNREACHABLE,
    INVALID_ENDPOINT,
    INVALID_OUTPUT,
    INVALID_UNIT,
    READ_FAILED,
    UNITS,
    WRITE_FAILED,
    ResultSink,
    SinkError,
    file_name,
    object_name,
    ordered_calls,
    parse_unit,
    safe_prefix,
    segment,
    unit_bytes,
    unit_name,
)

__all__ = ["ACCESS_DENIED", "BUCKET_NOT_FOUND", "CLAIM_NOT_MOUNTED", "CREDENTIALS_NOT_FOUND", "ENDPOINT_UNREACHABLE",
           "INVALID_ENDPOINT", "INVALID_OUTPUT", "INVALID_UNIT", "READ_FAILED", "UNITS", "WRITE_FAILED", "DirSink",
           "ResultSink", "S3Sink", "SinkError", "safe_prefix", "sink_for", "unit_name"]

_CHECK_OBJECT = ".arena-write-check"
# S3 error codes that mean "these credentials may not do this".
_DENIED_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
                 "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem", "InvalidClientTokenId", "403"}
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")
_T = TypeVar("_T")
DEFAULT_OUTAGE_SECONDS = 120.0  # how long one S3 call waits out an unreachable or failing S3 before it fails
OUTAGE_ENV = "ARENA_SINK_OUTAGE_SECONDS"  # a worker pod's override (podOverrides extraEnv)
OUTAGE_BACKOFF_CAP_SECONDS = 8.0


# --- S3 -------------------------------------------------------------------------------------------------------------


class S3Sink:
    """Results in an S3 (or S3-compatible) bucket.

    Credentials come from boto3's standard chain: on a worker pod, the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
    AWS_SESSION_TOKEN env vars set from the output secret, else the pod's ambient identity. boto3 calls block, so
    they run in threads; botocore retries throttling and transient errors (`max_attempts`, standard mode).
    """

    def __init__(self, bucket: str, prefix: str | None, namespace: str, job: str, region: str | None = None,
                 endpoint: str | None = None, *, page_size: int = 1000, concurrency: int = 16,
                 max_attempts: int = 5, outage_seconds: float | None = None) -> None:
        self.bucket = bucket
        self.outage_seconds = float(os.environ.get(OUTAGE_ENV, DEFAULT_OUTAGE_SECONDS)) if outage_seconds is None \
            else outage_seconds
        self.base = f"{safe_prefix(prefix)}{segment(namespace, 'namespace')}/{segment(job, 'job')}/"
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

    @classmethod
    def at(cls, bucket: str, base: str, region: str | None = None, endpoint: str | None = None) -> S3Sink:
        """A sink whose job root is the key prefix `base` itself (reading a results URL such as a baseline)."""
        sink = cls(bucket, None, "-", "-", region=region, endpoint=endpoint)
        sink.base = safe_prefix(base)
        sink.url = f"s3://{bucket}/{sink.base}"
        return sink

    def key(self, name: str) -> str:
        return self.base + name

    async def check(self) -> None:
        """The bucket exists and may be listed (needed to aggregate) and written: a small marker object, removed
        again so the results prefix holds results only (a role that may not delete leaves it behind, harmless)."""
        await self._call("list", self.base, self._client.list_objects_v2, Bucket=self.bucket, Prefix=self.base,
                         MaxKeys=1)
        marker = self.key(_CHECK_OBJECT)
        await self._call("write", marker, self._client.put_object, Bucket=self.bucket, Key=marker, Body=b"ok\n",
                         ContentType="text/plain")
        with contextlib.suppress(SinkError):
            await self._call("delete", marker, self._client.delete_object, Bucket=self.bucket, Key=marker)

    async def put_unit(self, unit_id: str, run: dict[str, Any]) -> None:
        key = self.key(UNITS + unit_name(unit_id))
        await self._call("write", key, self._client.put_object, Bucket=self.bucket, Key=key, Body=unit_bytes(run),
                         ContentType="application/json")

    async def iter_units(self, *, ordered: bool = True) -> AsyncIterator[dict[str, Any]]:
        """Always in key order: S3 lists that way, page by page, so nothing is held either way."""
        async for run in ordered_calls(self._unit_reads(), self.concurrency):
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
        return parse_unit(data, f"s3://{self.bucket}/{key}")

    async def put_file(self, name: str, path: Path, content_type: str) -> None:
        await self._upload(self.key(file_name(name)), path, content_type)

    async def put_object(self, name: str, path: Path, content_type: str) -> None:
        await self._upload(self.key(object_name(name)), path, content_type)

    async def get_object(self, name: str, dest: Path) -> None:
        key = self.key(object_name(name))
        await self._call("read", key, self._client.download_file, Bucket=self.bucket, Key=key, Filename=str(dest))

    async def _upload(self, key: str, path: Path, content_type: str) -> None:
        # upload_file switches to a multipart upload for large files (results.json of a big job).
        await self._call("write", key, self._client.upload_file, Filename=str(path), Bucket=self.bucket, Key=key,
                         ExtraArgs={"ContentType": content_type},
                         Config=TransferConfig(max_concurrency=4, use_threads=True))

    async def _call(self, op: str, key: str, fn: Callable[..., _T], /, **kwargs: Any) -> _T:
        """One S3 call; an outage (unreachable endpoint, dropped connection, 5xx) is ridden out for up to
        `outage_seconds` with jittered backoff beyond botocore's own few retries, so that a result already computed
        is not lost to an S3 blip. Anything else fails at once."""
        started, attempt = time.monotonic(), 0
        while True:
            try:
                return await asyncio.to_thread(fn, **kwargs)
            except Exception as exc:
                # boto3's managed transfer wraps the ClientError (S3UploadFailedError); map the original.
                cause = exc if isinstance(exc, BotoCoreError | ClientError) else exc.__context__
                if not isinstance(cause, BotoCoreError | ClientError):
                    raise
                waited = time.monotonic() - started
                if not _transient(cause) or waited >= self.outage_seconds:
                    error = self._error(cause, op, key)
                    if waited >= self.outage_seconds > 0:
                        error = SinkError(error.reason, f"{error.message} (gave up after {self.outage_seconds:g}s of "
                                                        f"retries, {OUTAGE_ENV})")
                    raise error from None
            attempt += 1
            await asyncio.sleep(random.uniform(0, min(OUTAGE_BACKOFF_CAP_SECONDS, 0.5 * 2 ** attempt)))

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


def _transient(exc: BaseException) -> bool:
    """S3 is unreachable or failing on its side (worth waiting for), not refusing this request."""
    if isinstance(exc, ClientError):
        return int((exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0) >= 500
    return isinstance(exc, BotoConnectionError | ConnectionClosedError | ReadTimeoutError)


def _scrub(message: str) -> str:
    """Defence in depth: botocore messages carry no secrets, but never let a credential value through."""
    for name in _SECRET_ENV:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            message = message.replace(value, "***")
    return message



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
