"""A2A agents declared in the arena config (`a2a_agents`), as tools for the model — upstream's tool bridge.

Every skill of an agent's card becomes a tool ``a2a__<card name>__<skill id>`` (both lowercased, other characters
runs replaced by ``_``) taking ``{"query": string}``; a call sends the query as an A2A JSON-RPC ``message/send``
(the skill id in the message metadata) and the tool's result is ``{"response": <text>}`` — the status message's
first text part, else the artifacts' text parts joined by newlines. A task in state ``failed`` answers its status
text like any other, as upstream; a JSON-RPC error is a tool error.

An agent with a ``url`` is a remote A2A server: its card is read from ``<url>/.well-known/agent.json`` the first
time a run's prompt offers an ``a2a__`` tool (not at load time), its calls go to ``<url>/a2a``, through the egress
policy, each bounded in time and size. An agent without one is answered in process from its ``card`` and
``responses`` rules exactly as upstream's mock A2A server answers (no socket: it works in the cluster too).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from typing import Any

import httpx
from pydantic import Field, field_validator

from .egress import EgressRefused, async_client
from .envexpand import current_env
from .errors import ToolError
from .goregex import compile_go
from .manifests import Collector, validate_model
from .spec import ArenaSpec, Model, ToolSpec

PREFIX = "a2a__"
CARD_PATH = "/.well-known/agent.json"
RPC_PATH = "/a2a"
CALL_TIMEOUT_MS = 30_000
DISCOVER_TIMEOUT_S = 10.0
MAX_BODY_BYTES = 1_000_000  # an agent card or a reply larger than this is refused
MAX_RESPONSE_CHARS = 64_000  # the text a tool result carries
RETRY_STATUSES = frozenset({429, 502, 503, 504})
RETRY_DELAYS_S = (0.5, 1.0)
DISCOVER_KIND = "a2a_discover"
NO_MATCH = (-32000, "no matching rule")
_IDS = itertools.count(1)


class A2aDiscoveryError(Exception):
    """A remote agent whose card could not be read: fails the runs whose prompt offers A2A tools."""

    kind = DISCOVER_KIND


class _Unreachable(ToolError):
    """The agent could not be connected to: retried, as upstream retries transient network errors."""


class _Part(Model):
    text: str = ""


class _Response(Model):
    parts: list[_Part] = Field(default_factory=list)


class _Match(Model):
    contains: str = ""
    regex: str = ""

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        if value:
            try:
                compile_go(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class _Rule(Model):
    skill: str = ""
    match: _Match | None = None
    response: _Response | None = None
    error: str = ""


class _Skill(Model):
    id: str
    name: str = ""
    description: str = ""
    tags: list[str] = Field(default_factory=list)


class _Card(Model):
    name: str = ""
    description: str = ""
    skills: list[_Skill] = Field(default_factory=list)


class _Auth(Model):
    scheme: str = "Bearer"
    token: str = ""
    token_env: str = ""


class _SkillFilter(Model):
    allowlist: list[str] = Field(default_factory=list)
    blocklist: list[str] = Field(default_factory=list)

    def includes(self, skill: str) -> bool:
        return skill in self.allowlist if self.allowlist else skill not in self.blocklist


class AgentSpec(Model):
    """One `a2a_agents` entry, with upstream's keys."""

    name: str = Field(min_length=1)
    card: _Card = Field(default_factory=_Card)
    responses: list[_Rule] = Field(default_factory=list)
    url: str = ""
    auth: _Auth | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    headers_from_env: list[str] = Field(default_factory=list)
    timeout_ms: int = Field(default=0, ge=0)
    skill_filter: _SkillFilter = Field(default_factory=_SkillFilter)

    @field_validator("headers_from_env")
    @classmethod
    def _header_pairs(cls, value: list[str]) -> list[str]:
        for item in value:
            if "=" not in item:
                raise ValueError(f"{item!r}: expected Header-Name=ENV_VAR")
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r}: an A2A agent url must be http(s)")
        return value


class _Agents(Model):
    a2a_agents: list[AgentSpec] = Field(default_factory=list)


def declared_agents(arena: ArenaSpec) -> list[AgentSpec]:
    """The arena's agents (validated at load time by `check_agents`; an invalid list here is none)."""
    raw = (arena.model_extra or {}).get("a2a_agents")
    try:
        return _Agents.model_validate({"a2a_agents": raw or []}).a2a_agents
    except ValueError:
        return []


def check_agents(arena: ArenaSpec, file: str, doc: Any, out: Collector) -> None:
    """Load-time check of `spec.a2a_agents`, each problem at its file:line."""
    raw = (arena.model_extra or {}).get("a2a_agents")
    if raw is not None:
        validate_model(_Agents, {"a2a_agents": raw}, file, doc, ["spec"], out)


def sanitize(name: str) -> str:
    """As upstream: lowercase, runs of other characters → `_`, trimmed."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def tool_name(card_name: str, skill_id: str) -> str:
    return f"{PREFIX}{sanitize(card_name)}__{sanitize(skill_id)}"


def _text(message: dict[str, Any]) -> str:
    parts = message.get("parts") or []
    return "".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))


def mock_reply(agent: AgentSpec, params: dict[str, Any]) -> dict[str, Any]:
    """What upstream's mock A2A server answers to `message/send` with these params: a JSON-RPC result or error."""
    message = params.get("message") if isinstance(params.get("message"), dict) else {}
    metadata = message.get("metadata") if isinstance(message.get("metadata"), dict) else {}
    skill, text = str(metadata.get("skillId") or ""), _text(message)
    for number, rule in enumerate(agent.responses, 1):
        if (rule.skill and rule.skill != skill) or (not rule.error and rule.response is None):
            continue
        if rule.match and not rule.error and not _matches(rule.match, text):
            continue
        task: dict[str, Any] = {"id": f"mock-task-{number}", "contextId": "mock-ctx", "kind": "task"}
        if rule.error:
            task["status"] = {"state": "failed", "message": {"role": "agent", "parts": [{"text": rule.error}]}}
        else:
            assert rule.response is not None
            task["status"] = {"state": "completed"}
            task["artifacts"] = [{"artifactId": "artifact-1", "parts": [{"text": p.text} for p in rule.response.parts]}]
        return {"result": task}
    return {"error": {"code": NO_MATCH[0], "message": NO_MATCH[1]}}


def _matches(match: _Match, text: str) -> bool:
    if match.contains and match.contains.lower() not in text.lower():
        return False
    return not match.regex or compile_go(match.regex).search(text) is not None


def response_text(result: dict[str, Any]) -> str:
    """Upstream's ExtractResponseText: the status message's first text part, else every artifact text part."""
    if result.get("kind") == "message" or "parts" in result:
        return _text(result)
    status = result.get("status") if isinstance(result.get("status"), dict) else {}
    message = status.get("message") if isinstance(status.get("message"), dict) else {}
    for part in message.get("parts") or []:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            return part["text"]
    texts = [p["text"] for a in result.get("artifacts") or [] if isinstance(a, dict)
             for p in a.get("parts") or [] if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return "\n".join(texts)


class A2aAgents:
    """The bundle's agents: their tools once discovered, and the calls routed to them."""

    def __init__(self, agents: list[AgentSpec]) -> None:
        self.agents = agents
        self._routes: dict[str, tuple[AgentSpec, str]] = {}
        self._tools: dict[str, ToolSpec] | None = None
        self._failure: A2aDiscoveryError | None = None
        self._lock = asyncio.Lock()
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def of(cls, arena: ArenaSpec) -> A2aAgents | None:
        agents = declared_agents(arena)
        return cls(agents) if agents else None

    @staticmethod
    def needed(names: list[str]) -> bool:
        return any(n.startswith(PREFIX) for n in names)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def ensure(self) -> dict[str, ToolSpec]:
        """Every agent's tools, discovering remote cards once; raises A2aDiscoveryError (remembered)."""
        async with self._lock:
            if self._failure is not None:
                raise self._failure
            if self._tools is None:
                try:
                    self._tools = {}
                    for agent in self.agents:
                        card = await self._discover(agent) if agent.url else agent.card
                        self._add(agent, card)
                except A2aDiscoveryError as exc:
                    self._tools, self._failure = None, exc
                    raise
            return dict(self._tools)

    def _add(self, agent: AgentSpec, card: _Card) -> None:
        assert self._tools is not None
        for skill in card.skills:
            if not agent.skill_filter.includes(skill.id):
                continue
            name = tool_name(card.name or agent.name, skill.id)
            self._routes[name] = (agent, skill.id)
            self._tools[name] = ToolSpec(
                name=name, description=skill.description or skill.name, mode="a2a",
                input_schema={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]})

    async def _discover(self, agent: AgentSpec) -> _Card:
        try:
            response = await self._request(agent, "GET", CARD_PATH, None, DISCOVER_TIMEOUT_S)
            if response.status_code != 200:
                raise ToolError(f"HTTP {response.status_code}")
            return _Card.model_validate(_json(response))
        except (ToolError, ValueError) as exc:
            raise A2aDiscoveryError(f"A2A agent {agent.name!r}: cannot read its card at "
                                    f"{agent.url.rstrip('/')}{CARD_PATH}: {exc}") from None

    async def call(self, name: str, args: dict[str, Any]) -> str:
        """The tool's result text; ToolError when the agent cannot answer."""
        route = self._routes.get(name)
        if route is None:
            raise ToolError(f"unknown A2A tool {name!r}")
        agent, skill = route
        params = {"message": {"messageId": f"arena-{next(_IDS)}", "role": "user", "kind": "message",
                              "parts": [{"kind": "text", "text": str(args.get("query", ""))}],
                              "metadata": {"skillId": skill}},
                  "configuration": {"blocking": True}}
        reply = await self._send(agent, params) if agent.url else mock_reply(agent, params)
        if isinstance(reply.get("error"), dict):
            raise ToolError(f"A2A agent {agent.name!r}: {reply['error'].get('message', 'error')}")
        result = reply.get("result")
        if not isinstance(result, dict):
            raise ToolError(f"A2A agent {agent.name!r}: reply has no result")
        return json.dumps({"response": response_text(result)[:MAX_RESPONSE_CHARS]}, ensure_ascii=False)

    async def _send(self, agent: AgentSpec, params: dict[str, Any]) -> dict[str, Any]:
        body = {"jsonrpc": "2.0", "id": next(_IDS), "method": "message/send", "params": params}
        timeout = (agent.timeout_ms or CALL_TIMEOUT_MS) / 1000
        for delay in (*RETRY_DELAYS_S, None):
            try:
                response = await self._request(agent, "POST", RPC_PATH, body, timeout)
            except _Unreachable:
                if delay is None:
                    raise
                await asyncio.sleep(delay)
                continue
            if response.status_code in RETRY_STATUSES and delay is not None:
                await asyncio.sleep(delay)
                continue
            if response.status_code != 200:
                raise ToolError(f"A2A agent {agent.name!r}: HTTP {response.status_code}")
            try:
                reply = _json(response)
            except ValueError as exc:
                raise ToolError(f"A2A agent {agent.name!r}: {exc}") from None
            if not isinstance(reply, dict):
                raise ToolError(f"A2A agent {agent.name!r}: reply is not a JSON-RPC object")
            return reply
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _request(self, agent: AgentSpec, method: str, path: str, body: Any, timeout: float) -> httpx.Response:
        """One request, its whole exchange (connect, headers, body) within `timeout` and its body within
        MAX_BODY_BYTES."""
        if self._client is None:
            self._client = async_client()
        url = agent.url.rstrip("/") + path
        try:
            async with asyncio.timeout(timeout):
                return await self._exchange(agent, method, url, body, timeout)
        except EgressRefused as exc:
            raise ToolError(f"A2A agent {agent.name!r}: {exc}") from None
        except (TimeoutError, httpx.TimeoutException):
            raise ToolError(f"A2A agent {agent.name!r}: timed out after {timeout:g}s") from None
        except httpx.ConnectError as exc:
            raise _Unreachable(f"A2A agent {agent.name!r}: cannot connect to {url} ({exc or type(exc).__name__})"
                               ) from None
        except httpx.TransportError as exc:
            raise ToolError(f"A2A agent {agent.name!r}: connection to {url} failed ({type(exc).__name__})") from None

    async def _exchange(self, agent: AgentSpec, method: str, url: str, body: Any, timeout: float) -> httpx.Response:
        assert self._client is not None
        request = self._client.build_request(method, url, json=body, headers=_headers(agent), timeout=timeout)
        response = await self._client.send(request, stream=True)
        try:
            data = b""
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > MAX_BODY_BYTES:
                    raise ToolError(f"A2A agent {agent.name!r}: reply larger than {MAX_BODY_BYTES} bytes")
        finally:
            await response.aclose()
        return httpx.Response(response.status_code, headers=response.headers, content=data)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ValueError("reply is not JSON") from None


def _headers(agent: AgentSpec) -> dict[str, str]:
    """Static headers, `headers_from_env` and the auth token, read through the process's variable policy."""
    env = current_env()
    headers = dict(agent.headers)
    for item in agent.headers_from_env:
        header, _, variable = item.partition("=")
        if env.readable(variable) and (value := env.get(variable)):
            headers[header] = value
    if agent.auth is not None:
        token = agent.auth.token
        if agent.auth.token_env and env.readable(agent.auth.token_env):
            token = env.get(agent.auth.token_env) or token
        if token:
            headers["Authorization"] = f"{agent.auth.scheme or 'Bearer'} {token}"
    return headers
