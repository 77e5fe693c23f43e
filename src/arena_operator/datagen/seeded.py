"""Each item's seed into the provider calls that generate it.

The conversation executor is shared by all the items generated at once, so the seed travels in a context
variable that each generation sets in its own task (`generating(seed)`); `SeededProvider` puts it in the request
(`seed`, which OpenAI-compatible and Gemini providers send) of the assistant and of the self-play user alike.

A mock provider is deterministic: the same scenario gets the same reply whatever the seed, so every item of a
scenario × provider would be a duplicate. In a datagen run, `{{seed}}` in a mock reply is replaced by the item's
seed, which lets a mock bundle produce distinct items (tests, dry runs of a pipeline)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from typing import Any

from ..engine.executor import ConversationExecutor
from ..engine.plan import RunCombination
from ..engine.providers.base import Provider
from ..engine.providers.mock import MockProvider
from ..engine.types import ChatRequest, ChatResponse, CostInfo, Usage
from .generate import Generate

SEED_PLACEHOLDER = "{{seed}}"
_SEED: ContextVar[int | None] = ContextVar("arena_datagen_seed", default=None)


@contextmanager
def generating(seed: int) -> Iterator[None]:
    """Provider calls made inside (in this task) carry `seed`."""
    token = _SEED.set(seed)
    try:
        yield
    finally:
        _SEED.reset(token)


class SeededProvider(Provider):
    """`inner` with the current item's seed in every request (its retries and rate limits stay its own)."""

    def __init__(self, inner: Provider) -> None:
        super().__init__(inner.id, inner.spec, inner.retry)
        self.inner = inner
        self.model = inner.model
        self._mock = isinstance(inner, MockProvider)

    def cost(self, usage: Usage) -> CostInfo:
        return self.inner.cost(usage)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        seed = _SEED.get()
        if seed is None:
            return await self.inner.chat(request)
        response = await self.inner.chat(replace(request, seed=seed))
        if self._mock and SEED_PLACEHOLDER in response.content:
            response.content = response.content.replace(SEED_PLACEHOLDER, str(seed))
        return response

    async def _complete(self, request: ChatRequest) -> ChatResponse:  # pragma: no cover - chat() delegates
        return await self.inner.chat(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def seeded(providers: dict[str, Provider]) -> dict[str, Provider]:
    return {provider_id: SeededProvider(provider) for provider_id, provider in providers.items()}


def engine_generator(executor: ConversationExecutor,
                     observe: Callable[[dict[str, Any]], None] | None = None) -> Generate:
    """The generation of one try: the template's conversation through the engine, with the try's seed."""

    async def generate(template: RunCombination, seed: int) -> dict[str, Any]:
        with generating(seed):
            run = (await executor.execute(template)).to_dict()
        if observe is not None:
            observe(run)
        return run

    return generate
