"""Secrets never reach a condition, event or log in any of the spellings a tool may echo them in."""

from __future__ import annotations

import base64
import urllib.parse

import pytest

from arena_operator.sources.errors import REDACTED, SourceError, redact

SECRET = "ghp_SecretToken/With+Chars=="


@pytest.mark.parametrize("echo", [
    SECRET, SECRET.lower(), SECRET.upper(), base64.b64encode(SECRET.encode()).decode(),
    base64.b64encode(SECRET.encode()).decode().rstrip("="), base64.urlsafe_b64encode(SECRET.encode()).decode(),
    urllib.parse.quote(SECRET, safe=""), urllib.parse.quote_plus(SECRET),
])
def test_every_usual_encoding_of_a_secret_is_redacted(echo: str) -> None:
    message = f"fatal: could not read from https://host/repo?token={echo} (status 401)"
    assert echo not in redact(message, [SECRET]) and REDACTED in redact(message, [SECRET])
    assert echo not in SourceError("AuthenticationFailed", message, secrets=[SECRET]).message


def test_userinfo_and_headers_go_and_short_values_stay_readable() -> None:
    text = redact("GET https://bob:hunter22@git.example/r Authorization: Bearer abc.def a", ["a"])
    assert "hunter22" not in text and "abc.def" not in text and text.endswith(" a")
