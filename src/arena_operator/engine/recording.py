"""Session recording: one JSONL file per run, `<dir>/<RunID>.jsonl`, in PromptKit's event-store format (each line
`{"seq": N, "event": {"type", "timestamp", "session_id", "data_type", "data"}}`, the RunID as session id) — what
upstream's `EnableSessionRecording` writes, so upstream's tools and this engine's eval mode and replay provider
read it back (engine/recordings.py).

Turned on by the arena file's `defaults.output.recording: {enabled: true, dir: recordings}` (upstream's
`ConfigureSessionRecordingFromConfig`: the directory is relative to the output directory) or `arena run
--record`. A file is written once the run has finished, from its RunResult: conversation.started (the system
prompt), then message.created per message and provider.call.completed (tokens, cost, latency) after each reply."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .manifests import Collector
from .result import RunResult
from .types import Message

RECORDINGS_DIR = "recordings"  # upstream's default subdirectory of the output directory
RECORDING_SUFFIX = ".jsonl"
RECORDING_CONTENT_TYPE = "application/x-ndjson"
RECORDING_KEY = "recording"  # under defaults.output


def recording_settings(output_extra: dict[str, Any] | None) -> tuple[bool, str]:
    """(enabled, subdirectory) from `defaults.output.recording` (already checked by check_recording_config)."""
    raw = (output_extra or {}).get(RECORDING_KEY)
    if not isinstance(raw, dict):
        return False, RECORDINGS_DIR
    return bool(raw.get("enabled")), str(raw.get("dir") or RECORDINGS_DIR)


def recording_subdir_problem(value: Any) -> str | None:
    """Why `dir` is not a plain relative directory inside the output directory, or None."""
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty relative directory"
    parts = value.replace("\\", "/").split("/")
    if value.startswith(("/", "\\")) or ".." in parts or any(p.startswith(".") and p != "." for p in parts):
        return f"{value!r} must stay inside the output directory (no absolute path, '..' or hidden segment)"
    return None


def check_recording_config(output_extra: dict[str, Any] | None, file: str, doc: Any, out: Collector) -> None:
    """Load-time check of `defaults.output.recording`: a mapping with a boolean `enabled` and a safe `dir`."""
    if not output_extra or RECORDING_KEY not in output_extra:
        return
    where = ["spec", "defaults", "output", RECORDING_KEY]
    raw = output_extra[RECORDING_KEY]
    if not isinstance(raw, dict):
        out.add(file, doc, where, f"must be a mapping {{enabled, dir}}, got {type(raw).__name__}")
        return
    if "enabled" in raw and not isinstance(raw["enabled"], bool):
        out.add(file, doc, [*where, "enabled"], f"must be true or false, got {raw['enabled']!r}")
    if "dir" in raw and (problem := recording_subdir_problem(raw["dir"])):
        out.add(file, doc, [*where, "dir"], problem)
    for key in sorted(set(raw) - {"enabled", "dir"}):
        out.warn(file, doc, [*where, key], "unknown key; upstream reads only enabled and dir")


class SessionRecorder:
    """Writes the recordings of one run directory; safe to share across concurrent runs (one file per run)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path_for(self, run_id: str) -> Path:
        """Upstream's GetRecordingPath: `<dir>/<RunID>.jsonl`."""
        if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
            raise ValueError(f"run id {run_id!r} is not a plain file name")
        return self.directory / (run_id + RECORDING_SUFFIX)

    def write(self, result: RunResult) -> Path:
        """Write the run's recording atomically (temp file + rename) and return its path."""
        target = self.path_for(result.run_id)
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.directory, prefix=".rec-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                for line in event_lines(result):
                    handle.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return target


def event_lines(result: RunResult) -> list[dict[str, Any]]:
    """The run as event-store lines; timestamps are the run's start plus each reply's latency (the engine does
    not stamp messages)."""
    moment = result.start_time
    lines: list[dict[str, Any]] = []

    def add(kind: str, data_type: str, data: dict[str, Any]) -> None:
        lines.append({"seq": len(lines) + 1, "event": {
            "type": kind, "timestamp": _iso(moment), "session_id": result.run_id, "conversation_id": result.run_id,
            "data_type": data_type, "data": data}})

    add("conversation.started", "*events.ConversationStartedData",
        {"SystemPrompt": str(result.params.get("system_prompt") or "")})
    for index, message in enumerate(result.messages):
        if message.role == "assistant" and message.latency_ms:
            moment += timedelta(milliseconds=message.latency_ms)
        add("message.created", "*events.MessageCreatedData", _message_data(message, index))
        if message.role == "assistant" and message.cost_info is not None:
            cost = message.cost_info
            add("provider.call.completed", "*events.ProviderCallCompletedData",
                {"Provider": result.provider_id, "Model": str(result.params.get("model") or ""),
                 "Duration": int((message.latency_ms or 0.0) * 1_000_000), "InputTokens": cost.input_tokens,
                 "OutputTokens": cost.output_tokens, "Cost": round(cost.total_cost_usd, 8)})
    return lines


def _message_data(message: Message, index: int) -> dict[str, Any]:
    """PromptKit's MessageCreatedData (Go field names: the struct has no JSON tags)."""
    data: dict[str, Any] = {"Role": message.role, "Content": message.content, "Index": index}
    if message.meta.get("parts"):
        data["Parts"] = message.meta["parts"]
    if message.tool_calls:
        data["ToolCalls"] = [{"ID": c.id, "Name": c.name, "Args": c.args} for c in message.tool_calls]
    if message.tool_result is not None:
        result = message.tool_result
        data["ToolResult"] = {"ID": result.call_id, "Name": result.name, "Content": result.content,
                              **({"Error": result.error} if result.error else {})}
    if message.latency_ms is not None:
        data["latency_ms"] = round(message.latency_ms, 3)
    return data


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
