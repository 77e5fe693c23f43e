"""The results at a URL, as a sink to read them from: ``s3://bucket/prefix/``, ``pvc://claim/path/`` (the claim
a worker has mounted) or a local directory (``arena run --out``, ``arena diff``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .dirsink import DirSink
from .sinkbase import CLAIM_NOT_MOUNTED, INVALID_LOCATION, ResultSink, SinkError, safe_prefix


def sink_at(url: str, *, output: dict[str, Any] | None = None, results_dir: Path | None = None) -> ResultSink:
    """S3 reads reuse the region and endpoint of this job's own S3 output (credentials come from the
    environment); a pvc:// location must be on the claim this process has mounted at `results_dir`."""
    output = output or {}
    if url.startswith("s3://"):
        from .sinks import S3Sink  # boto3 only where S3 is read

        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise SinkError(INVALID_LOCATION, f"{url}: no bucket")
        s3 = output.get("s3") or {} if output.get("type") == "s3" else {}
        return S3Sink.at(bucket, safe_prefix(prefix, "results URL"), region=s3.get("region"),
                         endpoint=s3.get("endpoint"))
    if url.startswith("pvc://"):
        claim, _, path = url.removeprefix("pvc://").partition("/")
        mounted = (output.get("pvc") or {}).get("claimName") if output.get("type") == "pvc" else None
        if results_dir is None or claim != mounted:
            raise SinkError(CLAIM_NOT_MOUNTED, f"{url}: claim {claim} is not mounted here"
                            + (f" (this job mounts {mounted})" if mounted else ""))
        return DirSink.at(results_dir / safe_prefix(path, "results URL"))
    if "://" in url and not url.startswith("file://"):
        raise SinkError(INVALID_LOCATION, f"{url}: expected s3://, pvc:// or a directory")
    directory = Path(url.removeprefix("file://"))
    if not directory.is_dir():
        raise SinkError(INVALID_LOCATION, f"{url}: no such results directory")
    return DirSink.at(directory)
