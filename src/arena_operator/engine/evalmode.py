"""Eval mode — upstream's EvalConversationExecutor: replay a recorded conversation and apply assertions to it,
without calling a model. Each `all_turns` assertion is applied to every recorded assistant message (as that turn:
the history up to the reply, the turn from its user message on), the arena's global conversation assertions and
the eval's own to the whole conversation; judges (`judges:`) are called as in a scenario run. The result is a
RunResult like a scenario's, ScenarioID the eval id and ProviderID `eval`, as upstream.

Upstream evaluates every reply's turn assertions against the conversation's last reply (its turn index is the
last one); here each reply is judged on its own, so one bad reply fails its own turn. Tool calls in the recording
are data: nothing is executed, except tools an eval itself runs (`tool_*` assertions with an executor)."""

from __future__ import annotations

import asyncio
import copy
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from .assertions.base import AssertionResult, EvalContext
from .assertions.registry import evaluate
from .bundle import Bundle
from .durations import parse_duration
from .evalctx import EvalEnvironment, eval_metadata
from .evalspec import EvalEntry, split_ref
from .packevals import PackEvals
from .plan import EVAL_PROVIDER, RunCombination
from .providers.base import Provider
from .recordings import Conversation, RecordingError, read_conversations
from .result import RunResult
from .spec import AssertionSpec
from .tools import ToolRunner

RECORDING_KIND = "recording"
CACHED_RECORDINGS = 4  # parsed files kept: a results.json of many runs is read once for all its evals


class EvalExecutor:
    """Executes eval combinations (those with a `recording`) of one bundle; safe to share across runs."""

    def __init__(self, bundle: Bundle, providers: dict[str, Provider], tools: ToolRunner) -> None:
        self.bundle = bundle
        self.environment = EvalEnvironment(bundle, providers, tools)
        self.pack_evals = PackEvals(bundle.pack_evals)
        self.run_timeout = parse_duration(bundle.arena.defaults.run_timeout, 300.0)
        self._files: OrderedDict[str, list[Conversation]] = OrderedDict()
        self._lock = asyncio.Lock()

    async def execute(self, combo: RunCombination) -> RunResult:
        """Run one eval combination; never raises — a recording that no longer reads is an error of kind
        `recording`, a bug one of kind `internal`."""
        entry = self.bundle.eval_runs[combo.scenario_id]
        result = RunResult(run_id=combo.run_id, scenario_id=combo.scenario_id, provider_id=EVAL_PROVIDER,
                           region=combo.region, trial=combo.trial, prompt_pack=self.bundle.root.name)
        path, index = split_ref(combo.recording)
        result.params = {"eval_id": entry.id, "recording": path, "conversation": index,
                         "recording_type": entry.spec.recording.type if entry.spec.recording else None,
                         "description": entry.spec.description}
        try:
            conversation = await self._conversation(entry, path, index)
            result.params.update(_recording_params(entry, conversation))
            result.messages = conversation.messages
            await asyncio.wait_for(self._assess(entry, result), self.run_timeout)
        except RecordingError as exc:
            result.error, result.error_kind = str(exc), RECORDING_KIND
        except TimeoutError:
            result.error, result.error_kind = f"eval timed out after {self.run_timeout:g}s", "timeout"
        except Exception as exc:  # a bug or bad data must not take down the other runs
            result.error, result.error_kind = f"{type(exc).__name__}: {exc}", "internal"
        for message in result.messages:
            if message.role == "assistant" and message.cost_info:
                result.cost.add(message.cost_info)
        result.end_time = datetime.now(UTC)
        return result

    async def _conversation(self, entry: EvalEntry, path: str, index: int) -> Conversation:
        """A fresh copy of the conversation (results are written onto its messages)."""
        async with self._lock:
            if path not in self._files:
                hint = entry.spec.recording.type if entry.spec.recording else None
                self._files[path] = await asyncio.to_thread(read_conversations, self.bundle.root / path, path, hint)
                while len(self._files) > CACHED_RECORDINGS:
                    self._files.popitem(last=False)
            conversations = self._files[path]
        if index >= len(conversations):
            raise RecordingError(path, 0, f"conversation {index} is gone: the recording now holds "
                                          f"{len(conversations)}")
        return copy.deepcopy(conversations[index])

    async def _assess(self, entry: EvalEntry, result: RunResult) -> None:
        services = self.environment.services(result)
        messages = result.messages
        turn_assertions = entry.spec.turn_assertions
        turn_start = 0
        for position, message in enumerate(messages):
            if message.role == "user":
                turn_start = position
            if message.role != "assistant" or not turn_assertions:
                continue
            history = messages[:position + 1]
            ctx = EvalContext("turn", history, messages[turn_start:position + 1], services, eval_metadata(history))
            message.assertions = await _all(turn_assertions, ctx)
        conversation = [*self.bundle.arena.globals.conversation_assertions, *entry.spec.conversation_assertions]
        ctx = EvalContext("conversation", list(messages), list(messages), services, eval_metadata(messages))
        result.conversation_assertions = await _all(conversation, ctx)
        result.eval_results += await self.pack_evals.at_end(messages, result.run_id, services)  # as upstream


async def _all(assertions: list[AssertionSpec], ctx: EvalContext) -> list[AssertionResult]:
    return [await evaluate(a, ctx) for a in assertions]


def _recording_params(entry: EvalEntry, conversation: Conversation) -> dict[str, Any]:
    """What the recording says about itself, as upstream's eval context extras: session id, provider, tags."""
    tags = list(dict.fromkeys([*entry.spec.tags, *conversation.tags]))
    params: dict[str, Any] = {"tags": tags}
    if conversation.session_id:
        params["session_id"] = conversation.session_id
    if conversation.provider_info:
        params["provider_info"] = conversation.provider_info
    system = next((m.content for m in conversation.messages if m.role == "system"), None)
    if system is not None:
        params["system_prompt"] = system
    return params

