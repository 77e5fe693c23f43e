"""`arena run`'s fail-fast rules (local/failfast.py) fed results directly: which provider stops and when, what the
line says, and that it names the key's variable but never its value. No timing involved: results are fed in the
orders concurrency can produce (a refusal recorded before the failures that opened the circuit, a run in flight
that passes after the stop)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from arena_operator.engine.plan import RunCombination
from arena_operator.engine.providers.base import Provider
from arena_operator.engine.providers.registry import build_providers
from arena_operator.engine.spec import ProviderSpec
from arena_operator.local.failfast import FailFast

SECRET = "sk-never-printed-0123456789"


def providers(**types: str) -> dict[str, Provider]:
    specs = {pid: ProviderSpec.model_validate({"type": kind, "model": "m", "base_url": f"https://{pid}.example/v1",
                                              "credential": {"credential_env": f"{pid.upper()}_KEY"}})
             for pid, kind in types.items()}
    return build_providers(specs, root=Path("."))


def run(provider: str, status: str = "error", kind: str = "", error: str = "") -> dict[str, Any]:
    return {"ProviderID": provider, "Status": status, "ErrorKind": kind, "Error": error}


def combo(provider: str) -> RunCombination:
    return RunCombination("default", "s", provider, 0)


AUTH = run("gpt", kind="auth_error", error="gpt: HTTP 401: Incorrect API key provided: ***")


def test_a_provider_stops_after_five_infrastructure_failures_and_the_other_goes_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPT_KEY", SECRET)
    watch = FailFast(providers(gpt="openai", claude="claude"))
    for _ in range(4):
        watch.observe(AUTH)
        watch.observe(run("claude", "passed"))
    assert not watch.skip(combo("gpt"))
    watch.observe(AUTH)
    assert watch.skip(combo("gpt")) and watch.skip(combo("gpt")) and not watch.skip(combo("claude"))
    assert watch.lines() == [
        "provider 'gpt' stopped: all 5 of its runs so far failed: gpt: HTTP 401: Incorrect API key provided: *** — "
        "check the API key env var GPT_KEY: it is set, but the server refused it; its other 2 runs not attempted "
        "(--no-fail-fast runs them all)"]
    assert SECRET not in "".join(watch.lines())


@pytest.mark.parametrize(("outcome", "kind"), [("passed", ""), ("failed", ""), ("error", "bad_request"),
                                               ("error", "rate_limited"), ("error", "internal")])
def test_one_run_that_is_not_an_infrastructure_failure_keeps_the_provider_going(outcome: str, kind: str) -> None:
    watch = FailFast(providers(gpt="openai"))
    watch.observe(run("gpt", outcome, kind, "x"))
    for _ in range(20):
        watch.observe(AUTH)
    assert not watch.skip(combo("gpt")) and watch.lines() == []


def test_off_it_only_reports_the_circuit() -> None:
    watch = FailFast(providers(gpt="openai"), enabled=False)
    for _ in range(5):
        watch.observe(run("gpt", kind="server_error", error="gpt: HTTP 503: down (gave up after 4 attempts)"))
    watch.observe(run("gpt", kind="unavailable", error="provider 'gpt' is unavailable: …"))
    assert not watch.skip(combo("gpt"))
    [line] = watch.lines()
    assert line.startswith("provider 'gpt' is unavailable: ") and line.endswith("; 1 runs not attempted")


def test_a_refusal_recorded_before_the_failures_that_opened_the_circuit_stops_at_once() -> None:
    """Refused runs take no time: while the run that opened the circuit is still being written, the other runners
    could go through the whole plan. The first refusal of a provider that never passed stops it."""
    built = providers(gpt="openai")
    breaker = built["gpt"].circuit
    breaker.last_error, breaker.last_kind = "connection to gpt.example:443 refused (nothing listening there?)", \
        "connection"
    watch = FailFast(built)
    watch.observe(run("gpt", kind="unavailable", error="provider 'gpt' is unavailable: …"))
    assert watch.skip(combo("gpt"))
    assert watch.lines()[0].startswith("stopped early: all 0 runs so far failed: gpt: connection to gpt.example:443 "
                                       "refused (nothing listening there?) — is the server at "
                                       "https://gpt.example/v1 running? check base_url; 2 runs not attempted")
    for _ in range(5):  # the failed runs land afterwards; the line counts them
        watch.observe(run("gpt", kind="connection", error="gpt: connection to gpt.example:443 refused (nothing "
                                                          "listening there?) (gave up after 4 attempts)"))
    assert watch.lines()[0].startswith("stopped early: all 5 runs so far failed: gpt: connection to gpt.example:443 "
                                       "refused (nothing listening there?) (gave up after 4 attempts) — is the server")


def test_a_run_in_flight_that_passes_after_the_stop_is_counted_honestly() -> None:
    watch = FailFast(providers(gpt="openai"))
    for _ in range(5):
        watch.observe(AUTH)
    watch.observe(run("gpt", "passed"))
    assert watch.skip(combo("gpt"))  # what was skipped stays skipped
    assert watch.lines()[0].startswith("stopped early: 5 of the first 6 runs failed: ")


@pytest.mark.parametrize(("kind", "error", "hint"), [
    ("connection", "gpt: cannot resolve host 'gpt.example' (DNS: [Errno -2] Name or service not known)",
     "check the host in base_url https://gpt.example/v1"),
    ("connection", "gpt: connection to gpt.example:443 reset while reading the response: …",
     "check base_url https://gpt.example/v1 and the network to it (proxy, firewall, egress policy)"),
    ("timeout", "gpt: no complete response from gpt.example:443 within 60s",
     "the server at https://gpt.example/v1 does not answer within the provider's timeout (60s)"),
    ("server_error", "gpt: HTTP 502: bad gateway", "the server at https://gpt.example/v1 is failing"),
    ("egress_refused", "egress to 169.254.169.254 refused: 169.254.169.254 is link-local (cloud metadata services "
                       "live here)",
     "check base_url https://gpt.example/v1: the egress policy does not let runs reach that address"),
])
def test_the_hint_follows_the_error(kind: str, error: str, hint: str) -> None:
    watch = FailFast(providers(gpt="openai"))
    for _ in range(5):
        watch.observe(run("gpt", kind=kind, error=error))
    assert f"{error} — {hint}" in watch.lines()[0]


@pytest.mark.parametrize("kind", ["openai", "claude", "gemini"])
def test_the_key_hint_names_the_configured_variable_and_says_it_is_unset(kind: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPT_KEY", raising=False)
    watch = FailFast(providers(gpt=kind))
    for _ in range(5):
        watch.observe(AUTH)
    assert "check the API key env var GPT_KEY: it is not set" in watch.lines()[0]


def test_gemini_without_a_configured_variable_names_both_of_google_s(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", SECRET)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    spec = ProviderSpec.model_validate({"type": "gemini", "model": "m"})
    watch = FailFast(build_providers({"g": spec}, root=Path(".")))
    for _ in range(5):
        watch.observe(run("g", kind="auth_error", error="g: HTTP 403: API key not valid"))
    line = watch.lines()[0]
    assert "check the API key env var GEMINI_API_KEY (or GOOGLE_API_KEY): set, but the server refused it" in line
    assert SECRET not in line
