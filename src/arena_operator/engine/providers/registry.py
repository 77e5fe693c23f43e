"""Build provider objects from bundle specs, honouring `--mock-provider` and `--mock-config`.

Every provider type upstream accepts loads. The ones spoken over plain HTTP run (`openai`, `vllm`, `ollama`,
`claude`, `gemini`, `mock`), `replay` answers from a recording (providers/replay.py); the others (`imagen`,
TTS/embedding services, providers behind a hosting `platform` such as bedrock, vertex or azure, any type this
version does not know) become a provider whose every
call fails with a clear message — the run that uses it is an error of kind `unsupported`, the other runs go
on — and `--mock-provider` replaces them like any other.

Mock fallbacks, as upstream: a mock with a file answers "Mock response for provider <id> model <model>" when
nothing matches; a declared mock without a file "Mock response from <id> model <model>"; `--mock-provider`
without any file "Mock response from provider".
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ProviderError
from ..spec import ProviderSpec
from ..types import ChatRequest, ChatResponse
from .base import Provider
from .claude import ClaudeProvider
from .gemini import GeminiProvider
from .mock import MockConfig, MockProvider
from .openai import OpenAIProvider
from .replay import ReplayProvider

HTTP_PROVIDERS: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
    "vllm": OpenAIProvider,
    "ollama": OpenAIProvider,
    "claude": ClaudeProvider,
    "gemini": GeminiProvider,
}
# Types upstream knows that need something this version does not speak (a recording, a media or voice API).
NEEDS = {
    "imagen": "calls Google's Imagen image-generation API",
    "elevenlabs": "is a text-to-speech service (voice runs)", "cartesia": "is a text-to-speech service (voice runs)",
    "voyageai": "is an embedding service", "huggingface": "is a classifier endpoint (used by classifier evals)",
}
GENERIC_MOCK_TEXT = "Mock response from provider"


class UnavailableProvider(Provider):
    """Stands in for a provider this version cannot call; every call is a ProviderError naming why."""

    def __init__(self, provider_id: str, spec: ProviderSpec, reason: str) -> None:
        super().__init__(provider_id, spec)
        self.reason = reason

    async def _complete(self, request: ChatRequest) -> ChatResponse:
        raise ProviderError(f"provider {self.id!r}: {self.reason}; run it with --mock-provider (and a mock config) "
                            "or use an openai/claude/gemini/ollama/vllm provider", "unsupported")


def unavailable_reason(spec: ProviderSpec) -> str | None:
    """Why a non-mock provider cannot be called here, or None when it can."""
    platform = (spec.platform or {}).get("type") if isinstance(spec.platform, dict) else None
    if platform:
        return f"type {spec.type!r} on platform {platform!r} needs that platform's authentication, not supported"
    if spec.type in HTTP_PROVIDERS:
        return None
    if spec.type in NEEDS:
        return f"type {spec.type!r} {NEEDS[spec.type]}, which this version does not support"
    return f"type {spec.type!r} is not a provider type this version knows"


def _mock_config(spec: ProviderSpec, root: Path, override: Path | None, mock_all: bool,
                 cache: dict[Path, MockConfig]) -> MockConfig:
    path = override
    if path is None and spec.additional_config.get("mock_config"):
        path = root / str(spec.additional_config["mock_config"])
    if path is None:
        fallback = GENERIC_MOCK_TEXT if mock_all else f"Mock response from {spec.id or ''} model {spec.model}"
        return MockConfig(None, fallback)
    path = path.resolve()
    if path not in cache:
        cache[path] = MockConfig.from_file(path)
    return cache[path]


def build_providers(
    specs: dict[str, ProviderSpec],
    root: Path,
    mock_all: bool = False,
    mock_config: Path | None = None,
) -> dict[str, Provider]:
    """One Provider per id. With `mock_all`, each becomes a mock of the same id (upstream `--mock-provider`)."""
    cache: dict[Path, MockConfig] = {}
    built: dict[str, Provider] = {}
    for provider_id, spec in specs.items():
        if mock_all or spec.type == "mock":
            mock_spec = spec.model_copy(update={"type": "mock", "id": provider_id})
            built[provider_id] = MockProvider(provider_id, mock_spec,
                                              _mock_config(mock_spec, root, mock_config, mock_all, cache))
            continue
        if spec.type == "replay":
            built[provider_id] = ReplayProvider(provider_id, spec, root)
            continue
        reason = unavailable_reason(spec)
        built[provider_id] = (UnavailableProvider(provider_id, spec, reason) if reason
                              else HTTP_PROVIDERS[spec.type](provider_id, spec))
    return built
