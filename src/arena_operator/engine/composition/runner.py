"""Running one composition for one user turn, as upstream's composition engine: steps in order, a branch marking
the target it did not take as skipped (and steps depending only on skipped steps with it), parallel branches
concurrently with every error reported together, prompt and agent steps as fresh model calls (the step's
prompt as system, its resolved input as the only user message), and the output step's value, as JSON, as the
reply."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ProviderError, TemplateError
from ..schemas import first_error
from ..templating import render
from ..tools import ToolRunner, definition
from ..types import ChatRequest, Message, ToolCall, ToolResult
from . import model as m
from .record import CompositionOutcome, StepRecord
from .scope import (
    Scope,
    ScopeError,
    composition_input,
    decode_json,
    evaluate,
    go_json,
    reduce,
    resolve_input,
    step_text,
)

if TYPE_CHECKING:
    from ..bundle import Bundle
    from ..providers.base import Provider
    from ..spec import ScenarioSpec

COMPOSITION_ERROR = "composition"  # the run's error kind when a composition fails for a reason of its own


class CompositionError(Exception):
    """A composition that did not produce an output; `outcome` holds what ran (and cost) before it failed."""

    def __init__(self, message: str, kind: str, outcome: CompositionOutcome) -> None:
        super().__init__(message)
        self.kind = kind
        self.outcome = outcome


class _StepFailed(Exception):
    def __init__(self, message: str, kind: str = COMPOSITION_ERROR) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class CallSettings:
    """How the turn's model calls are made; `timeout` bounds the whole composition (every call in it)."""

    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    timeout: float = 300.0


class CompositionRunner:
    """Runs a bundle's compositions with one provider. Safe to share across concurrent runs."""

    def __init__(self, bundle: Bundle, provider: Provider, tools: ToolRunner, settings: CallSettings) -> None:
        self.bundle = bundle
        self.provider = provider
        self.tools = tools
        self.settings = settings

    async def run(self, name: str, input_text: str, scenario: ScenarioSpec, scenario_id: str) -> CompositionOutcome:
        """The composition's outcome for a user message; raises CompositionError (kind: a provider error's kind,
        `timeout`, or `composition`) when it produces no output."""
        comp = self.bundle.compositions.specs[name]
        execution = _Execution(self, comp, CompositionOutcome(name), scenario, scenario_id)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.timeout):
                await execution.execute(composition_input(input_text))
        except TimeoutError:
            raise self._failed(execution, f"timed out after {self.settings.timeout:g}s", "timeout", started) from None
        except _StepFailed as exc:
            raise self._failed(execution, str(exc), exc.kind, started) from None
        execution.outcome.latency_ms = (time.perf_counter() - started) * 1000
        return execution.outcome

    @staticmethod
    def _failed(execution: _Execution, message: str, kind: str, started: float) -> CompositionError:
        outcome = execution.outcome
        outcome.latency_ms = (time.perf_counter() - started) * 1000
        return CompositionError(f"composition {outcome.name!r}: {message}", kind, outcome)


class _Execution:
    """One run of one composition: the scope steps read, which steps were skipped, and the outcome so far."""

    def __init__(self, runner: CompositionRunner, comp: m.Composition, outcome: CompositionOutcome,
                 scenario: ScenarioSpec, scenario_id: str) -> None:
        self.runner, self.comp, self.outcome = runner, comp, outcome
        self.scenario, self.scenario_id = scenario, scenario_id
        self.scope: Scope = {}
        self.skipped: set[str] = set()

    async def execute(self, value: Any) -> None:
        self.scope = {"input": value}
        last = ""
        for step in self.comp.steps:
            if step.id in self.skipped:
                continue
            if step.depends_on and all(dep in self.skipped for dep in step.depends_on):
                self.skipped.add(step.id)
                continue
            if step.kind == m.BRANCH:
                self.branch(step)
                continue
            output = await (self.parallel(step) if step.kind == m.PARALLEL else self.leaf(step))
            self.scope[step.id] = {"output": output}
            last = step.id
        target = self.comp.output or last
        entry = self.scope.get(target)
        if not isinstance(entry, dict):
            why = "was skipped by a branch" if target in self.skipped else "did not run"
            raise _StepFailed(f"output step {target!r} {why}, so there is no output")
        self.outcome.output = go_json(entry["output"])

    def branch(self, step: m.Step) -> None:
        assert step.predicate is not None, "checked at load time"
        try:
            holds = evaluate(step.predicate, self.scope)
        except ScopeError as exc:
            raise _StepFailed(f"step {step.id!r}: {exc}") from None
        taken, other = (step.then, step.else_) if holds else (step.else_, step.then)
        if other and other != taken:
            self.skipped.add(other)
        self.outcome.branches[step.id] = taken

    async def parallel(self, step: m.Step) -> Any:
        assert step.reduce is not None, "checked at load time"
        results = await asyncio.gather(*(self.leaf(b) for b in step.branches), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            self.outcome.parallel[step.id] = m.PARALLEL_FAILED
            unexpected = next((e for e in errors if not isinstance(e, _StepFailed)), None)
            if unexpected is not None:
                raise unexpected
            failed = [e for e in errors if isinstance(e, _StepFailed)]
            kinds = [e.kind for e in failed if e.kind != COMPOSITION_ERROR]  # a provider's kind says more
            raise _StepFailed(f"step {step.id!r}: {len(failed)} of {len(step.branches)} branches failed: "
                              f"{'; '.join(str(e) for e in failed)}", kinds[0] if kinds else COMPOSITION_ERROR)
        self.outcome.parallel[step.id] = m.PARALLEL_COMPLETE
        return {step.reduce.into: reduce(step.reduce, [(b.id, r) for b, r in zip(step.branches, results, strict=True)])}

    async def leaf(self, step: m.Step) -> Any:
        """A prompt, agent or tool step's decoded output, after up to `modifiers.retry.max_attempts` attempts."""
        try:
            resolved = resolve_input(step.args if step.kind == m.TOOL else step.input, self.scope)
        except ScopeError as exc:
            raise _StepFailed(f"step {step.id!r}: {exc}") from None
        last: _StepFailed | None = None
        for attempt in range(1, step.attempts + 1):
            try:
                raw = await (self.tool(step, resolved) if step.kind == m.TOOL else self.model(step, resolved))
            except ProviderError as exc:
                last = _StepFailed(f"step {step.id!r}: {exc}", exc.kind)
            except _StepFailed as exc:
                last = exc
            else:
                self.outcome.steps.append(StepRecord(step.id, step.kind, attempt, raw))
                return decode_json(raw)[1]
        assert last is not None
        self.outcome.steps.append(StepRecord(step.id, step.kind, step.attempts, None, str(last)))
        raise last

    async def model(self, step: m.Step, resolved: Any) -> str:
        """A prompt step (one call, no tools) or an agent step (a tool loop of at most termination.max_steps
        calls); the raw JSON output."""
        runner = self.runner
        prompt = runner.bundle.prompt_configs[runner.bundle.compositions.prompts[step.prompt_task]]
        text = step_text(resolved)
        if len(text) > m.MAX_STEP_INPUT_CHARS:
            raise _StepFailed(f"step {step.id!r}: its input is {len(text):,} characters; at most "
                              f"{m.MAX_STEP_INPUT_CHARS:,}")
        try:
            system = render(prompt.system_template, self.variables(step))
        except TemplateError as exc:
            raise _StepFailed(f"step {step.id!r}: prompt {step.prompt_task!r}: {exc}") from None
        allowed = set(step.tools) & set(prompt.allowed_tools) if step.kind == m.AGENT else set()
        known = runner.tools.tools
        tools = [definition(known[n]) for n in prompt.allowed_tools if n in allowed and n in known]
        term = step.termination
        rounds = 1 if step.kind == m.PROMPT else (term.max_steps if term and term.max_steps else m.MAX_AGENT_ROUNDS)
        stop = term.tool_called if term else ""
        messages = [Message("user", text)]
        for round_ in range(1, rounds + 1):
            response = await runner.provider.chat(ChatRequest(
                system=system, messages=list(messages), tools=tools, temperature=runner.settings.temperature,
                max_tokens=runner.settings.max_tokens, seed=runner.settings.seed,
                context={"scenario_id": self.scenario_id, "step_id": step.id, "mock_turn": 0}))
            self.outcome.cost.add(runner.provider.cost(response.usage))
            self.outcome.model_calls += 1
            messages.append(Message("assistant", response.content, list(response.tool_calls)))
            if not response.tool_calls:
                break
            limit = self.scenario.tool_policy.max_tool_calls_per_turn  # per round: a reply may ask for many
            for index, call in enumerate(response.tool_calls):
                result = await runner.tools.execute(call, allowed) if index < limit else ToolResult(
                    call.id, call.name, '{"error": "tool call limit reached"}', "tool call limit reached")
                messages.append(Message("tool", result.content, tool_result=result))
            if stop and any(c.name == stop for c in response.tool_calls):
                break
            if round_ == rounds:
                raise _StepFailed(f"step {step.id!r}: max rounds ({rounds}) exceeded: the model still asks for "
                                  "tools")
        return self.structured(step, next(msg.content for msg in reversed(messages) if msg.role == "assistant"))

    def structured(self, step: m.Step, content: str) -> str:
        """Upstream's responseToJSON: a step with output_schema passes JSON content through as it is, anything
        else is a JSON string. Content that does not match the schema is noted as a violation (upstream leaves
        that to the provider's structured output)."""
        if not step.output_schema:
            return go_json(content)
        if not decode_json(content)[0]:
            self.outcome.violations.append(f"composition {self.outcome.name!r}: step {step.id!r}: the reply is not "
                                           f"JSON, so it does not match {step.output_schema}")
            return go_json(content)
        schema = self.runner.bundle.compositions.schemas.get(step.output_schema)
        error = first_error(schema, json.loads(content)) if schema is not None else None  # ints as ints here
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            self.outcome.violations.append(f"composition {self.outcome.name!r}: step {step.id!r}: the output does "
                                           f"not match {step.output_schema} at {where}: {error.message}")
        return content

    async def tool(self, step: m.Step, resolved: Any) -> str:
        call = ToolCall(f"step_{step.id}", step.tool, resolved if isinstance(resolved, dict) else {})
        result = await self.runner.tools.execute(call, {step.tool})
        if result.error:
            raise _StepFailed(f"step {step.id!r}: tool {step.tool!r} failed: {result.error}")
        return result.content if decode_json(result.content)[0] else go_json(result.content)

    def variables(self, step: m.Step) -> dict[str, Any]:
        """The step prompt's variables: its defaults, the arena's `vars` for it, the scenario's `variables`."""
        bundle = self.runner.bundle
        prompt_id = bundle.compositions.prompts[step.prompt_task]
        prompt = bundle.prompt_configs[prompt_id]
        merged: dict[str, Any] = {v.name: v.default for v in prompt.variables if v.default is not None}
        merged.update(bundle.prompt_vars.get(prompt_id, {}))
        merged.update(self.scenario.variables)
        return merged
