"""Composition references, predicates, reducers and Go's JSON text (engine/composition/scope.py), table-driven
against upstream's composition engine semantics."""

from __future__ import annotations

from typing import Any

import pytest

from arena_operator.engine.composition.model import Predicate, Reducer
from arena_operator.engine.composition.scope import (
    ScopeError,
    composition_input,
    decode_json,
    evaluate,
    go_json,
    reduce,
    ref_roots,
    resolve_input,
    step_text,
)

SCOPE: dict[str, Any] = {
    "input": "hello",
    "classify": {"output": {"type": "research_paper", "confidence": 0.95, "tags": ["a", "b"], "ok": True,
                            "count": 3.0}},
    "plain": {"output": "just text"},
}


@pytest.mark.parametrize(("value", "expected"), [
    ("${input}", "hello"),
    ("${ input }", "hello"),
    ("${classify.output}", SCOPE["classify"]["output"]),  # a whole reference keeps the value's type
    ("${classify.output.confidence}", 0.95),
    ("Type: ${classify.output.type}!", "Type: research_paper!"),  # embedded: Go's %v text
    ("n=${classify.output.count} ok=${classify.output.ok}", "n=3 ok=true"),
    ("${classify.output.tags}", ["a", "b"]),
    ("tags ${classify.output.tags}", "tags [a b]"),
    ({"doc": "${input}", "kind": ["${classify.output.type}", 1]}, {"doc": "hello", "kind": ["research_paper", 1]}),
    ("no references", "no references"),
    (7, 7),
])
def test_resolve_input(value: Any, expected: Any) -> None:
    assert resolve_input(value, SCOPE) == expected


@pytest.mark.parametrize("value", ["${missing}", "${classify.output.nope}", "x ${plain.output.field} y",
                                   {"a": ["${input.deeper}"]}])
def test_unresolved_reference_is_an_error(value: Any) -> None:
    with pytest.raises(ScopeError, match="unresolved reference"):
        resolve_input(value, SCOPE)


def _p(**kwargs: Any) -> Predicate:
    return Predicate.model_validate(kwargs)


@pytest.mark.parametrize(("predicate", "expected"), [
    (_p(path="${classify.output.type}", op="equals", value="research_paper"), True),
    (_p(path="${classify.output.type}", op="not_equals", value="research_paper"), False),
    (_p(path="${classify.output.count}", op="equals", value=3), True),  # numbers compare numerically
    (_p(path="${classify.output.ok}", op="equals", value=1), False),  # a bool is not a number
    (_p(path="${classify.output.ok}", op="equals", value=True), True),
    (_p(path="${classify.output.tags}", op="equals", value=["a", "b"]), True),
    (_p(path="${classify.output.missing}", op="equals", value="x"), False),  # a missing path is null
    (_p(path="${classify.output.missing}", op="not_equals", value="x"), True),
    (_p(path="${classify.output.type}", op="in", value=["x", "research_paper"]), True),
    (_p(path="${classify.output.type}", op="not_in", value=["x"]), True),
    (_p(path="${classify.output.confidence}", op="greater_than", value=0.9), True),
    (_p(path="${classify.output.confidence}", op="less_than_or_equals", value=0.95), True),
    (_p(path="${classify.output.confidence}", op="less_than", value=0.5), False),
    (_p(path="${classify.output.count}", op="greater_than_or_equals", value=3), True),
    (_p(path="${classify.output.type}", exists=True), True),
    (_p(path="${classify.output.gone}", exists=False), True),
    (_p(all_of=[{"path": "${input}", "op": "equals", "value": "hello"},
                {"path": "${classify.output.ok}", "op": "equals", "value": True}]), True),
    (_p(any_of=[{"path": "${input}", "op": "equals", "value": "bye"},
                {"path": "${classify.output.count}", "op": "less_than", "value": 1}]), False),
    (_p(**{"not": {"path": "${input}", "op": "equals", "value": "bye"}}), True),
])
def test_predicates(predicate: Predicate, expected: bool) -> None:
    assert evaluate(predicate, SCOPE) is expected


@pytest.mark.parametrize("predicate", [
    _p(path="${classify.output.type}", op="greater_than", value=1),  # ordered needs numbers on both sides
    _p(path="${classify.output.missing}", op="less_than", value=1),
])
def test_ordered_comparison_of_non_numbers_is_an_error(predicate: Predicate) -> None:
    with pytest.raises(ScopeError, match="requires numbers"):
        evaluate(predicate, SCOPE)


@pytest.mark.parametrize(("strategy", "expected"), [
    ("barrier", {"a": 1, "b": {"x": 2}}),
    ("append", [1, {"x": 2}]),
    ("replace", {"x": 2}),
])
def test_reducers(strategy: str, expected: Any) -> None:
    assert reduce(Reducer(strategy=strategy, into="m"), [("a", 1), ("b", {"x": 2})]) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ({"b": 1.0, "a": [0.95, 1e-7, 1e21, 0.00001, -2.5]}, '{"a":[0.95,1e-7,1e+21,0.00001,-2.5],"b":1}'),
    ("a <b> & c\u2028", '"a \\u003cb\\u003e \\u0026 c\\u2028"'),  # Go's HTML-safe escapes
    ("line\nquote\"tab\t", '"line\\nquote\\"tab\\t"'),
    ({"z": None, "y": True, "x": "ü"}, '{"x":"ü","y":true,"z":null}'),
])
def test_go_json(value: Any, expected: str) -> None:
    assert go_json(value) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ('{"doc": "x"}', {"doc": "x"}),
    ("  [1, 2] ", [1.0, 2.0]),
    ("42", "42"),  # bare scalars stay text, as upstream
    ("{not json", "{not json"),
    ("plain words", "plain words"),
])
def test_composition_input(text: str, expected: Any) -> None:
    assert composition_input(text) == expected


@pytest.mark.parametrize(("resolved", "expected"), [
    ("text", "text"), (None, ""), ({"b": 2.0, "a": "<"}, '{"a":"\\u003c","b":2}'), ([1.0, "x"], '[1,"x"]'),
])
def test_step_text(resolved: Any, expected: str) -> None:
    assert step_text(resolved) == expected


@pytest.mark.parametrize(("text", "valid"), [("{}", True), (' "s" ', True), ("NaN", False), ("[1,]", False),
                                             ("{} {}", False)])
def test_decode_json_is_go_strict(text: str, valid: bool) -> None:
    assert decode_json(text)[0] is valid


def test_ref_roots() -> None:
    assert ref_roots({"a": "${input} and ${classify.output.x}", "b": ["${meta.output}"], "c": 3}) == {
        "input", "classify", "meta"}
