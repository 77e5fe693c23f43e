"""Relative paths from untrusted places (tar members, OCI layer titles, `spec.git.path`), checked before use.

Every path that comes from a remote or from a spec is turned into a `PurePosixPath` that is relative and has no
`..` component before it is joined to a local directory, so nothing can be written or read outside that
directory. Symlinks are handled by the callers (they never create them).
"""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

from .errors import INVALID_BUNDLE_LAYOUT, UNSAFE_ARTIFACT, SourceError


def safe_relpath(name: str, what: str) -> PurePosixPath:
    """`name` as a normalised relative path (`""`/`.` → `PurePosixPath(".")`); UnsafeArtifact when it could escape.

    `what` names the origin in the message, e.g. "tar member" or "spec.git.path".
    """
    if "\x00" in name or "\\" in name:
        raise SourceError(UNSAFE_ARTIFACT, f"{what} {name!r} contains a NUL or backslash; expected a relative "
                                           "POSIX path")
    path = PurePosixPath(name)
    if path.is_absolute():
        raise SourceError(UNSAFE_ARTIFACT, f"{what} {name!r} is absolute; expected a path relative to the root")
    if ".." in path.parts:
        raise SourceError(UNSAFE_ARTIFACT, f"{what} {name!r} contains '..'; expected a path inside the root")
    return path  # PurePosixPath drops "." parts and duplicate slashes itself


def copy_subtree(root: Path, subpath: str, dest: Path, *, what: str = "path", ignore: tuple[str, ...] = ()) -> None:
    """Copy the directory `root/subpath` into `dest`, refusing symlinks that point outside that directory.

    Symlinks to files inside are copied as the files they point to, so the result (and the artifact built from it)
    holds no links at all; links to directories are refused too, as they can form loops. `ignore` names
    top-level entries of `root` to skip (e.g. ".git").
    """
    rel = safe_relpath(subpath, what)
    base = (root / rel).resolve()
    root_resolved = root.resolve()
    if not base.is_relative_to(root_resolved):
        raise SourceError(UNSAFE_ARTIFACT, f"{what} {subpath!r} resolves outside the checkout (through a symlink)")
    if not base.is_dir():
        raise SourceError(INVALID_BUNDLE_LAYOUT, f"{what} {subpath!r} is not a directory in the fetched content")
    for link in _symlinks(base):
        target = link.resolve()
        if not target.is_relative_to(base) or not target.is_file():
            shown = link.relative_to(root).as_posix()
            raise SourceError(UNSAFE_ARTIFACT, f"symlink {shown!r} points outside {what} {subpath or '.'!r}, to a "
                                               "directory or to nothing; only links to files inside it are allowed")
    skip = set(ignore) if base == root_resolved else set()
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(base, dest, symlinks=False, dirs_exist_ok=True,
                    ignore=lambda d, names: [n for n in names if n in skip and Path(d).resolve() == base])


def _symlinks(base: Path) -> list[Path]:
    return [p for p in base.rglob("*") if p.is_symlink()]
