"""Per provider request measurements, taken at the provider itself: latency, time to first token, tokens, cost
and the error class of every attempt.

Retries and the circuit breaker are turned off for the providers under load: a retried request is load the target
did not ask for and a latency nobody measured, and a 429 or 5xx is what a load test is there to count (a refused
one would count nothing). So each attempt is one request, one measurement, and a failed one ends its scenario run
with that error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable

from ..engine.errors import ProviderError
from ..engine.providers.base import Provider, RetryableError, RetryPolicy
from ..engine.providers.circuit import CircuitBreaker, CircuitSettings
from ..engine.providers.http import HTTPProvider
from ..engine.providers.mock import MockProvider
from ..engine.types import ChatRequest, ChatResponse
from .metrics import Recorder, error_class
from .transport import LoadClient

Complete = Callable[[ChatRequest], Awaitable[ChatResponse]]


def priced(provider: Provider) -> bool:
    """Whether the provider's requests have a known cost: a mock (its fixed rate) or a provider with pricing."""
    return isinstance(provider, MockProvider) or provider.spec.pricing is not None


def _timed(provider: Provider, complete: Complete, recorder: Recorder) -> Complete:
    known_cost = priced(provider)

    async def timed(request: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        try:
            response = await complete(request)
        except asyncio.CancelledError:
            raise  # the run was stopped (test over, budget): not a request outcome
        except (RetryableError, ProviderError) as exc:
            recorder.request(time.perf_counter() - started, None, (0, 0), 0.0 if known_cost else None,
                             error_class(exc.kind, exc.status))
            raise
        except Exception:
            recorder.request(time.perf_counter() - started, None, (0, 0), 0.0 if known_cost else None, "other")
            raise
        latency = time.perf_counter() - started
        usage = response.usage
        cost = provider.cost(usage).total_cost_usd if known_cost else None
        recorder.request(latency, response.ttft_ms, (usage.input_tokens, usage.output_tokens), cost, None)
        return response

    return timed


def instrument(providers: dict[str, Provider], ids: Iterable[str], recorder: Recorder, connections: int) -> None:
    """Measure every request of the providers ``ids`` into ``recorder``, without retries; an HTTP provider's client
    is aiohttp's, with a pool of ``connections`` kept alive (transport.py): no request queues for a connection unseen,
    and the client's cost per request stays flat."""
    for provider_id in sorted(set(ids)):
        provider = providers[provider_id]
        provider.retry = RetryPolicy(max_retries=0)
        provider.circuit = CircuitBreaker(provider_id, CircuitSettings(failures=0))  # every 5xx is a measurement
        # An instance attribute shadows the method: Provider.chat calls self._complete for every attempt.
        provider._complete = _timed(provider, provider._complete, recorder)  # type: ignore[method-assign]
        if isinstance(provider, HTTPProvider) and provider._client is None:
            provider._client = LoadClient(connections, provider.timeout)  # type: ignore[assignment]


def unpriced(providers: dict[str, Provider], ids: Iterable[str]) -> list[str]:
    """The providers among ``ids`` whose cost is unknown (no pricing)."""
    return sorted(i for i in set(ids) if not priced(providers[i]))
