"""Recorded conversations: every format eval mode and the replay provider read (engine/recordings.py), the errors
they give (`file:line: message`), the session recorder's files read back (engine/recording.py) and the replay
provider's choice of reply (engine/providers/replay.py)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from arena_operator.engine.errors import ProviderError
from arena_operator.engine.manifests import Collector
from arena_operator.engine.providers.replay import ReplayProvider, config_problems
from arena_operator.engine.recording import SessionRecorder, check_recording_config, recording_settings
from arena_operator.engine.recordings import RecordingError, read_conversations
from arena_operator.engine.result import RunResult
from arena_operator.engine.spec import ProviderSpec
from arena_operator.engine.types import ChatRequest, CostInfo, Message, ToolCall, ToolResult

EVENT_STORE = "\n".join(json.dumps(line) for line in [
    {"seq": 1, "event": {"type": "conversation.started", "session_id": "s1", "data": {"SystemPrompt": "Be brief."}}},
    {"seq": 2, "event": {"type": "message.created", "timestamp": "2026-01-01T00:00:00Z", "session_id": "s1",
                         "data": {"Role": "user", "Content": "Hi"}}},
    {"seq": 3, "event": {"type": "message.created", "timestamp": "2026-01-01T00:00:02Z", "session_id": "s1",
                         "data": {"Role": "assistant", "Content": "Hello",
                                  "ToolCalls": [{"ID": "c1", "Name": "lookup", "Args": {"q": 1}}]}}},
    {"seq": 4, "event": {"type": "provider.call.completed", "session_id": "s1",
                         "data": {"InputTokens": 5, "OutputTokens": 3, "Cost": 0.25}}},
])
SESSION_JSONL = "\n".join(json.dumps(line) for line in [
    {"type": "metadata", "metadata": {"session_id": "s2", "version": "1.0", "provider_name": "gemini"}},
    {"type": "event", "event": {"type": "message.created", "data": {"role": "user", "content": "Q"}}},
    {"type": "event", "event": {"type": "message.created", "data": {"role": "assistant", "content": "A"}}},
])
ARENA_ADAPTER = json.dumps({"metadata": {"session_id": "s3", "tags": ["t"]}, "events": [
    {"type": "message", "message": {"role": "user", "content": "Q"}},
    {"type": "note", "event": {}},
    {"type": "message", "message": {"role": "assistant", "content": "A"}}]})
PROMPTKIT_JSON = json.dumps({"metadata": {"session_id": "s4", "version": "1.0"}, "events": [
    {"type": "message.created", "data": {"role": "user", "content": "Q"}},
    {"type": "message.created", "data": {"role": "assistant", "parts": [{"type": "text", "text": "from parts"}]}}]})
UNIT = json.dumps({"RunID": "r9", "ProviderID": "p", "Messages": [
    {"role": "user", "content": "Q"},
    {"role": "assistant", "content": "A", "cost_info": {"input_tokens": 2, "output_tokens": 1}, "latency_ms": 12}]})
RESULTS = json.dumps([{"RunID": "a", "Messages": [{"role": "user", "content": "1"}]},
                      {"RunID": "b", "Messages": [{"role": "user", "content": "2"}]}])
TURNS = json.dumps({"scenario_id": "x", "provider_id": "openai", "turns": [
    {"user_message": {"content": "Q"}, "response": {"message": {"content": "A"}},
     "tool_results": [{"tool_call_id": "c", "content": "r"}]}]})
TRANSCRIPT = """\
metadata:
  session_id: s5
messages:
  - role: user
    content: Q
  - role: assistant
    content: ""
    tool_calls:
      - id: c1
        function: {name: lookup, arguments: '{"id": 3}'}
  - role: tool
    tool_call_id: c1
    content: found
"""
GENERIC = json.dumps([{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}])


@pytest.mark.parametrize(("name", "text", "hint", "want_roles", "want_session"), [
    ("s.jsonl", EVENT_STORE, None, ["user", "assistant"], "s1"),
    ("s.jsonl", SESSION_JSONL, "session", ["user", "assistant"], "s2"),
    ("a.recording.json", ARENA_ADAPTER, None, ["user", "assistant"], "s3"),
    ("p.recording.json", PROMPTKIT_JSON, None, ["user", "assistant"], "s4"),
    ("unit.json", UNIT, None, ["user", "assistant"], "r9"),
    ("run.json", UNIT, "arena_output", ["user", "assistant"], "r9"),
    ("out.arena-output.json", TURNS, None, ["user", "assistant", "tool"], ""),
    ("c.transcript.yaml", TRANSCRIPT, None, ["user", "assistant", "tool"], "s5"),
    ("chat.json", GENERIC, "generic", ["user", "assistant"], ""),
    ("chat.json", GENERIC, None, ["user", "assistant"], ""),
])
def test_formats_read_into_messages(tmp_path: Path, name: str, text: str, hint: str | None,
                                    want_roles: list[str], want_session: str) -> None:
    (tmp_path / name).write_text(text)
    conversation = read_conversations(tmp_path / name, name, hint)[0]
    assert [m.role for m in conversation.messages] == want_roles
    assert conversation.session_id == want_session


def test_details_survive_reading(tmp_path: Path) -> None:
    (tmp_path / "s.jsonl").write_text(EVENT_STORE)
    reply = read_conversations(tmp_path / "s.jsonl", "s.jsonl")[0].messages[1]
    assert reply.tool_calls == [ToolCall("c1", "lookup", {"q": 1})]
    assert reply.cost_info == CostInfo(5, 3, 0.0, 0.25)  # provider.call.completed onto the reply before it
    (tmp_path / "c.transcript.yaml").write_text(TRANSCRIPT)
    messages = read_conversations(tmp_path / "c.transcript.yaml", "c.transcript.yaml")[0].messages
    assert messages[1].tool_calls == [ToolCall("c1", "lookup", {"id": 3})]
    assert messages[2].tool_result == ToolResult("c1", "", "found")
    (tmp_path / "p.recording.json").write_text(PROMPTKIT_JSON)
    assert read_conversations(tmp_path / "p.recording.json", "p")[0].messages[1].content == "from parts"
    (tmp_path / "results.json").write_text(RESULTS)
    assert [c.session_id for c in read_conversations(tmp_path / "results.json", "results.json")] == ["a", "b"]


@pytest.mark.parametrize(("name", "text", "hint", "line", "message"), [
    ("bad.json", '{\n  "Messages": [\n    {"role": "user",}\n  ]\n}', None, 3, "invalid JSON"),
    ("bad.jsonl", EVENT_STORE + "\n{not json}", None, 5, "invalid JSON"),
    ("bad.jsonl", EVENT_STORE + '\n["a list"]', None, 5, "each line must be a JSON object"),
    ("bad.jsonl", EVENT_STORE + '\n{"seq": 5}', None, 5, 'a line is {"seq", "event"}'),
    ("role.json", '{\n  "Messages": [\n    {"role": "robot", "content": "x"}\n  ]\n}', None, 3,
     "message role 'robot' is not one of"),
    ("content.json", '{"Messages": [\n  {"role": "user",\n   "content": 7}]}', None, 2, "content must be a string"),
    ("role.jsonl", EVENT_STORE + '\n{"seq":5,"event":{"type":"message.created","data":{"Role":"x"}}}', None, 5,
     "message role 'x'"),
    ("args.transcript.yaml", "messages:\n  - role: user\n    content: q\n  - role: assistant\n    tool_calls:\n"
     "      - function: {name: f, arguments: 'not json'}\n", None, 4, "arguments are not JSON"),
    ("t.transcript.yaml", "messages: [\n", None, 2, "invalid YAML"),
    ("what.json", '{"hello": 1}', None, 1, "not a recording this version reads"),
    ("empty.json", "[]", "arena_output", 1, "holds no conversation"),
    ("s.recording.json", '{"events": 3}', None, 1, "an object with an `events` list"),
])
def test_malformed_recordings_name_file_and_line(tmp_path: Path, name: str, text: str, hint: str | None,
                                                line: int, message: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(RecordingError) as caught:
        read_conversations(tmp_path / name, f"recordings/{name}", hint)
    assert (caught.value.file, caught.value.line) == (f"recordings/{name}", line)
    assert message in caught.value.message
    assert str(caught.value).startswith(f"recordings/{name}:{line}: ")


def test_a_recording_over_the_size_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from arena_operator.engine import recordings

    monkeypatch.setattr(recordings, "MAX_RECORDING_BYTES", 10)
    (tmp_path / "big.json").write_text(GENERIC)
    with pytest.raises(RecordingError, match="at most 10"):
        read_conversations(tmp_path / "big.json", "big.json")


def _run() -> RunResult:
    result = RunResult(run_id="run1", scenario_id="sc", provider_id="mock",
                       params={"system_prompt": "Sys", "model": "m"})
    result.start_time = datetime(2026, 1, 1, tzinfo=UTC)
    result.messages = [
        Message("user", "Where is 7?"),
        Message("assistant", "", [ToolCall("c1", "find", {"id": 7})], latency_ms=500.0, cost_info=CostInfo(3, 2)),
        Message("tool", '{"at": "depot"}', tool_result=ToolResult("c1", "find", '{"at": "depot"}')),
        Message("assistant", "At the depot.", latency_ms=250.0, cost_info=CostInfo(9, 4, 0.1, 0.2)),
    ]
    return result


def test_the_recorder_writes_the_event_store_format_and_reads_back(tmp_path: Path) -> None:
    recorder = SessionRecorder(tmp_path / "recordings")
    path = recorder.write(_run())
    assert path == tmp_path / "recordings" / "run1.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    assert [line["event"]["type"] for line in lines] == [
        "conversation.started", "message.created", "message.created", "provider.call.completed", "message.created",
        "message.created", "provider.call.completed"]
    assert {line["event"]["session_id"] for line in lines} == {"run1"}
    assert lines[-2]["event"]["timestamp"] == "2026-01-01T00:00:00.750000Z"  # start + the replies' latency
    back = read_conversations(path, "recordings/run1.jsonl")[0]
    assert [(m.role, m.content) for m in back.messages] == [(m.role, m.content) for m in _run().messages]
    assert back.messages[1].tool_calls == [ToolCall("c1", "find", {"id": 7})]
    assert back.messages[2].tool_result == ToolResult("c1", "find", '{"at": "depot"}')
    assert back.messages[3].cost_info is not None and back.messages[3].cost_info.total_cost_usd == pytest.approx(0.3)
    assert not list((tmp_path / "recordings").glob(".rec-*"))  # no temp file left behind


@pytest.mark.parametrize("run_id", ["", "../x", "a/b", ".hidden"])
def test_the_recorder_refuses_ids_that_are_not_file_names(tmp_path: Path, run_id: str) -> None:
    with pytest.raises(ValueError, match="not a plain file name"):
        SessionRecorder(tmp_path).path_for(run_id)


@pytest.mark.parametrize(("config", "enabled", "subdir", "problems", "warnings"), [
    (None, False, "recordings", [], []),
    ({"recording": {"enabled": True}}, True, "recordings", [], []),
    ({"recording": {"enabled": True, "dir": "sessions/raw"}}, True, "sessions/raw", [], []),
    ({"recording": {"enabled": "yes"}}, True, "recordings", ["must be true or false"], []),
    ({"recording": {"enabled": True, "dir": "../elsewhere"}}, True, "../elsewhere", ["must stay inside"], []),
    ({"recording": {"enabled": True, "dir": "/abs"}}, True, "/abs", ["must stay inside"], []),
    ({"recording": ["on"]}, False, "recordings", ["must be a mapping"], []),
    ({"recording": {"enabled": False, "format": "json"}}, False, "recordings", [], ["unknown key"]),
])
def test_recording_settings(config: dict | None, enabled: bool, subdir: str, problems: list[str],
                            warnings: list[str]) -> None:
    out = Collector(Path("."))
    check_recording_config(config, "config.arena.yaml", None, out)
    assert recording_settings(config) == (enabled, subdir)
    assert [p for p in problems if not any(p in str(x) for x in out.problems)] == []
    assert len(out.problems) == len(problems) and len(out.warnings) == len(warnings)
    assert all(w in str(x) for w, x in zip(warnings, out.warnings, strict=True))


def _replay(tmp_path: Path, text: str, **config: object) -> ReplayProvider:
    (tmp_path / "rec.jsonl").write_text(text)
    spec = ProviderSpec.model_validate({"id": "r", "type": "replay", "model": "rec",
                                        "additional_config": {"recording": "rec.jsonl", **config}})
    return ReplayProvider("r", spec, tmp_path)


TWO_TURNS = "\n".join(json.dumps({"seq": i + 1, "event": {"type": "message.created", "data": d}}) for i, d in
                      enumerate([{"Role": "user", "Content": "one"}, {"Role": "assistant", "Content": "first"},
                                 {"Role": "user", "Content": "two"}, {"Role": "assistant", "Content": "second"}]))


@pytest.mark.parametrize(("match", "history", "want"), [
    ("turn", [Message("user", "two")], "first"),
    ("turn", [Message("user", "x"), Message("assistant", "a"), Message("user", "y")], "second"),
    ("content", [Message("user", "two")], "second"),
    ("content", [Message("user", "unknown")], "first"),
    ("content", [Message("user", "x"), Message("assistant", "a"), Message("user", "one")], "first"),
])
def test_replay_picks_the_recorded_reply(tmp_path: Path, match: str, history: list[Message], want: str) -> None:
    provider = _replay(tmp_path, TWO_TURNS, match=match)
    response = asyncio.run(provider.chat(ChatRequest(system="", messages=history)))
    assert response.content == want


def test_replay_runs_out_and_bad_recordings_fail_with_kind_recording(tmp_path: Path) -> None:
    provider = _replay(tmp_path, TWO_TURNS)
    history = [Message("user", "1"), Message("assistant", "a"), Message("user", "2"), Message("assistant", "b"),
               Message("user", "3")]
    with pytest.raises(ProviderError, match="replay exhausted: the recording has 2 responses") as caught:
        asyncio.run(provider.chat(ChatRequest(system="", messages=history)))
    assert caught.value.kind == "recording"
    broken = _replay(tmp_path, TWO_TURNS + "\n{oops")
    with pytest.raises(ProviderError, match=r"rec.jsonl:5: invalid JSON"):
        asyncio.run(broken.chat(ChatRequest(system="", messages=[Message("user", "q")])))
    outside = ProviderSpec.model_validate({"id": "r", "type": "replay", "model": "m",
                                           "additional_config": {"recording": "../secret.json"}})
    with pytest.raises(ProviderError, match="outside the bundle"):
        asyncio.run(ReplayProvider("r", outside, tmp_path).chat(ChatRequest(system="", messages=[])))


def test_replay_timing_waits_the_recorded_delay_divided_by_speed(tmp_path: Path) -> None:
    text = "\n".join(json.dumps({"seq": i + 1, "event": {"type": "message.created", "timestamp": t, "data": d}})
                     for i, (t, d) in enumerate([("2026-01-01T00:00:00Z", {"Role": "user", "Content": "q"}),
                                                 ("2026-01-01T00:00:00.4Z", {"Role": "assistant", "Content": "a"})]))
    provider = _replay(tmp_path, text, timing="accelerated", speed=2)
    loop = asyncio.new_event_loop()
    started = loop.time()
    loop.run_until_complete(provider.chat(ChatRequest(system="", messages=[Message("user", "q")])))
    elapsed = loop.time() - started
    loop.close()
    assert 0.18 <= elapsed < 1.0


@pytest.mark.parametrize(("config", "keys"), [
    ({"recording": "r.json"}, []),
    ({}, ["recording"]),
    ({"recording": "r.json", "timing": "slow", "match": "fuzzy", "speed": 0}, ["timing", "match", "speed"]),
])
def test_replay_settings_are_checked(config: dict, keys: list[str]) -> None:
    spec = ProviderSpec.model_validate({"id": "r", "type": "replay", "model": "m", "additional_config": config})
    assert [key for key, _ in config_problems(spec)] == keys


def test_build_providers_makes_replay_providers_and_mocks_them_on_request(tmp_path: Path) -> None:
    from arena_operator.engine.providers.mock import MockProvider
    from arena_operator.engine.providers.registry import build_providers

    specs = {"r": ProviderSpec.model_validate({"type": "replay", "model": "m",
                                               "additional_config": {"recording": "rec.jsonl"}})}
    assert isinstance(build_providers(specs, tmp_path)["r"], ReplayProvider)
    assert isinstance(build_providers(specs, tmp_path, mock_all=True)["r"], MockProvider)
