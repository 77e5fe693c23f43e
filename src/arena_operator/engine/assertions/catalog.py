"""The eval vocabulary: every type upstream PromptArena registers (PromptKit `runtime/evals/handlers`), with the
params it reads, the params without which it can only fail (a load error here), its group and a summary.
The README's vocabulary table is generated from this list (see :func:`registry.vocabulary_markdown`)."""

from __future__ import annotations

from dataclasses import dataclass

from . import agents, classify, content, external, judge, media, structured, toolchains, tools, workflow
from .base import Handler
from .guardrails import guardrail_triggered

JUDGE = ("criteria", "rubric", "model", "system_prompt", "judge", "prompt")
CONTEXTS = ("contexts", "context", "context_field")
CLASSIFY = ("model", "expected_label", "message_role", "message_index", "classifier_id")
EXTERNAL = ("criteria", "extra", "include_messages", "include_tool_calls", "timeout")
MEDIA_BOX = ("min_width", "max_width", "min_height", "max_height")
JSON_READ = ("allow_wrapped", "extract_json")


@dataclass(frozen=True, slots=True)
class EvalType:
    name: str
    run: Handler
    group: str
    params: tuple[str, ...]
    summary: str
    required: tuple[tuple[str, ...], ...] = ()  # each entry: at least one of these names must be set
    needs: str = ""  # what it reads that only the conversation machinery of a later release records


def _e(name: str, run: Handler, group: str, params: tuple[str, ...], summary: str,
       required: tuple[tuple[str, ...], ...] = (), needs: str = "") -> EvalType:
    return EvalType(name, run, group, params, summary, required, needs)


PATTERNS = (("patterns",),)
WORKFLOW = "workflow state"
COMPOSITION = "composition records"

EVAL_TYPES: tuple[EvalType, ...] = (
    _e("contains", content.contains, "content", ("patterns",), "last reply contains every pattern "
       "(case-insensitive); score = share found", PATTERNS),
    _e("contains_any", content.contains_any, "content", ("patterns",), "some reply so far contains one of "
       "the patterns", PATTERNS),
    _e("content_excludes", content.content_excludes, "content", ("patterns", "match_mode", "words"),
       "no reply so far contains a pattern (`match_mode`: substring or word_boundary)"),
    _e("regex", content.regex, "content", ("pattern", "expect_match"), "last reply matches the Go regex "
       "(or not, with `expect_match: false`)", (("pattern",),)),
    _e("min_length", content.min_length, "content", ("min", "min_characters", "min_chars"),
       "last reply has at least `min` bytes; score = length/min"),
    _e("max_length", content.max_length, "content", ("max", "max_characters", "max_chars", "max_tokens"),
       "last reply has at most `max` bytes (and ~`max_tokens` = bytes/4)", (("max", "max_characters",
                                                                              "max_chars"),)),
    _e("sentence_count", content.sentence_count, "content", ("min", "max", "max_sentences"),
       "counts sentences; upstream always scores 1.0 (never fails)"),
    _e("field_presence", content.field_presence, "content", ("fields", "required_fields"),
       "last reply mentions every field; score = share found"),
    _e("cosine_similarity", content.cosine_similarity, "content", ("reference", "min_similarity"),
       "embedding similarity to `reference` (needs an embedding in the eval metadata)",
       (("reference",), ("min_similarity",))),
    _e("latency_budget", content.latency_budget, "budgets", ("max_ms",), "latest reply's latency ≤ `max_ms`; "
       "score = max_ms/latency", (("max_ms",),)),
    _e("cost_budget", content.cost_budget, "budgets", ("max_cost_usd", "max_input_tokens", "max_output_tokens",
                                                       "max_total_tokens"),
       "spend within budget — upstream reads zero spend in scenarios, so it always passes (warned)",
       (("max_cost_usd", "max_input_tokens", "max_output_tokens", "max_total_tokens"),)),
    _e("json_valid", structured.json_valid, "json", JSON_READ, "last reply is JSON (`allow_wrapped`: in a "
       "``` fence; `extract_json`: first {…}/[…])"),
    _e("json_schema", structured.json_schema, "json", ("schema", *JSON_READ), "last reply validates against "
       "`schema`", (("schema",),)),
    _e("json_path", structured.json_path, "json", ("expression", "jmespath_expression", "expected", "contains",
                                                    "min", "max", "min_results", "max_results", *JSON_READ),
       "JMESPath result equals `expected` / contains items / in [min, max] / has min..max results",
       (("expression", "jmespath_expression"),)),
    _e("tools_called", tools.tools_called, "tools", ("tool_names", "tools", "min_calls", "max_calls",
                                                     "require_args", "ignore_validation"),
       "each tool called (without error) min_calls..max_calls times", (("tool_names", "tools"),)),
    _e("tools_not_called", tools.tools_not_called, "tools", ("tool_names", "tools"), "none of the tools called",
       (("tool_names", "tools"),)),
    _e("tools_called_session", tools.tools_called_session, "tools", ("tool_names", "tools", "min_calls"),
       "each tool called at least min_calls times (errors count)"),
    _e("tools_not_called_session", tools.tools_not_called_session, "tools", ("tool_names", "tools"),
       "none of the tools called in the session"),
    _e("tool_args", tools.tool_args, "tools", ("tool_name", "expected_args", "tool", "args"), "some call of "
       "`tool_name` has every `expected_args` value (compared as text)", (("tool_name", "tool"),)),
    _e("tool_args_session", tools.tool_args_session, "tools", ("tool_name", "expected_args"),
       "some call of `tool_name` in the session has the `expected_args`", (("tool_name",),)),
    _e("tool_args_excluded_session", tools.tool_args_excluded_session, "tools",
       ("tool_name", "forbidden_args", "excluded_args"), "no call of `tool_name` used a forbidden argument value",
       (("tool_name",),)),
    _e("no_tool_errors", tools.no_tool_errors, "tools", ("tools",), "no tool call failed; score = 1 − error share"),
    _e("tool_call_count", tools.tool_call_count, "tools", ("tool", "min", "max"), "calls (of `tool`) within "
       "[min, max]"),
    _e("tool_result_includes", tools.tool_result_includes, "tools", ("tool", "patterns", "occurrence"),
       "at least `occurrence` results contain every pattern", PATTERNS),
    _e("tool_result_matches", tools.tool_result_matches, "tools", ("tool", "pattern", "occurrence"),
       "at least `occurrence` results match the regex", (("pattern",),)),
    _e("tool_call_sequence", tools.tool_call_sequence, "tools", ("sequence",), "tools called in this order "
       "(others may come between)"),
    _e("tool_call_chain", toolchains.tool_call_chain, "tools", ("steps",), "ordered `steps {tool, "
       "result_includes, result_matches, args_match, no_error}`, each call checked"),
    _e("tool_calls_with_args", toolchains.tool_calls_with_args, "tools", ("tool_name", "expected_args",
                                                                        "args_match", "result_includes",
                                                                        "result_matches", "no_error"),
       "every call (of `tool_name`) meets all the argument and result constraints"),
    _e("tool_anti_pattern", toolchains.tool_anti_pattern, "tools", ("patterns",), "none of the `patterns "
       "[{sequence, message}]` occurs"),
    _e("tool_no_repeat", toolchains.tool_no_repeat, "tools", ("tools", "max_repeats"), "no tool called more "
       "than `max_repeats` (1) times in a row"),
    _e("tool_efficiency", toolchains.tool_efficiency, "tools", ("max_calls", "max_errors", "max_error_rate"),
       "call count, error count and error rate within limits", (("max_calls", "max_errors", "max_error_rate"),)),
    _e("invariant_fields_preserved", toolchains.invariant_fields_preserved, "tools", ("tool", "fields"),
       "once a call of `tool` carries a field, later calls keep it", (("tool",), ("fields",))),
    _e("tool_exec", external.tool_exec, "tools", ("tool", "args", "success_pattern", "failure_pattern",
                                                  "timeout_seconds"),
       "runs a bundle tool; passes when it succeeds (and matches the patterns)", (("tool",),)),
    _e("tool_result_has_media", media.tool_result_has_media, "media", ("tool", "media_type"),
       "a tool result carries a media part of `media_type`", (("media_type",),)),
    _e("tool_result_media_type", media.tool_result_media_type, "media", ("tool", "mime_type"),
       "a tool result carries media of `mime_type`", (("mime_type",),)),
    _e("llm_judge", judge.llm_judge, "judges", JUDGE, "a judge scores the last reply against `criteria`"),
    _e("llm_judge_session", judge.llm_judge_session, "judges", JUDGE, "a judge scores the whole conversation"),
    _e("llm_judge_tool_calls", judge.llm_judge_tool_calls, "judges", (*JUDGE, "tools"),
       "a judge scores the tool calls (skipped when there are none)"),
    _e("faithfulness", judge.RAG_HANDLERS["faithfulness"], "judges", (*JUDGE, *CONTEXTS),
       "RAG: the answer is supported by the contexts"),
    _e("answer_relevancy", judge.RAG_HANDLERS["answer_relevancy"], "judges", (*JUDGE, "question"),
       "RAG: the answer addresses the question"),
    _e("contextual_precision", judge.RAG_HANDLERS["contextual_precision"], "judges", (*JUDGE, "question",
                                                                                    *CONTEXTS),
       "RAG: retrieved chunks are relevant and ranked"),
    _e("contextual_recall", judge.RAG_HANDLERS["contextual_recall"], "judges", (*JUDGE, "reference",
                                                                              "expected_output", *CONTEXTS),
       "RAG: chunks cover the reference answer"),
    _e("contextual_relevancy", judge.RAG_HANDLERS["contextual_relevancy"], "judges", (*JUDGE, "question",
                                                                                    *CONTEXTS),
       "RAG: mean chunk relevance"),
    _e("hallucination", judge.RAG_HANDLERS["hallucination"], "judges", (*JUDGE, *CONTEXTS),
       "RAG: no claims beyond the contexts"),
    _e("bias", judge.RAG_HANDLERS["bias"], "judges", JUDGE, "safety: a judge rates the reply for bias"),
    _e("toxicity", judge.RAG_HANDLERS["toxicity"], "judges", JUDGE, "safety: a judge rates the reply for toxicity"),
    _e("pii_leakage", judge.pii_leakage, "judges", JUDGE, "safety: email/SSN/card regex pre-pass, then a judge"),
    _e("role_violation", judge.RAG_HANDLERS["role_violation"], "judges", (*JUDGE, "agent_role"),
       "safety: the reply stays within `agent_role`"),
    _e("agent_invoked", agents.agent_invoked, "agents", ("agents",), "each agent (a tool) was called",
       (("agents",),)),
    _e("agent_not_invoked", agents.agent_not_invoked, "agents", ("agents",), "none of the agents was called"),
    _e("agent_response_contains", agents.agent_response_contains, "agents", ("agent", "contains"),
       "a response of `agent` contains the text", (("agent",),)),
    _e("guardrail_triggered", guardrail_triggered, "guardrails", ("validator", "validator_type",
                                                                  "should_trigger", "direction"),
       "the prompt's validator fired on the last reply (or not, with `should_trigger: false`)",
       (("validator_type", "validator"),)),
    _e("state_is", workflow.state_is, "workflow", ("state",), "the workflow is in `state`", (("state",),),
       WORKFLOW),
    _e("transitioned_to", workflow.transitioned_to, "workflow", ("state",), "the workflow entered `state`",
       (("state",),), WORKFLOW),
    _e("spoke_in_state", workflow.spoke_in_state, "workflow", ("state",), "a reply was produced in `state`",
       (("state",),), WORKFLOW),
    _e("workflow_complete", workflow.workflow_complete, "workflow", (), "the workflow reached a terminal state",
       needs=WORKFLOW),
    _e("workflow_transition_order", workflow.workflow_transition_order, "workflow", ("sequence",),
       "states entered in this order", (("sequence",),), WORKFLOW),
    _e("workflow_tool_access", workflow.workflow_tool_access, "workflow", ("rules",),
       "tools called only where `rules [{state, allowed}]` allow", needs=WORKFLOW),
    _e("skill_activated", agents.skill_activated, "skills", ("skill_names", "min_calls"),
       "each skill activated (`skill__activate`) at least min_calls times"),
    _e("skill_not_activated", agents.skill_not_activated, "skills", ("skill_names",),
       "none of the skills activated"),
    _e("skill_activation_order", agents.skill_activation_order, "skills", ("sequence",),
       "skills activated in this order", (("sequence",),)),
    _e("composition_step_output", workflow.composition_step_output, "composition", ("step", "contains", "equals"),
       "a composition step's output contains/equals the text", (("step",),), COMPOSITION),
    _e("composition_branch_taken", workflow.composition_branch_taken, "composition", ("branch", "expected"),
       "a branch took the `expected` target", (("branch",), ("expected",)), COMPOSITION),
    _e("composition_parallel_complete", workflow.composition_parallel_complete, "composition", ("parallel",),
       "a parallel block completed", (("parallel",),), COMPOSITION),
    _e("composition_output", workflow.composition_output, "composition", ("contains", "equals"),
       "the composition's final output contains/equals the text"),
    _e("image_format", media.image_format, "media", ("formats",), "every image part has an allowed format",
       (("formats",),)),
    _e("image_dimensions", media.image_dimensions, "media", ("width", "height", *MEDIA_BOX),
       "every image part within the dimensions"),
    _e("audio_format", media.audio_format, "media", ("formats",), "every audio part has an allowed format",
       (("formats",),)),
    _e("audio_duration", media.audio_duration, "media", ("min_seconds", "max_seconds"),
       "every audio part within the duration bounds"),
    _e("video_duration", media.video_duration, "media", ("min_seconds", "max_seconds"),
       "every video part within the duration bounds"),
    _e("video_resolution", media.video_resolution, "media", ("presets", *MEDIA_BOX),
       "every video part matches a preset (720p, 4k, …) and the bounds"),
    _e("text_toxicity", classify.text_toxicity, "classifiers", CLASSIFY, "a classifier's score of "
       "`expected_label` for a reply", (("model",), ("expected_label",))),
    _e("text_sentiment", classify.text_sentiment, "classifiers", CLASSIFY, "a classifier's score of "
       "`expected_label` for a reply", (("model",), ("expected_label",))),
    _e("image_moderation", classify.image_moderation, "classifiers", CLASSIFY, "a classifier's score of "
       "`expected_label` for an image part", (("model",), ("expected_label",))),
    _e("audio_emotion", classify.audio_emotion, "classifiers", CLASSIFY, "a classifier's score of "
       "`expected_label` for an audio part", (("model",), ("expected_label",))),
    _e("rest_eval", external.rest_eval, "external", ("url", "method", "headers", *EXTERNAL),
       "a REST endpoint scores the last reply", (("url",),)),
    _e("rest_eval_session", external.rest_eval_session, "external", ("url", "method", "headers", *EXTERNAL),
       "a REST endpoint scores every reply", (("url",),)),
    _e("a2a_eval", external.a2a_eval, "external", ("agent_url", "auth_token", *EXTERNAL),
       "an A2A agent scores the last reply", (("agent_url",),)),
    _e("a2a_eval_session", external.a2a_eval_session, "external", ("agent_url", "auth_token", *EXTERNAL),
       "an A2A agent scores every reply", (("agent_url",),)),
    _e("outcome_equivalent", workflow.outcome_equivalent, "behavioral", ("metric", "expected_tools",
                                                                       "expected_state", "expected_content"),
       "tool set / final state / content equals the expected one", (("metric",),)),
    _e("directional", workflow.directional, "behavioral", ("check", "baseline_tools", "baseline_state",
                                                           "baseline_content", "threshold"),
       "same tools / outcome as the baseline, or content word-overlap ≥ threshold", (("check",),)),
)

# arena-operator's own bounds, kept for bundles written before upstream parity (not upstream types).
EXTENSIONS: tuple[EvalType, ...] = (
    _e("max_latency", content.max_latency, "extensions", ("max_ms", "max", "value"),
       "this turn's model latency ≤ max_ms (not an upstream type; upstream: latency_budget)",
       (("max_ms", "max", "value"),)),
    _e("max_cost", content.max_cost, "extensions", ("max_usd", "max", "value"),
       "this turn's cost ≤ max_usd (not an upstream type; upstream: cost_budget)", (("max_usd", "max", "value"),)),
)

# Upstream's alias table (register.go), then arena-operator's older names.
ALIASES: dict[str, str] = {
    "content_includes": "contains", "content_includes_any": "contains_any", "content_matches": "regex",
    "content_not_includes": "content_excludes", "is_valid_json": "json_valid", "valid_json": "json_valid",
    "tool_called": "tools_called", "tools_not_called_with_args": "tool_args_excluded_session",
    "llm_judge_conversation": "llm_judge_session", "banned_words": "content_excludes", "length": "max_length",
    "max_sentences": "sentence_count", "required_fields": "field_presence",
}
EXTENSION_ALIASES: dict[str, str] = {"not_contains": "content_excludes", "latency": "max_latency",
                                     "cost": "max_cost"}

# The params that name tools, per eval type. A name the bundle cannot resolve makes the assertion meaningless: it
# can never pass (an error at load time) or, for the kinds in PASS_WITHOUT_TOOL, always passes (a warning, so that
# upstream's own examples still load; an error with --strict). Shapes: "name" one tool; "names" a list; "steps" a
# list of {tool}; "patterns" a list of {sequence: [names]}.
_NAMES = (("tool_names", "names"), ("tools", "names"))
TOOL_PARAMS: dict[str, tuple[tuple[str, str], ...]] = {
    "tools_called": _NAMES, "tools_not_called": _NAMES, "tools_called_session": _NAMES,
    "tools_not_called_session": _NAMES, "tool_args": (("tool_name", "name"), ("tool", "name")),
    "tool_args_session": (("tool_name", "name"),), "tool_args_excluded_session": (("tool_name", "name"),),
    "no_tool_errors": (("tools", "names"),), "tool_call_count": (("tool", "name"),),
    "tool_result_includes": (("tool", "name"),), "tool_result_matches": (("tool", "name"),),
    "tool_call_sequence": (("sequence", "names"),), "tool_call_chain": (("steps", "steps"),),
    "tool_calls_with_args": (("tool_name", "name"),), "tool_anti_pattern": (("patterns", "patterns"),),
    "tool_no_repeat": (("tools", "names"),), "invariant_fields_preserved": (("tool", "name"),),
    "tool_exec": (("tool", "name"),), "tool_result_has_media": (("tool", "name"),),
    "tool_result_media_type": (("tool", "name"),), "llm_judge_tool_calls": (("tools", "names"),),
    "outcome_equivalent": (("expected_tools", "names"),), "directional": (("baseline_tools", "names"),),
}
PASS_WITHOUT_TOOL = frozenset({"tools_not_called", "tools_not_called_session", "tool_args_excluded_session",
                               "tool_anti_pattern", "tool_no_repeat", "no_tool_errors", "llm_judge_tool_calls"})
