"""A worker's side of an artifact: download it, refuse it unless its sha256 is the one the operator recorded,
unpack it with the same path-safety and size limits as every other artifact."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import httpx

from ..api.conditions import ARTIFACT_TOO_LARGE, DIGEST_MISMATCH, UNREACHABLE
from .artifact import DEFAULT_MAX_BYTES, safe_extract
from .errors import SourceError

DOWNLOAD_TIMEOUT_SECONDS = 60.0


async def fetch_bundle(url: str, digest: str, dest: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Path:
    """The unpacked bundle at ``dest``; SourceError when the server refuses, the size or the digest is wrong."""
    archive = dest.with_suffix(".tar.gz")
    hasher = hashlib.sha256()
    size = 0
    try:
        async with httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT_SECONDS) as client, \
                client.stream("GET", url) as response:
            if response.status_code != 200:
                raise SourceError(UNREACHABLE, f"artifact {url}: HTTP {response.status_code}")
            with archive.open("wb") as out:
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise SourceError(ARTIFACT_TOO_LARGE, f"artifact {url} is larger than {max_bytes} bytes")
                    hasher.update(chunk)
                    out.write(chunk)
    except httpx.HTTPError as exc:
        raise SourceError(UNREACHABLE, f"artifact {url}: {type(exc).__name__}", retryable=True) from None
    actual = f"sha256:{hasher.hexdigest()}"
    if actual != digest:
        archive.unlink(missing_ok=True)
        raise SourceError(DIGEST_MISMATCH, f"artifact {url} has digest {actual}, expected {digest}: refusing to run it")
    dest.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(safe_extract, archive, dest, max_bytes)
    archive.unlink()
    return dest
