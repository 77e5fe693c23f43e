"""Build provider objects from bundle specs, honouring `--mock-provider` and `--mock-config`."""

from __future__ import annotations

from pathlib import Path

from ..errors import ProviderError
from ..spec import ProviderSpec
from .base import Provider
from .claude import ClaudeProvider
from .gemini import GeminiProvider
from .mock import MockConfig, MockProvider
from .openai import OpenAIProvider

HTTP_PROVIDERS: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
    "vllm": OpenAIProvider,
    "ollama": OpenAIProvider,
    "claude": ClaudeProvider,
    "gemini": GeminiProvider,
}


def _mock_config(spec: ProviderSpec, root: Path, override: Path | None, cache: dict[Path, MockConfig]) -> MockConfig:
    path = override
    if path is None and spec.additional_config.get("mock_config"):
        path = root / str(spec.additional_config["mock_config"])
    if path is None:
        return MockConfig(None)
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
        if spec.type == "replay" and not mock_all:
            raise ProviderError(f"provider {provider_id!r}: type 'replay' is not supported yet; "
                                "use --mock-provider or a mock provider", "unsupported")
        if mock_all or spec.type == "mock":
            mock_spec = spec if spec.type == "mock" else spec.model_copy(update={"type": "mock"})
            built[provider_id] = MockProvider(provider_id, mock_spec, _mock_config(spec, root, mock_config, cache))
        else:
            built[provider_id] = HTTP_PROVIDERS[spec.type](provider_id, spec)
    return built
