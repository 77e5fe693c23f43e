"""`arena run` with a remote A2A agent (`a2a_agents[].url`): a real A2A server on loopback, its card discovered,
the model's tool call sent to it as `message/send`, the agent assertions reading what it answered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from arena_operator import cli
from tests.fakes.a2a_server import a2a_agent, completed, query_of

CARD = {"name": "Weather Bureau", "skills": [{"id": "forecast", "name": "Forecast", "description": "A forecast"}]}

ARENA = """apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Arena
metadata: {{name: remote-a2a}}
spec:
  prompt_configs:
    - {{id: p, file: prompt.yaml}}
  provider_specs:
    planner: {{type: mock, model: m, additional_config: {{mock_config: mock.yaml}}}}
  scenario_specs:
    ask:
      task_type: t
      description: delegate the forecast
      turns:
        - role: user
          content: weather in Oslo?
          assertions:
            - type: agent_invoked
              params: {{agents: [a2a__weather_bureau__forecast]}}
            - type: agent_response_contains
              params: {{agent: a2a__weather_bureau__forecast, contains: "Oslo: snow"}}
            - type: agent_response_contains
              params: {{agent: a2a__weather_bureau__forecast, contains: "Oslo: sun"}}
  a2a_agents:
    - name: weather
      url: {url}
      auth: {{token_env: WEATHER_TOKEN}}
  defaults: {{}}
"""
PROMPT = """apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: PromptConfig
metadata: {name: p}
spec:
  task_type: t
  system_template: Delegate forecasts.
  allowed_tools: [a2a__weather_bureau__forecast]
"""
MOCK = """scenarios:
  ask:
    turns:
      1:
        tool_calls:
          - name: a2a__weather_bureau__forecast
            arguments: {query: "Oslo tomorrow"}
      2: "Snow in Oslo."
"""


def _forecast(params: dict[str, Any]) -> dict[str, Any]:
    assert params["message"]["metadata"] == {"skillId": "forecast"}
    return completed(f"{query_of(params).split()[0]}: snow")


def test_a_remote_agent_answers_the_models_call(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("WEATHER_TOKEN", "t0ken")
    bundle, out = tmp_path / "bundle", tmp_path / "out"
    bundle.mkdir()
    with a2a_agent(CARD, _forecast) as agent:
        (bundle / "config.arena.yaml").write_text(ARENA.format(url=agent.url))
        (bundle / "prompt.yaml").write_text(PROMPT)
        (bundle / "mock.yaml").write_text(MOCK)
        code = cli.main(["run", str(bundle), "--out", str(out), "--formats", "json", "-q", "--ci"])
    run = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    results = [r for m in run["Messages"] for r in (m.get("meta") or {}).get("assertions", {}).get("results", [])]
    assert [(r["type"], r["passed"]) for r in results] == [
        ("agent_invoked", True), ("agent_response_contains", True), ("agent_response_contains", False)]
    assert code == 1 and run["Status"] == "failed"  # the third assertion asks for what the agent did not say
    tool = next(m for m in run["Messages"] if m["role"] == "tool")
    assert tool["tool_result"]["content"] == '{"response": "Oslo: snow"}'
    assert [(s.method, s.path) for s in agent.seen] == [("GET", "/.well-known/agent.json"), ("POST", "/a2a")]
    assert agent.seen[1].headers["Authorization"] == "Bearer t0ken"
