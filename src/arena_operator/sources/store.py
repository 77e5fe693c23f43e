"""Where artifacts live: `<root>/<namespace>/<source>/<digest-hex>.tar.gz`, the last N kept per source; their
bundles unpacked once per digest under `<root>/.bundles/<digest-hex>/`, removed with the last artifact of that
digest (a digest may be kept by several sources)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .artifact import safe_extract

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
DEFAULT_KEEP = 3
BUNDLES_DIR = ".bundles"


@dataclass(frozen=True)
class StoredArtifact:
    path: Path
    relative_url: str  # "<namespace>/<source>/<hex>.tar.gz", appended to the server's base URL


def artifact_url_prefix(base_url: str) -> str:
    """Every artifact URL starts so (the artifact server's route)."""
    return f"{base_url.rstrip('/')}/artifacts/"


class ArtifactStore:
    """A directory (the operator's PVC) of artifacts; names are validated so no request can leave it."""

    def __init__(self, root: Path, keep: int = DEFAULT_KEEP) -> None:
        self.root = root.resolve()
        self.keep = max(1, keep)
        self.root.mkdir(parents=True, exist_ok=True)
        self.collect_bundles()  # what an earlier operator left behind

    def _source_dir(self, namespace: str, name: str) -> Path:
        if not (_NAME.match(namespace) and _NAME.match(name)):
            raise ValueError(f"invalid namespace/name {namespace!r}/{name!r}")
        return self.root / namespace / name

    def location(self, namespace: str, name: str, digest: str) -> StoredArtifact:
        match = _DIGEST.match(digest)
        if not match:
            raise ValueError(f"invalid digest {digest!r}")
        file = f"{match.group(1)}.tar.gz"
        return StoredArtifact(self._source_dir(namespace, name) / file, f"{namespace}/{name}/{file}")

    def url(self, base_url: str, namespace: str, name: str, digest: str) -> str:
        """Where the artifact server serves it, for workers."""
        return artifact_url_prefix(base_url) + self.location(namespace, name, digest).relative_url

    def has(self, namespace: str, name: str, digest: str) -> bool:
        return self.location(namespace, name, digest).path.is_file()

    def put(self, namespace: str, name: str, digest: str, built: Path) -> StoredArtifact:
        """Move a finished tar.gz into place atomically (readers never see half a file), then collect garbage."""
        target = self.location(namespace, name, digest)
        target.path.parent.mkdir(parents=True, exist_ok=True)
        if target.path.exists():
            built.unlink(missing_ok=True)
        else:
            os.replace(built, target.path)
        os.utime(target.path)
        self.collect(namespace, name)
        return target

    def collect(self, namespace: str, name: str) -> list[Path]:
        """Keep the `keep` most recently stored artifacts of a source; returns what was removed."""
        directory = self._source_dir(namespace, name)
        if not directory.is_dir():
            return []
        artifacts = sorted(directory.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime, reverse=True)
        removed = artifacts[self.keep:]
        for path in removed:
            path.unlink(missing_ok=True)
        if removed:
            self.collect_bundles()
        return removed

    def collect_bundles(self) -> list[Path]:
        """Remove the unpacked bundles whose digest no source keeps an artifact of any more; returns them."""
        bundles = self.root / BUNDLES_DIR
        if not bundles.is_dir():
            return []
        kept = {artifact.name.removesuffix(".tar.gz") for namespace in self.root.iterdir()
                if not namespace.name.startswith(".") and namespace.is_dir()
                for artifact in namespace.glob("*/*.tar.gz")}
        removed = [path for path in bundles.iterdir() if path.name not in kept]
        for path in removed:
            shutil.rmtree(path, ignore_errors=True)
        return removed

    def unpacked(self, namespace: str, name: str, digest: str, max_bytes: int) -> Path:
        """The artifact's bundle as a directory, unpacked once per digest (immutable, so safely shared)."""
        stored = self.location(namespace, name, digest)
        target = self.root / BUNDLES_DIR / stored.path.name.removesuffix(".tar.gz")
        if target.is_dir():
            return target
        if not stored.path.is_file():
            raise FileNotFoundError(f"artifact {digest} of {namespace}/{name} is not in the store")
        staging = Path(tempfile.mkdtemp(dir=self.scratch()))
        try:
            safe_extract(stored.path, staging, max_bytes)
        except BaseException:  # an unsafe or oversized artifact leaves nothing in the scratch dir
            shutil.rmtree(staging, ignore_errors=True)
            raise
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(staging, target)
        except OSError:  # another reconcile unpacked it first
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def remove_source(self, namespace: str, name: str) -> None:
        shutil.rmtree(self._source_dir(namespace, name), ignore_errors=True)
        self.collect_bundles()

    def scratch(self) -> Path:
        """A temp dir on the same filesystem, so `put` is a rename, not a copy."""
        path = self.root / ".tmp"
        path.mkdir(exist_ok=True)
        return path
