"""Recorded conversations read into Messages — upstream's recording adapters (arena/adapters: session,
arena_output, transcript) plus PromptKit's own recording files. Eval mode and the replay provider read through here.

Formats, by `type` or else by file name:
- `session` (`*.recording.json`, `*.jsonl`): upstream's `{"metadata", "events": [{"type": "message", "message"}]}`;
  PromptKit's SessionRecording JSON (`events[].type: message.created`, the message in `data`); JSONL, either
  PromptKit's event store lines (`{"seq", "event"}`, what session recording in `arena run` writes) or its
  SessionRecording lines (`{"type": "metadata"}` then `{"type": "event", "event"}`).
- `arena_output` (`*.arena.json`, `*.arena-output.json`): a run as `arena run` writes it (`units/<id>.json`, or
  upstream's) with `Messages`; upstream's turn-based output (`turns[].user_message / response.message`); a
  `results.json` array of runs, one conversation per run.
- `transcript` (`*.transcript.yaml|yml`): `{metadata, messages: [{role, content, tool_calls, tool_call_id}]}`.
- `generic`: a JSON list of `{role, content}` messages, or `{"messages": [...]}`.

A recording is bundle input: at most MAX_RECORDING_BYTES, and every problem is a RecordingError naming file:line."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .types import CostInfo, Message, ToolCall, ToolResult
from .yamlsrc import YamlSyntaxError, load_yaml_text, position_of

MAX_RECORDING_BYTES = int(os.environ.get("ARENA_MAX_RECORDING_BYTES", 32 * 1024 * 1024))
TYPE_ALIASES = {
    "session": "session", "recording": "session", "session_recording": "session",
    "arena": "arena_output", "arena_output": "arena_output", "scenario_output": "arena_output",
    "transcript": "transcript", "yaml": "transcript", "generic": "generic",
}
ROLES = ("system", "user", "assistant", "tool")
MESSAGE_EVENTS = ("message", "message.created")
CALL_COMPLETED = "provider.call.completed"  # tokens and cost of the reply before it


class RecordingError(ValueError):
    """A recording that cannot be read: `file:line: message` (line 0 when it is the file as a whole)."""

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")
        self.file, self.line, self.message = file, line, message


@dataclass
class Conversation:
    """One recorded conversation and what the recording says about it."""

    messages: list[Message]
    session_id: str = ""
    tags: list[str] = field(default_factory=list)
    provider_info: dict[str, Any] = field(default_factory=dict)
    timestamps: list[datetime | None] = field(default_factory=list)  # one per message, when recorded


def canonical_type(hint: str | None) -> str | None:
    """The adapter a `recording.type` names, or None for an unknown one (the loader reports it)."""
    return TYPE_ALIASES.get(hint.strip().lower()) if hint else None


def detect_type(name: str) -> str | None:
    """The adapter upstream picks from a file name; None when the name says nothing (sniffed from content)."""
    lower = name.lower()
    if lower.endswith((".recording.json", ".jsonl")):
        return "session"
    if lower.endswith((".arena-output.json", ".arena.json")):
        return "arena_output"
    if lower.endswith((".transcript.yaml", ".transcript.yml")):
        return "transcript"
    return None


def read_conversations(path: Path, shown: str, hint: str | None = None) -> list[Conversation]:
    """Every conversation in the file (one, except a results.json array of runs); RecordingError on bad input."""
    try:
        size = path.stat().st_size
        if size > MAX_RECORDING_BYTES:
            raise RecordingError(shown, 0, f"the recording is {size:,} bytes; at most {MAX_RECORDING_BYTES:,} "
                                           "(ARENA_MAX_RECORDING_BYTES)")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordingError(shown, 0, f"cannot read the recording: {exc}") from None
    kind = canonical_type(hint) if hint else detect_type(shown)
    reader = _Reader(shown, text)
    if kind == "transcript":
        return [reader.transcript()]
    if kind == "session" and reader.is_jsonl():
        return [reader.jsonl()]
    data = reader.json()
    if kind is None:
        kind = _sniff(data)
        if kind is None:
            raise RecordingError(shown, 1, "not a recording this version reads (no events, Messages, turns or "
                                           "messages); set recording.type")
    conversations = {"session": reader.session, "arena_output": reader.arena_output,
                     "generic": reader.generic}[kind](data)
    if not conversations:
        raise RecordingError(shown, 1, "the recording holds no conversation")
    return conversations


def _sniff(data: Any) -> str | None:
    if isinstance(data, list):
        return "arena_output" if data and isinstance(data[0], dict) and "Messages" in data[0] else "generic"
    if not isinstance(data, dict):
        return None
    if "events" in data:
        return "session"
    if "Messages" in data or "turns" in data:
        return "arena_output"
    return "generic" if "messages" in data else None


def _get(raw: dict[str, Any], *names: str) -> Any:
    """A field by any of its spellings: Go's JSON decoding is case-insensitive (`Role` and `role` alike)."""
    for name in names:
        for key in (name, name[:1].upper() + name[1:]):
            if key in raw:
                return raw[key]
    lowered = {str(k).lower().replace("_", ""): v for k, v in raw.items()}
    for name in names:
        if name.lower().replace("_", "") in lowered:
            return lowered[name.lower().replace("_", "")]
    return None


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class _Reader:
    """Parses one file; `where(path)` turns a position in the parsed JSON into a line for the error."""

    def __init__(self, shown: str, text: str) -> None:
        self.shown, self.text = shown, text
        self._located: Any = None

    def fail(self, line: int, message: str) -> RecordingError:
        return RecordingError(self.shown, line, message)

    def where(self, path: list[str | int]) -> int:
        """The line of `path` in the file (JSON read again as YAML, which keeps lines); 0 when unknown."""
        if self._located is None:
            try:
                self._located = load_yaml_text(self.text)
            except YamlSyntaxError:
                self._located = False
        return position_of(self._located, path)[0] if self._located else 0

    def json(self) -> Any:
        try:
            return json.loads(self.text)
        except json.JSONDecodeError as exc:
            raise self.fail(exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})") from None

    def is_jsonl(self) -> bool:
        lines = [line for line in self.text.splitlines() if line.strip()]
        if len(lines) < 2:
            return False
        try:
            return isinstance(json.loads(lines[0]), dict)
        except json.JSONDecodeError:
            return False

    # --- message shapes shared by every format ---------------------------------------------------------------

    def message(self, raw: Any, path: list[str | int], line: int | None = None) -> Message:
        at = (lambda: line) if line is not None else (lambda: self.where(path))
        if not isinstance(raw, dict):
            raise self.fail(at(), f"a message must be an object, got {type(raw).__name__}")
        role = _get(raw, "role")
        if role not in ROLES:
            raise self.fail(at(), f"message role {role!r} is not one of {', '.join(ROLES)}")
        content = _get(raw, "content")
        if content is None:  # a reply of tool calls only, or one whose text is in its parts
            content = _parts_text(_get(raw, "parts")) or ""
        if not isinstance(content, str):
            raise self.fail(at(), f"message content must be a string, got {type(content).__name__}")
        message = Message(str(role), content)
        message.tool_calls = [self.tool_call(c, at) for c in (_get(raw, "tool_calls") or [])]
        message.tool_result = self.tool_result(raw, at)
        latency = _get(raw, "latency_ms")
        if isinstance(latency, int | float):
            message.latency_ms = float(latency)
        message.cost_info = _cost(_get(raw, "cost_info"))
        parts = _get(raw, "parts")
        if isinstance(parts, list) and any(isinstance(p, dict) and p.get("type") != "text" for p in parts):
            message.meta["parts"] = parts
        return message

    def tool_call(self, raw: Any, at: Any) -> ToolCall:
        if not isinstance(raw, dict):
            raise self.fail(at(), f"a tool call must be an object, got {type(raw).__name__}")
        function = _get(raw, "function")
        name = _get(function, "name") if isinstance(function, dict) else _get(raw, "name")
        args = _get(function, "arguments") if isinstance(function, dict) else _get(raw, "args", "arguments")
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError:
                raise self.fail(at(), f"tool call {name!r}: arguments are not JSON: {args[:80]!r}") from None
        if not isinstance(name, str) or not name:
            raise self.fail(at(), "a tool call needs a name")
        return ToolCall(str(_get(raw, "id") or ""), name, args if isinstance(args, dict) else {"value": args})

    def tool_result(self, raw: dict[str, Any], at: Any) -> ToolResult | None:
        result = _get(raw, "tool_result")
        if isinstance(result, dict):
            content = _get(result, "content")
            return ToolResult(str(_get(result, "id", "call_id", "tool_call_id") or ""), str(_get(result, "name") or ""),
                              content if isinstance(content, str) else json.dumps(content),
                              _get(result, "error") or None)
        call_id = _get(raw, "tool_call_id")
        if call_id:
            return ToolResult(str(call_id), str(_get(raw, "name") or ""), str(_get(raw, "content") or ""))
        return None

    def messages(self, items: Any, path: list[str | int]) -> list[Message]:
        if not isinstance(items, list):
            raise self.fail(self.where(path), f"messages must be a list, got {type(items).__name__}")
        return [self.message(item, [*path, i]) for i, item in enumerate(items)]

    # --- the formats ------------------------------------------------------------------------------------------

    def session(self, data: Any) -> list[Conversation]:
        if not isinstance(data, dict) or not isinstance(data.get("events"), list):
            raise self.fail(1, "a session recording is an object with an `events` list")
        meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        conversation = _conversation_meta(meta)
        for index, event in enumerate(data["events"]):
            if not isinstance(event, dict):
                raise self.fail(self.where(["events", index]), "an event must be an object")
            kind = event.get("type")
            if kind not in MESSAGE_EVENTS:
                continue
            key = "message" if kind == "message" else "data"
            conversation.messages.append(self.message(event.get(key), ["events", index, key]))
            conversation.timestamps.append(_timestamp(event.get("timestamp")))
        return [conversation]

    def jsonl(self) -> Conversation:
        conversation = Conversation([])
        for number, line in enumerate(self.text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                raise self.fail(number, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
            if not isinstance(entry, dict):
                raise self.fail(number, "each line must be a JSON object")
            if entry.get("type") == "metadata":
                meta = entry.get("metadata") if isinstance(entry.get("metadata"), dict) else {}
                found = _conversation_meta(meta)
                conversation.session_id = conversation.session_id or found.session_id
                conversation.provider_info = found.provider_info or conversation.provider_info
                continue
            event = entry.get("event")
            if not isinstance(event, dict):
                raise self.fail(number, "a line is {\"seq\", \"event\"} (event store) or {\"type\": \"event\", "
                                        "\"event\"} (session recording)")
            conversation.session_id = conversation.session_id or str(event.get("session_id") or "")
            if event.get("type") in MESSAGE_EVENTS:
                conversation.messages.append(self.message(event.get("data") or event.get("message"), [], number))
                conversation.timestamps.append(_timestamp(event.get("timestamp")))
            elif event.get("type") == CALL_COMPLETED and conversation.messages:
                _attach_call(conversation.messages[-1], event.get("data"))
        return conversation

    def arena_output(self, data: Any) -> list[Conversation]:
        if isinstance(data, list):
            return [self.run(item, [index]) for index, item in enumerate(data)]
        if isinstance(data, dict) and isinstance(data.get("Messages"), list) and data["Messages"]:
            return [self.run(data, [])]
        if isinstance(data, dict) and isinstance(data.get("turns"), list):
            return [self.turns(data)]
        raise self.fail(1, "an arena output is a run with `Messages`, upstream's output with `turns`, or a "
                           "results.json array of runs")

    def run(self, data: Any, path: list[str | int]) -> Conversation:
        if not isinstance(data, dict) or not isinstance(data.get("Messages"), list):
            raise self.fail(self.where(path), "a run must be an object with a `Messages` list")
        provider = {"provider_id": data["ProviderID"]} if data.get("ProviderID") else {}
        return Conversation(self.messages(data["Messages"], [*path, "Messages"]), str(data.get("RunID") or ""),
                            provider_info=provider)

    def turns(self, data: dict[str, Any]) -> Conversation:
        conversation = Conversation([], provider_info={"provider_id": data["provider_id"]}
                                    if data.get("provider_id") else {})
        meta = data.get("metadata")
        if isinstance(meta, dict) and isinstance(meta.get("tags"), list):
            conversation.tags = [str(t) for t in meta["tags"]]
        for index, turn in enumerate(data["turns"]):
            where: list[str | int] = ["turns", index]
            if not isinstance(turn, dict):
                raise self.fail(self.where(where), "a turn must be an object")
            user = turn.get("user_message")
            if isinstance(user, dict) and (user.get("content") or user.get("parts")):
                conversation.messages.append(self.message({"role": "user", **user}, [*where, "user_message"]))
            reply = (turn.get("response") or {}).get("message") if isinstance(turn.get("response"), dict) else None
            if isinstance(reply, dict) and (reply.get("content") or reply.get("parts") or reply.get("tool_calls")):
                conversation.messages.append(self.message({"role": "assistant", **reply},
                                                          [*where, "response", "message"]))
            for result in turn.get("tool_results") or []:
                if isinstance(result, dict):
                    text = str(result.get("content") or "")
                    answered = ToolResult(str(result.get("tool_call_id") or ""), str(result.get("name") or ""), text)
                    conversation.messages.append(Message("tool", text, tool_result=answered))
        return conversation

    def transcript(self) -> Conversation:
        try:
            data = load_yaml_text(self.text)
        except YamlSyntaxError as exc:
            raise self.fail(exc.line, str(exc)) from None
        if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
            raise self.fail(1, "a transcript is a mapping with a `messages` list")
        meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        conversation = _conversation_meta(meta)
        for index, item in enumerate(data["messages"]):
            line = position_of(data, ["messages", index])[0]
            conversation.messages.append(self.message(item, [], line))
            conversation.timestamps.append(_timestamp(item.get("timestamp") if isinstance(item, dict) else None))
        return conversation

    def generic(self, data: Any) -> list[Conversation]:
        if not isinstance(data, list | dict):
            raise self.fail(1, "a generic recording is a list of messages or an object with `messages`")
        items, path = (data, []) if isinstance(data, list) else (data.get("messages"), ["messages"])
        return [Conversation(self.messages(items, list(path)))]


def _conversation_meta(meta: dict[str, Any]) -> Conversation:
    provider = {k: meta[k] for k in ("provider_id", "provider", "provider_name", "model") if meta.get(k)}
    tags = [str(t) for t in meta.get("tags") or [] if isinstance(t, str | int)]
    return Conversation([], str(meta.get("session_id") or ""), tags, provider)


def _parts_text(parts: Any) -> str | None:
    if not isinstance(parts, list):
        return None
    return "".join(str(p.get("text") or "") for p in parts if isinstance(p, dict) and p.get("type") == "text")


def _attach_call(message: Message, data: Any) -> None:
    """A provider.call.completed event's tokens and cost onto the reply it follows (the cost split is not kept:
    it all counts as output)."""
    if message.role != "assistant" or not isinstance(data, dict) or message.cost_info is not None:
        return
    try:
        message.cost_info = CostInfo(int(_get(data, "InputTokens") or 0), int(_get(data, "OutputTokens") or 0),
                                     0.0, float(_get(data, "Cost") or 0.0))
    except (TypeError, ValueError):
        return


def _cost(raw: Any) -> CostInfo | None:
    if not isinstance(raw, dict):
        return None
    try:
        return CostInfo(int(raw.get("input_tokens") or 0), int(raw.get("output_tokens") or 0),
                        float(raw.get("input_cost_usd") or 0.0), float(raw.get("output_cost_usd") or 0.0))
    except (TypeError, ValueError):
        return None
