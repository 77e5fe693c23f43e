"""Every eval type and alias, passing and failing, on hand-built conversations, scored as upstream scores them.

One table row per (type, params, conversation, expected outcome). `test_every_type_is_in_the_table` keeps the
table complete: a type added to the catalog without a passing and a failing row fails it.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from arena_operator.engine.assertions.base import EvalContext, EvalServices
from arena_operator.engine.assertions.catalog import ALIASES, EVAL_TYPES, EXTENSION_ALIASES, EXTENSIONS
from arena_operator.engine.assertions.registry import evaluate, vocabulary_markdown
from arena_operator.engine.spec import AssertionSpec
from arena_operator.engine.types import CostInfo, Message, ToolCall, ToolResult

REPLY = 'Order A1234 has shipped. It arrives Friday! {"eligible": true, "days": 30, "tags": ["a", "b"]}'
FENCED = 'Here you go:\n```json\n{"days": 30}\n```\nAnything else?'


def convo(*replies: str, calls: list[ToolCall] | None = None, error: str = "", meta: dict | None = None,
          latency: float = 40.0, result: Any = '{"status": "shipped", "order": "A1234"}') -> list[Message]:
    """user, [assistant calls, tool results], assistant reply — one exchange per reply."""
    messages: list[Message] = []
    for index, text in enumerate(replies or (REPLY,)):
        messages.append(Message("user", f"question {index}"))
        if calls and index == len(replies or (REPLY,)) - 1:
            messages.append(Message("assistant", "", list(calls), latency_ms=10))
            for call in calls:
                tool_meta = {"parts": result} if isinstance(result, list) else {}
                content = result if isinstance(result, str) else "[media]"
                messages.append(Message("tool", content, tool_result=ToolResult(call.id, call.name, content,
                                                                                error or None), meta=tool_meta))
        messages.append(Message("assistant", text, latency_ms=latency, cost_info=CostInfo(10, 20, 0.001, 0.002),
                                meta=dict(meta or {})))
    return messages


CALLS = [ToolCall("c1", "lookup_order", {"order_id": "A1234", "qty": 2}), ToolCall("c2", "refund", {"amount": 5})]
REPEAT = [ToolCall("c1", "search", {"q": "a", "k": 1}), ToolCall("c2", "search", {"q": "b"})]
SKILLS = [ToolCall("s1", "skill__activate", {"name": "billing"}), ToolCall("s2", "skill__activate", {"name": "faq"})]
AGENTS = [ToolCall("a1", "a2a__research__search", {"q": "x"})]
IMAGE = [{"type": "image", "media": {"mime_type": "image/png", "width": 1024, "height": 768}}]
AUDIO = [{"type": "audio", "media": {"mime_type": "audio/mpeg", "duration": 4.5}}]
VIDEO = [{"type": "video", "media": {"mime_type": "video/mp4", "width": 1280, "height": 720, "duration": 12}}]
WORKFLOW = {"_workflow_current_state": "billing", "_workflow_complete": True, "_workflow_state": "billing",
            "_workflow_transitions": [{"from": "intake", "to": "triage"}, {"from": "triage", "to": "billing"}],
            "current_workflow_state": {"current_state": "billing"}}
COMPOSITION = {"composition_step_outputs": {"classify": '{"type": "paper"}'},
               "composition_branch_taken": {"route": "extract"}, "composition_parallel_status": {"meta": "complete"}}
FIRED = {"validators": [{"type": "banned_words", "triggered": True, "direction": "output"}]}
A, P, F = "assertion", True, False

# (type, params, conversation, passes[, eval metadata])
CASES: list[tuple[Any, ...]] = [
    # content
    ("contains", {"patterns": ["shipped", "FRIDAY"]}, convo(), P),
    ("contains", {"patterns": ["refunded"]}, convo(), F),
    ("contains", {"patterns": ["first"]}, convo("first", "second"), F),  # the last reply only
    ("contains", {"patterns": "shipped"}, convo(), F),  # a string is not a list: no patterns
    ("content_includes", {"patterns": ["a1234"]}, convo(), P),
    ("content_includes", {"patterns": ["b9"]}, convo(), F),
    ("contains_any", {"patterns": ["nope", "first"]}, convo("first", "second"), P),  # every reply
    ("contains_any", {"patterns": ["nope"]}, convo(), F),
    ("content_includes_any", {"patterns": ["friday"]}, convo(), P),
    ("content_includes_any", {"patterns": ["monday"]}, convo(), F),
    ("content_excludes", {"patterns": ["sorry"]}, convo(), P),
    ("content_excludes", {"patterns": ["sorry"]}, convo("Sorry!", "fine"), F),  # any earlier reply
    ("content_excludes", {"patterns": ["ship"], "match_mode": "word_boundary"}, convo(), P),
    ("content_not_includes", {"patterns": ["SHIPPED"]}, convo(), F),
    ("content_not_includes", {"patterns": ["lost"]}, convo(), P),
    ("banned_words", {"patterns": ["ship"]}, convo(), F),  # as an assertion: plain substrings
    ("banned_words", {"words": ["shipped"]}, convo(), P),  # `words` is translated for validators only
    ("regex", {"pattern": r"A\d{4}"}, convo(), P),
    ("regex", {"pattern": r"done$"}, convo("all done\n"), F),  # Go's $ is the very end
    ("regex", {"pattern": r"B\d{4}", "expect_match": False}, convo(), P),
    ("content_matches", {"pattern": r"(?i)ORDER"}, convo(), P),
    ("content_matches", {"pattern": "["}, convo(), F),
    ("min_length", {"min": 10}, convo(), P),
    ("min_length", {"min_characters": 1000}, convo(), F),
    ("max_length", {"max": 1000}, convo(), P),
    ("max_length", {"max_chars": 5}, convo(), F),
    ("max_length", {"max": 1000, "max_tokens": 5}, convo(), F),
    ("length", {"max_characters": 1000}, convo(), P),
    ("length", {"max": 3}, convo(), F),
    ("sentence_count", {"max": 1}, convo("One. Two. Three."), P),  # upstream never fails it
    ("max_sentences", {"max_sentences": 1}, convo("One. Two."), P),
    ("field_presence", {"fields": ["eligible", "days"]}, convo(), P),
    ("field_presence", {"fields": ["eligible", "missing"]}, convo(), F),
    ("required_fields", {"fields": ["days"]}, convo(), P),
    ("required_fields", {"fields": ["customer"]}, convo(), F),
    ("cosine_similarity", {"reference": [1, 0], "min_similarity": 0.5}, convo(), F),  # no embedding
    ("cosine_similarity", {"reference": [1, 0], "min_similarity": 0.5}, convo(), P, {"embedding": [2, 0]}),
    ("latency_budget", {"max_ms": 100}, convo(), P),
    ("latency_budget", {"max_ms": 20}, convo(), F),
    ("cost_budget", {"max_cost_usd": 0.0001}, convo(), P),  # upstream passes zero spend (warned)
    ("cost_budget", {}, convo(), F),
    ("max_latency", {"max_ms": 100}, convo(), P),
    ("max_latency", {"max_ms": 20}, convo(), F),
    ("latency", {"max_ms": 20}, convo(), F),
    ("latency", {"max": 60}, convo(), P),
    ("max_cost", {"max_usd": 0.01}, convo(), P),
    ("max_cost", {"value": 0.0001}, convo(), F),
    ("cost", {"max_usd": 0.001}, convo(), F),
    ("cost", {"max": 1}, convo(), P),
    ("not_contains", {"patterns": ["lost"]}, convo(), P),
    ("not_contains", {"patterns": ["order"]}, convo(), F),
    # JSON
    ("json_valid", {}, convo('{"a": 1}'), P),
    ("json_valid", {}, convo(REPLY), F),
    ("json_valid", {"extract_json": True}, convo(REPLY), P),
    ("is_valid_json", {"allow_wrapped": True}, convo(FENCED), P),
    ("is_valid_json", {}, convo(FENCED), F),
    ("valid_json", {"extract_json": True}, convo("no json here"), F),
    ("valid_json", {}, convo("[1, 2]"), P),
    ("json_schema", {"extract_json": True, "schema": {"type": "object", "required": ["days"]}}, convo(), P),
    ("json_schema", {"extract_json": True, "schema": {"properties": {"days": {"type": "string"}}}}, convo(), F),
    ("json_path", {"extract_json": True, "expression": "days", "expected": 30.0}, convo(), P),
    ("json_path", {"extract_json": True, "jmespath_expression": "days", "min": 31}, convo(), F),
    ("json_path", {"extract_json": True, "expression": "tags", "contains": ["b"]}, convo(), P),
    ("json_path", {"extract_json": True, "expression": "tags", "contains": "b"}, convo(), F),
    ("json_path", {"extract_json": True, "expression": "tags", "min_results": 3}, convo(), F),
    ("json_path", {"extract_json": True, "expression": "missing"}, convo(), P),  # no check: passes
    # tools (every call of the transcript so far)
    ("tools_called", {"tools": ["lookup_order"]}, convo(calls=CALLS), P),
    ("tools_called", {"tool_names": ["lookup_order"], "max_calls": 0}, convo(calls=CALLS), F),
    ("tools_called", {"tools": ["lookup_order"]}, convo(calls=CALLS, error="HTTP 500"), F),  # failed calls
    ("tool_called", {"tool_names": ["refund"], "require_args": True}, convo(calls=CALLS), P),
    ("tool_called", {"tool_name": "refund"}, convo(calls=CALLS), F),  # upstream reads tool_names
    ("tools_not_called", {"tools": ["cancel"]}, convo(calls=CALLS), P),
    ("tools_not_called", {"tools": ["refund"]}, convo(calls=CALLS), F),
    ("tools_called_session", {"tools": ["lookup_order", "refund"]}, convo(calls=CALLS), P),
    ("tools_called_session", {"tool_names": ["cancel"]}, convo(calls=CALLS), F),
    ("tools_not_called_session", {"tools": ["cancel"]}, convo(calls=CALLS), P),
    ("tools_not_called_session", {"tools": ["refund"]}, convo(calls=CALLS), F),
    ("tool_args", {"tool_name": "lookup_order", "expected_args": {"qty": 2.0}}, convo(calls=CALLS), P),
    ("tool_args", {"tool_name": "lookup_order", "expected_args": {"order_id": "a1234"}}, convo(calls=CALLS), F),
    ("tool_args", {"tool": "lookup_order", "args": {"order_id": "A1234"}}, convo(calls=CALLS), P),  # older spelling
    ("tool_args_session", {"tool_name": "refund", "expected_args": {"amount": 5}}, convo(calls=CALLS), P),
    ("tool_args_session", {"tool_name": "refund", "expected_args": {"amount": 6}}, convo(calls=CALLS), F),
    ("tool_args_excluded_session", {"tool_name": "refund", "forbidden_args": {"amount": [100]}},
     convo(calls=CALLS), P),
    ("tool_args_excluded_session", {"tool_name": "refund", "forbidden_args": {"amount": [5]}}, convo(calls=CALLS), F),
    ("tools_not_called_with_args", {"tool_name": "refund", "excluded_args": {"amount": 9}}, convo(calls=CALLS), P),
    ("tools_not_called_with_args", {"tool_name": "refund", "excluded_args": {"amount": 5}}, convo(calls=CALLS), F),
    ("no_tool_errors", {}, convo(calls=CALLS), P),
    ("no_tool_errors", {}, convo(calls=CALLS, error="HTTP 500"), F),
    ("tool_call_count", {"min": 2, "max": 2}, convo(calls=CALLS), P),
    ("tool_call_count", {"tool": "refund", "max": 0}, convo(calls=CALLS), F),
    ("tool_result_includes", {"tool": "lookup_order", "patterns": ["SHIPPED"]}, convo(calls=CALLS), P),
    ("tool_result_includes", {"patterns": ["shipped"], "occurrence": 3}, convo(calls=CALLS), F),
    ("tool_result_matches", {"tool": "refund", "pattern": r"A\d+"}, convo(calls=CALLS), P),
    ("tool_result_matches", {"pattern": "cancelled"}, convo(calls=CALLS), F),
    ("tool_call_sequence", {"sequence": ["lookup_order", "refund"]}, convo(calls=CALLS), P),
    ("tool_call_sequence", {"sequence": ["refund", "lookup_order"]}, convo(calls=CALLS), F),
    ("tool_call_chain", {"steps": [{"tool": "lookup_order", "result_includes": ["shipped"]},
                                   {"tool": "refund", "args_match": {"amount": "^5$"}}]}, convo(calls=CALLS), P),
    ("tool_call_chain", {"steps": [{"tool": "lookup_order", "no_error": True}]}, convo(calls=CALLS, error="x"), F),
    ("tool_calls_with_args", {"tool_name": "refund", "expected_args": {"amount": 5}}, convo(calls=CALLS), P),
    ("tool_calls_with_args", {"result_matches": "^never$"}, convo(calls=CALLS), F),
    ("tool_anti_pattern", {"patterns": [{"sequence": ["refund", "lookup_order"]}]}, convo(calls=CALLS), P),
    ("tool_anti_pattern", {"patterns": [{"sequence": ["lookup_order", "refund"], "message": "x"}]},
     convo(calls=CALLS), F),
    ("tool_no_repeat", {"max_repeats": 2}, convo(calls=REPEAT), P),
    ("tool_no_repeat", {}, convo(calls=REPEAT), F),
    ("tool_efficiency", {"max_errors": 0}, convo(calls=CALLS), P),
    ("tool_efficiency", {"max_calls": 1}, convo(calls=CALLS), F),
    ("invariant_fields_preserved", {"tool": "search", "fields": ["q"]}, convo(calls=REPEAT), P),
    ("invariant_fields_preserved", {"tool": "search", "fields": ["k"]}, convo(calls=REPEAT), F),
    ("tool_result_has_media", {"media_type": "image"}, convo(calls=CALLS[:1], result=IMAGE), P),
    ("tool_result_has_media", {"media_type": "audio"}, convo(calls=CALLS[:1], result=IMAGE), F),
    ("tool_result_media_type", {"mime_type": "IMAGE/PNG"}, convo(calls=CALLS[:1], result=IMAGE), P),
    ("tool_result_media_type", {"mime_type": "image/jpeg"}, convo(calls=CALLS[:1], result=IMAGE), F),
    # agents and skills
    ("agent_invoked", {"agents": ["a2a__research__search"]}, convo(calls=AGENTS), P),
    ("agent_invoked", {"agents": ["a2a__translate__run"]}, convo(calls=AGENTS), F),
    ("agent_not_invoked", {"agents": ["a2a__translate__run"]}, convo(calls=AGENTS), P),
    ("agent_not_invoked", {"agents": ["a2a__research__search"]}, convo(calls=AGENTS), F),
    ("agent_response_contains", {"agent": "a2a__research__search", "contains": "shipped"}, convo(calls=AGENTS), P),
    ("agent_response_contains", {"agent": "a2a__research__search", "contains": "SHIPPED"}, convo(calls=AGENTS), F),
    ("skill_activated", {"skill_names": ["billing"]}, convo(calls=SKILLS), P),
    ("skill_activated", {"skill_names": ["refunds"]}, convo(calls=SKILLS), F),
    ("skill_not_activated", {"skill_names": ["refunds"]}, convo(calls=SKILLS), P),
    ("skill_not_activated", {"skill_names": ["faq"]}, convo(calls=SKILLS), F),
    ("skill_activation_order", {"sequence": ["billing", "faq"]}, convo(calls=SKILLS), P),
    ("skill_activation_order", {"sequence": ["faq", "billing"]}, convo(calls=SKILLS), F),
    # guardrails
    ("guardrail_triggered", {"validator": "banned_words"}, convo(meta=FIRED), P),
    ("guardrail_triggered", {"validator_type": "banned_words", "should_trigger": False}, convo(meta=FIRED), F),
    ("guardrail_triggered", {"validator": "max_length", "should_trigger": False}, convo(meta=FIRED), P),
    ("guardrail_triggered", {"validator": "banned_words", "direction": "input"}, convo(meta=FIRED), F),
    # workflow, composition, behavioral
    ("state_is", {"state": "billing"}, convo(meta=WORKFLOW), P),
    ("state_is", {"state": "billing"}, convo(), F),  # not a workflow run
    ("transitioned_to", {"state": "triage"}, convo(meta=WORKFLOW), P),
    ("transitioned_to", {"state": "closed"}, convo(meta=WORKFLOW), F),
    ("spoke_in_state", {"state": "billing"}, convo(meta=WORKFLOW), P),
    ("spoke_in_state", {"state": "intake"}, convo(meta=WORKFLOW), F),
    ("workflow_complete", {}, convo(meta=WORKFLOW), P),
    ("workflow_complete", {}, convo(), F),
    ("workflow_transition_order", {"sequence": ["triage", "billing"]}, convo(meta=WORKFLOW), P),
    ("workflow_transition_order", {"sequence": ["billing", "triage"]}, convo(meta=WORKFLOW), F),
    ("workflow_tool_access", {"rules": [{"state": "billing", "allowed": ["lookup_order", "refund"]}]},
     convo(calls=CALLS, meta=WORKFLOW), P),
    ("workflow_tool_access", {"rules": [{"state": "billing", "allowed": ["refund"]}]},
     convo(calls=CALLS, meta=WORKFLOW), F),
    ("composition_output", {"contains": "shipped"}, convo(), P),
    ("composition_output", {"equals": "shipped"}, convo(), F),
    ("composition_step_output", {"step": "classify"}, convo(), F),  # no composition records
    ("composition_step_output", {"step": "classify", "contains": "paper"}, convo(), P, COMPOSITION),
    ("composition_branch_taken", {"branch": "route", "expected": "extract"}, convo(), F),
    ("composition_branch_taken", {"branch": "route", "expected": "extract"}, convo(), P, COMPOSITION),
    ("composition_parallel_complete", {"parallel": "meta"}, convo(), F),
    ("composition_parallel_complete", {"parallel": "meta"}, convo(), P, COMPOSITION),
    ("outcome_equivalent", {"metric": "tool_calls", "expected_tools": ["refund", "lookup_order"]},
     convo(calls=CALLS), P),
    ("outcome_equivalent", {"metric": "content_hash", "expected_content": "other"}, convo(), F),
    ("directional", {"check": "similar_content", "baseline_content": REPLY}, convo(), P),
    ("directional", {"check": "same_outcome", "baseline_state": "billing"}, convo(), F),
    # media
    ("image_format", {"formats": ["png", "jpeg"]}, convo(meta={"parts": IMAGE}), P),
    ("image_format", {"formats": ["png"]}, convo(), F),  # no images
    ("image_dimensions", {"min_width": 800, "max_height": 800}, convo(meta={"parts": IMAGE}), P),
    ("image_dimensions", {"width": 512}, convo(meta={"parts": IMAGE}), F),
    ("audio_format", {"formats": ["mp3"]}, convo(meta={"parts": AUDIO}), P),
    ("audio_format", {"formats": ["wav"]}, convo(meta={"parts": AUDIO}), F),
    ("audio_duration", {"max_seconds": 5}, convo(meta={"parts": AUDIO}), P),
    ("audio_duration", {"min_seconds": 5}, convo(meta={"parts": AUDIO}), F),
    ("video_duration", {"min_seconds": 10}, convo(meta={"parts": VIDEO}), P),
    ("video_duration", {"max_seconds": 10}, convo(meta={"parts": VIDEO}), F),
    ("video_resolution", {"presets": ["720p"]}, convo(meta={"parts": VIDEO}), P),
    ("video_resolution", {"presets": ["4k"]}, convo(meta={"parts": VIDEO}), F),
]

JUDGED = {"llm_judge", "llm_judge_session", "llm_judge_conversation", "llm_judge_tool_calls", "faithfulness",
          "answer_relevancy", "contextual_precision", "contextual_recall", "contextual_relevancy", "hallucination",
          "bias", "toxicity", "pii_leakage", "role_violation"}
CLASSIFIED = {"text_toxicity", "text_sentiment", "image_moderation", "audio_emotion"}
EXTERNAL = {"rest_eval", "rest_eval_session", "a2a_eval", "a2a_eval_session", "tool_exec"}
ELSEWHERE = JUDGED | CLASSIFIED | EXTERNAL  # scored below, and against loopback services in tests/integration


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{'pass' if c[3] else 'fail'}-{i}" for i, c in enumerate(CASES)])
async def test_eval(case: tuple[Any, ...]) -> None:
    kind, params, messages, expected = case[:4]
    ctx = EvalContext("turn", messages, messages[-3:], EvalServices(), {"latency_ms": 40.0, **(case[4:] or [{}])[0]})
    result = await evaluate(AssertionSpec(type=kind, params=params), ctx)
    assert result.passed is expected, result.message
    assert result.message


def test_every_type_is_in_the_table() -> None:
    names = {e.name for e in (*EVAL_TYPES, *EXTENSIONS)} | set(ALIASES) | set(EXTENSION_ALIASES)
    seen: dict[str, set[bool]] = {}
    for kind, _, _, expected, *_ in CASES:
        seen.setdefault(kind, set()).add(expected)
    never_fail = {"sentence_count", "max_sentences"}
    missing = {n for n in names - ELSEWHERE if seen.get(n) != ({True} if n in never_fail else {True, False})}
    assert not missing, f"types without a passing and a failing row: {sorted(missing)}"


# ---------------------------------------------------------------------------------------------------------
# Judges and classifiers with stand-in services


def judged(reply: str, asked: list[tuple[str, str, str]] | None = None) -> EvalServices:
    async def judge(name: str, system: str, user: str) -> str:
        if asked is not None:
            asked.append((name, system, user))
        return reply
    return EvalServices(judge=judge)


RAG = {"contexts": ["The order shipped on Monday."], "question": "Where is it?", "reference": "It shipped."}


@pytest.mark.parametrize("kind", sorted(JUDGED))
async def test_every_judge_type_asks_the_judge_and_thresholds_its_score(kind: str) -> None:
    messages = convo("Order shipped.", calls=CALLS)
    params = {"criteria": "be right", **({k: v for k, v in RAG.items()} if kind != "role_violation" else {})}
    for reply, min_score, passed in (('{"score": 0.9}', 0.8, True), ('{"score": 0.7}', 0.8, False)):
        asked: list[tuple[str, str, str]] = []
        ctx = EvalContext("turn", messages, messages, judged(reply, asked))
        spec = AssertionSpec(type="assertion", params={"eval_type": kind, "eval_params": params,
                                                       "min_score": min_score})
        result = await evaluate(spec, ctx)
        assert result.passed is passed, (kind, result.message)
        assert asked and asked[0][2].startswith("Content to evaluate:\n")


async def test_judge_without_judges_configured_fails() -> None:
    messages = convo()
    result = await evaluate(AssertionSpec(type="llm_judge", params={"criteria": "x"}),
                            EvalContext("turn", messages, messages))
    assert not result.passed and "judge" in result.message


async def test_threshold_inside_eval_params_is_rejected_by_the_judge() -> None:
    messages = convo()
    spec = AssertionSpec(type="assertion", params={"eval_type": "llm_judge",
                                                   "eval_params": {"criteria": "x", "min_score": 0.1}})
    result = await evaluate(spec, EvalContext("turn", messages, messages, judged('{"score": 1.0}')))
    assert not result.passed and "wrap with `type: assertion`" in result.message


async def test_llm_judge_tool_calls_is_skipped_without_calls() -> None:
    messages = convo()
    result = await evaluate(AssertionSpec(type="llm_judge_tool_calls", params={"criteria": "x"}),
                            EvalContext("turn", messages, messages, judged('{"score": 0.0}')))
    assert result.passed and result.skipped


@pytest.mark.parametrize("kind", sorted(CLASSIFIED))
async def test_classifiers(kind: str) -> None:
    media = {"text_toxicity": None, "text_sentiment": None, "image_moderation": "image", "audio_emotion": "audio"}
    part = [{"type": media[kind], "media": {"mime_type": f"{media[kind]}/x",
                                            "data": base64.b64encode(b"xyz").decode()}}] if media[kind] else []
    messages = convo("Great news!", meta={"parts": part})
    if kind == "audio_emotion":
        messages[-2].meta["parts"] = part  # audio_emotion reads the user's audio by default
    params = {"model": "m", "expected_label": "positive"}
    seen: list[Any] = []

    async def classify(kind_: str, data: Any, model: str, classifier_id: str) -> list[tuple[str, float]]:
        seen.append(data)
        return [("POSITIVE", 0.9), ("negative", 0.1)]

    ctx = EvalContext("turn", messages, messages, EvalServices(classify=classify))
    wrapped = AssertionSpec(type="assertion", params={"eval_type": kind, "eval_params": params, "min_score": 0.8})
    assert (await evaluate(wrapped, ctx)).passed
    assert not (await evaluate(AssertionSpec(type=kind, params=params), ctx)).passed  # 0.9 < 1.0
    no_classifier = await evaluate(AssertionSpec(type=kind, params=params), EvalContext("turn", messages, messages))
    assert no_classifier.passed and no_classifier.skipped
    missing_model = await evaluate(AssertionSpec(type=kind, params={"expected_label": "x"}), ctx)
    assert not missing_model.passed and "model is required" in missing_model.message
    assert seen and (seen[0] == "Great news!" if media[kind] is None else seen[0][0] == b"xyz")


async def test_tool_exec_runs_a_tool() -> None:
    async def run_tool(name: str, args: dict[str, Any], timeout: float) -> ToolResult:
        if name == "broken":
            return ToolResult("x", name, "", "exit status 1")
        return ToolResult("x", name, '"PASS: 3 tests"')

    messages = convo()
    ctx = EvalContext("conversation", messages, messages, EvalServices(run_tool=run_tool))
    for params, passed in (({"tool": "run_tests", "success_pattern": "PASS"}, True),
                           ({"tool": "run_tests", "failure_pattern": "PASS"}, False),
                           ({"tool": "broken"}, False)):
        assert (await evaluate(AssertionSpec(type="tool_exec", params=params), ctx)).passed is passed


def test_readme_lists_the_vocabulary_generated_from_the_catalog() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert vocabulary_markdown() in readme, "regenerate the README table with registry.vocabulary_markdown()"
    for spec in EVAL_TYPES:
        assert f"`{spec.name}`" in readme
    assert all(row.count("|") == 5 for row in vocabulary_markdown().splitlines()), "a stray | splits a cell"
