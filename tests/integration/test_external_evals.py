"""Evals answered over the network, against loopback stand-ins: a REST eval endpoint, an A2A agent
(JSON-RPC `message/send`) and a Hugging Face classifier endpoint used through a `role: inference` provider."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from arena_operator.engine.assertions.base import EvalContext, EvalServices
from arena_operator.engine.assertions.registry import evaluate
from arena_operator.engine.bundle import load_bundle
from arena_operator.engine.executor import ConversationExecutor
from arena_operator.engine.plan import generate_plan
from arena_operator.engine.providers.registry import build_providers
from arena_operator.engine.spec import AssertionSpec
from arena_operator.engine.types import Message


class Services:
    """REST at /rest, A2A at /agent/a2a, HF models at /hf/models/<model>; replies are set per test."""

    def __init__(self) -> None:
        self.rest_reply: tuple[int, str] = (200, '{"passed": true, "score": 0.9, "reasoning": "fine"}')
        self.agent_text = 'verdict: {"score": 0.4, "reasoning": "vague"}'
        self.labels = [[{"label": "toxic", "score": 0.02}, {"label": "neutral", "score": 0.98}]]
        self.seen: list[tuple[str, dict[str, str], Any]] = []
        self.url = ""

    async def _rest(self, request: web.Request) -> web.Response:
        self.seen.append(("rest", dict(request.headers), await request.json()))
        return web.Response(status=self.rest_reply[0], text=self.rest_reply[1])

    async def _agent(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.seen.append(("a2a", dict(request.headers), body))
        task = {"id": "t1", "contextId": "c1", "status": {"state": "completed", "message": {
            "messageId": "m1", "role": "agent", "parts": [{"text": self.agent_text}]}}}
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": task})

    async def _hf(self, request: web.Request) -> web.Response:
        self.seen.append(("hf:" + request.match_info["model"], dict(request.headers), await request.json()))
        return web.json_response(self.labels)


@pytest.fixture
async def services() -> AsyncIterator[Services]:
    fake = Services()
    app = web.Application()
    app.router.add_post("/rest", fake._rest)
    app.router.add_post("/agent/a2a", fake._agent)
    app.router.add_post("/hf/models/{model:.*}", fake._hf)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    fake.url = f"http://{host}:{port}"
    yield fake
    await runner.cleanup()


CONVERSATION = [Message("user", "Where is my order?"), Message("assistant", "It shipped on Monday."),
                Message("user", "Thanks"), Message("assistant", "You're welcome.")]


async def _run(kind: str, params: dict[str, Any], min_score: float | None = None) -> Any:
    spec = AssertionSpec(type="assertion", params={"eval_type": kind, "eval_params": params,
                                                   **({"min_score": min_score} if min_score is not None else {})})
    return await evaluate(spec, EvalContext("conversation", CONVERSATION, CONVERSATION, EvalServices()))


async def test_rest_eval_posts_the_reply_and_reads_the_score(services: Services, monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setenv("ARENA_TEST_EVAL_TOKEN", "s3cret")
    params = {"url": f"{services.url}/rest", "criteria": "polite", "headers": {"X-Key": "${ARENA_TEST_EVAL_TOKEN}"},
              "include_tool_calls": True}
    assert (await _run("rest_eval", params, 0.8)).passed
    _, headers, body = services.seen[-1]
    assert headers["X-Key"] == "s3cret"
    assert body["current_output"] == "You're welcome." and body["criteria"] == "polite"
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "assistant"]
    assert not (await _run("rest_eval", params)).passed, "0.9 is below the default threshold 1.0"
    assert (await _run("rest_eval_session", params, 0.5)).passed
    assert services.seen[-1][2]["current_output"] == "It shipped on Monday.\nYou're welcome."
    services.rest_reply = (503, "overloaded")
    failed = await _run("rest_eval", params, 0.1)
    assert not failed.passed and "503" in failed.message


async def test_a2a_eval_asks_the_agent(services: Services) -> None:
    params = {"agent_url": f"{services.url}/agent", "criteria": "specific", "auth_token": "tok"}
    assert (await _run("a2a_eval", params, 0.3)).passed
    _, headers, body = services.seen[-1]
    assert body["method"] == "message/send" and headers["Authorization"] == "Bearer tok"
    text = body["params"]["message"]["parts"][0]["text"]
    assert "Criteria: specific" in text and "You're welcome." in text
    assert not (await _run("a2a_eval_session", params, 0.5)).passed
    unreachable = await _run("a2a_eval", {"agent_url": "http://127.0.0.1:9"}, 0.1)
    assert not unreachable.passed and "a2a agent error" in unreachable.message


def _classifier_bundle(root: Path, url: str, token_env: str) -> Path:
    files = {
        "config.arena.yaml": """apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Arena
metadata: {name: classify}
spec:
  prompt_configs: [{id: p, file: prompt.yaml}]
  providers: [{file: assistant.yaml}, {file: hf.yaml}]
  scenarios: [{file: scenario.yaml}]
  defaults:
    inference: {text_classifier: hf}
""",
        "prompt.yaml": "apiVersion: promptkit.altairalabs.ai/v1alpha1\nkind: PromptConfig\nmetadata: {name: p}\n"
                       "spec: {task_type: t, system_template: Be kind.}\n",
        "assistant.yaml": "apiVersion: promptkit.altairalabs.ai/v1alpha1\nkind: Provider\nmetadata: {name: bot}\n"
                          "spec: {type: mock, model: m}\n",
        "hf.yaml": f"apiVersion: promptkit.altairalabs.ai/v1alpha1\nkind: Provider\nmetadata: {{name: hf}}\n"
                   f"spec: {{type: huggingface, role: inference, base_url: '{url}/hf', "
                   f"credential: {{credential_env: {token_env}}}}}\n",
        "scenario.yaml": """apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Scenario
metadata: {name: kind-words}
spec:
  task_type: t
  description: A classifier endpoint scores the reply
  turns:
    - role: user
      content: Hello
      assertions:
        - type: assertion
          params:
            eval_type: text_toxicity
            eval_params: {model: org/toxic-bert, expected_label: neutral}
            min_score: 0.9
        - type: assertion
          params:
            eval_type: text_toxicity
            eval_params: {model: org/toxic-bert, expected_label: toxic}
            max_score: 0.1
""",
    }
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


async def test_classifier_endpoint_scores_the_reply(services: Services, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARENA_TEST_HF_TOKEN", "hf_test")
    bundle = load_bundle(_classifier_bundle(tmp_path, services.url, "ARENA_TEST_HF_TOKEN"))
    assert set(bundle.providers) == {"bot"} and set(bundle.service_providers) == {"hf"}, "inference: not in matrix"
    executor = ConversationExecutor(bundle, build_providers(bundle.providers, bundle.root))
    result = await executor.execute(generate_plan(bundle).combinations[0])
    await executor.aclose()
    assert result.passed, [r.message for r in result.failed_assertions]
    kind, headers, body = services.seen[-1]
    assert kind == "hf:org/toxic-bert" and headers["Authorization"] == "Bearer hf_test"
    assert body["inputs"].startswith("Mock response") and body["parameters"] == {"return_all_scores": True}


async def test_classifier_without_a_key_is_skipped(services: Services, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARENA_TEST_HF_TOKEN_ABSENT", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    bundle = load_bundle(_classifier_bundle(tmp_path, services.url, "ARENA_TEST_HF_TOKEN_ABSENT"))
    executor = ConversationExecutor(bundle, build_providers(bundle.providers, bundle.root))
    result = await executor.execute(generate_plan(bundle).combinations[0])
    await executor.aclose()
    first, second = result.turn_assertions
    assert first.skipped and first.passed
    # A skipped eval scores 1.0, as upstream: a max_score below that fails it.
    assert second.skipped and not second.passed and second.score == 1.0
    assert not services.seen, "no key, no classifier: nothing is called"
