"""What the executor gives evals: the judge, classifier and tool services, and the eval metadata upstream's
arena provides (the latest reply's latency in whole milliseconds; no spend — see `cost_budget`)."""

from __future__ import annotations

import asyncio
from typing import Any

from .assertions.base import EvalServices
from .bundle import Bundle
from .composition import composition_metadata
from .providers.base import Provider
from .providers.huggingface import HuggingFaceClassifier, classifier_from
from .result import RunResult
from .tools import ToolRunner
from .types import ChatRequest, CostInfo, Message, ToolCall, ToolResult

JUDGE_MAX_TOKENS = 1024
CLASSIFIER_DEFAULT_KEYS = {"text": "text_classifier", "image": "image_classifier", "audio": "audio_classifier"}


def spend_of(messages: list[Message]) -> dict[str, Any]:
    total = CostInfo()
    for message in messages:
        if message.cost_info is not None:
            total.add(message.cost_info)
    return {"total_cost": total.total_cost_usd, "input_tokens": total.input_tokens,
            "output_tokens": total.output_tokens}


def eval_metadata(messages: list[Message]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"actual_spend": spend_of(messages)}
    last = next((m for m in reversed(messages) if m.role == "assistant"), None)
    if last is not None:
        metadata["latency_ms"] = float(int(last.latency_ms or 0.0))
        metadata.update(composition_metadata(last))  # the latest reply's steps, branches, parallels
    return metadata


class EvalEnvironment:
    """Shared by the runs of one executor; `services(result)` binds the judge's cost to one run."""

    def __init__(self, bundle: Bundle, providers: dict[str, Provider], tools: ToolRunner) -> None:
        self.bundle = bundle
        self.providers = providers
        self.tools = tools
        self.classifiers: dict[str, HuggingFaceClassifier] = {}
        for provider_id, spec in bundle.service_providers.items():
            if spec.role == "inference" and (found := classifier_from(provider_id, spec)) is not None:
                self.classifiers[provider_id] = found

    def services(self, result: RunResult) -> EvalServices:
        async def judge(name: str, system: str, user: str) -> str:
            provider_id = self.bundle.judge_provider(name or None) or self.bundle.judge_provider(None)
            if provider_id is None:
                raise ValueError("no judge configured")
            provider = self.providers[provider_id]
            response = await provider.chat(ChatRequest(system=system, messages=[Message("user", user)],
                                                       temperature=0.0, max_tokens=JUDGE_MAX_TOKENS))
            result.cost.add(provider.cost(response.usage))
            return response.content

        return EvalServices(judge=judge if self.bundle.judges else None,
                            classify=self.classify if self.classifiers else None, run_tool=self.run_tool)

    async def classify(self, kind: str, data: Any, model: str, classifier_id: str) -> list[tuple[str, float]]:
        if classifier_id:
            if classifier_id not in self.classifiers:
                raise LookupError(f"no classifier {classifier_id!r} configured")
            return await self.classifiers[classifier_id].classify(kind, data, model)
        inference = (self.bundle.arena.defaults.model_extra or {}).get("inference") or {}
        default = inference.get(CLASSIFIER_DEFAULT_KEYS[kind]) if isinstance(inference, dict) else None
        chosen = self.classifiers.get(str(default)) if default else next(iter(self.classifiers.values()))
        if chosen is None:
            raise LookupError(f"defaults.inference.{CLASSIFIER_DEFAULT_KEYS[kind]} names no configured classifier")
        return await chosen.classify(kind, data, model)

    async def run_tool(self, name: str, args: dict[str, Any], timeout: float) -> ToolResult:
        call = ToolCall(f"exec_{name}", name, args)
        try:
            # As upstream's registry: any tool the run knows, MCP and A2A ones included once offered.
            return await asyncio.wait_for(self.tools.execute(call, set(self.tools.tools)), timeout)
        except TimeoutError:
            return ToolResult(call.id, name, "", f"timed out after {timeout:g}s")
