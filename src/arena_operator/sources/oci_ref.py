"""`oci://host[:port]/repository[:tag][@sha256:<hex>]` references, parsed by the distribution grammar.

Parsing is strict on purpose: the repository and tag end up in registry URL paths, so anything outside the
grammar (`..`, `?`, `%`, upper case, credentials in the host part) is refused with InvalidURL before any request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import INVALID_URL, SourceError

SCHEME = "oci://"
DEFAULT_TAG = "latest"
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
                   r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?\Z")
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*\Z")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class OCIReference:
    """A parsed reference. `tag` is None only for a bare digest reference (`repo@sha256:…`)."""

    host: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def reference(self) -> str:
        """What goes into `/v2/<repo>/manifests/<reference>`: the digest when pinned, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        return (f"{SCHEME}{self.host}/{self.repository}{':' + self.tag if self.tag else ''}"
                f"{'@' + self.digest if self.digest else ''}")


def parse_reference(url: str) -> OCIReference:
    """Parse an `oci://` URL; the tag defaults to "latest" unless a digest pins the content."""
    if not isinstance(url, str) or not url.startswith(SCHEME):
        raise SourceError(INVALID_URL, f"OCI URL {str(url)[:200]!r} must start with {SCHEME}")
    host, _, rest = url.removeprefix(SCHEME).partition("/")
    if "@" in host:
        raise SourceError(INVALID_URL, f"OCI URL {url!r} carries credentials in the host part; put them in the "
                                       "secretRef (kubernetes.io/dockerconfigjson) instead")
    if not _HOST.match(host):
        raise SourceError(INVALID_URL, f"OCI URL {url!r} has no valid registry host (expected host[:port])")
    rest, _, digest = rest.partition("@")
    repository, tag = rest, None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        repository, _, tag = rest.rpartition(":")
        if not _TAG.match(tag):
            raise SourceError(INVALID_URL, f"OCI URL {url!r} has an invalid tag {tag!r} "
                                           "(expected [A-Za-z0-9_][A-Za-z0-9_.-]{0,127})")
    if not _REPOSITORY.match(repository):
        raise SourceError(INVALID_URL, f"OCI URL {url!r} has an invalid repository {repository!r} (lower-case "
                                       "components of [a-z0-9] separated by '.', '_', '__' or '-', joined by '/')")
    if digest and not _DIGEST.match(digest):
        raise SourceError(INVALID_URL, f"OCI URL {url!r} has an invalid digest {digest!r} (expected sha256:<64 hex>)")
    if not digest and tag is None:
        tag = DEFAULT_TAG
    return OCIReference(host=host, repository=repository, tag=tag, digest=digest or None)
