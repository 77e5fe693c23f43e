"""`arena run`'s fail-fast: a provider whose every run so far failed with an infrastructure error (a refused key, a
server that cannot be reached or resolved, one that is down) gets no more runs, and the terminal says what to fix.

Per provider, not per run: with two providers and one bad key, the good provider's runs still run. A provider is
stopped once its first FAIL_FAST_AFTER results are all such errors; one run that passes, fails an assertion or
errors otherwise (a 400, a timeout of one slow reply) marks it healthy for the rest of the run. The runs in flight
when it stops finish; the ones not started yet are counted as not attempted and written nowhere, so fixing the
cause and running again runs them. The same pass counts the runs a provider's open circuit refused (kind
`unavailable`), for the line that names a provider that went down on the way."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..engine.egress import REFUSED_KIND as EGRESS_REFUSED
from ..engine.plan import RunCombination
from ..engine.providers.base import Provider
from ..engine.providers.circuit import INFRA_KINDS, UNAVAILABLE

FAIL_FAST_AFTER = 5
FAIL_FAST_KINDS = INFRA_KINDS | {"auth_error", UNAVAILABLE, EGRESS_REFUSED}
REASON_CHARS = 300


def _safe_url(url: str) -> str:
    """A base URL as it may be printed: no user info, no query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else url.split("?")[0].rsplit("@", 1)[-1]


def key_hint(provider: Provider) -> str:
    """Which variable holds the key and whether it is set — its name only, never its value."""
    env_of = getattr(provider, "key_env", None)
    env = env_of() if callable(env_of) else None
    if env is None and provider.spec.type == "gemini":
        names = ["GEMINI_API_KEY", "GOOGLE_API_KEY"]
        state = "set, but the server refused it" if any(os.environ.get(n) for n in names) else "not set"
        return f"check the API key env var GEMINI_API_KEY (or GOOGLE_API_KEY): {state}"
    if env is None:
        return "check the provider's credential (credential.credential_env names the env var holding the key)"
    state = "it is set, but the server refused it" if os.environ.get(env) else "it is not set"
    return f"check the API key env var {env}: {state}"


def hint(provider: Provider | None, kind: str, error: str) -> str:
    """What to check, from the error's kind and words."""
    if provider is None:
        return "check the provider's configuration"
    base = _safe_url(str(getattr(provider, "base_url", "") or ""))
    if kind == "auth_error":
        return key_hint(provider)
    if kind == EGRESS_REFUSED:
        return f"check base_url {base}: the egress policy does not let runs reach that address"
    if "cannot resolve host" in error:
        return f"check the host in base_url {base}"
    if kind == "connection" and "refused" in error:
        return f"is the server at {base} running? check base_url"
    if kind == "connection":
        return f"check base_url {base} and the network to it (proxy, firewall, egress policy)"
    if kind == "timeout":
        return f"the server at {base} does not answer within the provider's timeout ({provider.spec.timeout})"
    return f"the server at {base} is failing; check its status, or run again later"


@dataclass
class _Track:
    runs: int = 0
    failed: int = 0
    healthy: bool = False
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, error) → runs


@dataclass
class Stop:
    provider: str
    skipped: int = 0  # runs not started after the stop


class FailFast:
    """Fed every result (`observe`) and asked before each run starts (`skip`)."""

    def __init__(self, providers: dict[str, Provider], enabled: bool = True, after: int = FAIL_FAST_AFTER) -> None:
        self.providers, self.enabled, self.after = providers, enabled, after
        self._tracks: dict[str, _Track] = {}
        self.stops: dict[str, Stop] = {}
        self.unavailable: Counter[str] = Counter()  # provider → runs its open circuit refused
        self.results: Counter[str] = Counter()  # provider → results seen

    def observe(self, run: dict[str, Any]) -> None:
        provider = str(run.get("ProviderID", ""))
        kind = str(run.get("ErrorKind") or "") if run.get("Status") == "error" else ""
        self.results[provider] += 1
        track = self._tracks.setdefault(provider, _Track())
        if kind == UNAVAILABLE:  # refused by the open circuit: not attempted, so neither a failure nor a pass
            self.unavailable[provider] += 1
            if not track.healthy:  # it opened before anything passed; refusals are instant, so stop now
                self._stop(provider)
            return
        if track.healthy:
            return
        track.runs += 1
        if kind not in FAIL_FAST_KINDS:
            track.healthy = provider not in self.stops  # a run in flight at the stop may still pass
            return
        track.failed += 1
        track.errors[(kind, " ".join(str(run.get("Error") or "").split())[:REASON_CHARS])] += 1
        if track.failed >= self.after:
            self._stop(provider)

    def _stop(self, provider: str) -> None:
        if self.enabled and provider not in self.stops:
            self.stops[provider] = Stop(provider)

    def _reason(self, provider: str) -> tuple[str, str]:
        """(kind, error) a stopped provider failed with: the commonest among its runs, else its circuit's."""
        track = self._tracks[provider]
        if track.errors:
            return track.errors.most_common(1)[0][0]
        circuit = getattr(self.providers.get(provider), "circuit", None)
        if circuit is None or not circuit.last_error:
            return UNAVAILABLE, f"provider {provider!r}: its circuit is open"
        return circuit.last_kind, f"{provider}: {circuit.last_error}"

    def skip(self, combo: RunCombination) -> bool:
        """Whether the run is not to start: its provider was stopped."""
        stop = self.stops.get(combo.provider_id)
        if stop is None:
            return False
        stop.skipped += 1
        return True

    def lines(self) -> list[str]:
        """What the terminal says at the end: each stopped provider, then each provider that went down on the way."""
        everyone = bool(self.stops) and set(self.stops) >= {p for p, n in self.results.items() if n}
        out = []
        for stop in self.stops.values():
            track = self._tracks[stop.provider]  # with the runs that were in flight at the stop
            its, other = ("", "") if everyone else (" of its", "its other ")
            counted = (f"all {track.runs}{its} runs so far failed" if track.failed == track.runs
                       else f"{track.failed} of the first {track.runs}{its} runs failed")
            head = "stopped early" if everyone else f"provider {stop.provider!r} stopped"
            kind, error = self._reason(stop.provider)
            out.append(f"{head}: {counted}: {error} — {hint(self.providers.get(stop.provider), kind, error)}; {other}"
                       f"{stop.skipped + self.unavailable[stop.provider]} runs not attempted "
                       "(--no-fail-fast runs them all)")
        for provider, refused in sorted(self.unavailable.items()):
            if provider in self.stops or not refused:
                continue
            circuit = getattr(self.providers.get(provider), "circuit", None)
            last = circuit.last_error if circuit is not None and circuit.last_error else "see the failures above"
            out.append(f"provider {provider!r} is unavailable: {last}; {refused} runs not attempted")
        return out
