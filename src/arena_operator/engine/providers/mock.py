"""Deterministic provider driven by the bundle's mock config: responses per scenario, turn and persona."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from ..spec import ProviderSpec
from ..types import ChatRequest, ChatResponse, CostInfo, ToolCall, Usage
from ..yamlsrc import load_yaml_file
from .base import Provider

MOCK_PRICE_PER_1K = 0.01


def _normalise_turns(turns: Any) -> dict[int, Any]:
    if not isinstance(turns, dict):
        return {}
    out: dict[int, Any] = {}
    for key, value in turns.items():
        try:
            out[int(key)] = value
        except (TypeError, ValueError):
            continue
    return out


class MockConfig:
    """The mock responses file: `defaultResponse`, `scenarios.<id>.turns.<N>`, `selfplay.<persona>`."""

    def __init__(self, data: dict[str, Any] | None) -> None:
        data = data or {}
        self.default = data.get("defaultResponse")
        self.latency_ms = float(data.get("latency_ms", 0) or 0)
        self.scenarios = {str(k): v or {} for k, v in (data.get("scenarios") or {}).items()}
        self.selfplay = {str(k): v or {} for k, v in (data.get("selfplay") or {}).items()}
        self._turns = {k: _normalise_turns(v.get("turns")) for k, v in self.scenarios.items()}
        self._persona_turns = {k: _normalise_turns(v.get("turns")) for k, v in self.selfplay.items()}

    @classmethod
    def from_file(cls, path: Path) -> MockConfig:
        data = load_yaml_file(path)
        if data is not None and not isinstance(data, dict):
            raise ValueError(f"{path}: a mock config must be a mapping")
        return cls(data)

    def lookup(self, scenario_id: str | None, persona_id: str | None, turn: int) -> Any:
        """Upstream's lookup order: selfplay[persona] → scenario turn → scenario default → global default."""
        if persona_id is not None and persona_id in self.selfplay:
            entry = self.selfplay[persona_id]
            found = self._persona_turns[persona_id].get(turn, entry.get("defaultResponse"))
            if found is not None:
                return found
        if scenario_id is not None and scenario_id in self.scenarios:
            found = self._turns[scenario_id].get(turn)
            if found is not None:
                return found
            if self.scenarios[scenario_id].get("defaultResponse") is not None:
                return self.scenarios[scenario_id]["defaultResponse"]
        return self.default


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


class MockProvider(Provider):
    """Answers from the mock config; tokens ≈ characters/4, $0.01 per 1K tokens."""

    def __init__(self, provider_id: str, spec: ProviderSpec, config: MockConfig) -> None:
        super().__init__(provider_id, spec)
        self.config = config
        self._latency = float(spec.additional_config.get("latency_ms", 0) or 0) or config.latency_ms

    def cost(self, usage: Usage) -> CostInfo:
        """Mocks always cost the mock rate, even when they stand in for a priced provider (upstream)."""
        return CostInfo(usage.input_tokens, usage.output_tokens, usage.input_tokens / 1000 * MOCK_PRICE_PER_1K,
                        usage.output_tokens / 1000 * MOCK_PRICE_PER_1K)

    async def _complete(self, request: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        if self._latency:
            await asyncio.sleep(self._latency / 1000)
        ctx = request.context
        turn = sum(1 for m in request.messages if m.role == "assistant") + 1
        found = self.config.lookup(ctx.get("scenario_id"), ctx.get("persona_id"), turn)
        content, calls = self._shape(found, ctx, turn)
        prompt_chars = len(request.system) + sum(len(m.content) for m in request.messages)
        usage = Usage(input_tokens=max(1, prompt_chars // 4), output_tokens=_estimate_tokens(content))
        latency = (time.perf_counter() - started) * 1000
        return ChatResponse(content=content, tool_calls=calls, usage=usage, latency_ms=latency,
                            ttft_ms=latency if request.stream else None,
                            finish_reason="tool_calls" if calls else "stop")

    def _shape(self, found: Any, ctx: dict[str, Any], turn: int) -> tuple[str, list[ToolCall]]:
        if found is None:
            return f"Mock response for provider {self.id} model {self.model or 'mock'}", []
        if isinstance(found, dict):
            calls = [
                ToolCall(id=f"call_{turn}_{i}", name=str(c.get("name")), args=dict(c.get("arguments") or {}))
                for i, c in enumerate(found.get("tool_calls") or [])
            ]
            return str(found.get("content") or found.get("text") or found.get("response") or ""), calls
        return str(found), []
