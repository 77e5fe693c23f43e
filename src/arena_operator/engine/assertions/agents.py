"""Agent and skill evals, read from tool calls: an A2A agent is a tool named after it, a skill activation is a
`skill__activate` call with the skill's `name`."""

from __future__ import annotations

from .base import EvalContext, Score, integer, ratio, scored, str_list, text
from .tools import result_text, subsequence

SKILL_TOOL = "skill__activate"


def agent_invoked(params: dict, ctx: EvalContext) -> Score:
    agents = str_list(params, "agents")
    if not agents:
        return scored(False, "no agents specified")
    called = {c.name for c in ctx.tool_calls}
    missing = [a for a in agents if a not in called]
    score = ratio(len(agents) - len(missing), len(agents))
    if missing:
        return Score(score, f"missing agents: {', '.join(missing)}")
    return Score(score, "all expected agents were invoked")


def agent_not_invoked(params: dict, ctx: EvalContext) -> Score:
    agents = set(str_list(params, "agents"))
    if not agents:
        return scored(True, "no agents specified to exclude")
    called = [c.name for c in ctx.tool_calls if c.name in agents]
    if called:
        return scored(False, f"forbidden agents called: {', '.join(called)}")
    return scored(True, "no forbidden agents were invoked")


def agent_response_contains(params: dict, ctx: EvalContext) -> Score:
    """Case-sensitive, as upstream: some response of `agent` contains the `contains` text."""
    agent, wanted = text(params, "agent"), text(params, "contains")
    if not agent:
        return scored(False, "no agent specified")
    responses = [result_text(c.result) for c in ctx.tool_calls if c.name == agent]
    responses += [m.tool_result.content for m in ctx.messages
                  if m.role == "tool" and m.tool_result is not None and m.tool_result.name == agent]
    if any(wanted in r for r in responses):
        return scored(True, f"agent {agent!r} response contains expected text")
    return scored(False, f"no response from agent {agent!r} containing {wanted!r}")


def _activations(ctx: EvalContext, successful_only: bool) -> list[str]:
    return [c.args["name"] for c in ctx.tool_calls if c.name == SKILL_TOOL and not (successful_only and c.error)
            and isinstance(c.args.get("name"), str) and c.args["name"]]


def skill_activated(params: dict, ctx: EvalContext) -> Score:
    required, low = str_list(params, "skill_names"), integer(params, "min_calls", 1) or 0
    activated = _activations(ctx, successful_only=True)
    missing = [n for n in required if activated.count(n) < low]
    score = ratio(len(required) - len(missing), len(required))
    if missing:
        return Score(score, f"missing skill activations: {', '.join(missing)}", {"activated": activated})
    return Score(score, "all required skills were activated", {"activated": activated})


def skill_not_activated(params: dict, ctx: EvalContext) -> Score:
    forbidden = set(str_list(params, "skill_names"))
    hits = [n for n in _activations(ctx, successful_only=True) if n in forbidden]
    if hits:
        return scored(False, f"forbidden skills activated: {', '.join(hits)}")
    return scored(True, "no forbidden skills were activated")


def skill_activation_order(params: dict, ctx: EvalContext) -> Score:
    sequence = str_list(params, "sequence")
    if not sequence:
        return scored(False, "sequence param is required and must be non-empty")
    activated = _activations(ctx, successful_only=False)
    if not activated:
        return scored(False, "no skill activations found")
    matched = subsequence(activated, sequence)
    if matched < len(sequence):
        return Score(ratio(matched, len(sequence)),
                     f"sequence incomplete: matched {matched}/{len(sequence)}, missing {sequence[matched]!r}")
    return scored(True, f"skill activation sequence [{' → '.join(sequence)}] fully matched")
