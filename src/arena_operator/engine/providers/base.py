"""The provider contract: concurrency limit, retries with backoff and Retry-After, a circuit breaker, cost from
pricing.

Retries: at most `max_retries` more attempts after the first, each after a full-jitter exponential backoff
(uniform in [0, min(max_delay, base_delay × 2^attempt)]); a server's Retry-After is a floor, plus up to `base_delay`
of jitter so that runs told the same instant do not all come back at once; a Retry-After beyond MAX_RETRY_AFTER is
an outage and fails the call at once. The breaker (providers.circuit) is asked before every attempt."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import random
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace

from ..egress import REFUSED_KIND as EGRESS_REFUSED
from ..errors import ProviderError
from ..spec import Pricing, ProviderSpec
from ..types import ChatRequest, ChatResponse, CostInfo, Usage
from .circuit import CircuitBreaker, CircuitOpen

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
# A Retry-After beyond this is an outage, not back-pressure: fail the run instead of sleeping for an hour.
MAX_RETRY_AFTER = 120.0


class RetryableError(Exception):
    """A failure worth another attempt; `retry_after` (seconds) comes from the server when it says so."""

    def __init__(self, message: str, kind: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (now if now is not None else time.time()))


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0
    # The jitter's source: seeded in tests, so that a timing seed replays the same delays.
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before retry number `attempt + 1`: full-jitter exponential backoff; a server's Retry-After is a
        floor, not a suggestion, with a little jitter above it."""
        if retry_after is not None:
            return retry_after + self.rng.uniform(0, min(self.base_delay, self.max_delay))
        return self.rng.uniform(0, min(self.max_delay, self.base_delay * (2**attempt)))


class Provider(ABC):
    """One configured provider. Subclasses implement `_complete`; callers use `chat`."""

    def __init__(self, provider_id: str, spec: ProviderSpec, retry: RetryPolicy | None = None) -> None:
        self.id = provider_id
        self.spec = spec
        self.model = spec.model
        self.retry = retry or RetryPolicy(max_retries=spec.max_retries)
        self.circuit = CircuitBreaker(provider_id)
        limit = spec.rate_limit.max_concurrency
        self._slots = asyncio.Semaphore(limit) if limit else None

    @property
    def pricing(self) -> Pricing:
        return self.spec.pricing or Pricing()

    def cost(self, usage: Usage) -> CostInfo:
        return CostInfo(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            input_cost_usd=usage.input_tokens / 1000 * self.pricing.input_cost_per_1k,
            output_cost_usd=usage.output_tokens / 1000 * self.pricing.output_cost_per_1k,
        )

    def apply_defaults(self, request: ChatRequest) -> ChatRequest:
        """A copy of the request with the provider's defaults where the request leaves a value unset."""
        defaults = self.spec.defaults
        return replace(
            request,
            temperature=defaults.temperature if request.temperature is None else request.temperature,
            max_tokens=defaults.max_tokens if request.max_tokens is None else request.max_tokens,
            top_p=defaults.top_p if request.top_p is None else request.top_p,
        )

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Call the provider with retries; raises ProviderError once retries are exhausted, or at once (kind
        `unavailable`) while the provider's circuit is open."""
        request = self.apply_defaults(request)
        attempt = 0
        last: RetryableError | None = None
        while True:
            try:
                return await self._attempt(request, attempt, last)
            except RetryableError as exc:
                await asyncio.sleep(self.retry.delay(attempt, exc.retry_after))
                attempt, last = attempt + 1, exc

    async def _attempt(self, request: ChatRequest, attempt: int, last: RetryableError | None) -> ChatResponse:
        """One attempt, within the concurrency limit, if the circuit lets it through (asked once the slot is held,
        so a call that queued while the provider went down does not try it again). Raises RetryableError to be
        retried, ProviderError to give up."""
        async with self._slots or contextlib.nullcontext():
            try:
                probe = self.circuit.admit()
            except CircuitOpen:
                if last is None:
                    raise
                raise ProviderError(f"{self.id}: {last} (gave up after {attempt} attempts: the provider's circuit "
                                    "opened meanwhile)", last.kind, last.status) from None
            try:
                response = await self._complete(request)
            except RetryableError as exc:
                final = self._final(exc, attempt)
                self.circuit.failed(exc.kind, str(final or exc).removeprefix(f"{self.id}: "), probe, final is not None)
                if final is not None:
                    raise final from None
                raise
            except ProviderError as exc:
                if exc.kind == EGRESS_REFUSED:  # refused here, before any connection: says nothing of the server
                    self.circuit.release(probe)
                else:
                    self.circuit.answered()
                raise
            except BaseException:
                self.circuit.release(probe)
                raise
            self.circuit.answered()
            return response

    def _final(self, exc: RetryableError, attempt: int) -> ProviderError | None:
        """The error the call gives up with after `exc` on attempt `attempt` (0 = first), or None to retry."""
        if exc.retry_after is not None and exc.retry_after > MAX_RETRY_AFTER:
            return ProviderError(f"{self.id}: {exc}; server asks to retry after {exc.retry_after:.0f}s, more than "
                                 f"the {MAX_RETRY_AFTER:.0f}s this run will wait", exc.kind, exc.status)
        if attempt >= self.retry.max_retries:
            return ProviderError(f"{self.id}: {exc} (gave up after {attempt + 1} attempts)", exc.kind, exc.status)
        return None

    @abstractmethod
    async def _complete(self, request: ChatRequest) -> ChatResponse:
        """One attempt. Raise RetryableError for transient failures, ProviderError for final ones."""

    async def aclose(self) -> None:  # noqa: B027 - a no-op by default; HTTP providers close their pool
        """Release connections."""
