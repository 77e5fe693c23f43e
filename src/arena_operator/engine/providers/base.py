"""The provider contract: concurrency limit, retries with backoff and Retry-After, cost from pricing."""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace

from ..errors import ProviderError
from ..spec import Pricing, ProviderSpec
from ..types import ChatRequest, ChatResponse, CostInfo, Usage

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

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Full-jitter exponential backoff; a server's Retry-After is a floor, not a suggestion."""
        backoff = random.uniform(0, min(self.max_delay, self.base_delay * (2**attempt)))
        if retry_after is not None:
            return min(max(retry_after, backoff), max(self.max_delay, retry_after))
        return backoff


class Provider(ABC):
    """One configured provider. Subclasses implement `_complete`; callers use `chat`."""

    def __init__(self, provider_id: str, spec: ProviderSpec, retry: RetryPolicy | None = None) -> None:
        self.id = provider_id
        self.spec = spec
        self.model = spec.model
        self.retry = retry or RetryPolicy(max_retries=spec.max_retries)
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
        """Call the provider with retries; raises ProviderError once retries are exhausted."""
        request = self.apply_defaults(request)
        attempt = 0
        while True:
            try:
                if self._slots is None:
                    return await self._complete(request)
                async with self._slots:
                    return await self._complete(request)
            except RetryableError as exc:
                if exc.retry_after is not None and exc.retry_after > MAX_RETRY_AFTER:
                    raise ProviderError(f"{self.id}: {exc}; server asks to retry after {exc.retry_after:.0f}s, "
                                        f"more than the {MAX_RETRY_AFTER:.0f}s this run will wait", exc.kind,
                                        exc.status) from None
                if attempt >= self.retry.max_retries:
                    raise ProviderError(
                        f"{self.id}: {exc} (gave up after {attempt + 1} attempts)", exc.kind, exc.status
                    ) from None
                await asyncio.sleep(self.retry.delay(attempt, exc.retry_after))
                attempt += 1

    @abstractmethod
    async def _complete(self, request: ChatRequest) -> ChatResponse:
        """One attempt. Raise RetryableError for transient failures, ProviderError for final ones."""

    async def aclose(self) -> None:  # noqa: B027 - a no-op by default; HTTP providers close their pool
        """Release connections."""
