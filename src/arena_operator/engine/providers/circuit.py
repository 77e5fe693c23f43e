"""A circuit breaker per provider: once a provider is down, the runs left fail at once, naming why, instead of each
burning its retries against it.

    closed ──`failures` calls in a row failed with an infrastructure error──▶ open
    open ──`cooldown` seconds later, the next call goes through as a probe──▶ half-open
    half-open ──the probe gets an answer──▶ closed;  ──the probe fails the same way──▶ open again

What counts is a *call* (`Provider.chat`) that failed after all its retries, so a flaky provider whose retries
succeed never opens it, with a kind that says the provider cannot be reached or cannot serve: `connection`
(refused, reset, DNS), `server_error` (5xx) and `timeout`. A 429 or 529 is back-pressure from a provider that is up
(the answer is backoff, not refusal), and any answer from the server — a reply, a 401, a 400 — resets the count.
While open, every attempt is refused with a ProviderError of kind `unavailable` whose message names the last
failure; a call refused between two of its retries gives up with its own last error instead.

One breaker per Provider object: `arena run` shares it across all its runs, a worker across its units (each
worker pod learns on its own). ARENA_CIRCUIT_FAILURES (default 5; 0 turns the breaker off) and
ARENA_CIRCUIT_COOLDOWN (seconds, default 30) tune it; load tests turn it off (they count every 5xx).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..errors import ProviderError

log = logging.getLogger("arena.providers")

INFRA_KINDS = frozenset({"connection", "server_error", "timeout"})
UNAVAILABLE = "unavailable"
FAILURES_ENV, COOLDOWN_ENV = "ARENA_CIRCUIT_FAILURES", "ARENA_CIRCUIT_COOLDOWN"
DEFAULT_FAILURES, DEFAULT_COOLDOWN = 5, 30.0
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


def _number(raw: str | None, default: float, minimum: float) -> float:
    try:
        value = float(raw) if raw not in (None, "") else default
    except ValueError:
        log.warning("ignoring a circuit setting that is not a number: %r", raw)
        return default
    return max(minimum, value)


@dataclass(frozen=True)
class CircuitSettings:
    failures: int = DEFAULT_FAILURES  # failed calls in a row that open the circuit; 0: never open
    cooldown: float = DEFAULT_COOLDOWN  # seconds open before a probe

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CircuitSettings:
        env = os.environ if env is None else env
        return cls(failures=int(_number(env.get(FAILURES_ENV), DEFAULT_FAILURES, 0)),
                   cooldown=_number(env.get(COOLDOWN_ENV), DEFAULT_COOLDOWN, 0.0))


class CircuitOpen(ProviderError):
    """A call refused because its provider's circuit is open."""

    def __init__(self, message: str) -> None:
        super().__init__(message, UNAVAILABLE)


class CircuitBreaker:
    """The state of one provider's circuit. Provider.chat calls `admit` before each attempt, then exactly one of
    `answered`, `failed` or `release` for it."""

    def __init__(self, provider_id: str, settings: CircuitSettings | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.provider_id = provider_id
        self.settings = settings or CircuitSettings.from_env()
        self.clock = clock
        self.state = CLOSED
        self.failures = 0  # calls in a row that failed with an infrastructure error
        self.last_error = ""
        self.last_kind = ""
        self.opened_at = 0.0
        self.times_opened = 0
        self.refused = 0  # attempts refused while open

    def admit(self) -> bool:
        """Whether this attempt is the probe of a half-open circuit; raises CircuitOpen when it is refused."""
        if self.state == CLOSED:
            return False
        if self.state == OPEN and self.clock() - self.opened_at >= self.settings.cooldown:
            self.state = HALF_OPEN
            log.info("provider %s: probing after %gs open", self.provider_id, self.settings.cooldown)
            return True
        self.refused += 1
        raise CircuitOpen(self.message())

    def message(self) -> str:
        """Always the same text while the failure is the same, so identical refusals group together in reports."""
        return (f"provider {self.provider_id!r} is unavailable: {self.last_error}; not attempted (circuit open after "
                f"{self.settings.failures} failed calls in a row, probed again every {self.settings.cooldown:g}s)")

    def answered(self) -> None:
        """The provider answered: a reply, or an error only a server that is up gives (401, 400, 429 …)."""
        self.failures = 0
        if self.state != CLOSED:
            log.info("provider %s: answering again, circuit closed", self.provider_id)
            self.state = CLOSED

    def failed(self, kind: str, message: str, probe: bool, final: bool) -> None:
        """An attempt failed with `kind`; `final` when the call gives up with it (no retry left)."""
        if kind not in INFRA_KINDS:
            self.answered()
            return
        if probe:
            if not self.last_error.startswith(message):  # the same failure keeps its words, so refusals group
                self.last_error, self.last_kind = message, kind
            self._open("the probe failed")
        elif final and self.state == CLOSED:  # calls still in flight once it is open change nothing
            self.last_error, self.last_kind = message, kind
            self.failures += 1
            if self.settings.failures and self.failures >= self.settings.failures:
                self._open(f"{self.failures} calls in a row failed")

    def release(self, probe: bool) -> None:
        """The attempt ended without a verdict (cancelled, or a bug): a probe's turn goes to the next call."""
        if probe and self.state == HALF_OPEN:
            self.state = OPEN

    def _open(self, why: str) -> None:
        self.state = OPEN
        self.opened_at = self.clock()
        self.times_opened += 1
        log.info("provider %s: circuit open (%s; last: %s); calls refused for %gs", self.provider_id, why,
                    self.last_error, self.settings.cooldown)
