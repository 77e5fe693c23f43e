"""A hostile bundle is refused with a problem naming its file (and line), never a traceback, a hang or an OOM:
parse limits (size, aliases, depth, control characters), template expansion limits, durations that are numbers,
sizes it may ask for, and files it may reference (only its own)."""

from __future__ import annotations

import itertools
import os
import shutil
import time
from pathlib import Path

import pytest

from arena_operator.engine.bundle import load_bundle
from arena_operator.engine.errors import BundleInvalid, TemplateError
from arena_operator.engine.templating import MAX_RENDERED_CHARS, render
from arena_operator.engine.yamlsrc import MAX_YAML_BYTES

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    root = tmp_path / "bundle"
    shutil.copytree(QUICKSTART, root)
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def problems(root: Path) -> list[str]:
    started = time.monotonic()
    with pytest.raises(BundleInvalid) as caught:
        load_bundle(root)
    assert time.monotonic() - started < 30  # bounded work, not a hang (generous for a loaded machine)
    return [str(p) for p in caught.value.problems]


def assert_problem(found: list[str], prefix: str, *words: str) -> None:
    assert any(p.startswith(prefix) and all(w in p for w in words) for p in found), found


def alias_bomb(levels: str = "abcdefghi") -> str:
    lines = ['  bomb_a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, level in itertools.pairwise(levels):
        lines.append(f"  bomb_{level}: &{level} [" + ", ".join([f"*{prev}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_at_the_anchor_that_expands_too_far(bundle: Path) -> None:
    provider = bundle / "providers" / "assistant.yaml"
    edit(provider, "  defaults:\n", alias_bomb() + "  defaults:\n")
    line = provider.read_text().splitlines().index(next(x for x in provider.read_text().splitlines()
                                                        if x.startswith("  bomb_f:"))) + 1
    assert_problem(problems(bundle), f"providers/assistant.yaml:{line}:", "more than 1,000,000 values",
                   "alias bomb")


def test_deep_nesting_is_refused_with_its_line_not_a_recursion_error(bundle: Path) -> None:
    edit(bundle / "scenarios" / "greeting.yaml", "  turns:\n", "  context:\n    deep: " + "[" * 500 + "]" * 500
         + "\n  turns:\n")
    assert_problem(problems(bundle), "scenarios/greeting.yaml:9:", "nesting deeper than 100 levels")


def test_a_480_deep_json_schema_is_refused_not_a_traceback(bundle: Path) -> None:
    tool = bundle / "tools" / "lookup-order.yaml"
    schema = "{type: object, properties: {x: " * 480 + "{type: string}" + "}}" * 480
    edit(tool, "  mode: mock\n", f"  output_schema: {schema}\n  mode: mock\n")
    assert_problem(problems(bundle), "tools/lookup-order.yaml:", "nesting deeper than 100 levels")


@pytest.mark.parametrize("character", ["\x00", "\x07", "\x1b"])
def test_a_control_character_is_a_syntax_error_at_its_line_and_column(bundle: Path, character: str) -> None:
    edit(bundle / "scenarios" / "greeting.yaml", "Hi there,", f"Hi{character} there,")
    assert_problem(problems(bundle), "scenarios/greeting.yaml:10:", f"character {ord(character):#06x} is not "
                   "allowed")


def test_an_oversized_file_is_refused_before_it_is_read(bundle: Path) -> None:
    scenario = bundle / "scenarios" / "greeting.yaml"
    with scenario.open("a") as out:
        out.write("# " + "x" * MAX_YAML_BYTES + "\n")
    assert_problem(problems(bundle), "scenarios/greeting.yaml: ", f"at most {MAX_YAML_BYTES:,}")


def test_variables_that_multiply_are_cut_at_the_output_limit(bundle: Path) -> None:
    """A chain of 7 variables, each 1,000 copies of the previous one: 10²¹ characters if rendered."""
    chain = "".join(f"        v{i}: \"" + f"{{{{v{i - 1}}}}}" * 1000 + "\"\n" for i in range(1, 8))
    edit(bundle / "config.arena.yaml", "        company: Acme Widgets\n",
         "        company: \"{{v7}}\"\n        v0: x\n" + chain)
    assert_problem(problems(bundle), "scenarios/", "system_template of task 'support'",
                   f"would exceed {MAX_RENDERED_CHARS:,} characters")


def test_a_mock_template_over_model_chosen_arguments_is_bounded() -> None:
    with pytest.raises(TemplateError, match="would exceed"):
        render('{"id": "{{order_id}}{{order_id}}"}', {"order_id": "x" * (MAX_RENDERED_CHARS // 2 + 1)})
    assert render("{{a}}", {"a": "{{b}}", "b": "ok"}) == "ok"  # variables naming variables still work


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-5s", "nans", "infm", "bogus"])
def test_a_run_timeout_that_is_not_a_finite_time_is_refused(bundle: Path, value: str) -> None:
    edit(bundle / "config.arena.yaml", "run_timeout: 2m", f"run_timeout: {value}")
    assert_problem(problems(bundle), "config.arena.yaml:", "defaults.run_timeout", "invalid duration")


def test_a_provider_timeout_of_nan_is_refused(bundle: Path) -> None:
    edit(bundle / "providers" / "assistant.yaml", "  defaults:\n", "  timeout: nan\n  defaults:\n")
    assert_problem(problems(bundle), "providers/assistant.yaml:", "timeout", "finite")


@pytest.mark.parametrize(("where", "old", "new", "field"), [
    ("config.arena.yaml", "concurrency: 6", "concurrency: 1000000000", "defaults.concurrency"),
    ("scenarios/frustrated-customer.yaml", "turns: 2", "turns: 1000000000", "turns[0].turns"),
])
def test_sizes_a_bundle_may_ask_for_are_bounded(bundle: Path, where: str, old: str, new: str, field: str) -> None:
    edit(bundle / where, old, new)
    assert_problem(problems(bundle), f"{where}:", field, "less than or equal to 1000")


@pytest.mark.parametrize("ref", ["../outside.yaml", "/etc/passwd", "/no/such/file", "scenarios/../../outside.yaml"])
def test_a_file_reference_outside_the_bundle_is_refused_whether_it_exists_or_not(bundle: Path, ref: str) -> None:
    (bundle.parent / "outside.yaml").write_text((bundle / "scenarios" / "greeting.yaml").read_text())
    edit(bundle / "config.arena.yaml", "file: scenarios/greeting.yaml", f"file: {ref}")
    found = problems(bundle)
    assert_problem(found, "config.arena.yaml:", "scenarios[0].file", "inside the bundle")
    assert not any("not found" in p for p in found), found  # no oracle for the host's files


def test_a_symlink_leading_out_of_the_bundle_is_refused(bundle: Path) -> None:
    (bundle.parent / "outside.yaml").write_text((bundle / "scenarios" / "greeting.yaml").read_text())
    os.symlink(bundle.parent / "outside.yaml", bundle / "scenarios" / "link.yaml")
    edit(bundle / "config.arena.yaml", "file: scenarios/greeting.yaml", "file: scenarios/link.yaml")
    assert_problem(problems(bundle), "config.arena.yaml:", "scenarios[0].file", "outside the bundle", "symlink")


def test_a_symlink_inside_the_bundle_still_works(bundle: Path) -> None:
    os.symlink("greeting.yaml", bundle / "scenarios" / "link.yaml")
    edit(bundle / "config.arena.yaml", "file: scenarios/greeting.yaml", "file: scenarios/link.yaml")
    assert "greeting" in load_bundle(bundle).scenarios


@pytest.mark.parametrize("ref", ["../secret.yaml", "/etc/hostname"])
def test_a_mock_config_outside_the_bundle_is_refused(bundle: Path, ref: str) -> None:
    (bundle.parent / "secret.yaml").write_text("default: the operator's secret\n")
    edit(bundle / "providers" / "assistant.yaml", "mock_config: mocks/assistant.yaml", f"mock_config: {ref}")
    assert_problem(problems(bundle), "providers/assistant.yaml:", "additional_config.mock_config",
                   "outside the bundle")


def test_an_eval_file_outside_the_bundle_is_refused(bundle: Path) -> None:
    edit(bundle / "config.arena.yaml", "  judges:\n", "  evals:\n    - file: ../../etc/passwd\n  judges:\n")
    assert_problem(problems(bundle), "config.arena.yaml:", "evals[0].file", "inside the bundle")
