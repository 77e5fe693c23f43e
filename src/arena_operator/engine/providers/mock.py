"""Deterministic provider driven by the bundle's mock config, with upstream PromptArena's lookup rules.

Lookup: `selfplay.<persona>` (turn, then default) for a self-play user line → `scenarios.<spec.id>.steps.<step>`
→ `scenarios.<id>.turns.<N>` → the scenario's `defaultResponse` → the global `defaultResponse` → the built-in
text. An empty `defaultResponse` counts as unset. The turn N of an assistant reply is upstream's: the number of
user messages so far; when the prompt offers tools (or the history has tool traffic) it is the larger of that
and the number of assistant messages, plus one once any tool result is in the history — so a tool round trip
advances it. A self-play line uses N = assistant messages so far + 1. A judge call carries no scenario, so a
mock judge answers with the global default. A turn `{type: tool_calls, content, tool_calls}` makes calls only on
the tool path (a prompt without tools gets its `content`).
"""

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
SELF_PLAY_ROLE = "self_play_user"


def _turn_map(turns: Any) -> dict[int, Any]:
    if not isinstance(turns, dict):
        return {}
    out: dict[int, Any] = {}
    for key, value in turns.items():
        try:
            out[int(key)] = value
        except (TypeError, ValueError):
            continue
    return out


def _default(section: Any) -> str | None:
    value = section.get("defaultResponse") if isinstance(section, dict) else None
    return value if isinstance(value, str) and value else None


class MockConfig:
    """The mock responses file: `defaultResponse`, `scenarios.<id>.{turns,steps,defaultResponse}`, `selfplay`.

    `fallback` is the text when nothing matches; None means upstream's file fallback, "Mock response for
    provider <id> model <model>"."""

    def __init__(self, data: dict[str, Any] | None, fallback: str | None = None) -> None:
        data = data or {}
        self.default = _default(data)
        self.fallback = fallback
        self.latency_ms = float(data.get("latency_ms", 0) or 0)
        self.scenarios = {str(k): v or {} for k, v in (data.get("scenarios") or {}).items()}
        self.selfplay = {str(k): v or {} for k, v in (data.get("selfplay") or {}).items()}

    @classmethod
    def from_file(cls, path: Path) -> MockConfig:
        data = load_yaml_file(path)
        if data is not None and not isinstance(data, dict):
            raise ValueError(f"{path}: a mock config must be a mapping")
        return cls(data)

    def lookup(self, scenario_id: str | None, persona_id: str | None, turn: int, step: str | None = None) -> Any:
        """The configured response (a string or a mapping), or None for the built-in text."""
        if persona_id and persona_id in self.selfplay:
            entry = self.selfplay[persona_id]
            found = _turn_map(entry.get("turns")).get(turn) if turn > 0 else None
            if found is not None or (found := _default(entry)) is not None:
                return found
        scenario = self.scenarios.get(scenario_id or "") if scenario_id else None
        if isinstance(scenario, dict):
            steps = scenario.get("steps") if isinstance(scenario.get("steps"), dict) else {}
            if step and steps.get(step) is not None:
                return steps[step]
            found = _turn_map(scenario.get("turns")).get(turn) if turn > 0 else None
            if found is not None or (found := _default(scenario)) is not None:
                return found
        return self.default


def mock_turn(request: ChatRequest) -> int:
    """Upstream's turn number for this request (see the module docstring)."""
    ctx = request.context
    if ctx.get("mock_turn") is not None:
        return int(ctx["mock_turn"])
    users = sum(1 for m in request.messages if m.role == "user")
    if not tool_path(request):
        return users
    turn = max(users, sum(1 for m in request.messages if m.role == "assistant"), 1)
    return turn + 1 if any(m.role == "tool" for m in request.messages) else turn


def tool_path(request: ChatRequest) -> bool:
    return bool(request.tools) or any(m.tool_calls or m.role == "tool" for m in request.messages)


def _bytes(value: str) -> int:
    return len(value.encode())


_MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
         ".webp": "image/webp", ".mp3": "audio/mpeg", ".wav": "audio/wav", ".ogg": "audio/ogg",
         ".weba": "audio/webm", ".mp4": "video/mp4", ".webm": "video/webm", ".mov": "video/quicktime"}
_MEDIA_FIELDS = {"width": "width", "height": "height", "duration": "duration", "duration_seconds": "duration",
                 "format": "format"}


def eval_parts(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mock content parts (`{type: image, image_url: {url}, metadata: {width, …}}`) in the shape media evals
    read (`{type, media: {url, mime_type, width, height, duration}}`); the MIME type comes from the URL."""
    out = []
    for part in parts:
        kind = str(part.get("type", ""))
        holder = part.get(f"{kind}_url")
        if kind == "text" or not isinstance(holder, dict):
            out.append({"type": kind, "text": str(part.get("text", ""))})
            continue
        url = str(holder.get("url", ""))
        media: dict[str, Any] = {"url": url, "mime_type": _MIME.get(Path(url.split("?")[0]).suffix.lower(), "")}
        metadata = part.get("metadata") if isinstance(part.get("metadata"), dict) else {}
        media.update({_MEDIA_FIELDS[k]: v for k, v in metadata.items() if k in _MEDIA_FIELDS})
        out.append({"type": kind, "media": media})
    return out


def _summary(parts: list[dict[str, Any]]) -> str:
    texts = [p.get("text", "") for p in parts if p.get("type") == "text" and p.get("text")]
    media = [p.get("type") for p in parts if p.get("type") in ("image", "audio", "video")]
    summary = texts[0] if texts else ""
    if media:
        listed = "[" + " ".join(dict.fromkeys(str(m) for m in media)) + "]"
        summary = f"{summary} [{listed}]" if summary else f"Content includes:  [{listed}]"
    return summary


class MockProvider(Provider):
    """Answers from the mock config; tokens ≈ bytes/4 (10 in, 20 out when empty), $0.01 per 1K tokens."""

    def __init__(self, provider_id: str, spec: ProviderSpec, config: MockConfig) -> None:
        super().__init__(provider_id, spec)
        self.config = config
        self._latency = float(spec.additional_config.get("latency_ms", 0) or 0) or config.latency_ms

    def cost(self, usage: Usage) -> CostInfo:
        """Mocks always cost the mock rate, even when they stand in for a priced provider (upstream)."""
        return CostInfo(usage.input_tokens, usage.output_tokens, usage.input_tokens / 1000 * MOCK_PRICE_PER_1K,
                        usage.output_tokens / 1000 * MOCK_PRICE_PER_1K)

    def fallback_text(self) -> str:
        if self.config.fallback is not None:
            return self.config.fallback
        return f"Mock response for provider {self.id} model {self.model}"

    async def _complete(self, request: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        if self._latency:
            await asyncio.sleep(self._latency / 1000)
        ctx = request.context
        persona = ctx.get("persona_id") if ctx.get("arena_role") == SELF_PLAY_ROLE else None
        turn = mock_turn(request)
        found = self.config.lookup(ctx.get("scenario_id"), persona, turn, ctx.get("step_id"))
        content, calls, parts = self._shape(found, tool_path(request))
        input_tokens = sum(_bytes(m.content) // 4 for m in request.messages) or 10
        usage = Usage(input_tokens=input_tokens, output_tokens=_bytes(content) // 4 or 20)
        latency = (time.perf_counter() - started) * 1000
        response = ChatResponse(content=content, tool_calls=calls, usage=usage, latency_ms=latency,
                                ttft_ms=latency if request.stream else None,
                                finish_reason="tool_calls" if calls else "stop")
        response.parts = parts
        return response

    def _shape(self, found: Any, tools: bool) -> tuple[str, list[ToolCall], list[dict[str, Any]]]:
        if found is None:
            return self.fallback_text(), [], []
        if isinstance(found, str):
            return found, [], []
        if not isinstance(found, dict):
            return self.fallback_text(), [], []
        kind = found.get("type") if isinstance(found.get("type"), str) else "text"
        content = next((found[k] for k in ("content", "text", "response") if isinstance(found.get(k), str)), "")
        raw_calls = found.get("tool_calls") if isinstance(found.get("tool_calls"), list) else None
        if raw_calls is not None and kind == "text":
            kind = "tool_calls"
        parts = eval_parts([p for p in found.get("parts") or [] if isinstance(p, dict)])
        if not tools:
            return content or (_summary(parts) if parts else ""), [], parts
        if kind != "tool_calls":
            return content, [], parts
        calls = [ToolCall(id=f"call_{i}_{c.get('name', '')}", name=str(c.get("name", "")),
                          args=dict(c.get("arguments") or {}) if isinstance(c.get("arguments"), dict) else {})
                 for i, c in enumerate(raw_calls or []) if isinstance(c, dict)]
        return content, calls, parts
