"""The conversation executor: scripted turns, self-play, tool loops, streaming, assertions → RunResult."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import duplex
from .a2a import A2aAgents, A2aDiscoveryError
from .assertions.base import AssertionResult, EvalContext, EvalServices
from .assertions.guardrails import Guardrail, check_input, check_output
from .assertions.registry import evaluate, guardrail_for
from .bundle import Bundle
from .composition import CallSettings, CompositionError, CompositionRunner
from .durations import parse_duration
from .errors import ProviderError
from .evalctx import EvalEnvironment, eval_metadata, spend_of
from .mcp import McpStartError, McpTools
from .media import parts_meta, user_message
from .packevals import PackEvals
from .persona import persona_system_prompt, swap_roles
from .plan import RunCombination
from .providers.base import Provider
from .result import RunResult
from .spec import AssertionSpec, PromptConfigSpec, ScenarioSpec, Turn
from .templating import render
from .tools import ToolRunner, definition
from .types import ChatRequest, Message, ToolDefinition, ToolResult
from .workflow.session import STATE_STAMP, WorkflowSession, template_defaults

COMPLETE_MARKER = "[CONVERSATION_COMPLETE]"


@dataclass(slots=True)
class _Prepared:
    """Per-scenario work done once, not once per run."""

    system: str
    tools: list[ToolDefinition]
    allowed: set[str]
    prompt: PromptConfigSpec | None
    guards: list[Guardrail]
    variables: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Speaker:
    """What one provider round is sent: the system prompt, the tools offered, the bundle tools it may run."""

    system: str
    tools: list[ToolDefinition]
    allowed: set[str]


@dataclass(slots=True)
class _Run:
    combo: RunCombination
    scenario: ScenarioSpec
    provider: Provider
    prepared: _Prepared
    result: RunResult
    services: EvalServices
    workflow: WorkflowSession | None = None
    messages: list[Message] = field(default_factory=list)
    total_tool_calls: int = 0


class TurnFailed(Exception):
    """A turn assertion failed: the conversation stops here."""


class ConversationExecutor:
    """Executes RunCombinations of one bundle. Safe to share across concurrent runs."""

    def __init__(self, bundle: Bundle, providers: dict[str, Provider], tools: ToolRunner | None = None) -> None:
        self.bundle = bundle
        self.providers = providers
        self.tools = tools or ToolRunner(bundle.tools, McpTools(bundle.arena, bundle.root),
                                           A2aAgents.of(bundle.arena), bundle.root)
        self.run_timeout = parse_duration(bundle.arena.defaults.run_timeout, 300.0)
        self._prepared: dict[tuple[str, str | None], _Prepared] = {}
        self.evals = EvalEnvironment(bundle, providers, self.tools)
        self.pack_evals = PackEvals(bundle.pack_evals)

    async def aclose(self) -> None:
        await self.tools.aclose()
        for provider in self.providers.values():
            await provider.aclose()

    async def _prepare(self, scenario_id: str, task_type: str | None = None) -> _Prepared:
        """The scenario's prompt (or a workflow state's, by its prompt_task). Raises McpStartError when a server
        the prompt's tools come from does not start."""
        key = (scenario_id, task_type)
        if key not in self._prepared:
            scenario = self.bundle.scenarios[scenario_id]
            prompt, _ = self.bundle.prompt_for(scenario, task_type)
            variables = self.bundle.variables_for(scenario, task_type)
            system = render(prompt.system_template, {**template_defaults(self.bundle.arena.workflow), **variables}) \
                if prompt else ""
            names = list(prompt.allowed_tools) if prompt else list(self.bundle.tools)
            mcp = self.tools.mcp
            if mcp is not None and (servers := mcp.needed(names)):
                self.tools.tools.update(await mcp.ensure(servers))
            if self.tools.a2a is not None and self.tools.a2a.needed(names):
                self.tools.tools.update(await self.tools.a2a.ensure())
            known = self.tools.tools
            blocked = set(scenario.tool_policy.blocklist)
            tools = [definition(known[n]) for n in names if n in known and n not in blocked]
            # As upstream, a call runs against every tool the bundle declares, offered to this prompt or not;
            # the scenario's blocklist is what refuses one.
            allowed = set(known) - blocked
            guards = [guardrail_for(v) for v in (prompt.validators if prompt else []) if v.enabled]
            self._prepared[key] = _Prepared(system, tools, allowed, prompt, guards, variables)
        return self._prepared[key]

    def _workflow_for(self, scenario: ScenarioSpec) -> WorkflowSession | None:
        """Raises ValueError when the scenario's task_type names no workflow state (the loader checks it)."""
        if self.bundle.arena.workflow is None and self.bundle.skills is None:
            return None
        return WorkflowSession(self.bundle.arena.workflow, self.bundle.skills, scenario.task_type,
                               set(self.bundle.tools))

    async def _speaker(self, run: _Run) -> _Speaker:
        """A plain run speaks with its scenario's prompt; a workflow run with its current state's, its template
        seeing the artifacts and the hand-off brief, plus the system tools and what active skills add."""
        if run.workflow is None:
            return _Speaker(run.prepared.system, run.prepared.tools, run.prepared.allowed)
        workflow = run.workflow
        run.prepared = prepared = await self._prepare(run.combo.scenario_id, workflow.prompt_task)
        system = render(prepared.prompt.system_template, {**prepared.variables, **workflow.variables()}) \
            if prepared.prompt else ""
        offered = {t.name for t in prepared.tools}
        added = sorted((workflow.extra_tools() & prepared.allowed) - offered)
        system_tools = [d for d in workflow.definitions() if d.name not in run.scenario.tool_policy.blocklist]
        return _Speaker(system + workflow.system_suffix(),
                        [*prepared.tools, *(definition(self.tools.tools[n]) for n in added), *system_tools],
                        prepared.allowed)

    async def execute(self, combo: RunCombination) -> RunResult:
        """Run one combination; never raises — errors land in RunResult.Error with a kind."""
        scenario = self.bundle.scenarios[combo.scenario_id]
        provider = self.providers[combo.provider_id]
        result = RunResult(run_id=combo.run_id, scenario_id=combo.scenario_id, provider_id=combo.provider_id,
                           region=combo.region, trial=combo.trial, prompt_pack=self.bundle.root.name)
        try:
            workflow = self._workflow_for(scenario)
            prepared = await self._prepare(combo.scenario_id, workflow.prompt_task if workflow else None)
            limit = duplex.time_limit(scenario, combo.scenario_id, provider, self.run_timeout)
        except (McpStartError, A2aDiscoveryError, duplex.DuplexUnsupported) as exc:
            result.error, result.error_kind, result.end_time = str(exc), exc.kind, datetime.now(UTC)
            return result
        except ValueError as exc:
            result.error, result.error_kind, result.end_time = f"workflow: {exc}", "config", datetime.now(UTC)
            return result
        run = _Run(combo, scenario, provider, prepared, result, self.evals.services(result), workflow)
        result.params = self._params(run)
        try:
            await asyncio.wait_for(self._converse(run), limit)
        except TurnFailed:
            pass
        except TimeoutError:
            result.error, result.error_kind = f"run timed out after {limit:g}s", "timeout"
        except CompositionError as exc:
            result.error, result.error_kind = str(exc), exc.kind
            result.cost.add(exc.outcome.cost)
            result.violations.extend(exc.outcome.violations)
        except ProviderError as exc:
            result.error, result.error_kind = str(exc), exc.kind
        except Exception as exc:  # a bug or bad data must not take down the other runs
            result.error, result.error_kind = f"{type(exc).__name__}: {exc}", "internal"
        result.messages = run.messages
        if not result.error:
            result.conversation_assertions = await self._check(run, self._conversation_assertions(scenario),
                                                               "conversation", run.messages)
            result.eval_results += await self.pack_evals.at_end(run.messages, combo.run_id, run.services)
        for message in run.messages:
            if message.role == "assistant" and message.cost_info:
                result.cost.add(message.cost_info)
        if workflow is not None:
            result.violations.extend(workflow.rejections)
            result.workflow = workflow.summary()
        result.end_time = datetime.now(UTC)
        return result

    def _params(self, run: _Run) -> dict[str, Any]:
        return {"model": run.provider.model, "temperature": self._temperature(run.provider),
                "max_tokens": self._max_tokens(run.provider), "streaming": run.scenario.streaming,
                "trial": run.combo.trial,
                "system_prompt": run.prepared.system + (run.workflow.system_suffix() if run.workflow else ""),
                "prompt_version": run.prepared.prompt.version if run.prepared.prompt else None}

    def _temperature(self, provider: Provider) -> float | None:
        value = provider.spec.defaults.temperature
        return value if value is not None else self.bundle.arena.defaults.temperature

    def _max_tokens(self, provider: Provider) -> int | None:
        value = provider.spec.defaults.max_tokens
        return value if value is not None else self.bundle.arena.defaults.max_tokens

    def _conversation_assertions(self, scenario: ScenarioSpec) -> list[AssertionSpec]:
        """As upstream: the arena's globals first, then the scenario's own."""
        return [*self.bundle.arena.globals.conversation_assertions, *scenario.conversation_assertions]

    async def _converse(self, run: _Run) -> None:
        for turn in run.scenario.turns:
            if turn.role == "user":
                run.messages.append(await user_message(turn))
                new = await self._assistant_turn(run, self._streams(run, turn))
                await self._check_turn(run, turn, [run.messages[-len(new) - 1], *new])
            else:
                await self._self_play(run, turn)

    def _streams(self, run: _Run, turn: Turn) -> bool:
        """As upstream: a turn's `streaming` can turn streaming off in a streaming scenario, not on."""
        return run.scenario.streaming and turn.streaming is not False

    async def _compose(self, run: _Run, name: str) -> Message:
        """A composition answers the turn: the user's message is its input, its output the reply."""
        settings = CallSettings(self._temperature(run.provider), self._max_tokens(run.provider),
                                self.bundle.arena.defaults.seed, self.run_timeout)
        outcome = await CompositionRunner(self.bundle, run.provider, self.tools, settings).run(
            name, run.messages[-1].content, run.scenario, run.combo.scenario_id)
        run.result.violations.extend(outcome.violations)
        reply = outcome.reply()
        if run.workflow is not None and (stamp := run.workflow.state_stamp()):
            reply.meta[STATE_STAMP] = stamp
        run.messages.append(reply)
        return reply

    async def _assistant_turn(self, run: _Run, stream: bool) -> list[Message]:
        """One assistant turn: call the model; run the tools it asks for and call again, within limits.
        The prompt's validators act on the user's message (input) and on every reply (output)."""
        if run.workflow is not None and run.workflow.in_composition and run.workflow.state is not None:
            return self._end_turn(run, [await self._compose(run, run.workflow.state.composition)])
        new: list[Message] = []
        blocked = await self._input_guard(run)
        if blocked is not None:
            run.messages.append(blocked)
            return [blocked]
        calls_this_turn = 0
        while True:
            speaker = await self._speaker(run)
            request = ChatRequest(
                system=speaker.system, messages=run.messages, tools=speaker.tools,
                temperature=self._temperature(run.provider), max_tokens=self._max_tokens(run.provider),
                seed=self.bundle.arena.defaults.seed, stream=stream,
                context={"scenario_id": run.combo.scenario_id},
            )
            response = await run.provider.chat(request)
            reply = Message("assistant", response.content, list(response.tool_calls), latency_ms=response.latency_ms,
                            ttft_ms=response.ttft_ms, cost_info=run.provider.cost(response.usage))
            if response.parts:
                reply.meta["parts"] = response.parts
            if run.workflow is not None and (stamp := run.workflow.state_stamp()):
                reply.meta[STATE_STAMP] = stamp  # the state that produced this round; a turn may span several
            await self._output_guard(run, reply, stream)
            if run.result.ttft_ms is None and response.ttft_ms is not None:
                run.result.ttft_ms = response.ttft_ms
            run.messages.append(reply)
            new.append(reply)
            if not reply.tool_calls:
                return self._end_turn(run, new)
            calls_this_turn, limited = await self._run_tools(run, reply, new, calls_this_turn, speaker.allowed)
            if limited:
                run.result.violations.append(
                    f"tool call limit reached ({calls_this_turn} this turn, {run.total_tool_calls} total)")
                return self._end_turn(run, new)
            if run.workflow is not None and run.workflow.hand_off():
                return new

    @staticmethod
    def _end_turn(run: _Run, new: list[Message]) -> list[Message]:
        """Upstream's post-turn hook: a transition still pending is applied before the next turn."""
        if run.workflow is not None:
            run.workflow.commit()
        return new

    async def _run_tools(self, run: _Run, reply: Message, new: list[Message], done: int,
                         allowed: set[str]) -> tuple[int, bool]:
        policy = run.scenario.tool_policy
        limited = False
        for call in reply.tool_calls:
            if limited or done >= policy.max_tool_calls_per_turn or (
                policy.max_total_tool_calls is not None and run.total_tool_calls >= policy.max_total_tool_calls
            ):
                # Every call gets an answer, or the next request is malformed for OpenAI and Anthropic.
                limited = True
                tool_result = ToolResult(call.id, call.name, '{"error": "tool call limit reached"}',
                                         "tool call limit reached")
            else:
                if run.workflow is not None and run.workflow.handles(call.name):
                    tool_result = run.workflow.execute(call)
                else:
                    tool_result = await self.tools.execute(call, allowed)
                run.result.tool_stats.record(call.name, tool_result.error is not None)
                done += 1
                run.total_tool_calls += 1
                if run.workflow is not None:
                    run.workflow.record_tool_calls(1)
            run.messages.append(Message("tool", tool_result.content, tool_result=tool_result,
                                        meta=parts_meta(tool_result.parts)))
            new.append(run.messages[-1])
        return done, limited

    def _guard_context(self, run: _Run, messages: list[Message], judged: str) -> EvalContext:
        metadata = eval_metadata(messages)
        metadata["budget"] = spend_of(messages)  # a guardrail sees the real spend (upstream seeds it)
        return EvalContext("guardrail", messages, messages, EvalServices(run_tool=run.services.run_tool),
                           metadata, judged)

    async def _input_guard(self, run: _Run) -> Message | None:
        guards = run.prepared.guards
        if not guards or not run.messages or run.messages[-1].role != "user":
            return None
        fired = await check_input(guards, self._guard_context(run, run.messages, run.messages[-1].content))
        if fired is None:
            return None
        return Message("assistant", fired[1], latency_ms=0.0, meta={"validators": [fired[0]], "blocked": "input"})

    async def _output_guard(self, run: _Run, reply: Message, stream: bool) -> None:
        if not run.prepared.guards:
            return
        firings, delivered = await check_output(
            run.prepared.guards, reply.content,
            lambda text: self._guard_context(run, [*run.messages, Message("assistant", text, reply.tool_calls,
                                                                          latency_ms=reply.latency_ms,
                                                                          cost_info=reply.cost_info)], text),
            stream)
        if firings:
            reply.meta["validators"] = firings
        if delivered != reply.content or firings:
            reply.meta["original_content"] = reply.content
            reply.content = delivered
            reply.tool_calls = []  # an enforced reply ends the tool loop, as upstream

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
            replies = sum(1 for m in run.messages if m.role == "assistant")
            request = ChatRequest(
                system=system, messages=swap_roles(run.messages),
                temperature=persona.defaults.temperature if persona else None,
                seed=persona.defaults.seed if persona else None,
                context={"scenario_id": run.combo.scenario_id, "persona_id": turn.persona,
                         "arena_role": "self_play_user", "mock_turn": replies + 1},
            )
            response = await user_model.chat(request)
            text = response.content
            done = COMPLETE_MARKER in text
            text = text.replace(COMPLETE_MARKER, "").strip()
            if text:
                run.messages.append(Message("user", text, latency_ms=response.latency_ms,
                                            meta={"self_play": True, "persona": turn.persona}))
                new = await self._assistant_turn(run, self._streams(run, turn))
                await self._check_turn(run, turn, [run.messages[-len(new) - 1], *new])
            # As upstream: the marker ends the conversation only once `turns` exchanges are done.
            if done and exchange >= turn.turns:
                return

    async def _check_turn(self, run: _Run, turn: Turn, turn_messages: list[Message]) -> None:
        run.result.eval_results += await self.pack_evals.after_turn(run.messages, turn_messages, run.combo.run_id,
                                                                    run.services)
        if not turn.assertions:
            return
        results = await self._check(run, turn.assertions, "turn", turn_messages)
        replies = [m for m in turn_messages if m.role == "assistant"]
        if replies:
            replies[-1].assertions.extend(results)
        if any(not r.passed for r in results):
            raise TurnFailed

    async def _check(
        self, run: _Run, assertions: list[AssertionSpec], scope: str, turn_messages: list[Message]
    ) -> list[AssertionResult]:
        metadata = eval_metadata(run.messages)
        if run.workflow is not None:
            metadata.update(run.workflow.metadata())
        ctx = EvalContext(scope, list(run.messages), list(turn_messages), run.services, metadata)
        return [await evaluate(a, ctx) for a in assertions]
