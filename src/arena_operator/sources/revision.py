"""Revision strings: the one value that says which content of a source an artifact was built from.

Formats (as documented for Arena Fleet, the same as Flux source-controller's):

    git branch   main@sha1:<40 hex>      git tag   v1.2@sha1:<40 hex>      git commit   sha1:<hex as pinned>
    oci tag      v1.0@sha256:<64 hex>    oci digest reference              sha256:<64 hex>
    configmap    <resourceVersion>

Change detection compares whole strings; `Revision.digest` compares only the content part, so a branch rename
pointing at the same commit is recognisably the same content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEX_LEN = {"sha1": range(7, 41), "sha256": range(64, 65)}  # sha1 may be abbreviated when the spec pins one
_REVISION = re.compile(r"^(?:(?P<name>.+)@)?(?P<algo>sha1|sha256):(?P<hex>[0-9a-f]+)\Z")


@dataclass(frozen=True)
class Revision:
    """A parsed revision: optional ref/tag `name`, digest algorithm and hex."""

    name: str | None
    algorithm: str
    hex: str

    @property
    def digest(self) -> str:
        """`<algorithm>:<hex>` — the content identity without the ref name."""
        return f"{self.algorithm}:{self.hex}"

    def __str__(self) -> str:
        return f"{self.name}@{self.digest}" if self.name else self.digest


def git_revision(sha: str, ref_name: str | None = None) -> str:
    """`<ref_name>@sha1:<sha>`, or `sha1:<sha>` for a plain commit."""
    return str(Revision(ref_name or None, "sha1", _checked_hex(sha, "sha1")))


def oci_revision(digest: str, tag: str | None = None) -> str:
    """`<tag>@sha256:<hex>` from a `sha256:<hex>` digest, or the digest alone for a digest reference."""
    algo, _, hexpart = digest.partition(":")
    return str(Revision(tag or None, algo, _checked_hex(hexpart, algo)))


def parse_revision(text: str) -> Revision | None:
    """The parts of a git/oci revision string, or None (a configmap resourceVersion, or garbage)."""
    match = _REVISION.match(text)
    if not match or len(match["hex"]) not in _HEX_LEN[match["algo"]]:
        return None
    return Revision(match["name"], match["algo"], match["hex"])


def _checked_hex(value: str, algo: str) -> str:
    value = value.lower()
    if algo not in _HEX_LEN or len(value) not in _HEX_LEN[algo] or not re.fullmatch(r"[0-9a-f]+", value):
        raise ValueError(f"not a {algo} hex digest: {value!r}")
    return value
