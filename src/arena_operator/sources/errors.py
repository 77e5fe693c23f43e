"""Errors of the source fetchers, and the redaction that keeps credentials out of them.

A `SourceError` ends up in `ArenaSource.status.conditions[].message`, in events and in logs — places every user
with read access to the namespace can see. So its message is always passed through `redact()`: URL userinfo is
removed and every known secret value is replaced, even when the text came from a tool (git's stderr can echo
a URL with a token in it).
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Iterable

# Reasons are CamelCase constants of the API (api.conditions); the operator copies them into condition reasons.
from ..api.conditions import (
    ARTIFACT_TOO_LARGE,
    AUTHENTICATION_FAILED,
    DIGEST_MISMATCH,
    FETCH_TIMEOUT,
    INVALID_BUNDLE_LAYOUT,
    INVALID_URL,
    REVISION_NOT_FOUND,
    UNREACHABLE,
    UNSAFE_ARTIFACT,
)

# The fetchers raise these; callers may add their own CamelCase reasons (e.g. "SecretNotFound").
REASONS = frozenset({
    INVALID_URL, AUTHENTICATION_FAILED, REVISION_NOT_FOUND, UNREACHABLE, FETCH_TIMEOUT, UNSAFE_ARTIFACT,
    ARTIFACT_TOO_LARGE, INVALID_BUNDLE_LAYOUT, DIGEST_MISMATCH,
})
# Transient by nature: retry soon with backoff. The others need a change of spec, secret or remote content,
# so the operator reports them as stalled and simply tries again at the next interval.
RETRYABLE_REASONS = frozenset({UNREACHABLE, FETCH_TIMEOUT, DIGEST_MISMATCH})

REDACTED = "***"
# scheme://user[:password]@host — any userinfo goes, the user name alone can be an access token.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@'\"]*@")
# Authorization headers that a tool may print in verbose output.
_AUTH_HEADER = re.compile(r"(?i)\b(authorization:\s*(?:basic|bearer|token)\s+)\S+")
_MIN_SECRET_LEN = 3  # replacing "a" everywhere would make messages unreadable and protects nothing


def secret_forms(secret: str) -> set[str]:
    """The spellings a secret may be echoed in: as is, case-folded, base64 (with and without padding, standard and
    URL-safe) and percent-encoded — a tool or a server that prints `Basic <base64>` or a URL-encoded key leaks
    it just the same."""
    raw = secret.encode()
    encoded = {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    forms = {secret, secret.lower(), secret.upper(), urllib.parse.quote(secret, safe=""),
             urllib.parse.quote_plus(secret), *encoded, *(e.rstrip("=") for e in encoded)}
    return {form for form in forms if len(form) >= _MIN_SECRET_LEN}


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` without URL userinfo, Authorization header values, or any of `secrets` in any of their usual
    encodings (longest first; case-insensitively)."""
    text = _URL_USERINFO.sub(r"\1", text)
    text = _AUTH_HEADER.sub(rf"\1{REDACTED}", text)
    forms: set[str] = set()
    for secret in {s for s in secrets if s and len(s) >= _MIN_SECRET_LEN}:
        forms |= secret_forms(secret)
        # A secret can span lines (an SSH key); a tool may print just one of them.
        forms |= {line.strip() for line in secret.splitlines() if len(line.strip()) >= 16}
    for form in sorted(forms, key=len, reverse=True):
        text = re.sub(re.escape(form), REDACTED, text, flags=re.IGNORECASE)
    return text


class SourceError(Exception):
    """A fetch that failed for a reason the user can act on; `message` says which URL/ref/path and what was expected.

    `retryable` is True for transient failures (network, timeouts) that deserve a quick retry with backoff.
    """

    def __init__(self, reason: str, message: str, *, secrets: Iterable[str | None] = (),
                 retryable: bool | None = None) -> None:
        self.reason = reason
        self.message = redact(message, secrets)
        self.retryable = reason in RETRYABLE_REASONS if retryable is None else retryable
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"

    def __repr__(self) -> str:
        return f"SourceError({self.reason!r}, {self.message!r}, retryable={self.retryable})"
