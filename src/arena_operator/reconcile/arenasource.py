"""One reconcile pass of an ArenaSource, as ordered steps: suspended? → fetch (credentials, the remote revision
(cheap), fetch only when it changed, validate the bundle, package and store the artifact). No kopf in here."""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..api import conditions as c
from ..api.common import FLUX_REQUESTED_AT_ANNOTATION, REQUESTED_AT_ANNOTATION, parse_duration, parse_rfc3339, rfc3339
from ..sources.artifact import DEFAULT_MAX_BYTES, build_artifact
from ..sources.bounded import Budget, validate_bounded
from ..sources.errors import SourceError
from ..sources.fetchers import Fetcher, fetcher_for, secret_ref_of
from ..sources.store import ArtifactStore, artifact_url_prefix
from ..sources.workspace import namespace_root, sync_version, version_of
from .outcome import Outcome, ReadyRule, Step, run_steps

JITTER = 0.10
READY_RULE = ReadyRule(positive=(c.SOURCE_VALID, c.ARTIFACT_AVAILABLE),
                       abnormal=(c.STALLED, c.FETCH_FAILED_CONDITION))

SecretReader = Callable[[str, str], Awaitable[dict[str, str]]]
ConfigMapReader = Callable[[str, str], Awaitable[tuple[dict[str, str], str]]]


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
    workspace_dir: Path | None = None  # the workspace volume ($ARENA_WORKSPACE_DIR), if the operator mounts one
    validation_budget: Budget = field(default_factory=Budget)  # time and memory one bundle's validation may take
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def workspace_root(self) -> Path | None:
        """This namespace's subtree of the workspace volume."""
        return namespace_root(self.workspace_dir, self.namespace) if self.workspace_dir else None


def next_fetch(now: datetime, interval: float) -> datetime:
    """Interval ± 10 % jitter, so a hundred sources created together don't poll together."""
    return now + timedelta(seconds=interval * random.uniform(1 - JITTER, 1 + JITTER))


def backoff(failures: int, interval: float) -> float:
    """10 s, 20 s, 40 s … after consecutive failures, never longer than the interval."""
    return min(interval, 10.0 * (2 ** max(0, failures - 1)))


def _artifact_prefix(ctx: SourceContext) -> str:
    return artifact_url_prefix(ctx.base_url)


def is_due(ctx: SourceContext, configmap_version: str | None = None) -> str | None:
    """Why this source should be reconciled now, or None. Cheap: no network."""
    status = ctx.status
    if ctx.spec.suspend:
        return None if status.get("phase") == "Suspended" else "suspended"
    if status.get("observedGeneration") != ctx.generation:
        return "spec changed"
    requested = requested_at(ctx.annotations)
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


def requested_at(annotations: dict[str, str]) -> str | None:
    """A manual reconcile request: our annotation, or Flux's (`flux reconcile source ...` sets it)."""
    return annotations.get(REQUESTED_AT_ANNOTATION) or annotations.get(FLUX_REQUESTED_AT_ANNOTATION)


async def build_fetcher(ctx: SourceContext, timeout: float) -> Fetcher:
    ref = secret_ref_of(ctx.spec)
    secret = None
    if ref is not None:
        try:
            secret = await ctx.read_secret(ctx.namespace, ref.name)
        except LookupError:
            raise SourceError(c.SECRET_NOT_FOUND, f"secret {ctx.namespace}/{ref.name} (secretRef) not found",
                              retryable=True) from None

    async def read_config_map(name: str) -> tuple[dict[str, str], str]:
        return await ctx.read_config_map(ctx.namespace, name)

    return fetcher_for(ctx.spec, secret, read_config_map, timeout=timeout, namespace=ctx.namespace,
                       workspace_root=ctx.workspace_root)


async def _fetch_and_store(ctx: SourceContext, fetcher: Fetcher, timeout: float) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="fetch-", dir=ctx.store.scratch()))
    try:
        content = scratch / "content"
        content.mkdir()
        try:
            revision = await asyncio.wait_for(fetcher.fetch(content), timeout)
        except TimeoutError:
            raise SourceError(c.FETCH_TIMEOUT, f"fetch did not finish within {timeout:g}s (spec.timeout)",
                              retryable=True) from None
        await validate_bounded(content, ctx.validation_budget)
        info = await asyncio.to_thread(build_artifact, content, scratch / "artifact.tar.gz")
        if info.size > ctx.max_bytes:
            raise SourceError(c.ARTIFACT_TOO_LARGE,
                              f"artifact is {info.size} bytes, over the {ctx.max_bytes}-byte limit")
        stored = await asyncio.to_thread(ctx.store.put, ctx.namespace, ctx.name, info.digest,
                                         scratch / "artifact.tar.gz")
        version = version_of(info.digest)
        artifact = {"revision": revision, "digest": info.digest, "size": info.size, "checksum": info.digest,
                    "version": version, "url": _artifact_prefix(ctx) + stored.relative_url,
                    "lastUpdateTime": rfc3339(ctx.now)}
        if ctx.workspace_root is not None:  # the Go operator's layout on the volume, for tools that read it
            target = ctx.spec.target_path or f"arena/{ctx.name}"
            artifact["contentPath"] = await asyncio.to_thread(sync_version, ctx.workspace_root, target, version,
                                                              content, ctx.store.keep)
        return artifact
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def step_suspended(ctx: SourceContext, out: Outcome) -> None:
    """A suspended source keeps its artifact and conditions and stops polling."""
    if ctx.spec.suspend:
        out.status["phase"] = "Suspended"
        out.event("Normal", c.SUSPENDED, "polling stopped (spec.suspend)")
        out.stop()


async def step_fetch(ctx: SourceContext, out: Outcome) -> None:
    """Check the remote revision; fetch, validate and store only when it changed; on error keep the last good."""
    interval = parse_duration(ctx.spec.interval).total_seconds()
    timeout = parse_duration(ctx.spec.timeout).total_seconds()
    current = ctx.status.get("artifact") or {}
    try:
        fetcher = await build_fetcher(ctx, timeout)
        try:
            remote = await asyncio.wait_for(fetcher.remote_revision(), timeout)
        except TimeoutError:
            raise SourceError(c.FETCH_TIMEOUT, f"revision check did not finish within {timeout:g}s",
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
            if artifact["revision"] != current.get("revision") or artifact["digest"] != current.get("digest"):
                out.event("Normal", c.NEW_ARTIFACT,
                          f"stored artifact for revision {artifact['revision']} ({artifact['digest']})")
    except SourceError as exc:
        _failed(ctx, out, exc, interval)
        return
    out.status.update(phase="Ready", consecutiveFailures=0, nextFetchTime=rfc3339(next_fetch(ctx.now, interval)))
    revision = (out.status.get("artifact") or current).get("revision")
    out.remove_condition(c.FETCH_FAILED_CONDITION)
    out.condition(c.SOURCE_VALID, True, c.SUCCEEDED, f"bundle at {revision} is valid")
    out.condition(c.ARTIFACT_AVAILABLE, True, c.SUCCEEDED, f"stored artifact for revision {revision}")


STEPS: tuple[Step[SourceContext], ...] = (
    Step(step_suspended),
    Step(step_fetch, owns=(c.FETCH_FAILED_CONDITION, c.SOURCE_VALID, c.ARTIFACT_AVAILABLE)),
)


async def reconcile_source(ctx: SourceContext) -> Outcome:
    """Run the steps; the first error stops the pass and becomes conditions, an event and a backoff."""
    out = Outcome(status={"observedGeneration": ctx.generation})
    requested = requested_at(ctx.annotations)
    if requested:
        out.status["lastHandledReconcileAt"] = requested
    return await run_steps(ctx, STEPS, out, ctx.status.get("conditions") or [], READY_RULE)


def _failed(ctx: SourceContext, out: Outcome, exc: SourceError, interval: float) -> None:
    """Keep the last good artifact, say precisely what is wrong, and retry with backoff."""
    failures = int(ctx.status.get("consecutiveFailures") or 0) + 1
    delay = backoff(failures, interval)
    has_artifact = bool((ctx.status.get("artifact") or {}).get("digest"))
    out.status.update(phase="Error", consecutiveFailures=failures,
                      nextFetchTime=rfc3339(ctx.now + timedelta(seconds=delay)))
    if exc.reason in (c.INVALID_BUNDLE, c.VALIDATION_BUDGET_EXCEEDED):
        out.condition(c.SOURCE_VALID, False, exc.reason, exc.message)
    else:
        out.condition(c.FETCH_FAILED_CONDITION, True, exc.reason, exc.message)
    out.condition(c.ARTIFACT_AVAILABLE, has_artifact, c.LAST_GOOD_ARTIFACT if has_artifact else exc.reason,
                  "serving the last good artifact" if has_artifact else exc.message)
    out.event("Warning", exc.reason, f"{exc.message} (retrying in {delay:.0f}s)")
    out.stop()
