"""Evals answered by something outside the conversation: a REST endpoint, an A2A agent, or a tool of the bundle.

REST and A2A evals send `{current_output, messages, tool_calls?, criteria, variables, extra}` and read a
`{"passed", "score", "reasoning"}` reply (first `{` to last `}`); `tool_exec` runs a tool and passes when it
succeeds (and its output matches `success_pattern` / does not match `failure_pattern`).
"""

from __future__ import annotations

import json
import re
from itertools import count
from typing import Any

import httpx

from ..durations import parse_duration
from ..egress import EgressRefused, async_client
from ..envexpand import current_env
from ..goregex import compile_go
from .base import EvalContext, Score, flag, integer, mapping, scored, text
from .tools import result_text

_ENV = re.compile(r"\$\{([^}]+)\}")
_RPC_IDS = count(1)


def expand_env(value: str) -> str:
    """`${NAME}` in a header or token from what a bundle may read here (in the cluster: the job owner's grant, not
    the worker's environment — else a bundle could send any secret of the pod to the URL it names); unset: ''."""
    env = current_env()
    return _ENV.sub(lambda m: env.get(m.group(1)) or "", value)


def request_body(params: dict[str, Any], ctx: EvalContext, content: str) -> dict[str, Any]:
    body: dict[str, Any] = {"current_output": content}
    if text(params, "criteria"):
        body["criteria"] = text(params, "criteria")
    if mapping(params, "extra"):
        body["extra"] = mapping(params, "extra")
    if params.get("include_messages", True) is not False:
        body["messages"] = [{"role": m.role, "content": m.content} for m in ctx.messages]
    if flag(params, "include_tool_calls"):
        body["tool_calls"] = [{"Name": c.name, "Args": c.args, "Result": result_text(c.result), "Error": c.error,
                               "Index": c.index} for c in ctx.tool_calls]
    return body


def parse_reply(raw: str) -> Score:
    start, end = raw.find("{"), raw.rfind("}")
    candidate = raw[start : end + 1] if 0 <= start <= end else raw
    try:
        data = json.loads(candidate)
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise ValueError("not an object")
        fields = {k.lower(): v for k, v in data.items()}
        score = fields.get("score") or 0.0
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise ValueError("score is not a number")
        reasoning = fields.get("reasoning") or ""
    except ValueError as exc:
        return scored(False, f"failed to parse response: {exc}")
    return Score(float(score), str(reasoning), {"score": float(score), "reasoning": reasoning})


def _timeout(params: dict[str, Any], default: float) -> float:
    try:
        return parse_duration(text(params, "timeout"), default)
    except ValueError:  # upstream ignores an unparseable timeout
        return default


def _session_content(ctx: EvalContext) -> str:
    return "\n".join(m.content for m in ctx.messages if m.role.lower() == "assistant")


async def _rest(params: dict[str, Any], ctx: EvalContext, content: str) -> Score:
    url = text(params, "url")
    if not url:
        return scored(False, "rest_eval requires a 'url' param")
    headers = {"Content-Type": "application/json"}
    headers.update({k: expand_env(v) for k, v in mapping(params, "headers").items() if isinstance(v, str)})
    try:
        async with async_client(timeout=_timeout(params, 30.0)) as client:
            response = await client.request(text(params, "method") or "POST", url, headers=headers,
                                            content=json.dumps(request_body(params, ctx, content)))
    except EgressRefused as exc:
        return scored(False, f"request failed: {exc}")
    except httpx.HTTPError as exc:
        return scored(False, f"request failed: {type(exc).__name__}: {exc}")
    if not 200 <= response.status_code < 300:
        return scored(False, f"endpoint returned status {response.status_code}: {response.text[:300]}")
    return parse_reply(response.text)


async def rest_eval(params: dict, ctx: EvalContext) -> Score:
    return await _rest(params, ctx, ctx.current_output)


async def rest_eval_session(params: dict, ctx: EvalContext) -> Score:
    return await _rest(params, ctx, _session_content(ctx))


def _a2a_text(task: dict[str, Any]) -> str:
    status = task.get("status") if isinstance(task.get("status"), dict) else {}
    candidates = [status.get("message"), *(task.get("artifacts") or [])]
    for holder in candidates:
        parts = holder.get("parts") if isinstance(holder, dict) else None
        texts = [p["text"] for p in parts or [] if isinstance(p, dict) and isinstance(p.get("text"), str)]
        if texts:
            return "\n".join(texts)
    return ""


async def _a2a(params: dict[str, Any], ctx: EvalContext, content: str) -> Score:
    agent = text(params, "agent_url")
    if not agent:
        return scored(False, "a2a_eval requires an 'agent_url' param")
    body = request_body(params, ctx, content)
    prompt = ("Evaluate the following content and answer with a JSON object: "
              '{"passed": <boolean>, "score": <number 0-1>, "reasoning": "<string>"}.\n\n')
    if body.get("criteria"):
        prompt += f"Criteria: {body['criteria']}\n\n"
    prompt += "Context:\n" + json.dumps(body)
    headers = {"Content-Type": "application/json"}
    if token := expand_env(text(params, "auth_token")):
        headers["Authorization"] = f"Bearer {token}"
    rpc = {"jsonrpc": "2.0", "id": next(_RPC_IDS), "method": "message/send",
           "params": {"message": {"messageId": f"eval-{next(_RPC_IDS)}", "role": "user", "parts": [{"text": prompt}]},
                      "configuration": {"blocking": True}}}
    try:
        async with async_client(timeout=_timeout(params, 60.0)) as client:
            response = await client.post(agent.rstrip("/") + "/a2a", json=rpc, headers=headers)
        reply = response.json() if response.status_code == 200 else None
    except EgressRefused as exc:
        return scored(False, f"a2a agent error: {exc}")
    except (httpx.HTTPError, ValueError) as exc:
        return scored(False, f"a2a agent error: {type(exc).__name__}: {exc}")
    if not isinstance(reply, dict):
        return scored(False, f"a2a agent error: HTTP {response.status_code}")
    if isinstance(reply.get("error"), dict):
        return scored(False, f"a2a agent error: {reply['error'].get('message', reply['error'])}")
    answer = _a2a_text(reply.get("result") if isinstance(reply.get("result"), dict) else {})
    if not answer:
        return scored(False, "a2a agent returned no text response")
    return parse_reply(answer)


async def a2a_eval(params: dict, ctx: EvalContext) -> Score:
    return await _a2a(params, ctx, ctx.current_output)


async def a2a_eval_session(params: dict, ctx: EvalContext) -> Score:
    return await _a2a(params, ctx, _session_content(ctx))


async def tool_exec(params: dict, ctx: EvalContext) -> Score:
    tool = text(params, "tool")
    if not tool:
        return scored(False, "tool_exec: 'tool' parameter is required")
    if ctx.services.run_tool is None:
        return scored(False, "tool_exec: no tool registry available")
    args = params.get("args") if isinstance(params.get("args"), dict) else {}
    seconds = integer(params, "timeout_seconds", 0) or 0
    result = await ctx.services.run_tool(tool, args, float(seconds or 120))
    if result.error:
        return scored(False, f"tool_exec: {tool!r} reported error: {result.error}")
    output = result.content
    try:
        decoded = json.loads(output)
        output = decoded if isinstance(decoded, str) else output
    except ValueError:
        pass
    for key, must_match in (("success_pattern", True), ("failure_pattern", False)):
        pattern = text(params, key)
        if not pattern:
            continue
        try:
            matched = compile_go(pattern).search(output) is not None
        except re.error as exc:
            return scored(False, f"tool_exec: {key} {pattern!r} is not a valid regex: {exc}")
        if matched != must_match:
            verb = "did not match" if must_match else "matched"
            return scored(False, f"tool_exec: {tool!r} output {verb} {key} {pattern!r}")
    return scored(True, f"tool_exec: {tool!r} succeeded")
