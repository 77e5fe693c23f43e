"""The `replay` provider: answers from a recorded session instead of a model — PromptKit's
runtime/providers/replay. `additional_config`: `recording` (or `arena_output`), a bundle file read as a recording
(engine/recordings.py: session JSON/JSONL, arena output, transcript); `match: turn` (default: the Nth reply of the
recording answers the Nth assistant turn of the conversation) or `content` (the reply recorded after the same user
message, else by turn); `timing: instant` (default), `realtime` (the recorded delay between the user message and
the reply) or `accelerated` (that delay divided by `speed`, default 2), each delay at most MAX_REPLAY_DELAY.

Unlike upstream, whose turn counter is shared by every conversation the provider serves, the turn is counted in
each conversation's own history, so concurrent runs and trials each replay from the start. The recording is read
on the first call; a missing one, one outside the bundle or one that does not parse fails the run (kind
`recording`) naming file:line — the bundle loader reports the same at load time for providers a scenario uses."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..errors import ProviderError
from ..manifests import OUTSIDE_BUNDLE, Collector, Loaded, escapes
from ..recordings import Conversation, RecordingError, read_conversations
from ..spec import ProviderSpec, ScenarioSpec
from ..types import ChatRequest, ChatResponse, Message, ToolCall, Usage
from .base import Provider, RetryPolicy

RECORDING_KEYS = ("recording", "arena_output")
TIMINGS = ("instant", "realtime", "accelerated")
MATCHES = ("turn", "content")
DEFAULT_SPEED = 2.0
MAX_REPLAY_DELAY = 30.0  # seconds: a recorded pause is replayed at most this long
RECORDING_KIND = "recording"


@dataclass(frozen=True, slots=True)
class RecordedTurn:
    """One recorded reply, the user message it answered and how long after it the reply came (seconds)."""

    reply: Message
    user_content: str
    delay: float


def recording_ref(spec: ProviderSpec) -> str | None:
    for key in RECORDING_KEYS:
        value = spec.additional_config.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def config_problems(spec: ProviderSpec) -> list[tuple[str, str]]:
    """(additional_config key, problem) for settings upstream would misread; the recording is checked apart."""
    config = spec.additional_config
    problems = []
    if recording_ref(spec) is None:
        problems.append(("recording", "a replay provider needs additional_config.recording (a recording file)"))
    if config.get("timing") is not None and config.get("timing") not in TIMINGS:
        problems.append(("timing", f"got {config.get('timing')!r}, expected one of {', '.join(TIMINGS)}"))
    if config.get("match") is not None and config.get("match") not in MATCHES:
        problems.append(("match", f"got {config.get('match')!r}, expected one of {', '.join(MATCHES)}"))
    speed = config.get("speed")
    if speed is not None and (not isinstance(speed, int | float) or isinstance(speed, bool) or speed <= 0):
        problems.append(("speed", f"must be a positive number, got {speed!r}"))
    return problems


def read_recording(root: Path, ref: str) -> Conversation:
    """The recording's first conversation; RecordingError when it is outside the bundle, missing or malformed."""
    if Path(ref).is_absolute() or escapes(root, ref):
        raise RecordingError(ref, 0, f"recording {OUTSIDE_BUNDLE}")
    if not (root / ref).is_file():
        raise RecordingError(ref, 0, "recording not found")
    conversation = read_conversations(root / ref, ref)[0]
    if not any(m.role == "assistant" for m in conversation.messages):
        raise RecordingError(ref, 0, "no assistant responses found in recording")
    return conversation


def recorded_turns(conversation: Conversation) -> list[RecordedTurn]:
    turns: list[RecordedTurn] = []
    user, asked = "", None
    stamps = conversation.timestamps + [None] * (len(conversation.messages) - len(conversation.timestamps))
    for message, stamp in zip(conversation.messages, stamps, strict=True):
        if message.role == "user":
            user, asked = message.content, stamp
        elif message.role == "assistant":
            turns.append(RecordedTurn(message, user, _seconds(asked, stamp)))
    return turns


def _seconds(start: datetime | None, end: datetime | None) -> float:
    if start is None or end is None:
        return 0.0
    try:
        return max(0.0, (end - start).total_seconds())
    except TypeError:  # one aware, one naive
        return 0.0


class ReplayProvider(Provider):
    """Replays one recording; safe to share across concurrent runs (no state but the parsed recording)."""

    def __init__(self, provider_id: str, spec: ProviderSpec, root: Path) -> None:
        super().__init__(provider_id, spec, RetryPolicy(max_retries=0))
        self.root = root
        config = spec.additional_config
        self.timing = str(config.get("timing") or "instant")
        self.match = str(config.get("match") or "turn")
        self.speed = float(config.get("speed") or DEFAULT_SPEED)
        self._turns: list[RecordedTurn] | None = None
        self._lock = asyncio.Lock()

    async def _load(self) -> list[RecordedTurn]:
        async with self._lock:
            if self._turns is None:
                ref = recording_ref(self.spec)
                if ref is None:
                    raise ProviderError(f"{self.id}: a replay provider needs additional_config.recording",
                                        RECORDING_KIND)
                try:
                    conversation = await asyncio.to_thread(read_recording, self.root, ref)
                except RecordingError as exc:
                    raise ProviderError(f"{self.id}: {exc}", RECORDING_KIND) from None
                self._turns = recorded_turns(conversation)
            return self._turns

    def _pick(self, turns: list[RecordedTurn], request: ChatRequest) -> RecordedTurn:
        if self.match == "content":
            last_user = next((m.content for m in reversed(request.messages) if m.role == "user"), None)
            found = [t for t in turns if last_user is not None and t.user_content == last_user]
            if found:
                return found[-1]  # upstream's content map keeps the last reply to a repeated message
        index = sum(1 for m in request.messages if m.role == "assistant")
        if index >= len(turns):
            raise ProviderError(f"{self.id}: replay exhausted: the recording has {len(turns)} responses, turn "
                                f"{index + 1} asked for one more", RECORDING_KIND)
        return turns[index]

    async def _complete(self, request: ChatRequest) -> ChatResponse:
        turn = self._pick(await self._load(), request)
        delay = {"instant": 0.0, "realtime": turn.delay, "accelerated": turn.delay / self.speed}[self.timing]
        if delay > 0:
            await asyncio.sleep(min(delay, MAX_REPLAY_DELAY))
        reply = turn.reply
        cost = reply.cost_info
        usage = Usage(cost.input_tokens, cost.output_tokens) if cost else Usage(0, max(1, len(reply.content) // 4))
        parts = reply.meta.get("parts")
        return ChatResponse(reply.content, [ToolCall(c.id, c.name, dict(c.args)) for c in reply.tool_calls], usage,
                            latency_ms=reply.latency_ms or delay * 1000, finish_reason="stop",
                            parts=list(parts) if isinstance(parts, list) else [])


def used_providers(scenarios: list[ScenarioSpec], all_providers: list[str], others: list[str]) -> set[str]:
    """The providers some run may call: the scenarios' own lists (all providers for a scenario without one), plus
    judges and self-play roles."""
    used = set(others)
    for scenario in scenarios:
        used.update(scenario.providers or all_providers)
    return used


def check_replay_providers(replays: list[Loaded], used: set[str], root: Path, out: Collector) -> None:
    """Load-time checks of replay providers: their settings always; their recording (inside the bundle, present,
    readable) when a run may use them — an unused one only warns, as its recording is never read."""
    for loaded in replays:
        config = ["spec", "additional_config"]
        for key, problem in config_problems(loaded.spec):
            out.add(loaded.file, loaded.doc, [*config, key], problem)
        ref = recording_ref(loaded.spec)
        if ref is None:
            continue
        key = next(k for k in RECORDING_KEYS if loaded.spec.additional_config.get(k) == ref)
        if loaded.id not in used:
            out.warn(loaded.file, loaded.doc, [*config, key],
                     f"no scenario uses replay provider {loaded.id!r}; its recording {ref!r} is not read")
            continue
        try:
            read_recording(root, ref)
        except RecordingError as exc:
            out.add(loaded.file, loaded.doc, [*config, key], str(exc))
