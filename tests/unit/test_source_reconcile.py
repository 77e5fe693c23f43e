"""The ArenaSource reconcile steps, table-driven, with in-memory fetchers (the real ones have their own tests)."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from arena_operator.api.arenasource import ArenaSourceSpec
from arena_operator.api.common import FLUX_REQUESTED_AT_ANNOTATION, REQUESTED_AT_ANNOTATION
from arena_operator.operator.config import OperatorConfig
from arena_operator.reconcile import arenasource as rc
from arena_operator.sources.errors import SourceError
from arena_operator.sources.store import ArtifactStore

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class FakeFetcher:
    """Copies a bundle directory; counts remote checks and fetches."""

    def __init__(self, bundle: Path, revision: str = "main@sha1:" + "a" * 40, delay: float = 0.0) -> None:
        self.bundle, self.revision, self.delay = bundle, revision, delay
        self.checks = self.fetches = 0

    async def remote_revision(self) -> str:
        self.checks += 1
        return self.revision

    async def fetch(self, dest: Path) -> str:
        self.fetches += 1
        await asyncio.sleep(self.delay)
        shutil.copytree(self.bundle, dest, dirs_exist_ok=True)
        return self.revision


def make_ctx(tmp_path: Path, status: dict[str, Any] | None = None, spec: dict[str, Any] | None = None,
             annotations: dict[str, str] | None = None, generation: int = 1) -> rc.SourceContext:
    async def no_secret(namespace: str, name: str) -> dict[str, str]:
        raise LookupError(name)

    async def no_cm(namespace: str, name: str) -> tuple[dict[str, str], str]:
        raise LookupError(name)

    raw = spec or {"type": "git", "interval": "5m", "timeout": "300ms", "git": {"url": "https://example.com/r"}}
    return rc.SourceContext("ns", "src", generation, ArenaSourceSpec.model_validate(raw), status or {},
                            annotations or {}, ArtifactStore(tmp_path / "store"), "http://op:8080", no_secret, no_cm,
                            now=NOW)


@pytest.fixture
def fetcher(monkeypatch: pytest.MonkeyPatch) -> FakeFetcher:
    fake = FakeFetcher(REPO / "examples" / "quickstart")

    async def build(ctx: rc.SourceContext, timeout: float) -> FakeFetcher:
        return fake

    monkeypatch.setattr(rc, "build_fetcher", build)
    return fake


@pytest.mark.parametrize(("status", "annotations", "generation", "cm", "expected"), [
    ({}, {}, 1, None, "spec changed"),
    ({"observedGeneration": 1, "nextFetchTime": "2026-11-23T12:05:00Z"}, {}, 1, None, None),
    ({"observedGeneration": 1, "nextFetchTime": "2026-11-23T11:59:00Z"}, {}, 1, None, "interval elapsed"),
    ({"observedGeneration": 1, "nextFetchTime": "2026-11-23T12:05:00Z"}, {}, 2, None, "spec changed"),
    ({"observedGeneration": 1, "nextFetchTime": "2026-11-23T12:05:00Z", "lastHandledReconcileAt": "a"},
     {REQUESTED_AT_ANNOTATION: "b"}, 1, None, "reconcile requested"),
    ({"observedGeneration": 1, "nextFetchTime": "2026-11-23T12:05:00Z", "lastHandledReconcileAt": "b"},
     {REQUESTED_AT_ANNOTATION: "b"}, 1, None, None),
    ({"observedGeneration": 1, "nextFetchTime": "2026-11-23T12:05:00Z", "lastHandledReconcileAt": "a"},
     {FLUX_REQUESTED_AT_ANNOTATION: "2026-11-23T12:00:00Z"}, 1, None, "reconcile requested"),
    ({"observedGeneration": 1, "nextFetchTime": "2026-11-23T12:05:00Z", "artifact": {"revision": "7"}},
     {}, 1, "8", "configmap changed"),
])
def test_is_due(tmp_path: Path, status: dict[str, Any], annotations: dict[str, str], generation: int,
                cm: str | None, expected: str | None) -> None:
    assert rc.is_due(make_ctx(tmp_path, status, annotations=annotations, generation=generation), cm) == expected


def test_jitter_and_backoff() -> None:
    times = {rc.next_fetch(NOW, 300) for _ in range(50)}
    assert len(times) > 1
    assert all(NOW + timedelta(seconds=270) <= t <= NOW + timedelta(seconds=330) for t in times)
    assert [rc.backoff(n, 300) for n in (1, 2, 3, 4, 5, 6)] == [10, 20, 40, 80, 160, 300]


async def test_fetches_once_then_only_checks(tmp_path: Path, fetcher: FakeFetcher) -> None:
    ctx = make_ctx(tmp_path)
    first = await rc.reconcile_source(ctx)
    assert first.status["phase"] == "Ready" and fetcher.fetches == 1
    artifact = first.status["artifact"]
    assert artifact["url"].startswith("http://op:8080/artifacts/ns/src/") and artifact["size"] > 0
    assert [e.reason for e in first.events] == ["NewArtifact"]
    again = await rc.reconcile_source(make_ctx(tmp_path, {**first.status}))
    assert fetcher.fetches == 1 and fetcher.checks == 2
    assert "artifact" not in again.status and not again.events
    fetcher.revision = "main@sha1:" + "b" * 40
    changed = await rc.reconcile_source(make_ctx(tmp_path, {**first.status}))
    assert fetcher.fetches == 2 and changed.status["artifact"]["revision"].endswith("b" * 40)
    assert changed.status["artifact"]["digest"] == artifact["digest"]  # same content, same digest


async def test_timeout_and_backoff_on_failure(tmp_path: Path, fetcher: FakeFetcher) -> None:
    fetcher.delay = 5
    out = await rc.reconcile_source(make_ctx(tmp_path, {"consecutiveFailures": 2}))
    assert out.status["phase"] == "Error" and out.status["consecutiveFailures"] == 3
    assert out.status["nextFetchTime"] == "2026-11-23T12:00:40Z"
    ready = out.conditions["Ready"]
    assert (ready.status, ready.reason) == (False, "FetchTimeout") and "0.3s" in ready.message
    assert out.conditions["FetchFailed"].status is True
    assert out.events[0].type == "Warning" and "retrying in 40s" in out.events[0].message


async def test_suspend_stops_polling(tmp_path: Path, fetcher: FakeFetcher) -> None:
    spec = {"type": "git", "suspend": True, "git": {"url": "https://example.com/r"}}
    out = await rc.reconcile_source(make_ctx(tmp_path, spec=spec))
    assert out.status["phase"] == "Suspended" and fetcher.checks == 0
    assert rc.is_due(make_ctx(tmp_path, {"phase": "Suspended"}, spec=spec)) is None


async def test_missing_secret_is_named(tmp_path: Path) -> None:
    spec = {"type": "git", "git": {"url": "https://example.com/r", "secretRef": {"name": "creds"}}}
    out = await rc.reconcile_source(make_ctx(tmp_path, spec=spec))
    ready = out.conditions["Ready"]
    assert ready.reason == "SecretNotFound" and "ns/creds" in ready.message


async def test_artifact_size_limit(tmp_path: Path, fetcher: FakeFetcher) -> None:
    ctx = make_ctx(tmp_path)
    ctx.max_bytes = 100
    out = await rc.reconcile_source(ctx)
    assert out.conditions["Ready"].reason == "ArtifactTooLarge"


def test_source_error_reasons_are_constants() -> None:
    error = SourceError("RevisionNotFound", "branch nope not found")
    assert error.reason == "RevisionNotFound" and "nope" in str(error)


async def test_moved_artifact_server_updates_urls_without_fetching(tmp_path: Path, fetcher: FakeFetcher) -> None:
    first = await rc.reconcile_source(make_ctx(tmp_path))
    moved = make_ctx(tmp_path, {**first.status})
    moved.base_url = "http://new-svc:9090"
    assert rc.is_due(moved) == "artifact server moved"
    out = await rc.reconcile_source(moved)
    assert out.status["artifact"]["url"].startswith("http://new-svc:9090/artifacts/ns/src/")
    assert fetcher.fetches == 1


def test_artifact_base_url_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARENA_ARTIFACT_HOST", "0.0.0.0")
    monkeypatch.setenv("POD_IP", "10.1.2.3")
    monkeypatch.delenv("ARENA_ARTIFACT_BASE_URL", raising=False)
    assert OperatorConfig.from_env().base_url(8080) == "http://10.1.2.3:8080"
    monkeypatch.setenv("ARENA_ARTIFACT_BASE_URL", "http://arena-operator.arena-system.svc:8080")
    assert OperatorConfig.from_env().base_url(8080) == "http://arena-operator.arena-system.svc:8080"
    monkeypatch.setenv("ARENA_ARTIFACT_HOST", "127.0.0.1")
    monkeypatch.delenv("ARENA_ARTIFACT_BASE_URL")
    assert OperatorConfig.from_env().base_url(9) == "http://127.0.0.1:9"
