"""Deterministic tar.gz artifacts, and the safe way back from an archive to files.

The artifact digest is how workers verify what they run and how the operator tells "new content" from "same
content fetched again", so the same files must always give the same bytes: entries sorted, times, owners and
modes normalised, and a gzip header without mtime or file name.

Archives from remotes are hostile until proven otherwise: `safe_extract` refuses entries that would land outside
the destination, device files, and archives that expand beyond a byte budget (gzip bombs). It never creates links;
a link to a file already extracted is materialised as a copy, anything else is refused.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import re
import stat
import tarfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .errors import ARTIFACT_TOO_LARGE, INVALID_BUNDLE_LAYOUT, UNSAFE_ARTIFACT, SourceError
from .paths import safe_relpath

DEFAULT_MAX_BYTES = 100 * 1024 * 1024  # uncompressed bytes per artifact
MAX_ENTRIES = 100_000  # files + directories; an archive of millions of empty files is a bomb too
MAX_NAME_BYTES = 255  # one path component (NAME_MAX)
MAX_PATH_BYTES = 1024  # a whole member path, as RelativePath bounds spec paths
_CHUNK = 1024 * 1024
_FILE_MODE, _DIR_MODE = 0o644, 0o755
_GZIP_LEVEL = 6  # fixed: the digest depends on it
# ConfigMap data keys, as Kubernetes validates them; "." and ".." match the pattern but are refused below.
_CONFIGMAP_KEY = re.compile(r"[-._a-zA-Z0-9]+")


@dataclass(frozen=True)
class ArtifactInfo:
    """What `status.artifact` records about a built archive."""

    digest: str  # "sha256:<hex>" of the tar.gz bytes
    size: int  # bytes of the tar.gz


def build_artifact(src_dir: Path, out_path: Path) -> ArtifactInfo:
    """Pack `src_dir` into a deterministic tar.gz at `out_path`: same content → same digest, always.

    Symlinks and special files are refused (UnsafeArtifact): fetchers hand over plain trees, so a link here
    means something went wrong upstream, and a link's meaning depends on where the archive is unpacked.
    """
    entries = list(_walk(src_dir, PurePosixPath()))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with open(out_path, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=_GZIP_LEVEL) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel, path, is_dir in entries:
            info = tarfile.TarInfo(rel.as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if is_dir:
                info.type, info.mode = tarfile.DIRTYPE, _DIR_MODE
                tar.addfile(info)
            else:
                info.mode, info.size = _FILE_MODE, path.stat().st_size
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
    return ArtifactInfo(digest=file_digest(out_path), size=out_path.stat().st_size)


def file_digest(path: Path) -> str:
    """`sha256:<hex>` of a file's bytes."""
    with open(path, "rb") as fh:
        return "sha256:" + hashlib.file_digest(fh, "sha256").hexdigest()


def _walk(root: Path, rel: PurePosixPath) -> Iterator[tuple[PurePosixPath, Path, bool]]:
    """(relative path, local path, is_dir) in a stable order: sorted by name, parents before children."""
    for name in sorted(os.listdir(root / rel)):
        child_rel = rel / name
        child = root / child_rel
        mode = child.lstat().st_mode
        if stat.S_ISLNK(mode):
            raise SourceError(UNSAFE_ARTIFACT, f"{child_rel.as_posix()!r} is a symlink; artifacts hold regular "
                                               "files and directories only")
        if stat.S_ISDIR(mode):
            yield child_rel, child, True
            yield from _walk(root, child_rel)
        elif stat.S_ISREG(mode):
            yield child_rel, child, False
        else:
            raise SourceError(UNSAFE_ARTIFACT, f"{child_rel.as_posix()!r} is a device, fifo or socket; artifacts "
                                               "hold regular files and directories only")


def safe_extract(source: Path | BinaryIO, dest: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> int:
    """Unpack a tar (plain or compressed) into `dest`; returns the bytes written.

    UnsafeArtifact for absolute names, `..`, links that escape or do not name an earlier file, device and fifo
    entries; ArtifactTooLarge when the content exceeds `max_bytes` or `MAX_ENTRIES`; InvalidBundleLayout when
    the data is not a readable archive. The archive is read as a stream, so `source` may be a network body.
    """
    dest.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        fileobj = stack.enter_context(open(source, "rb")) if isinstance(source, Path) else source
        try:
            # TypeError: Python 3.11's stream reader chokes that way on a gzip header cut short.
            tar = stack.enter_context(tarfile.open(fileobj=fileobj, mode="r|*"))
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, TypeError) as exc:
            raise SourceError(INVALID_BUNDLE_LAYOUT, f"not a readable tar archive: {exc}") from exc
        try:
            return _extract_members(tar, dest, max_bytes)
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise SourceError(INVALID_BUNDLE_LAYOUT, f"not a readable tar archive: {exc}") from exc


def _extract_members(tar: tarfile.TarFile, dest: Path, max_bytes: int) -> int:
    written, entries = 0, 0
    files: dict[PurePosixPath, Path] = {}  # regular files extracted so far, for links
    for member in tar:
        entries += 1
        if entries > MAX_ENTRIES:
            raise SourceError(ARTIFACT_TOO_LARGE, f"archive has more than {MAX_ENTRIES} entries")
        rel = safe_relpath(member.name, "tar member")
        _check_name_length(member.name, rel)
        if rel == PurePosixPath("."):
            continue  # the archive's own root ("./")
        target = dest / rel
        if member.isdir():
            target.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
            continue
        if member.isreg():
            written = _check_budget(written, member.size, max_bytes, member.name)
            fh = tar.extractfile(member)
            assert fh is not None  # isreg() guarantees a data stream
            _write_file(target, fh)
            files[rel] = target
        elif member.issym() or member.islnk():
            linked = _link_source(member, rel, files)
            written = _check_budget(written, linked.stat().st_size, max_bytes, member.name)
            with open(linked, "rb") as fh:
                _write_file(target, fh)
            files[rel] = target
        else:
            raise SourceError(UNSAFE_ARTIFACT, f"tar member {member.name!r} is a device, fifo or other special "
                                               "file; only files, directories and links to files are allowed")
    return written


def _check_name_length(name: str, rel: PurePosixPath) -> None:
    """Names a file system can hold, checked before it is asked (it would fail with a bare ENAMETOOLONG)."""
    longest = max((len(part.encode()) for part in rel.parts), default=0)
    if longest > MAX_NAME_BYTES or len(rel.as_posix().encode()) > MAX_PATH_BYTES:
        raise SourceError(UNSAFE_ARTIFACT, f"tar member {name[:80]!r}… is too long: at most {MAX_NAME_BYTES} bytes "
                                           f"per name and {MAX_PATH_BYTES} per path")


def _check_budget(written: int, size: int, max_bytes: int, name: str) -> int:
    if written + size > max_bytes:
        raise SourceError(ARTIFACT_TOO_LARGE, f"content exceeds the limit of {max_bytes} bytes "
                                              f"(reached at tar member {name!r})")
    return written + size


def _link_source(member: tarfile.TarInfo, rel: PurePosixPath, files: Mapping[PurePosixPath, Path]) -> Path:
    """The already-extracted file a link member points to; UnsafeArtifact if it escapes or names no file."""
    kind = "symlink" if member.issym() else "hardlink"
    # Symlink targets are relative to the link's directory, hardlink targets to the archive root.
    raw = PurePosixPath(member.linkname)
    target = _inside_root(rel.parent / raw if member.issym() else raw)
    if target is None:
        raise SourceError(UNSAFE_ARTIFACT, f"{kind} {member.name!r} -> {member.linkname!r} escapes the artifact "
                                           "root")
    source = files.get(target)
    if source is None:
        raise SourceError(UNSAFE_ARTIFACT, f"{kind} {member.name!r} -> {member.linkname!r} does not point to a "
                                           "file earlier in the archive; only such links are supported")
    return source


def _inside_root(path: PurePosixPath) -> PurePosixPath | None:
    """`path` with `.`/`..` resolved lexically, or None when it is absolute or climbs above the root."""
    if path.is_absolute():
        return None
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part != ".":
            parts.append(part)
    return PurePosixPath(*parts)


def _write_file(target: Path, data: BinaryIO | io.BufferedReader) -> None:
    target.parent.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    if target.is_symlink() or target.is_dir():
        raise SourceError(UNSAFE_ARTIFACT, f"{target.name!r} would replace a directory or link")
    with open(target, "wb") as out:
        while chunk := data.read(_CHUNK):
            out.write(chunk)
    target.chmod(_FILE_MODE)


def files_from_mapping(mapping: Mapping[str, str | bytes], dest: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> int:
    """Write ConfigMap-style `key → content` pairs as flat files in `dest`; returns the bytes written.

    Keys must be valid ConfigMap keys (`[-._a-zA-Z0-9]+`), so the result is flat: there is deliberately no
    "a__b → a/b" convention — a bundle that needs directories belongs in git or OCI. `str` values are written
    as UTF-8 (`data`), `bytes` as is (already-decoded `binaryData`).
    """
    dest.mkdir(parents=True, exist_ok=True)
    written = 0
    for key in sorted(mapping):
        if not _CONFIGMAP_KEY.fullmatch(key) or key in {".", ".."}:
            raise SourceError(UNSAFE_ARTIFACT, f"ConfigMap key {key!r} is not a file name; expected "
                                               "[-._a-zA-Z0-9]+ and not '.' or '..'")
        value = mapping[key]
        data = value.encode() if isinstance(value, str) else value
        written = _check_budget(written, len(data), max_bytes, key)
        (dest / key).write_bytes(data)
        (dest / key).chmod(_FILE_MODE)
    return written
