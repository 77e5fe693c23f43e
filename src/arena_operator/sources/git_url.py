"""What a git URL and a ref name may look like, checked before git ever runs.

Git treats some "URLs" as commands (`ext::sh -c …`), local paths (`file://`, `/srv/repo`) as fair game, and a
value starting with `-` as an option (`--upload-pack=…`, `-oProxyCommand=…` via an ssh host). A spec comes from
any user who may create an ArenaSource, so only plain network URLs pass, and they are always given to git after
`--`. Credentials in the URL are refused too: they belong in the secretRef, where they are kept out of status.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .errors import INVALID_URL, REVISION_NOT_FOUND, SourceError

ALLOWED_SCHEMES = ("https", "http", "ssh", "git")  # http and git:// for in-cluster servers and tests
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
                   r"[A-Za-z0-9])?)*\Z|^\[[0-9A-Fa-f:.]+\]\Z")
_USER = re.compile(r"^[A-Za-z0-9._~][A-Za-z0-9._~-]*\Z")
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\]")
# git check-ref-format, simplified to the safe subset: no control chars/space, none of ~^:?*[\, no "..",
# no "@{", no leading "-" or "/", no trailing "/", "." or ".lock", no "//".
_REF = re.compile(r"^(?![-/])(?!.*\.\.)(?!.*@\{)(?!.*//)(?!.*/\.)(?!\.)[^\x00-\x20\x7f~^:?*\[\\]+(?<![./])"
                  r"(?<!\.lock)\Z")
_COMMIT = re.compile(r"^[0-9a-fA-F]{7,40}\Z")


def check_git_url(url: str) -> str:
    """The URL's scheme, or InvalidURL when the URL is not a plain network git URL (see module docstring)."""
    shown = _shown(url)
    if not isinstance(url, str) or not url:
        raise SourceError(INVALID_URL, "git URL is empty; expected https://, http://, ssh:// or git://")
    if url.startswith("-"):
        raise SourceError(INVALID_URL, f"git URL {shown!r} starts with '-' and would be read as an option")
    if _FORBIDDEN.search(url):
        raise SourceError(INVALID_URL, f"git URL {shown!r} contains whitespace, control characters or a backslash")
    if "::" in url.split("/", 1)[0]:
        raise SourceError(INVALID_URL, f"git URL {shown!r} uses a remote helper (<transport>::); expected "
                                       f"one of {', '.join(s + '://' for s in ALLOWED_SCHEMES)}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise SourceError(INVALID_URL, f"git URL {shown!r} is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if "://" not in url or scheme not in ALLOWED_SCHEMES:
        hint = " (scp-like user@host:path is not accepted; write ssh://user@host/path)" if "://" not in url else ""
        raise SourceError(INVALID_URL, f"git URL {shown!r} has an unsupported scheme; expected "
                                       f"{', '.join(s + '://' for s in ALLOWED_SCHEMES)}{hint}")
    host = parts.hostname or ""
    netloc_host = parts.netloc.rpartition("@")[2]
    if port is not None:
        netloc_host = netloc_host.rsplit(":", 1)[0]
    if not host or not _HOST.match(netloc_host):
        raise SourceError(INVALID_URL, f"git URL {shown!r} has no valid host name")
    if parts.password is not None or (parts.username is not None and scheme != "ssh"):
        raise SourceError(INVALID_URL, f"git URL {shown!r} carries credentials; put them in the secretRef instead")
    if parts.username is not None and not _USER.match(parts.username):
        raise SourceError(INVALID_URL, f"git URL {shown!r} has an invalid ssh user name")
    if parts.path in ("", "/"):
        raise SourceError(INVALID_URL, f"git URL {shown!r} names no repository path")
    return scheme


def check_ref_name(value: str, kind: str) -> str:
    """`value` when it is a safe branch/tag name, else RevisionNotFound (no ref of that name can exist)."""
    if not _REF.match(value):
        raise SourceError(REVISION_NOT_FOUND, f"{kind} {value!r} is not a valid git ref name")
    return value


def check_commit(value: str) -> str:
    """The commit in lower case when it is 7–40 hex digits, else RevisionNotFound."""
    if not _COMMIT.match(value):
        raise SourceError(REVISION_NOT_FOUND, f"commit {value!r} is not a hex commit id (7 to 40 digits)")
    return value.lower()


def _shown(url: object) -> str:
    """The URL for messages: userinfo is stripped by SourceError's redaction; cut absurd lengths."""
    text = str(url)
    return text if len(text) <= 200 else text[:200] + "…"
