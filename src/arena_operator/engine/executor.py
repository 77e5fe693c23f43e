"""The conversation executor: scripted turns, self-play, tool loops, streaming, assertions → RunResult."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .assertions.base import AssertionContext, AssertionResult
from .assertions.guardrails import run_validators
from .assertions.judge import DEFAULT_JUDGE_PROMPT, Verdict, parse_verdict
from .assertions.registry import evaluate
from .bundle import Bundle
from .durations import parse_duration
from .errors import ProviderError
from .persona import persona_system_prompt, swap_roles
from .plan import RunCombination
from .providers.base import Provider
from .result import RunResult
from .spec import AssertionSpec, PromptConfigSpec, ScenarioSpec, Turn
from .templating import render
from .tools import ToolRunner, definition
from .types import ChatRequest, Message, ToolDefinition, ToolResult

COMPLETE_MARKER = "[CONVERSATION_COMPLETE]"


@dataclass(slots=True)
class _Prepared:
    """Per-scenario work done once, not once per run."""

    system: str
    tools: list[ToolDefinition]
    allowed: set[str]
    prompt: PromptConfigSpec | None


@dataclass(slots=True)
class _Run:
    combo: RunCombination
    scenario: ScenarioSpec
    provider: Provider
    prepared: _Prepared
    result: RunResult
    messages: list[Message] = field(default_factory=list)
    total_tool_calls: int = 0


class TurnFailed(Exception):
    """A turn assertion failed: the conversation stops here."""


class ConversationExecutor:
    """Executes RunCombinations of one bundle. Safe to share across concurrent runs."""

    def __init__(self, bundle: Bundle, providers: dict[str, Provider], tools: ToolRunner | None = None) -> None:
        self.bundle = bundle
        self.providers = providers
        self.tools = tools or ToolRunner(bundle.tools)
        self.run_timeout = parse_duration(bundle.arena.defaults.run_timeout, 300.0)
        self._prepared: dict[str, _Prepared] = {}

    async def aclose(self) -> None:
        await self.tools.aclose()
        for provider in self.providers.values():
            await provider.aclose()

    def _prepare(self, scenario_id: str) -> _Prepared:
        if scenario_id not in self._prepared:
            scenario = self.bundle.scenarios[scenario_id]
            prompt, _ = self.bundle.prompt_for(scenario)
            system = render(prompt.system_template, self.bundle.variables_for(scenario)) if prompt else ""
            names = list(prompt.allowed_tools) if prompt else list(self.bundle.tools)
            allowed = {n for n in names if n in self.bundle.tools} - set(scenario.tool_policy.blocklist)
            tools = [definition(self.bundle.tools[n]) for n in names if n in allowed]
            self._prepared[scenario_id] = _Prepared(system, tools, allowed, prompt)
        return self._prepared[scenario_id]

    async def execute(self, combo: RunCombination) -> RunResult:
        """Run one combination; never raises — errors land in RunResult.Error with a kind."""
        scenario = self.bundle.scenarios[combo.scenario_id]
        provider = self.providers[combo.provider_id]
        result = RunResult(run_id=combo.run_id, scenario_id=combo.scenario_id, provider_id=combo.provider_id,
                           region=combo.region, trial=combo.trial, prompt_pack=self.bundle.root.name)
        run = _Run(combo, scenario, provider, self._prepare(combo.scenario_id), result)
        result.params = self._params(run)
        try:
            await asyncio.wait_for(self._converse(run), self.run_timeout)
        except TurnFailed:
            pass
        except TimeoutError:
            result.error, result.error_kind = f"run timed out after {self.run_timeout:g}s", "timeout"
        except ProviderError as exc:
            result.error, result.error_kind = str(exc), exc.kind
        except Exception as exc:  # a bug or bad data must not take down the other runs
            result.error, result.error_kind = f"{type(exc).__name__}: {exc}", "internal"
        result.messages = run.messages
        if not result.error:
            try:
                result.conversation_assertions = await self._check(run, self._conversation_assertions(scenario),
                                                                   "conversation", run.messages)
            except ProviderError as exc:
                result.error, result.error_kind = f"judge: {exc}", exc.kind
        for message in run.messages:
            if message.role == "assistant" and message.cost_info:
                result.cost.add(message.cost_info)
        result.end_time = datetime.now(UTC)
        return result

    def _params(self, run: _Run) -> dict[str, Any]:
        return {"model": run.provider.model, "temperature": self._temperature(run.provider),
                "max_tokens": self._max_tokens(run.provider), "streaming": run.scenario.streaming,
                "trial": run.combo.trial}

    def _temperature(self, provider: Provider) -> float | None:
        value = provider.spec.defaults.temperature
        return value if value is not None else self.bundle.arena.defaults.temperature

    def _max_tokens(self, provider: Provider) -> int | None:
        value = provider.spec.defaults.max_tokens
        return value if value is not None else self.bundle.arena.defaults.max_tokens

    def _conversation_assertions(self, scenario: ScenarioSpec) -> list[AssertionSpec]:
        return [*scenario.conversation_assertions, *self.bundle.arena.globals.conversation_assertions]

    async def _converse(self, run: _Run) -> None:
        for turn in run.scenario.turns:
            if turn.role == "user":
                run.messages.append(Message("user", turn.content or "", meta=_parts_meta(turn)))
                new = await self._assistant_turn(run)
                await self._check_turn(run, turn, new)
            else:
                await self._self_play(run, turn)

    async def _assistant_turn(self, run: _Run) -> list[Message]:
        """One assistant turn: call the model; run the tools it asks for and call again, within limits."""
        policy = run.scenario.tool_policy
        new: list[Message] = []
        calls_this_turn = 0
        while True:
            request = ChatRequest(
                system=run.prepared.system, messages=run.messages, tools=run.prepared.tools,
                temperature=self._temperature(run.provider), max_tokens=self._max_tokens(run.provider),
                seed=self.bundle.arena.defaults.seed, stream=run.scenario.streaming,
                context={"scenario_id": run.combo.scenario_id},
            )
            response = await run.provider.chat(request)
            reply = Message("assistant", response.content, list(response.tool_calls), latency_ms=response.latency_ms,
                            ttft_ms=response.ttft_ms, cost_info=run.provider.cost(response.usage))
            if run.prepared.prompt and run.prepared.prompt.validators:
                results, delivered = run_validators(run.prepared.prompt.validators, reply.content)
                reply.meta["validators"] = results
                if delivered != reply.content:
                    reply.meta["original_content"] = reply.content
                    reply.content = delivered
            if run.result.ttft_ms is None and response.ttft_ms is not None:
                run.result.ttft_ms = response.ttft_ms
            run.messages.append(reply)
            new.append(reply)
            if not response.tool_calls:
                return new
            limited = False
            for call in response.tool_calls:
                if limited or calls_this_turn >= policy.max_tool_calls_per_turn or (
                    policy.max_total_tool_calls is not None and run.total_tool_calls >= policy.max_total_tool_calls
                ):
                    # Every call gets an answer, or the next request is malformed for OpenAI and Anthropic.
                    limited = True
                    tool_result = ToolResult(call.id, call.name, '{"error": "tool call limit reached"}',
                                             "tool call limit reached")
                else:
                    tool_result = await self.tools.execute(call, run.prepared.allowed)
                    run.result.tool_stats.record(call.name, tool_result.error is not None)
                    calls_this_turn += 1
                    run.total_tool_calls += 1
                run.messages.append(Message("tool", tool_result.content, tool_result=tool_result))
                new.append(run.messages[-1])
            if limited:
                run.result.violations.append(
                    f"tool call limit reached ({calls_this_turn} this turn, {run.total_tool_calls} total)")
                return new

    async def _self_play(self, run: _Run, turn: Turn) -> None:
        """A persona's provider plays the user for `turns` exchanges; with `max_turns`, it may go on up to that
        many and end early by saying the completion marker."""
        persona = self.bundle.personas.get(turn.persona or "")
        provider_id = self.bundle.role_provider(turn.role)
        assert provider_id is not None, "loader guarantees self-play roles have providers"
        user_model = self.providers[provider_id]
        run.result.self_play = True
        run.result.persona_id = turn.persona or ""
        system = persona_system_prompt(persona, self.bundle.variables_for(run.scenario)) if persona else ""
        limit = max(turn.turns, turn.max_turns or 0)
        for exchange in range(1, limit + 1):
            request = ChatRequest(
                system=system, messages=swap_roles(run.messages),
                temperature=persona.defaults.temperature if persona else None,
                seed=persona.defaults.seed if persona else None,
                context={"scenario_id": run.combo.scenario_id, "persona_id": turn.persona},
            )
            response = await user_model.chat(request)
            text = response.content
            done = COMPLETE_MARKER in text
            text = text.replace(COMPLETE_MARKER, "").strip()
            if text:
                run.messages.append(Message("user", text, latency_ms=response.latency_ms,
                                            meta={"self_play": True, "persona": turn.persona}))
                new = await self._assistant_turn(run)
                await self._check_turn(run, turn, new)
            # As upstream: the marker ends the conversation only once `turns` exchanges are done.
            if done and exchange >= turn.turns:
                return

    async def _check_turn(self, run: _Run, turn: Turn, new: list[Message]) -> None:
        if not turn.assertions:
            return
        results = await self._check(run, turn.assertions, "turn", new)
        replies = [m for m in new if m.role == "assistant"]
        if replies:
            replies[-1].assertions.extend(results)
        if any(not r.passed for r in results):
            raise TurnFailed

    async def _check(
        self, run: _Run, assertions: list[AssertionSpec], scope: str, messages: list[Message]
    ) -> list[AssertionResult]:
        async def judge(name: str, task: str, prompt: str | None) -> Verdict:
            return await self._judge(run, name, task, prompt)

        ctx = AssertionContext(scope, messages, run.messages, judge)
        return [await evaluate(a, ctx) for a in assertions]

    async def _judge(self, run: _Run, name: str, task: str, prompt: str | None) -> Verdict:
        provider_id = self.bundle.judge_provider(name or None)
        if provider_id is None:
            raise ValueError(f"no judge named {name!r} (spec.judges)" if name else "no judge configured")
        judge = self.providers[provider_id]
        system = prompt or self.bundle.arena.judge_defaults.get("prompt") or DEFAULT_JUDGE_PROMPT
        response = await judge.chat(ChatRequest(
            system=str(system), messages=[Message("user", task)], temperature=0.0,
            context={"scenario_id": run.combo.scenario_id, "judge": name},
        ))
        run.result.cost.add(judge.cost(response.usage))
        return parse_verdict(response.content)


def _parts_meta(turn: Turn) -> dict[str, Any]:
    return {"parts": turn.parts} if turn.parts else {}
