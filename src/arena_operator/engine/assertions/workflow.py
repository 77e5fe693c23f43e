"""Workflow, composition and behavioral evals. They read the workflow state and composition records the
conversation machinery leaves on messages and in the eval metadata; without that machinery (a scenario that is
not a workflow) they score as upstream does when the state is absent."""

from __future__ import annotations

from typing import Any

from .base import EvalContext, Score, go_str, number, ratio, scored, str_list, text
from .tools import subsequence

WORKFLOW_KEYS = ("workflow_state", "workflow_current_state", "workflow_transitions", "workflow_complete")


def workflow_extras(ctx: EvalContext) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    for message in ctx.messages:
        for key in WORKFLOW_KEYS:
            if f"_{key}" in (message.meta or {}):
                extras[key] = message.meta[f"_{key}"]
    extras.update({k: ctx.metadata[k] for k in WORKFLOW_KEYS[1:] if k in ctx.metadata})
    return extras


def _transitions(ctx: EvalContext) -> list[dict[str, Any]] | Score:
    raw = workflow_extras(ctx).get("workflow_transitions")
    if raw is None:
        return scored(False, "no workflow transitions available in context")
    if not isinstance(raw, list):
        return scored(False, "invalid transitions data in context")
    return [t for t in raw if isinstance(t, dict)]


def state_is(params: dict, ctx: EvalContext) -> Score:
    expected = text(params, "state")
    if not expected:
        return scored(False, "missing required param 'state'")
    actual = workflow_extras(ctx).get("workflow_current_state")
    if not isinstance(actual, str):
        return scored(False, "no workflow state available in context")
    if actual == expected:
        return scored(True, f"workflow is in expected state {expected!r}")
    return scored(False, f"expected state {expected!r} but got {actual!r}")


def transitioned_to(params: dict, ctx: EvalContext) -> Score:
    target = text(params, "state")
    if not target:
        return scored(False, "missing required param 'state'")
    transitions = _transitions(ctx)
    if isinstance(transitions, Score):
        return transitions
    if any(t.get("to") == target for t in transitions):
        return scored(True, f"workflow transitioned to {target!r}")
    return scored(False, f"no transition to state {target!r} found")


def workflow_complete(params: dict, ctx: EvalContext) -> Score:
    extras = workflow_extras(ctx)
    if "workflow_complete" not in extras:
        return scored(False, "no workflow completion status in context")
    if not isinstance(extras["workflow_complete"], bool):
        return scored(False, "invalid workflow completion status type")
    if extras["workflow_complete"]:
        return scored(True, f"workflow completed in terminal state {extras.get('workflow_current_state', '')!r}")
    return scored(False, "workflow has not reached a terminal state")


def workflow_transition_order(params: dict, ctx: EvalContext) -> Score:
    sequence = str_list(params, "sequence")
    if not sequence:
        return scored(False, "missing or empty required param 'sequence'")
    transitions = _transitions(ctx)
    if isinstance(transitions, Score):
        return transitions
    states = [t["to"] for t in transitions if isinstance(t.get("to"), str) and t["to"]]
    matched = subsequence(states, sequence)
    if matched < len(sequence):
        return Score(ratio(matched, len(sequence)),
                     f"sequence incomplete: matched {matched}/{len(sequence)}, missing {sequence[matched]!r}")
    return scored(True, f"sequence [{' → '.join(sequence)}] fully matched")


def _stamped_state(meta: dict[str, Any] | None) -> str:
    stamp = (meta or {}).get("current_workflow_state")
    state = stamp.get("current_state") if isinstance(stamp, dict) else None
    return state if isinstance(state, str) else ""


def spoke_in_state(params: dict, ctx: EvalContext) -> Score:
    expected = text(params, "state")
    if not expected:
        return scored(False, "missing required param 'state'")
    stamped = [(m, _stamped_state(m.meta)) for m in ctx.assistant_messages if _stamped_state(m.meta)]
    if any(state == expected and m.content.strip() for m, state in stamped):
        return scored(True, f"state {expected!r} produced assistant output")
    if not stamped:
        return scored(False, "no assistant message carries a workflow state (the run is not a workflow run)")
    return scored(False, f"no assistant message with text was produced in state {expected!r}")


def workflow_tool_access(params: dict, ctx: EvalContext) -> Score:
    raw = params.get("rules")
    rules = {r["state"]: set(str_list(r, "allowed")) for r in (raw if isinstance(raw, list) else [])
             if isinstance(r, dict) and isinstance(r.get("state"), str) and r["state"]}
    if not rules:
        return scored(True, "no access rules specified")
    extras = workflow_extras(ctx)
    transitions = extras.get("workflow_transitions")
    # As upstream: without per-turn indexes every call is judged in the state the last transition reached.
    last = transitions[-1] if isinstance(transitions, list) and transitions else None
    state = last.get("to") if isinstance(last, dict) else extras.get("workflow_state")
    if not isinstance(state, str) or not state:
        return scored(True, f"all tool calls comply with {len(rules)} access rule(s) (no workflow state recorded)")
    bad = [f"{c.name} called in state {state!r}" for c in ctx.tool_calls
           if state in rules and c.name not in rules[state]]
    if bad:
        return scored(False, f"{len(bad)} violation(s): {'; '.join(bad)}")
    return scored(True, f"all tool calls comply with {len(rules)} access rule(s)")


# ---------------------------------------------------------------------------------------------------------
# Composition (per-step records of a composed pipeline)


def _string_map(ctx: EvalContext, key: str) -> dict[str, str]:
    value = ctx.metadata.get(key)
    return {str(k): v if isinstance(v, str) else go_str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _match(haystack: str, params: dict[str, Any]) -> tuple[bool, str]:
    if isinstance(params.get("equals"), str):
        return haystack == params["equals"], f"equals {params['equals']!r}"
    if isinstance(params.get("contains"), str):
        return params["contains"] in haystack, f"contains {params['contains']!r}"
    return haystack != "", "is non-empty"


def composition_step_output(params: dict, ctx: EvalContext) -> Score:
    step = text(params, "step")
    if not step:
        return Score(0.0, "missing required param: step", error="missing required param: step")
    outputs = _string_map(ctx, "composition_step_outputs")
    if step not in outputs:
        return scored(False, f"step {step!r} produced no recorded output")
    matched, how = _match(outputs[step], params)
    return scored(matched, f"step {step!r} output {how}")


def composition_branch_taken(params: dict, ctx: EvalContext) -> Score:
    branch, expected = text(params, "branch"), text(params, "expected")
    if not branch or not expected:
        missing = "branch" if not branch else "expected"
        return Score(0.0, f"missing required param: {missing}", error=f"missing required param: {missing}")
    taken = _string_map(ctx, "composition_branch_taken").get(branch, "")
    return scored(taken == expected, f"branch {branch!r} took {taken!r}, expected {expected!r}")


def composition_parallel_complete(params: dict, ctx: EvalContext) -> Score:
    parallel = text(params, "parallel")
    if not parallel:
        return Score(0.0, "missing required param: parallel", error="missing required param: parallel")
    status = _string_map(ctx, "composition_parallel_status").get(parallel, "")
    return scored(status == "complete", f"parallel {parallel!r} status {status!r}")


def composition_output(params: dict, ctx: EvalContext) -> Score:
    matched, how = _match(ctx.current_output, params)
    return scored(matched, f"composition output {how}")


# ---------------------------------------------------------------------------------------------------------
# Behavioral: a run compared with an expected outcome given in params


def _same_tools(ctx: EvalContext, expected: list[str], label: str) -> Score:
    actual, wanted = sorted({c.name for c in ctx.tool_calls}), sorted(set(expected))
    if actual == wanted:
        return scored(True, f"tool calls match {label}: [{', '.join(wanted)}]")
    return scored(False, f"tool calls differ from {label}: got [{', '.join(actual)}], {label} [{', '.join(wanted)}]")


def _same_state(ctx: EvalContext, expected: str, label: str) -> Score:
    state = workflow_extras(ctx).get("workflow_state")
    if state is None:
        return scored(False, "workflow_state not found in eval context extras")
    if go_str(state) == expected:
        return scored(True, f"state matches {label}: {expected!r}")
    return scored(False, f"state {go_str(state)!r} does not match {label} {expected!r}")


def outcome_equivalent(params: dict, ctx: EvalContext) -> Score:
    metric = text(params, "metric")
    if metric == "tool_calls":
        tools = str_list(params, "expected_tools")
        return _same_tools(ctx, tools, "expected") if tools else scored(True, "no expected_tools specified")
    if metric == "final_state":
        state = text(params, "expected_state")
        return _same_state(ctx, state, "expected") if state else scored(True, "no expected_state specified")
    if metric == "content_hash":
        wanted = text(params, "expected_content")
        if not wanted:
            return scored(True, "no expected_content specified")
        same = ctx.current_output == wanted
        return scored(same, "content matches expected output" if same else "content does not match expected output")
    if not metric:
        return scored(False, "missing required param 'metric'")
    return scored(False, f"unknown metric {metric!r}; must be tool_calls, final_state, or content_hash")


def _overlap(a: str, b: str) -> float:
    left, right = set(a.lower().split()), set(b.lower().split())
    if not left and not right:
        return 1.0
    if not left or not right:
        return 0.0
    return len(left & right) / len(left | right)


def directional(params: dict, ctx: EvalContext) -> Score:
    check = text(params, "check")
    if check == "same_tool_calls":
        tools = str_list(params, "baseline_tools")
        return _same_tools(ctx, tools, "baseline") if tools else scored(True, "no baseline_tools specified")
    if check == "same_outcome":
        state = text(params, "baseline_state")
        return _same_state(ctx, state, "baseline") if state else scored(True, "no baseline_state specified")
    if check == "similar_content":
        baseline = text(params, "baseline_content")
        if not baseline:
            return scored(True, "no baseline_content specified")
        threshold = number(params, "threshold")
        threshold = 0.5 if threshold is None else threshold
        score = _overlap(ctx.current_output, baseline)
        verb = ">=" if score >= threshold else "<"
        return Score(score, f"content similarity {score:.2f} {verb} threshold {threshold:.2f}")
    if not check:
        return scored(False, "missing required param 'check'")
    return scored(False, f"unknown check {check!r}; must be same_tool_calls, same_outcome, or similar_content")
