"""A2A agents as tools (engine/a2a.py): the mock agents' rules, reading replies, tool names, load-time checks,
and a remote agent over real HTTP on loopback (discovery, message/send, headers, retries, bounds, egress)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from arena_operator.engine import a2a, egress
from arena_operator.engine.a2a import A2aAgents, A2aDiscoveryError, AgentSpec, mock_reply, response_text, tool_name
from arena_operator.engine.bundle import load_bundle
from arena_operator.engine.errors import BundleInvalid, ToolError
from tests.fakes.a2a_server import RpcError, a2a_agent, completed, query_of

CARD = {"name": "Research Agent", "description": "papers",
        "skills": [{"id": "search_papers", "name": "Search"}, {"id": "summarise", "name": "Summarise"}]}

RULES = AgentSpec.model_validate({
    "name": "research", "card": CARD,
    "responses": [
        {"skill": "search_papers", "match": {"contains": "QUANTUM"}, "response": {"parts": [{"text": "3 papers"}]}},
        {"skill": "search_papers", "match": {"contains": "x", "regex": "y$"}, "response": {"parts": [{"text": "xy"}]}},
        {"skill": "search_papers", "match": {"regex": "^fail"}, "error": "index offline"},  # matches all
        {"skill": "summarise", "response": {"parts": [{"text": "short"}, {"text": "version"}]}},
        {"skill": "search_papers", "response": None},  # neither response nor error: never answers
    ]})


def _params(skill: str, text: str) -> dict[str, Any]:
    return {"message": {"role": "user", "parts": [{"text": text}], "metadata": {"skillId": skill}}}


@pytest.mark.parametrize(("skill", "text", "want"), [
    ("search_papers", "papers on quantum computing", "3 papers"),  # contains is case-insensitive
    ("search_papers", "fail now", "index offline"),  # an error rule: a failed task answering its status text
    ("search_papers", "x then y", "xy"),  # contains and regex must both hold
    ("search_papers", "x then z", "index offline"),  # … else the error rule (as upstream, it ignores `match`)
    ("summarise", "anything", "short\nversion"),  # artifact parts joined by newlines
    ("translate", "quantum", None),  # a skill no rule names
])
def test_mock_rules_answer_as_upstreams_mock_server(skill: str, text: str, want: str | None) -> None:
    reply = mock_reply(RULES, _params(skill, text))
    if want is None:
        assert reply == {"error": {"code": -32000, "message": "no matching rule"}}
    else:
        assert response_text(reply["result"]) == want


@pytest.mark.parametrize(("result", "want"), [
    ({"status": {"state": "completed", "message": {"parts": [{"text": "first"}, {"text": "second"}]}},
      "artifacts": [{"parts": [{"text": "artifact"}]}]}, "first"),  # the status message's first text part wins
    ({"status": {"state": "completed"}, "artifacts": [{"parts": [{"text": "a"}]}, {"parts": [{"text": "b"}]}]},
     "a\nb"),
    ({"kind": "message", "role": "agent", "parts": [{"kind": "text", "text": "direct "}, {"text": "reply"}]},
     "direct reply"),
    ({"status": {"state": "completed"}, "artifacts": [{"parts": [{"data": {"x": 1}}]}]}, ""),
])
def test_response_text(result: dict[str, Any], want: str) -> None:
    assert response_text(result) == want


@pytest.mark.parametrize(("card", "skill", "want"), [
    ("Research Agent", "search_papers", "a2a__research_agent__search_papers"),
    ("Flight-Desk!!", "find-flights", "a2a__flight_desk__find_flights"),
    ("  ÜBER agent ", "v2.Search", "a2a__ber_agent__v2_search"),
])
def test_tool_names_follow_upstreams_bridge(card: str, skill: str, want: str) -> None:
    assert tool_name(card, skill) == want


ARENA = """apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Arena
metadata: {{name: a2a}}
spec:
  provider_specs:
    m: {{type: mock, model: m}}
  scenario_specs:
    s: {{description: d, turns: [{{role: user, content: hi}}]}}
  a2a_agents:
{agents}
  defaults: {{}}
"""


@pytest.mark.parametrize(("agents", "line", "field", "message"), [
    ("    - card: {name: A}\n", 10, "a2a_agents[0].name", "required"),
    ("    - name: a\n      url: ftp://agent.example\n", 11, "a2a_agents[0].url", "must be http(s)"),
    ("    - name: a\n      headers_from_env: [X-Key]\n", 11, "a2a_agents[0].headers_from_env", "Header-Name=ENV_VAR"),
    ("    - name: a\n      responses:\n        - match: {regex: '(unclosed'}\n", 12,
     "a2a_agents[0].responses[0].match.regex", "not a valid regular expression"),
    ("    - name: a\n      timeout_ms: -5\n", 11, "a2a_agents[0].timeout_ms", "greater than or equal to 0"),
])
def test_bad_agents_are_load_errors_at_their_line(tmp_path: Path, agents: str, line: int, field: str,
                                                  message: str) -> None:
    (tmp_path / "config.arena.yaml").write_text(ARENA.format(agents=agents.rstrip("\n")))
    with pytest.raises(BundleInvalid) as caught:
        load_bundle(tmp_path)
    problems = [p for p in caught.value.problems if "a2a_agents" in p.field]
    assert problems, caught.value.problems
    assert (problems[0].file, problems[0].line, problems[0].field) == ("config.arena.yaml", line, field)
    assert message in problems[0].message


def test_valid_agents_load(tmp_path: Path) -> None:
    agents = "    - name: r\n      card: {name: R, skills: [{id: s}]}\n    - name: remote\n      url: http://x.example"
    (tmp_path / "config.arena.yaml").write_text(ARENA.format(agents=agents))
    bundle = load_bundle(tmp_path)
    assert [a.name for a in a2a.declared_agents(bundle.arena)] == ["r", "remote"]


def _echo(params: dict[str, Any]) -> dict[str, Any]:
    query = query_of(params)
    if query == "explode":
        raise RpcError(-32603, "agent crashed")
    if query == "big":
        return completed("x" * (a2a.MAX_BODY_BYTES + 10))
    return completed(f"{params['message']['metadata']['skillId']}: {query}")


def _remote(url: str, **extra: Any) -> A2aAgents:
    return A2aAgents([AgentSpec.model_validate({"name": "remote", "url": url, **extra})])


async def test_remote_agent_discovered_and_called_over_message_send(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A2A_TOKEN", "s3cret")
    monkeypatch.setenv("TENANT", "blue")
    with a2a_agent(CARD, _echo) as agent:
        agents = _remote(agent.url, auth={"token_env": "A2A_TOKEN"}, headers={"X-Static": "1"},
                         headers_from_env=["X-Tenant=TENANT"], skill_filter={"blocklist": ["summarise"]})
        tools = await agents.ensure()
        assert list(tools) == ["a2a__research_agent__search_papers"]
        assert tools["a2a__research_agent__search_papers"].input_schema["required"] == ["query"]
        answer = await agents.call("a2a__research_agent__search_papers", {"query": "quantum"})
        await agents.aclose()
    assert answer == '{"response": "search_papers: quantum"}'
    card, send = agent.seen
    assert (card.method, card.path, send.method, send.path) == ("GET", "/.well-known/agent.json", "POST", "/a2a")
    assert send.body["method"] == "message/send" and send.body["jsonrpc"] == "2.0"
    assert send.body["params"]["message"]["role"] == "user"
    for seen in (card, send):
        assert seen.headers["Authorization"] == "Bearer s3cret"
        assert (seen.headers["X-Static"], seen.headers["X-Tenant"]) == ("1", "blue")


@pytest.mark.parametrize(("statuses", "query", "want", "posts"), [
    ([503, 429], "hello", '{"response": "search_papers: hello"}', 3),  # retried, then answered
    ([503, 503, 503], "hello", "HTTP 503", 3),  # the retries run out
    ([400], "hello", "HTTP 400", 1),  # a client error is not retried
    ([], "explode", "agent crashed", 1),  # a JSON-RPC error is a tool error
    ([], "big", "larger than", 1),  # a reply past the bound is refused
])
async def test_remote_call_failures(statuses: list[int], query: str, want: str, posts: int,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(a2a, "RETRY_DELAYS_S", (0.01, 0.01))
    with a2a_agent(CARD, _echo) as agent:
        agents = _remote(agent.url)
        await agents.ensure()
        agent.statuses.extend(statuses)
        try:
            answer = await agents.call("a2a__research_agent__search_papers", {"query": query})
        except ToolError as exc:
            answer = str(exc)
        await agents.aclose()
    assert want in answer
    assert sum(1 for s in agent.seen if s.method == "POST") == posts


async def test_an_agent_that_cannot_be_reached_is_retried_then_a_tool_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(a2a, "RETRY_DELAYS_S", (0.2, 0.2))
    with a2a_agent(CARD, _echo) as agent:
        agents = _remote(agent.url)
        await agents.ensure()
    started = time.monotonic()  # the server is gone: its port refuses connections
    with pytest.raises(ToolError, match=r"cannot connect to http://127\.0\.0\.1:\d+/a2a"):
        await agents.call("a2a__research_agent__search_papers", {"query": "q"})
    assert time.monotonic() - started >= 0.4  # both retries waited for
    await agents.aclose()


async def test_a_card_that_cannot_be_read_fails_discovery_once() -> None:
    with a2a_agent(CARD, _echo) as agent:
        agent.card_status = 500
        agents = _remote(agent.url)
        for _ in range(2):
            with pytest.raises(A2aDiscoveryError, match=r"cannot read its card at http://127\.0\.0\.1:\d+/\.well"):
                await agents.ensure()
        await agents.aclose()
    assert len(agent.seen) == 1  # remembered: later runs fail without asking again


async def test_remote_agents_obey_the_egress_policy() -> None:
    egress.confine_process(egress.EgressPolicy.cluster({}))
    try:
        with a2a_agent(CARD, _echo) as agent:
            agents = _remote(agent.url)
            with pytest.raises(A2aDiscoveryError, match=r"egress to 127\.0\.0\.1 refused: .*loopback"):
                await agents.ensure()
            await agents.aclose()
    finally:
        egress.confine_process(None)
    assert agent.seen == []


async def test_a_timeout_is_a_tool_error() -> None:
    def slow(params: dict[str, Any]) -> dict[str, Any]:
        time.sleep(1.0)
        return completed("late")

    with a2a_agent(CARD, slow) as agent:
        agents = _remote(agent.url, timeout_ms=200)
        await agents.ensure()
        with pytest.raises(ToolError, match=r"timed out after 0\.2s"):
            await agents.call("a2a__research_agent__search_papers", {"query": "q"})
        await agents.aclose()


async def test_a_reply_that_never_ends_is_cut_at_the_timeout() -> None:
    with a2a_agent(CARD, _echo) as agent:
        agents = _remote(agent.url, timeout_ms=500)
        await agents.ensure()
        agent.drip_bytes = 100  # 10 s of bytes, each well within httpx's per-read timeout
        started = time.monotonic()
        with pytest.raises(ToolError, match=r"timed out after 0\.5s"):
            await agents.call("a2a__research_agent__search_papers", {"query": "q"})
        assert time.monotonic() - started < 2
        await agents.aclose()


async def test_in_process_agents_need_no_network_even_in_the_cluster() -> None:
    egress.confine_process(egress.EgressPolicy.cluster({}))
    try:
        agents = A2aAgents([RULES])
        assert set(await agents.ensure()) == {"a2a__research_agent__search_papers", "a2a__research_agent__summarise"}
        answer = await agents.call("a2a__research_agent__search_papers", {"query": "quantum"})
    finally:
        egress.confine_process(None)
    assert answer == '{"response": "3 papers"}'
