"""The conversation executor on small in-memory bundles: tools, self-play, limits, errors, streaming."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from arena_operator.engine.bundle import load_bundle
from arena_operator.engine.errors import ProviderError
from arena_operator.engine.executor import ConversationExecutor
from arena_operator.engine.plan import generate_plan
from arena_operator.engine.providers.base import Provider
from arena_operator.engine.providers.registry import build_providers
from arena_operator.engine.types import ChatRequest, ChatResponse


def write_bundle(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


ARENA = """\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Arena
metadata: {name: t}
spec:
  prompt_configs: [{id: p, file: prompt.yaml}]
  providers:
    - {file: bot.yaml}
    - {file: user.yaml, group: selfplay}
  scenarios: [{file: s.yaml}]
  tools: [{file: tool.yaml}]
  self_play:
    personas: [{file: persona.yaml}]
    roles: [{id: sim, provider: user}]
  defaults: {run_timeout: 2s}
"""
PROMPT = """\
kind: PromptConfig
metadata: {name: p}
spec:
  task_type: t
  system_template: "You help {{who}}"
  variables: [{name: who, default: people}]
  allowed_tools: [calc]
"""
BOT = """\
kind: Provider
metadata: {name: bot}
spec:
  type: mock
  additional_config: {mock_config: mock.yaml}
"""
USER = BOT.replace("name: bot", "name: user")
TOOL = """\
kind: Tool
metadata: {name: calc}
spec:
  name: calc
  input_schema: {type: object, properties: {expr: {type: string}}, required: [expr]}
  mock_template: "result of {{expr}} is 42"
"""
PERSONA = """\
kind: Persona
metadata: {name: asker}
spec: {description: asks things, system_prompt: You ask.}
"""


def bundle_with(tmp_path: Path, scenario: str, mock: str) -> Path:
    return write_bundle(tmp_path, {"config.arena.yaml": ARENA, "prompt.yaml": PROMPT, "bot.yaml": BOT,
                                   "user.yaml": USER, "tool.yaml": TOOL, "persona.yaml": PERSONA,
                                   "s.yaml": scenario, "mock.yaml": mock})


def spied(root: Path) -> tuple[dict[str, Provider], list[ChatRequest]]:
    """The bundle's providers, with every request to `bot` recorded."""
    seen: list[ChatRequest] = []
    bundle = load_bundle(root)
    providers = build_providers(bundle.providers, bundle.root)
    original = providers["bot"]._complete

    async def spy(request: ChatRequest) -> ChatResponse:
        seen.append(request)
        return await original(request)

    providers["bot"]._complete = spy  # type: ignore[method-assign]
    return providers, seen


async def run_one(root: Path, providers: dict[str, Provider] | None = None) -> dict:
    bundle = load_bundle(root)
    built = providers or build_providers(bundle.providers, bundle.root)
    executor = ConversationExecutor(bundle, built)
    try:
        [combo] = generate_plan(bundle).combinations
        return (await executor.execute(combo)).to_dict()
    finally:
        await executor.aclose()


async def test_tool_round_trip_and_limits(tmp_path: Path) -> None:
    root = bundle_with(tmp_path, """\
        kind: Scenario
        metadata: {name: s}
        spec:
          description: d
          task_type: t
          providers: [bot]
          tool_policy: {max_tool_calls_per_turn: 2}
          turns:
            - role: user
              content: compute
              assertions: [{type: tools_called, params: {tools: [calc]}}]
        """, """\
        scenarios:
          s:
            turns:
              1: {type: tool_calls, tool_calls: [{name: calc, arguments: {expr: "6*7"}}]}
              2: {type: tool_calls, tool_calls: [{name: calc, arguments: {expr: 1}}, {name: calc, arguments: {}}]}
              3: never reached
        """)
    run = await run_one(root)
    roles = [m["role"] for m in run["Messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "tool"]
    assert run["Messages"][2]["content"] == "result of 6*7 is 42"
    # the second call's args violate the schema (expr must be a string): the model sees a tool error
    assert "input_schema" in run["Messages"][4]["tool_result"]["error"]
    # the third call is over the limit: not run, but answered, so the transcript stays well-formed
    assert run["Messages"][5]["tool_result"]["error"] == "tool call limit reached"
    assert run["ToolStats"] == {"TotalCalls": 2, "ByTool": {"calc": 2}, "Errors": 1}
    assert run["Violations"] and "tool call limit" in run["Violations"][0]


async def test_failing_turn_stops_conversation_but_conversation_assertions_run(tmp_path: Path) -> None:
    root = bundle_with(tmp_path, """\
        kind: Scenario
        metadata: {name: s}
        spec:
          description: d
          providers: [bot]
          turns:
            - {role: user, content: one, assertions: [{type: contains, params: {patterns: [nope]}}]}
            - {role: user, content: two}
          conversation_assertions: [{type: contains, params: {patterns: [first]}}]
        """, "scenarios: {s: {turns: {1: first reply, 2: second reply}}}\n")
    run = await run_one(root)
    assert [m["content"] for m in run["Messages"]] == ["one", "first reply"]
    assert run["Status"] == "failed"
    assert run["conversation_assertions"]["passed"] is True


async def test_self_play_swaps_roles_and_ends_on_marker(tmp_path: Path) -> None:
    root = bundle_with(tmp_path, """\
        kind: Scenario
        metadata: {name: s}
        spec:
          description: d
          providers: [bot]
          turns:
            - {role: sim, persona: asker, turns: 1, max_turns: 5}
        """, """\
        defaultResponse: bot says hi
        selfplay:
          asker:
            turns: {1: "question one", 2: "question two", 3: "thanks [CONVERSATION_COMPLETE]"}
        """)
    run = await run_one(root)
    users = [m["content"] for m in run["Messages"] if m["role"] == "user"]
    assert users == ["question one", "question two", "thanks"]
    assert run["SelfPlay"] is True and run["PersonaID"] == "asker"


class _Failing(Provider):
    async def _complete(self, request: ChatRequest) -> ChatResponse:
        raise ProviderError("upstream down", "server_error", 503)


class _Slow(Provider):
    async def _complete(self, request: ChatRequest) -> ChatResponse:
        import asyncio

        await asyncio.sleep(10)
        raise AssertionError("unreachable")


@pytest.mark.parametrize(("provider_cls", "kind", "text"), [(_Failing, "server_error", "upstream down"),
                                                           (_Slow, "timeout", "timed out after 2s")])
async def test_provider_errors_become_run_errors(tmp_path: Path, provider_cls: type, kind: str, text: str) -> None:
    root = bundle_with(tmp_path, """\
        kind: Scenario
        metadata: {name: s}
        spec: {description: d, providers: [bot], turns: [{role: user, content: hi}]}
        """, "{}\n")
    bundle = load_bundle(root)
    spec = bundle.providers["bot"]
    run = await run_one(root, {"bot": provider_cls("bot", spec), "user": provider_cls("user", spec)})
    assert run["Status"] == "error" and run["ErrorKind"] == kind and text in run["Error"]


async def test_streaming_records_ttft_and_system_prompt_rendered(tmp_path: Path) -> None:
    root = bundle_with(tmp_path, """\
        kind: Scenario
        metadata: {name: s}
        spec:
          description: d
          task_type: t
          streaming: true
          variables: {who: pilots}
          providers: [bot]
          turns: [{role: user, content: hi}]
        """, "defaultResponse: ok\n")
    providers, seen = spied(root)
    run = await run_one(root, providers)
    assert seen[0].system == "You help pilots" and seen[0].stream is True
    assert run["TTFT"] is not None and run["Messages"][1]["ttft_ms"] is not None
    assert run["Cost"]["total_cost_usd"] > 0


@pytest.mark.parametrize(("scenario_streams", "turn_streams", "streamed"), [
    (True, None, True), (True, False, False), (False, True, False), (False, None, False),
])
async def test_turn_streaming_can_only_switch_streaming_off(tmp_path: Path, scenario_streams: bool,
                                                            turn_streams: bool | None, streamed: bool) -> None:
    """As upstream: a turn's `streaming` overrides a streaming scenario; a plain scenario never streams."""
    turn = "{role: user, content: hi" + ("" if turn_streams is None else f", streaming: {str(turn_streams).lower()}")
    root = bundle_with(tmp_path, f"""\
        kind: Scenario
        metadata: {{name: s}}
        spec:
          description: d
          task_type: t
          streaming: {str(scenario_streams).lower()}
          providers: [bot]
          turns: [{turn}}}]
        """, "defaultResponse: ok\n")
    providers, seen = spied(root)
    await run_one(root, providers)
    assert seen[0].stream is streamed
