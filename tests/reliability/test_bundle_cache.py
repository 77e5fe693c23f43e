"""The unpacked bundle cache (`<artifact dir>/.bundles/<digest>/`) follows the artifacts (issue 17, Load): it was
never collected, so the operator's volume grew with every revision of every source. Now an unpacked bundle goes
with the last artifact of its digest (a digest two sources share stays while either keeps it), with its source,
and — for what an older operator left behind — when the store opens. The real store and real artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest

from arena_operator.sources.artifact import build_artifact
from arena_operator.sources.errors import SourceError
from arena_operator.sources.store import BUNDLES_DIR, ArtifactStore
from tests.reliability.cluster import FULL

REVISIONS = 200 if FULL else 40
MAX_BYTES = 10_000_000


def store_revision(store: ArtifactStore, tmp: Path, source: str, revision: int) -> str:
    """Revision `revision` of a one-file bundle, stored and unpacked as an ArenaConfig's validation does."""
    content = tmp / f"content-{source}-{revision}"
    content.mkdir()
    (content / "config.arena.yaml").write_text(f"revision: {revision}\n")
    info = build_artifact(content, tmp / f"{source}-{revision}.tar.gz")
    store.put("ns", source, info.digest, tmp / f"{source}-{revision}.tar.gz")
    store.unpacked("ns", source, info.digest, MAX_BYTES)
    return info.digest.removeprefix("sha256:")


def unpacked(store: ArtifactStore) -> set[str]:
    return {path.name for path in (store.root / BUNDLES_DIR).iterdir()}


def kept(store: ArtifactStore, source: str) -> set[str]:
    return {path.name.removesuffix(".tar.gz") for path in (store.root / "ns" / source).glob("*.tar.gz")}


def test_many_revisions_leave_only_the_kept_artifacts_bundles(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store", keep=3)
    most = 0
    for revision in range(REVISIONS):
        store_revision(store, tmp_path, "a", revision)
        most = max(most, len(unpacked(store)))
        assert unpacked(store) == kept(store, "a")
    assert most == 3 and len(kept(store, "a")) == 3


def test_a_digest_two_sources_keep_stays_unpacked_until_neither_keeps_it(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store", keep=2)
    shared = store_revision(store, tmp_path, "a", 0)
    assert store_revision(store, tmp_path, "b", 0) == shared  # the same content: the same digest
    for revision in range(1, 4):  # a moves on, b keeps revision 0
        store_revision(store, tmp_path, "a", revision)
    assert shared in unpacked(store) and unpacked(store) == kept(store, "a") | kept(store, "b")
    store.remove_source("ns", "b")
    assert shared not in unpacked(store) and unpacked(store) == kept(store, "a")


def test_bundles_an_older_operator_left_go_when_the_store_opens(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store", keep=3)
    live = store_revision(store, tmp_path, "a", 0)
    for orphan in ("0" * 64, "f" * 64):
        (store.root / BUNDLES_DIR / orphan / "scenarios").mkdir(parents=True)
    ArtifactStore(tmp_path / "store", keep=3)
    assert unpacked(store) == {live}


def test_an_artifact_too_large_to_unpack_leaves_no_scratch_behind(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    content = tmp_path / "big"
    content.mkdir()
    (content / "config.arena.yaml").write_text("x" * 10_000)
    info = build_artifact(content, tmp_path / "big.tar.gz")
    store.put("ns", "big", info.digest, tmp_path / "big.tar.gz")
    with pytest.raises(SourceError):
        store.unpacked("ns", "big", info.digest, max_bytes=100)
    assert list(store.scratch().iterdir()) == []
