"""Templating, line-tracking YAML, and run planning."""

from __future__ import annotations

from pathlib import Path

import pytest

from arena_operator.engine.bundle import load_bundle
from arena_operator.engine.envexpand import UnsetVariable, expand
from arena_operator.engine.errors import TemplateError
from arena_operator.engine.plan import RunFilters, generate_plan, iter_plan
from arena_operator.engine.templating import render
from arena_operator.engine.yamlsrc import YamlSyntaxError, format_path, line_of, load_yaml_text


def test_render_substitutes_and_repeats() -> None:
    assert render("Hi {{name}} from {{ place }}", {"name": "Ada", "place": "{{city}}", "city": "Paris"}) == (
        "Hi Ada from Paris")


def test_render_unresolved_placeholder_is_an_error() -> None:
    with pytest.raises(TemplateError, match=r"\{\{missing\}\}"):
        render("Hi {{missing}}", {})


def test_render_does_not_execute_anything() -> None:
    assert render("{{x}}", {"x": "{% for i in range(9) %}{{ ''.__class__ }}"}) == (
        "{% for i in range(9) %}{{ ''.__class__ }}")


def test_render_self_reference_is_bounded() -> None:
    with pytest.raises(TemplateError):
        render("{{a}}", {"a": "{{a}}x"})


def test_yaml_lines_and_paths() -> None:
    doc = load_yaml_text("spec:\n  turns:\n    - role: user\n    - role: bot\n      content: x\n")
    assert line_of(doc, ["spec", "turns", 1, "role"]) == 4
    assert line_of(doc, ["spec", "turns", 1, "content"]) == 5
    assert line_of(doc, ["spec", "turns", 7, "role"]) == 2  # deepest existing element
    assert format_path(["spec", "turns", 1, "assertions", 0, "type"]) == "spec.turns[1].assertions[0].type"


def test_yaml_syntax_error_has_line() -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        load_yaml_text("a: 1\nb: [1, 2\nc: 3\n")
    assert caught.value.line >= 2


def test_env_expansion() -> None:
    env = {"TYPE": "openai"}
    assert expand("${TYPE:-mock}", env) == "openai"
    assert expand("${MISSING:-mock}", env) == "mock"
    assert expand("price ${lower} stays", env) == "price ${lower} stays"
    with pytest.raises(UnsetVariable):
        expand("${MISSING}", env)


def test_plan_of_quickstart(quickstart: Path) -> None:
    bundle = load_bundle(quickstart)
    plan = generate_plan(bundle)
    # judge and customer-sim are in their own groups, so only the assistant runs each scenario
    assert {c.provider_id for c in plan.combinations} == {"support-assistant"}
    assert len(plan) == len(bundle.scenarios) == 6
    ids = [c.run_id for c in plan.combinations]
    assert len(set(ids)) == len(ids)
    assert ids == [c.run_id for c in generate_plan(bundle).combinations]  # deterministic


def test_plan_filters_and_trials(quickstart: Path) -> None:
    bundle = load_bundle(quickstart)
    only = RunFilters(scenarios=["order-*", "scenarios/greeting.yaml"], trials=3, regions=["eu", "us"])
    combos = list(iter_plan(bundle, only))
    assert {c.scenario_id for c in combos} == {"order-status", "greeting"}
    assert len(combos) == 2 * 3 * 2
    excluded = list(iter_plan(bundle, RunFilters(exclude_scenarios=["*-customer*", "escalation"])))
    assert {c.scenario_id for c in excluded} == {"greeting", "order-status", "refund-policy", "competitor-question"}
    assert list(iter_plan(bundle, RunFilters(providers=["nope*"]))) == []
