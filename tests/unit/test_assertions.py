"""Every assertion type, passing and failing, on hand-built conversation slices."""

from __future__ import annotations

from typing import Any

import pytest

from arena_operator.engine.assertions.base import AssertionContext
from arena_operator.engine.assertions.judge import Verdict, parse_verdict
from arena_operator.engine.assertions.registry import evaluate, required_params
from arena_operator.engine.spec import AssertionSpec
from arena_operator.engine.types import CostInfo, Message, ToolCall, ToolResult

REPLY = 'Sure! Order A1234 has shipped. {"eligible": true, "days": 30}'


def _turn(content: str = REPLY, calls: list[ToolCall] | None = None, error: str | None = None) -> list[Message]:
    calls = calls or []
    messages = [Message("user", "hi")]
    if calls:
        messages.append(Message("assistant", "", calls, latency_ms=10))
        for call in calls:
            messages.append(Message("tool", "{}", tool_result=ToolResult(call.id, call.name, '{"status": "shipped"}',
                                                                          error)))
    messages.append(Message("assistant", content, latency_ms=40,
                            cost_info=CostInfo(10, 20, 0.001, 0.002)))
    return messages


CALLS = [ToolCall("c1", "lookup_order", {"order_id": "A1234"}), ToolCall("c2", "refund", {"amount": 5})]

CASES: list[tuple[str, dict[str, Any], list[Message], bool]] = [
    ("contains", {"patterns": ["shipped", "ORDER"]}, _turn(), True),
    ("contains", {"patterns": ["refunded"]}, _turn(), False),
    ("content_includes", {"patterns": "a1234"}, _turn(), True),
    ("contains_any", {"patterns": ["nope", "shipped"]}, _turn(), True),
    ("contains_any", {"patterns": ["nope", "never"]}, _turn(), False),
    ("content_excludes", {"patterns": ["sorry"]}, _turn(), True),
    ("content_not_includes", {"patterns": ["SHIPPED"]}, _turn(), False),
    ("regex", {"pattern": r"A\d{4}"}, _turn(), True),
    ("content_matches", {"pattern": r"B\d{4}"}, _turn(), False),
    ("regex", {"pattern": r"B\d{4}", "expect_match": False}, _turn(), True),
    ("min_length", {"min": 10}, _turn(), True),
    ("min_length", {"min": 1000}, _turn(), False),
    ("max_length", {"max": 1000}, _turn(), True),
    ("max_length", {"max": 5}, _turn(), False),
    ("sentence_count", {"min": 2, "max": 3}, _turn("One. Two! Three?"), True),
    ("sentence_count", {"max": 1}, _turn("One. Two."), False),
    ("max_latency", {"max_ms": 100}, _turn(), True),
    ("max_latency", {"max_ms": 20}, _turn(), False),
    ("max_cost", {"max_usd": 0.01}, _turn(), True),
    ("max_cost", {"max_usd": 0.001}, _turn(), False),
    ("json_valid", {}, _turn('{"a": 1}'), True),
    ("is_valid_json", {}, _turn(REPLY), False),
    ("json_valid", {"allow_wrapped": True}, _turn(REPLY), True),
    ("json_valid", {"extract_json": True}, _turn('```json\n{"a": [1]}\n```'), True),
    ("json_schema", {"allow_wrapped": True, "schema": {"type": "object", "required": ["days"]}}, _turn(), True),
    ("json_schema", {"allow_wrapped": True, "schema": {"properties": {"days": {"type": "string"}}}}, _turn(), False),
    ("json_path", {"allow_wrapped": True, "jmespath_expression": "days", "expected": 30}, _turn(), True),
    ("json_path", {"allow_wrapped": True, "jmespath_expression": "days", "min": 31}, _turn(), False),
    ("json_path", {"jmespath_expression": "items", "contains": "b"}, _turn('{"items": ["a", "b"]}'), True),
    ("json_path", {"jmespath_expression": "missing"}, _turn('{"items": []}'), False),
    ("tools_called", {"tools": ["lookup_order"]}, _turn(calls=CALLS), True),
    ("tool_called", {"tool_names": ["cancel"]}, _turn(calls=CALLS), False),
    ("tools_called", {"tools": ["lookup_order"], "max_calls": 0}, _turn(calls=CALLS), False),
    ("tools_called", {"min_calls": 3}, _turn(calls=CALLS), False),
    ("tools_not_called", {"tools": ["cancel"]}, _turn(calls=CALLS), True),
    ("tools_not_called", {"tools": ["refund"]}, _turn(calls=CALLS), False),
    ("tool_args", {"tool": "lookup_order", "args": {"order_id": "a1234"}}, _turn(calls=CALLS), True),
    ("tool_args", {"tool": "lookup_order", "args": {"order_id": "B1"}}, _turn(calls=CALLS), False),
    ("tool_args", {"tool": "cancel", "args": {}}, _turn(calls=CALLS), False),
    ("tool_call_count", {"min": 2, "max": 2}, _turn(calls=CALLS), True),
    ("tool_call_count", {"tool": "refund", "max": 0}, _turn(calls=CALLS), False),
    ("tool_call_sequence", {"sequence": ["lookup_order", "refund"]}, _turn(calls=CALLS), True),
    ("tool_call_sequence", {"sequence": ["refund", "lookup_order"]}, _turn(calls=CALLS), False),
    ("no_tool_errors", {}, _turn(calls=CALLS), True),
    ("no_tool_errors", {}, _turn(calls=CALLS, error="HTTP 500"), False),
    ("tool_result_includes", {"tool": "lookup_order", "patterns": ["shipped"]}, _turn(calls=CALLS), True),
    ("tool_result_includes", {"patterns": ["cancelled"]}, _turn(calls=CALLS), False),
]


@pytest.mark.parametrize(("kind", "params", "messages", "expected"), CASES,
                         ids=[f"{c[0]}-{'pass' if c[3] else 'fail'}-{i}" for i, c in enumerate(CASES)])
async def test_assertion(kind: str, params: dict[str, Any], messages: list[Message], expected: bool) -> None:
    ctx = AssertionContext("turn", messages[1:], messages)
    result = await evaluate(AssertionSpec(type=kind, params=params), ctx)
    assert result.passed is expected, result.message
    assert result.message


async def test_custom_message_prefixes_failure() -> None:
    messages = _turn("no")
    spec = AssertionSpec(type="contains", params={"patterns": ["yes"]}, message="must agree")
    result = await evaluate(spec, AssertionContext("turn", messages, messages))
    assert result.message.startswith("must agree: ")


async def test_when_condition_skips_assertion() -> None:
    messages = _turn()
    spec = AssertionSpec.model_validate({"type": "contains", "params": {"patterns": ["zzz"]},
                                         "when": {"tool_called": "lookup_order"}})
    result = await evaluate(spec, AssertionContext("turn", messages, messages))
    assert result.passed and result.skipped
    with_call = _turn(calls=CALLS)
    result = await evaluate(spec, AssertionContext("turn", with_call, with_call))
    assert not result.passed and not result.skipped


async def test_conversation_scope_sees_every_reply() -> None:
    messages = [Message("user", "a"), Message("assistant", "first"), Message("user", "b"),
                Message("assistant", "second")]
    spec = AssertionSpec(type="contains", params={"patterns": ["first", "second"]})
    assert (await evaluate(spec, AssertionContext("conversation", messages, messages))).passed
    assert not (await evaluate(spec, AssertionContext("turn", messages[2:], messages))).passed


@pytest.mark.parametrize(("verdict", "min_score", "passed"), [
    ('{"passed": true, "score": 0.6, "reasoning": "ok"}', None, False),  # the score decides, as upstream
    ('{"passed": true, "reasoning": "ok"}', None, True),
    ('{"passed": true, "score": 0.6}', 0.8, False),
    ('{"score": 0.6}', 0.5, True),
    ('{"score": 0.6}', None, False),
    ("Verdict: FAIL - rude", None, False),
    ("PASS", None, True),
])
async def test_llm_judge_threshold(verdict: str, min_score: float | None, passed: bool) -> None:
    asked: list[str] = []

    async def judge(name: str, task: str, prompt: str | None) -> Verdict:
        asked.append(task)
        return parse_verdict(verdict)

    messages = _turn("Hello, happy to help")
    spec = AssertionSpec(type="llm_judge", params={"criteria": "be polite"}, min_score=min_score)
    result = await evaluate(spec, AssertionContext("turn", messages, messages, judge))
    assert result.passed is passed, result.message
    assert "be polite" in asked[0] and "Hello, happy to help" in asked[0]


async def test_assertion_wrapper_uses_inner_type_and_min_score() -> None:
    async def judge(name: str, task: str, prompt: str | None) -> Verdict:
        return parse_verdict('{"score": 0.7}')

    messages = _turn()
    for min_score, passed in ((0.5, True), (0.9, False)):
        spec = AssertionSpec(type="assertion", params={"eval_type": "llm_judge", "min_score": min_score,
                                                       "eval_params": {"criteria": "x"}})
        result = await evaluate(spec, AssertionContext("turn", messages, messages, judge))
        assert result.passed is passed
        assert result.type == "assertion:llm_judge"


def test_judge_reply_without_verdict_is_an_error() -> None:
    with pytest.raises(ValueError, match="no verdict"):
        parse_verdict("I think it is fine")


@pytest.mark.parametrize(("kind", "params", "missing"), [
    ("contains", {}, ["patterns"]),
    ("contains", {"patterns": ["x"]}, []),
    ("json_schema", {}, ["schema"]),
    ("regex", {"pattern": "x"}, []),
    ("assertion", {}, ["eval_type"]),
    ("assertion", {"eval_type": "contains", "eval_params": {}}, ["patterns"]),
    ("llm_judge_session", {}, ["criteria"]),
    ("no_tool_errors", {}, []),
])
def test_required_params(kind: str, params: dict[str, Any], missing: list[str]) -> None:
    assert required_params(kind, params) == missing


async def test_guardrail_triggered() -> None:
    reply = Message("assistant", "MegaCorp is cheaper", meta={"validators": [
        {"type": "banned_words", "triggered": True, "message": "banned words ['megacorp']"}]})
    messages = [Message("user", "q"), reply]
    fired = AssertionSpec(type="guardrail_triggered", params={"validator": "banned_words"})
    quiet = AssertionSpec(type="guardrail_triggered", params={"validator": "banned_words", "should_trigger": False})
    ctx = AssertionContext("turn", messages, messages)
    assert (await evaluate(fired, ctx)).passed
    assert not (await evaluate(quiet, ctx)).passed
