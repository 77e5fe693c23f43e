"""Running compositions (engine/composition/runner.py) with the engine's own mock provider: step order, branch
skips and depends_on, reducers, agent tool loops and termination, tool steps, retries, schema violations,
failures and their kinds, concurrency of parallel branches and the time bound. Table-driven."""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from arena_operator.engine.bundle import Bundle, load_bundle
from arena_operator.engine.composition import (
    CallSettings,
    CompositionError,
    CompositionOutcome,
    CompositionRunner,
    composition_metadata,
)
from arena_operator.engine.providers.mock import MockConfig, MockProvider
from arena_operator.engine.spec import ProviderSpec
from arena_operator.engine.tools import ToolRunner
from arena_operator.engine.types import ChatRequest, ChatResponse

ARENA = """\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Arena
metadata: {{name: runner}}
spec:
  prompt_configs:
    - {{id: ask, file: ask.yaml}}
    - {{id: agent, file: agent.yaml}}
  providers: [{{file: mock.yaml}}]
  scenarios: [{{file: s.yaml}}]
  tools: [{{file: lookup.yaml}}]
  workflow:
    entry: run
    states:
      run: {{orchestration: composition, composition: c, terminal: true}}
  compositions:
    c:
{body}
  defaults: {{}}
"""
FILES = {
    "ask.yaml": "kind: PromptConfig\nmetadata: {name: ask}\nspec: {task_type: ask, system_template: 'Answer "
                "for {{who}}.', variables: [{name: who, default: nobody}]}\n",
    "agent.yaml": "kind: PromptConfig\nmetadata: {name: agent}\nspec: {task_type: agent, system_template: Agent., "
                  "allowed_tools: [lookup]}\n",
    "mock.yaml": "kind: Provider\nmetadata: {name: m}\nspec: {type: mock}\n",
    "s.yaml": "kind: Scenario\nmetadata: {name: s}\nspec: {description: d, variables: {who: Ada}, "
              "turns: [{role: user, content: hi}]}\n",
    "lookup.yaml": "kind: Tool\nmetadata: {name: lookup}\nspec: {description: d, mode: mock, mock_result: {hits: 2}, "
                   "input_schema: {type: object, properties: {q: {type: string}}, required: [q]}}\n",
    "shape.json": '{"type": "object", "required": ["kind"], "properties": {"kind": {"type": "string"}}}',
}
TOOL_CALL = {"type": "tool_calls", "content": "calling", "tool_calls": [{"name": "lookup", "arguments": {"q": "x"}}]}


class RecordingMock(MockProvider):
    """The engine's mock provider, remembering each request (to check what steps were sent)."""

    def __init__(self, steps: dict[str, Any], latency_ms: float = 0) -> None:
        spec = ProviderSpec(type="mock", additional_config={"latency_ms": latency_ms} if latency_ms else {})
        super().__init__("m", spec, MockConfig({"scenarios": {"s": {"steps": steps}}, "defaultResponse": "default"}))
        self.requests: list[ChatRequest] = []

    async def _complete(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        return await super()._complete(request)

    def sent(self, step: str) -> list[ChatRequest]:
        return [r for r in self.requests if r.context.get("step_id") == step]


def _bundle(tmp_path: Path, body: str) -> Bundle:
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "config.arena.yaml").write_text(ARENA.format(body=textwrap.indent(body, "      ")))
    return load_bundle(tmp_path, log_warnings=False)


def _run(bundle: Bundle, provider: RecordingMock, text: str = "hi", timeout: float = 10) -> CompositionOutcome:
    runner = CompositionRunner(bundle, provider, ToolRunner(bundle.tools), CallSettings(timeout=timeout))
    return asyncio.run(runner.run("c", text, bundle.scenarios["s"], "s"))


def _steps(*lines: str) -> str:
    return "version: 1\nsteps:\n" + "".join(f"  - {line}\n" for line in lines)


BRANCH = ("{id: r, kind: branch, predicate: {path: '${a.output.kind}', op: equals, value: doc}, then: hit, "
          "else: miss}")
A_JSON = "{id: a, kind: prompt, prompt_task: ask, input: '${input}', output_schema: shape.json}"
YES, NO = "{id: hit, kind: prompt, prompt_task: ask}", "{id: miss, kind: prompt, prompt_task: ask}"

CASES: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    # (id, composition, mock step replies, expected: output, ran (step ids in order), branches, parallel, violations)
    ("then-branch", _steps(A_JSON, BRANCH, YES, NO), {"a": '{"kind":"doc"}', "hit": "Y", "miss": "N"},
     {"output": '"Y"', "ran": ["a", "hit"], "branches": {"r": "hit"}}),
    ("else-branch", _steps(A_JSON, BRANCH, YES, NO), {"a": '{"kind":"memo"}', "hit": "Y", "miss": "N"},
     {"output": '"N"', "ran": ["a", "miss"], "branches": {"r": "miss"}}),
    ("no-else-skips-then", _steps(A_JSON, BRANCH.replace(", else: miss", ""), YES, NO),
     {"a": '{"kind":"memo"}', "hit": "Y", "miss": "N"}, {"output": '"N"', "ran": ["a", "miss"], "branches": {"r": ""}}),
    ("depends-on-skipped", _steps(A_JSON, BRANCH, YES, NO, "{id: after_hit, kind: prompt, prompt_task: ask, "
                                  "depends_on: [hit]}"), {"a": '{"kind":"memo"}', "miss": "N", "after_hit": "AH"},
     {"output": '"N"', "ran": ["a", "miss"]}),  # only a skipped dependency: skipped too; output is the last that ran
    ("structured-output-passes-through", _steps(A_JSON), {"a": ' {"kind": "doc", "n": 1} '},
     {"output": '{"kind":"doc","n":1}', "raw": {"a": ' {"kind": "doc", "n": 1} '}}),
    ("text-output-is-a-json-string", _steps("{id: a, kind: prompt, prompt_task: ask}"), {"a": '{"kind":"doc"}'},
     {"output": '"{\\"kind\\":\\"doc\\"}"'}),
    ("barrier", "version: 1\nsteps:\n  - id: p\n    kind: parallel\n    branches:\n"
     "      - {id: x, kind: prompt, prompt_task: ask}\n      - {id: y, kind: prompt, prompt_task: ask}\n"
     "    reduce: {strategy: barrier, into: m}\n", {"x": "X", "y": "Y"},
     {"output": '{"m":{"x":"X","y":"Y"}}', "parallel": {"p": "complete"}}),
    ("append-then-replace", "version: 1\nsteps:\n  - id: p\n    kind: parallel\n    branches:\n"
     "      - {id: x, kind: prompt, prompt_task: ask}\n      - {id: y, kind: prompt, prompt_task: ask}\n"
     "    reduce: {strategy: append, into: m}\n  - id: q\n    kind: parallel\n    branches:\n"
     "      - {id: u, kind: prompt, prompt_task: ask, input: '${p.output.m}'}\n"
     "      - {id: v, kind: prompt, prompt_task: ask}\n    reduce: {strategy: replace, into: last}\n",
     {"x": "X", "y": "Y", "u": "U", "v": "V"}, {"output": '{"last":"V"}', "sent": {"u": '["X","Y"]'}}),
    ("agent-stops-on-tool", _steps("{id: g, kind: agent, prompt_task: agent, tools: [lookup], "
                                   "termination: {tool_called: lookup}}"), {"g": TOOL_CALL},
     {"output": '"calling"', "calls": 1}),
    ("tool-step", _steps("{id: t, kind: tool, tool: lookup, args: {q: '${input}'}}"), {},
     {"output": '{"hits":2}', "ran": ["t"], "calls": 0}),
    ("object-input-and-interpolation", _steps(A_JSON, "{id: b, kind: prompt, prompt_task: ask, "
                                              "input: {k: '${a.output.kind}', n: 'n=${a.output.n}'}}"),
     {"a": '{"kind":"doc","n":2}', "b": "B"}, {"sent": {"b": '{"k":"doc","n":"n=2"}'}}),
    ("violation-not-json", _steps(A_JSON), {"a": "not json"},
     {"output": '"not json"', "violations": ["the reply is not JSON, so it does not match shape.json"]}),
    ("violation-schema", _steps(A_JSON), {"a": '{"kind": 3}'},
     {"violations": ["does not match shape.json at kind: 3 is not of type 'string'"]}),
]


@pytest.mark.parametrize(("body", "mocks", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_runs(tmp_path: Path, body: str, mocks: dict[str, Any], expected: dict[str, Any]) -> None:
    provider = RecordingMock(mocks)
    outcome = _run(_bundle(tmp_path, body), provider)
    if "output" in expected:
        assert outcome.output == expected["output"]
    if "ran" in expected:
        assert [s.id for s in outcome.steps] == expected["ran"]
    for key in ("branches", "parallel"):
        if key in expected:
            assert getattr(outcome, key) == expected[key]
    for step, raw in expected.get("raw", {}).items():
        assert next(s.output for s in outcome.steps if s.id == step) == raw
    for step, text in expected.get("sent", {}).items():
        assert [r.messages[0].content for r in provider.sent(step)] == [text]
    if "calls" in expected:
        assert outcome.model_calls == expected["calls"]
    assert len(outcome.violations) == len(expected.get("violations", []))
    for violation, wanted in zip(outcome.violations, expected.get("violations", []), strict=True):
        assert wanted in violation


FAILURES = [
    # (id, composition, mock step replies, message, kind, steps recorded)
    ("unresolved-reference", _steps(A_JSON, "{id: b, kind: prompt, prompt_task: ask, input: '${a.output.gone}'}"),
     {"a": '{"kind":"doc"}'}, "step 'b': unresolved reference '${a.output.gone}'", "composition", ["a"]),
    ("agent-max-rounds", _steps("{id: g, kind: agent, prompt_task: agent, tools: [lookup], "
                                "termination: {max_steps: 3}}"), {"g": TOOL_CALL},
     "step 'g': max rounds (3) exceeded", "composition", ["g"]),
    ("retry-attempts", _steps("{id: g, kind: agent, prompt_task: agent, tools: [lookup], termination: {max_steps: 1},"
                              " modifiers: {retry: {max_attempts: 3}}}"), {"g": TOOL_CALL},
     "max rounds (1) exceeded", "composition", ["g"]),
    ("parallel-reports-every-branch", "version: 1\nsteps:\n  - id: p\n    kind: parallel\n    branches:\n"
     "      - {id: x, kind: prompt, prompt_task: ask, input: '${input.missing}'}\n"
     "      - {id: y, kind: tool, tool: lookup, args: {}}\n      - {id: z, kind: prompt, prompt_task: ask}\n"
     "    reduce: {strategy: barrier, into: m}\n", {"z": "Z"},
     "step 'p': 2 of 3 branches failed: step 'x': unresolved reference", "composition", ["y", "z"]),
    ("ordered-compare-of-text", _steps(A_JSON, "{id: r, kind: branch, predicate: {path: '${a.output.kind}', "
                                       "op: greater_than, value: 1}, then: hit}", YES), {"a": '{"kind":"doc"}'},
     "step 'r': ordered comparison 'greater_than'", "composition", ["a"]),
    ("output-step-skipped", "version: 1\noutput: hit\nsteps:\n" + "".join(
        f"  - {x}\n" for x in (A_JSON, BRANCH, YES, NO)), {"a": '{"kind":"memo"}'},
     "output step 'hit' was skipped by a branch", "composition", ["a", "miss"]),
]


@pytest.mark.parametrize(("body", "mocks", "message", "kind", "recorded"), [f[1:] for f in FAILURES],
                         ids=[f[0] for f in FAILURES])
def test_failures(tmp_path: Path, body: str, mocks: dict[str, Any], message: str, kind: str,
                  recorded: list[str]) -> None:
    provider = RecordingMock(mocks)
    with pytest.raises(CompositionError) as caught:
        _run(_bundle(tmp_path, body), provider)
    assert message in str(caught.value) and str(caught.value).startswith("composition 'c': ")
    assert caught.value.kind == kind
    assert sorted(s.id for s in caught.value.outcome.steps) == sorted(recorded)
    assert caught.value.outcome.cost.input_tokens == sum(  # what ran before the failure is paid for
        sum(len(m.content.encode()) // 4 for m in r.messages) or 10 for r in provider.requests)


def test_retry_counts_attempts(tmp_path: Path) -> None:
    body = FAILURES[2][1]
    provider = RecordingMock({"g": TOOL_CALL})
    with pytest.raises(CompositionError) as caught:
        _run(_bundle(tmp_path, body), provider)
    assert [(s.attempt, bool(s.error)) for s in caught.value.outcome.steps] == [(3, True)]
    assert len(provider.sent("g")) == 3


def test_an_agent_round_runs_at_most_the_scenarios_tool_calls_per_turn(tmp_path: Path) -> None:
    """A reply asking for 12 calls: 10 run (tool_policy.max_tool_calls_per_turn's default), 2 are refused, and the
    second round's request carries all 12 results."""
    many = {**TOOL_CALL, "tool_calls": [{"name": "lookup", "arguments": {"q": str(i)}} for i in range(12)]}
    body = _steps("{id: g, kind: agent, prompt_task: agent, tools: [lookup], termination: {max_steps: 2}}")
    provider = RecordingMock({"g": many})
    with pytest.raises(CompositionError, match="max rounds"):
        _run(_bundle(tmp_path, body), provider)
    results = [m.tool_result for m in provider.requests[1].messages if m.role == "tool"]
    assert [r.error for r in results] == [None] * 10 + ["tool call limit reached"] * 2
    assert json.loads(results[0].content) == {"hits": 2}


def test_parallel_branches_run_concurrently(tmp_path: Path) -> None:
    body = ("version: 1\nsteps:\n  - id: p\n    kind: parallel\n    branches:\n" + "".join(
        f"      - {{id: b{i}, kind: prompt, prompt_task: ask}}\n" for i in range(4)) +
            "    reduce: {strategy: append, into: m}\n")
    started = time.perf_counter()
    outcome = _run(_bundle(tmp_path, body), RecordingMock({}, latency_ms=300))
    assert time.perf_counter() - started < 0.9  # four 300 ms calls one after another would take 1.2 s
    assert json.loads(outcome.output) == {"m": ["default"] * 4}


def test_the_time_bound_covers_the_whole_composition(tmp_path: Path) -> None:
    body = _steps("{id: a, kind: prompt, prompt_task: ask}", "{id: b, kind: prompt, prompt_task: ask}")
    started = time.perf_counter()
    with pytest.raises(CompositionError) as caught:
        _run(_bundle(tmp_path, body), RecordingMock({}, latency_ms=400), timeout=0.6)
    assert caught.value.kind == "timeout" and "timed out after 0.6s" in str(caught.value)
    assert time.perf_counter() - started < 0.75
    assert [s.id for s in caught.value.outcome.steps] == ["a"]


def test_step_requests(tmp_path: Path) -> None:
    """A step is a fresh call: its prompt rendered with the scenario's variables as system, its input the only
    message, the mock keyed by scenario and step id, no turn number, and only an agent's tools offered."""
    body = _steps("{id: a, kind: prompt, prompt_task: agent}",
                  "{id: g, kind: agent, prompt_task: agent, tools: [lookup], termination: {max_steps: 2}}",
                  "{id: w, kind: prompt, prompt_task: ask, input: '${input}'}")
    provider = RecordingMock({"a": TOOL_CALL, "g": "done", "w": "W"})
    outcome = _run(_bundle(tmp_path, body), provider, text="the question")
    first, agent, writer = provider.requests
    assert (first.tools, [t.name for t in agent.tools], writer.tools) == ([], ["lookup"], [])
    assert writer.system == "Answer for Ada." and [m.content for m in writer.messages] == ["the question"]
    assert writer.context == {"scenario_id": "s", "step_id": "w", "mock_turn": 0}
    assert outcome.steps[0].output == '"calling"'  # a prompt step offers no tools, so the mock answers in text
    meta = composition_metadata(outcome.reply())
    assert meta["composition_step_outputs"] == {"a": '"calling"', "g": '"done"', "w": '"W"'}
    assert outcome.reply().cost_info is outcome.cost and outcome.cost.input_tokens > 0
