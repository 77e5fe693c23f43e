"""The workspace volume: a directory the operator mounts (``$ARENA_WORKSPACE_DIR``), one subtree per namespace.

Two things of the Go operator's form live there. ``type: workspace`` sources snapshot a directory of it (the
namespace's subtree: a source never reads another namespace's content) into an artifact like any fetched
content; the revision is a hash of the content, so an edit is a new revision. And when the volume is mounted,
every new artifact's content is also written to ``<targetPath>/.arena/versions/<version>/`` of the namespace's
subtree (``status.artifact.contentPath``), with ``.arena/HEAD`` naming the current version, as the Go
operator lays it out for tools that read the volume. Paths from specs are checked (no absolute paths, no
``..``, no symlinks leading out) before anything is read or written.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from ..api.conditions import WORKSPACE_NOT_CONFIGURED, WORKSPACE_PATH_NOT_FOUND
from .errors import UNSAFE_ARTIFACT, SourceError
from .paths import copy_subtree, safe_relpath

VERSIONS = (".arena", "versions")
HEAD = (".arena", "HEAD")
VERSION_LENGTH = 12


def namespace_root(workspace_dir: Path, namespace: str) -> Path:
    """The namespace's subtree of the workspace volume (the namespace is a DNS label: no separators)."""
    return workspace_dir / safe_relpath(namespace, "namespace")


def content_hash(directory: Path) -> str:
    """``sha256:<hex>`` over every file's relative path and bytes, in sorted order (empty directories aside)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return f"sha256:{digest.hexdigest()}"


class WorkspaceFetcher:
    """A directory of the workspace volume as a source: ``root`` is the namespace's subtree (None: no volume)."""

    def __init__(self, root: Path | None, path: str) -> None:
        self.root, self.path = root, path

    def _copy(self, dest: Path) -> str:
        if self.root is None:
            raise SourceError(WORKSPACE_NOT_CONFIGURED, "type workspace needs the operator's workspace volume: "
                                                        "set ARENA_WORKSPACE_DIR to where it is mounted")
        base = self.root / safe_relpath(self.path, "spec.workspace.path")
        if not base.resolve().is_relative_to(self.root.resolve()):
            raise SourceError(UNSAFE_ARTIFACT, f"spec.workspace.path {self.path!r} leads out of the namespace's "
                                               "workspace (through a symlink)")
        if not base.is_dir():
            raise SourceError(WORKSPACE_PATH_NOT_FOUND, f"workspace path {self.path!r} is not a directory of the "
                                                        "namespace's workspace", retryable=True)
        # .arena holds synced versions (sync_version) when targetPath is inside the snapshotted directory.
        copy_subtree(base, ".", dest, what="spec.workspace.path", ignore=(VERSIONS[0],))
        return content_hash(dest)

    async def remote_revision(self) -> str:
        with tempfile.TemporaryDirectory(prefix="workspace-") as scratch:
            return await asyncio.to_thread(self._copy, Path(scratch) / "content")

    async def fetch(self, dest: Path) -> str:
        return await asyncio.to_thread(self._copy, dest)


def version_of(digest: str) -> str:
    """The Go operator's short content version: the first 12 hex digits of the checksum."""
    return digest.removeprefix("sha256:")[:VERSION_LENGTH]


def sync_version(root: Path, target: str, version: str, content: Path, keep: int) -> str:
    """Write ``content`` to ``<root>/<target>/.arena/versions/<version>/`` (once: versions are immutable), point
    ``.arena/HEAD`` at it, keep the ``keep`` newest versions; return the contentPath (relative to ``root``)."""
    base = root / safe_relpath(target, "spec.targetPath")
    versions = base.joinpath(*VERSIONS)
    final = versions / version
    if not final.is_dir():
        versions.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=versions))
        shutil.copytree(content, staging, dirs_exist_ok=True)
        try:
            os.replace(staging, final)
        except OSError:  # written meanwhile by another pass
            shutil.rmtree(staging, ignore_errors=True)
    os.utime(final)
    head = base.joinpath(*HEAD)
    head.write_text(version + "\n", encoding="utf-8")
    kept = sorted((p for p in versions.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    for old in kept[max(1, keep):]:
        shutil.rmtree(old, ignore_errors=True)
    return final.relative_to(root).as_posix()
