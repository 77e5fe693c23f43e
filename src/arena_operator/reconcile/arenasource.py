"""One reconcile pass of an ArenaSource, as ordered steps: decide → resolve credentials → check the remote
revision (cheap) → fetch → validate the bundle → package and store the artifact. No kopf in here: the handler
turns the outcome into a status patch and events."""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from ..api.common import parse_duration, parse_rfc3339, rfc3339
from ..engine.bundle import load_bundle
from ..engine.errors import BundleInvalid
from ..sources.artifact import DEFAULT_MAX_BYTES, build_artifact, files_from_mapping
from ..sources.errors import SourceError
from ..sources.git import GitAuth, GitSource
from ..sources.oci import OCIAuth, OCISource
from ..sources.store import ArtifactStore

REQUESTED_AT = "omnia.altairalabs.ai/reconcile-requested-at"
JITTER = 0.10
MAX_PROBLEMS_SHOWN = 5


class Fetcher(Protocol):
    async def remote_revision(self) -> str: ...

    async def fetch(self, dest: Path) -> str: ...


SecretReader = Callable[[str, str], Awaitable[dict[str, str]]]
ConfigMapReader = Callable[[str, str], Awaitable[tuple[dict[str, str], str]]]


@dataclass
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Outcome:
    """What the pass found: the status fields to patch and the events to post."""

    status: dict[str, Any] = field(default_factory=dict)
    conditions: list[tuple[str, bool, str, str]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


@dataclass
class SourceContext:
    namespace: str
    name: str
    generation: int
    spec: Any  # api ArenaSourceSpec
    status: dict[str, Any]
    annotations: dict[str, str]
    store: ArtifactStore
    base_url: str
    read_secret: SecretReader
    read_config_map: ConfigMapReader
    max_bytes: int = DEFAULT_MAX_BYTES
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


def next_fetch(now: datetime, interval: float) -> datetime:
    """Interval ± 10 % jitter, so a hundred sources created together don't poll together."""
    return now + timedelta(seconds=interval * random.uniform(1 - JITTER, 1 + JITTER))


def backoff(failures: int, interval: float) -> float:
    """10 s, 20 s, 40 s … after consecutive failures, never longer than the interval."""
    return min(interval, 10.0 * (2 ** max(0, failures - 1)))


def _artifact_prefix(ctx: SourceContext) -> str:
    return f"{ctx.base_url.rstrip('/')}/artifacts/"


def is_due(ctx: SourceContext, configmap_version: str | None = None) -> str | None:
    """Why this source should be reconciled now, or None. Cheap: no network."""
    status = ctx.status
    if ctx.spec.suspend:
        return None if status.get("phase") == "Suspended" else "suspended"
    if status.get("observedGeneration") != ctx.generation:
        return "spec changed"
    requested = ctx.annotations.get(REQUESTED_AT)
    if requested and requested != status.get("lastHandledReconcileAt"):
        return "reconcile requested"
    artifact = status.get("artifact") or {}
    if configmap_version is not None and configmap_version != artifact.get("revision"):
        return "configmap changed"
    if artifact.get("url") and not artifact["url"].startswith(_artifact_prefix(ctx)):
        return "artifact server moved"
    due = parse_rfc3339(status.get("nextFetchTime"))
    if due is None or ctx.now >= due:
        return "interval elapsed"
    return None


async def _secret(ctx: SourceContext, ref: Any) -> dict[str, str] | None:
    if ref is None:
        return None
    try:
        return await ctx.read_secret(ctx.namespace, ref.name)
    except LookupError:
        raise SourceError("SecretNotFound", f"secret {ctx.namespace}/{ref.name} (secretRef) not found",
                          retryable=True) from None


class _ConfigMapFetcher:
    def __init__(self, ctx: SourceContext) -> None:
        self.ctx = ctx
        self.spec = ctx.spec.config_map

    async def _read(self) -> tuple[dict[str, str], str]:
        try:
            return await self.ctx.read_config_map(self.ctx.namespace, self.spec.name)
        except LookupError:
            raise SourceError("ConfigMapNotFound", f"configmap {self.ctx.namespace}/{self.spec.name} not found",
                              retryable=True) from None

    async def remote_revision(self) -> str:
        return (await self._read())[1]

    async def fetch(self, dest: Path) -> str:
        data, version = await self._read()
        if self.spec.key:
            if self.spec.key not in data:
                raise SourceError("InvalidBundleLayout", f"configmap {self.spec.name} has no key {self.spec.key!r} "
                                  f"(keys: {sorted(data)})")
            data = {self.spec.key: data[self.spec.key]}
        files_from_mapping(data, dest)
        return version


async def build_fetcher(ctx: SourceContext, timeout: float) -> Fetcher:
    spec = ctx.spec
    if spec.type == "git":
        git = spec.git
        secret = await _secret(ctx, git.secret_ref)
        ref = git.ref
        return GitSource(git.url, branch=ref.branch if ref else None, tag=ref.tag if ref else None,
                         commit=ref.commit if ref else None, path=git.path,
                         auth=GitAuth.from_secret(secret) if secret else None, timeout=timeout)
    if spec.type == "oci":
        oci = spec.oci
        secret = await _secret(ctx, oci.secret_ref)
        auth = None
        if secret:
            config = secret.get(".dockerconfigjson")
            if config is None:
                raise SourceError("InvalidSecret", f"secret {oci.secret_ref.name} is not of type "
                                  "kubernetes.io/dockerconfigjson (no .dockerconfigjson key)")
            auth = OCIAuth.from_dockerconfigjson(config, OCISource.host_of(oci.url))
        return OCISource(oci.url, auth=auth, insecure=oci.insecure, timeout=timeout)
    return _ConfigMapFetcher(ctx)


def _validate_bundle(directory: Path) -> None:
    try:
        load_bundle(directory)
    except BundleInvalid as exc:
        shown = "; ".join(str(p) for p in exc.problems[:MAX_PROBLEMS_SHOWN])
        more = len(exc.problems) - MAX_PROBLEMS_SHOWN
        suffix = f" (and {more} more)" if more > 0 else ""
        raise SourceError("InvalidBundle", f"{shown}{suffix}") from None


async def _fetch_and_store(ctx: SourceContext, fetcher: Fetcher, timeout: float) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="fetch-", dir=ctx.store.scratch()))
    try:
        content = scratch / "content"
        content.mkdir()
        try:
            revision = await asyncio.wait_for(fetcher.fetch(content), timeout)
        except TimeoutError:
            raise SourceError("FetchTimeout", f"fetch did not finish within {timeout:g}s (spec.timeout)",
                              retryable=True) from None
        await asyncio.to_thread(_validate_bundle, content)
        info = await asyncio.to_thread(build_artifact, content, scratch / "artifact.tar.gz")
        if info.size > ctx.max_bytes:
            raise SourceError("ArtifactTooLarge", f"artifact is {info.size} bytes, over the {ctx.max_bytes}-byte limit")
        stored = await asyncio.to_thread(ctx.store.put, ctx.namespace, ctx.name, info.digest,
                                         scratch / "artifact.tar.gz")
        return {"revision": revision, "digest": info.digest, "size": info.size,
                "url": _artifact_prefix(ctx) + stored.relative_url, "lastUpdateTime": rfc3339(ctx.now)}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def reconcile_source(ctx: SourceContext) -> Outcome:
    """Run the steps; the first error stops the pass and becomes conditions, an event and a backoff."""
    spec, status = ctx.spec, ctx.status
    out = Outcome(status={"observedGeneration": ctx.generation})
    requested = ctx.annotations.get(REQUESTED_AT)
    if requested:
        out.status["lastHandledReconcileAt"] = requested
    if spec.suspend:
        out.status["phase"] = "Suspended"
        out.events.append(Event("Normal", "Suspended", "polling stopped (spec.suspend)"))
        return out
    interval = parse_duration(spec.interval).total_seconds()
    timeout = parse_duration(spec.timeout).total_seconds()
    current = status.get("artifact") or {}
    try:
        fetcher = await build_fetcher(ctx, timeout)
        try:
            remote = await asyncio.wait_for(fetcher.remote_revision(), timeout)
        except TimeoutError:
            raise SourceError("FetchTimeout", f"revision check did not finish within {timeout:g}s",
                              retryable=True) from None
        unchanged = (remote == current.get("revision") and current.get("digest")
                     and ctx.store.has(ctx.namespace, ctx.name, current["digest"]))
        if unchanged:
            stored = ctx.store.location(ctx.namespace, ctx.name, current["digest"])
            if current.get("url") != _artifact_prefix(ctx) + stored.relative_url:
                out.status["artifact"] = {**current, "url": _artifact_prefix(ctx) + stored.relative_url}
        else:
            artifact = await _fetch_and_store(ctx, fetcher, timeout)
            out.status["artifact"] = artifact
            out.status["lastFetchTime"] = rfc3339(ctx.now)
            changed = artifact["revision"] != current.get("revision") or artifact["digest"] != current.get("digest")
            if changed:
                out.events.append(Event("Normal", "NewArtifact",
                                        f"stored artifact for revision {artifact['revision']} ({artifact['digest']})"))
    except SourceError as exc:
        return _failed(ctx, out, exc, interval)
    out.status.update(phase="Ready", consecutiveFailures=0, nextFetchTime=rfc3339(next_fetch(ctx.now, interval)))
    revision = (out.status.get("artifact") or current).get("revision")
    out.conditions += [("SourceValid", True, "Succeeded", f"bundle at {revision} is valid"),
                       ("ArtifactAvailable", True, "Succeeded", f"artifact for revision {revision} is available"),
                       ("Ready", True, "Succeeded", f"stored artifact for revision {revision}")]
    return out


def _failed(ctx: SourceContext, out: Outcome, exc: SourceError, interval: float) -> Outcome:
    """Keep the last good artifact, say precisely what is wrong, and retry with backoff."""
    failures = int(ctx.status.get("consecutiveFailures") or 0) + 1
    delay = backoff(failures, interval)
    has_artifact = bool((ctx.status.get("artifact") or {}).get("digest"))
    out.status.update(phase="Error", consecutiveFailures=failures,
                      nextFetchTime=rfc3339(ctx.now + timedelta(seconds=delay)))
    if exc.reason == "InvalidBundle":
        out.conditions.append(("SourceValid", False, exc.reason, exc.message))
    out.conditions.append(("ArtifactAvailable", has_artifact, "LastGoodArtifact" if has_artifact else exc.reason,
                           "serving the last good artifact" if has_artifact else exc.message))
    out.conditions.append(("Ready", False, exc.reason, exc.message))
    out.events.append(Event("Warning", exc.reason, f"{exc.message} (retrying in {delay:.0f}s)"))
    return out
