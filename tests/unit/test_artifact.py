"""Deterministic artifacts and safe extraction: same content → same digest; hostile archives refused."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from arena_operator.sources.artifact import (
    DEFAULT_MAX_BYTES,
    MAX_ENTRIES,
    build_artifact,
    files_from_mapping,
    safe_extract,
)
from arena_operator.sources.errors import SourceError
from arena_operator.sources.paths import copy_subtree
from arena_operator.sources.revision import git_revision, oci_revision, parse_revision

FILES = {"config.arena.yaml": "kind: Arena\n", "prompts/support.yaml": "p: 1\n", "scenarios/a.yaml": "s: a\n",
         "scenarios/nested/b.yaml": "s: b\n"}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    return root


def tar_bytes(*members: tuple[tarfile.TarInfo, bytes | None], compress: bool = True) -> io.BytesIO:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz" if compress else "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw.seek(0)
    return raw


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def test_same_content_gives_the_same_digest_regardless_of_times_modes_and_creation_order(tmp_path: Path) -> None:
    first = write_tree(tmp_path / "a", FILES)
    second = write_tree(tmp_path / "b", dict(reversed(FILES.items())))
    for path in second.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))
        if path.is_file():
            path.chmod(0o600)
    one = build_artifact(first, tmp_path / "one.tar.gz")
    two = build_artifact(second, tmp_path / "two.tar.gz")
    assert one == two
    assert one.digest.startswith("sha256:") and len(one.digest) == 71
    assert one.size == (tmp_path / "one.tar.gz").stat().st_size


def test_different_content_gives_a_different_digest(tmp_path: Path) -> None:
    one = build_artifact(write_tree(tmp_path / "a", FILES), tmp_path / "one.tar.gz")
    two = build_artifact(write_tree(tmp_path / "b", {**FILES, "scenarios/a.yaml": "s: changed\n"}),
                         tmp_path / "two.tar.gz")
    assert one.digest != two.digest


def test_archive_entries_are_sorted_and_normalised(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", FILES)
    (src / "empty").mkdir()
    build_artifact(src, tmp_path / "a.tar.gz")
    raw = (tmp_path / "a.tar.gz").read_bytes()
    assert raw[4:8] == b"\x00\x00\x00\x00"  # gzip MTIME
    assert raw[3] & 0x08 == 0  # no FNAME
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["config.arena.yaml", "empty", "prompts", "prompts/support.yaml",
                                         "scenarios", "scenarios/a.yaml", "scenarios/nested",
                                         "scenarios/nested/b.yaml"]
    for m in members:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")
        assert m.mode == (0o755 if m.isdir() else 0o644)


def test_round_trip_through_safe_extract(tmp_path: Path) -> None:
    build_artifact(write_tree(tmp_path / "src", FILES), tmp_path / "a.tar.gz")
    written = safe_extract(tmp_path / "a.tar.gz", tmp_path / "out")
    assert written == sum(len(v) for v in FILES.values())
    assert {p.relative_to(tmp_path / "out").as_posix(): p.read_text()
            for p in (tmp_path / "out").rglob("*") if p.is_file()} == FILES


@pytest.mark.parametrize("make", [
    lambda src: (src / "link").symlink_to("config.arena.yaml"),
    lambda src: (src / "escape").symlink_to("/etc/passwd"),
    lambda src: os.mkfifo(src / "fifo"),
], ids=["symlink-inside", "symlink-outside", "fifo"])
def test_build_refuses_links_and_special_files(tmp_path: Path, make: Callable[[Path], None]) -> None:
    src = write_tree(tmp_path / "src", FILES)
    make(src)
    with pytest.raises(SourceError) as err:
        build_artifact(src, tmp_path / "a.tar.gz")
    assert err.value.reason == "UnsafeArtifact"


UNSAFE = {
    "dotdot": [(member("../evil"), b"x")],
    "nested-dotdot": [(member("a/../../evil"), b"x")],
    "absolute": [(member("/tmp/evil"), b"x")],
    "symlink-absolute": [(member("link", tarfile.SYMTYPE, "/etc/passwd"), None)],
    "symlink-escaping": [(member("sub/link", tarfile.SYMTYPE, "../../outside"), None)],
    "symlink-dangling": [(member("link", tarfile.SYMTYPE, "missing.yaml"), None)],
    "hardlink-escaping": [(member("link", tarfile.LNKTYPE, "../outside"), None)],
    "hardlink-absolute": [(member("link", tarfile.LNKTYPE, "/etc/shadow"), None)],
    "char-device": [(member("dev", tarfile.CHRTYPE), None)],
    "block-device": [(member("dev", tarfile.BLKTYPE), None)],
    "fifo": [(member("fifo", tarfile.FIFOTYPE), None)],
    "backslash": [(member("..\\evil"), b"x")],
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_safe_extract_refuses_unsafe_members(tmp_path: Path, case: str) -> None:
    dest = tmp_path / "dest" / "out"
    with pytest.raises(SourceError) as err:
        safe_extract(tar_bytes(*UNSAFE[case]), dest)
    assert err.value.reason == "UnsafeArtifact"
    assert not err.value.retryable
    assert not (tmp_path / "dest" / "evil").exists() and not (tmp_path / "evil").exists()


def test_links_to_earlier_files_are_materialised_as_copies(tmp_path: Path) -> None:
    archive = tar_bytes((member("a/data.yaml"), b"content"), (member("a/sym", tarfile.SYMTYPE, "data.yaml"), None),
                        (member("b/hard", tarfile.LNKTYPE, "a/data.yaml"), None),
                        (member("b/up", tarfile.SYMTYPE, "../a/./data.yaml"), None))
    safe_extract(archive, tmp_path / "out")
    for name in ("a/sym", "b/hard", "b/up"):
        path = tmp_path / "out" / name
        assert not path.is_symlink() and path.read_text() == "content"


def test_size_limit_counts_uncompressed_bytes(tmp_path: Path) -> None:
    bomb = tar_bytes((member("zeros-1"), bytes(600)), (member("zeros-2"), bytes(600)))
    assert len(bomb.getvalue()) < 600  # compresses well: the limit must not look at the compressed size
    with pytest.raises(SourceError) as err:
        safe_extract(bomb, tmp_path / "out", max_bytes=1000)
    assert err.value.reason == "ArtifactTooLarge"
    assert "1000 bytes" in err.value.message and "zeros-2" in err.value.message
    assert safe_extract(tar_bytes((member("zeros-1"), bytes(600))), tmp_path / "ok", max_bytes=1000) == 600
    assert DEFAULT_MAX_BYTES == 100 * 1024 * 1024


def test_too_many_entries_is_too_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("arena_operator.sources.artifact.MAX_ENTRIES", 3)
    archive = tar_bytes(*[(member(f"f{i}"), b"") for i in range(4)])
    with pytest.raises(SourceError) as err:
        safe_extract(archive, tmp_path / "out")
    assert err.value.reason == "ArtifactTooLarge" and MAX_ENTRIES == 100_000


@pytest.mark.parametrize("data", [b"not a tar at all", gzip.compress(b"not a tar inside gzip"), b"\x1f\x8b\x08trunc"])
def test_garbage_is_an_invalid_layout(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(SourceError) as err:
        safe_extract(io.BytesIO(data), tmp_path / "out")
    assert err.value.reason == "InvalidBundleLayout"


def test_plain_tar_is_accepted(tmp_path: Path) -> None:
    safe_extract(tar_bytes((member("./x/y.yaml"), b"y"), compress=False), tmp_path / "out")
    assert (tmp_path / "out" / "x" / "y.yaml").read_text() == "y"


def test_files_from_mapping_writes_flat_files(tmp_path: Path) -> None:
    written = files_from_mapping({"config.arena.yaml": "kind: Arena\n", "logo.bin": b"\x00\x01"}, tmp_path / "cm")
    assert written == 14
    assert (tmp_path / "cm" / "config.arena.yaml").read_text() == "kind: Arena\n"
    assert (tmp_path / "cm" / "logo.bin").read_bytes() == b"\x00\x01"


@pytest.mark.parametrize("key", ["..", ".", "a/b", "", "../x", "a b"])
def test_files_from_mapping_refuses_keys_that_are_not_file_names(tmp_path: Path, key: str) -> None:
    with pytest.raises(SourceError) as err:
        files_from_mapping({key: "x"}, tmp_path / "cm")
    assert err.value.reason == "UnsafeArtifact" and repr(key) in err.value.message


def test_files_from_mapping_size_limit(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as err:
        files_from_mapping({"a": "x" * 10, "b": "y" * 10}, tmp_path / "cm", max_bytes=15)
    assert err.value.reason == "ArtifactTooLarge"


def test_copy_subtree_dereferences_inner_links_and_refuses_escapes(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "checkout", {"bundle/a.yaml": "a", "secret.txt": "s", ".git/HEAD": "ref"})
    (root / "bundle" / "alias.yaml").symlink_to("a.yaml")
    copy_subtree(root, "./bundle/", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.yaml", "alias.yaml"]
    assert not (tmp_path / "out" / "alias.yaml").is_symlink()
    copy_subtree(root, "", tmp_path / "whole", ignore=(".git",))
    assert not (tmp_path / "whole" / ".git").exists() and (tmp_path / "whole" / "secret.txt").exists()
    (root / "bundle" / "leak.txt").symlink_to("../secret.txt")
    for path, reason in (("bundle", "UnsafeArtifact"), ("../x", "UnsafeArtifact"), ("/etc", "UnsafeArtifact"),
                         ("missing", "InvalidBundleLayout")):
        with pytest.raises(SourceError) as err:
            copy_subtree(root, path, tmp_path / "bad")
        assert err.value.reason == reason, path


def test_revision_strings() -> None:
    sha = "a" * 40
    assert git_revision(sha, "main") == f"main@sha1:{sha}"
    assert git_revision(sha.upper()) == f"sha1:{sha}"
    digest = "sha256:" + "b" * 64
    assert oci_revision(digest, "v1") == f"v1@{digest}"
    parsed = parse_revision(f"release/1.x@sha1:{sha}")
    assert parsed is not None and parsed.name == "release/1.x" and parsed.digest == f"sha1:{sha}"
    assert parse_revision("12345") is None
    with pytest.raises(ValueError):
        git_revision("xyz")
