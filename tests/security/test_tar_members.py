"""A hostile artifact (a bundle pushed to OCI, a tarball in a ConfigMap) is refused with UnsafeArtifact naming the
member, never a bare OSError: names a file system cannot hold, links and special files."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from arena_operator.sources.artifact import MAX_NAME_BYTES, MAX_PATH_BYTES, safe_extract
from arena_operator.sources.errors import SourceError


def archive(tmp_path: Path, *members: tarfile.TarInfo) -> Path:
    path = tmp_path / "hostile.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isreg() else None)
    return path


def entry(name: str, kind: bytes = tarfile.REGTYPE, size: int = 1, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size if kind == tarfile.REGTYPE else 0, link
    return info


@pytest.mark.parametrize(("member", "words"), [
    (entry("a" * (MAX_NAME_BYTES + 1)), f"at most {MAX_NAME_BYTES} bytes per name"),
    (entry("é" * 200), f"at most {MAX_NAME_BYTES} bytes per name"),  # 400 bytes in UTF-8
    (entry("/".join(["d" * 200] * 6) + "/f"), f"{MAX_PATH_BYTES} per path"),
    (entry("link", tarfile.SYMTYPE, link="/etc/passwd"), "escapes the artifact root"),
    (entry("hard", tarfile.LNKTYPE, link="../../etc/shadow"), "escapes the artifact root"),
    (entry("dev", tarfile.CHRTYPE), "is a device, fifo or other special file"),
    (entry("fifo", tarfile.FIFOTYPE), "is a device, fifo or other special file"),
    (entry("../escape.yaml"), "contains '..'"),
    (entry("/abs.yaml"), "is absolute"),
])
def test_a_hostile_member_is_an_unsafe_artifact(tmp_path: Path, member: tarfile.TarInfo, words: str) -> None:
    with pytest.raises(SourceError) as caught:
        safe_extract(archive(tmp_path, member), tmp_path / "out")
    assert caught.value.reason == "UnsafeArtifact" and words in caught.value.message, caught.value
    assert not (tmp_path / "escape.yaml").exists()


def test_the_longest_allowed_names_still_extract(tmp_path: Path) -> None:
    name = "/".join(["d" * 200] * 4) + "/" + "f" * (MAX_PATH_BYTES - 4 * 201)
    safe_extract(archive(tmp_path, entry(name)), tmp_path / "out")
    assert (tmp_path / "out" / name).read_bytes() == b"x"
