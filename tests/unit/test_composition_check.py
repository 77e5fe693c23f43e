"""Load-time checks of `compositions:` (engine/composition/check.py): every problem names config.arena.yaml at
the line of the offending key, table-driven over one bad composition per case."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from arena_operator.engine.bundle import load_bundle
from arena_operator.engine.composition.model import MAX_PARALLEL_BRANCHES, MAX_STEPS
from arena_operator.engine.errors import BundleInvalid

ARENA = """\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Arena
metadata: {{name: checks}}
spec:
  prompt_configs:
    - {{id: classify, file: classify.yaml}}
  providers:
    - file: mock.yaml
  scenarios:
    - file: s.yaml
  tools:
    - file: lookup.yaml
  workflow:
    version: 1
    entry: run
    states:
      run: {{orchestration: composition, composition: c, terminal: true}}
  compositions:
    c:
{body}
  defaults: {{}}
"""
FILES = {
    "classify.yaml": "kind: PromptConfig\nmetadata: {name: classify}\nspec: {task_type: classify_doc, "
                     "system_template: Classify., allowed_tools: [lookup]}\n",
    "mock.yaml": "kind: Provider\nmetadata: {name: m}\nspec: {type: mock}\n",
    "s.yaml": "kind: Scenario\nmetadata: {name: s}\nspec: {description: d, turns: [{role: user, content: hi}]}\n",
    "lookup.yaml": "kind: Tool\nmetadata: {name: lookup}\nspec: {description: d, mode: mock, mock_result: {}}\n",
    "schema.json": '{"type": "object"}',
    "broken.json": '{"type": 12}',
}
GOOD = """\
version: 1
steps:
  - {id: a, kind: prompt, prompt_task: classify_doc, input: "${input}"}
"""


def _bundle(tmp_path: Path, body: str) -> Path:
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "config.arena.yaml").write_text(ARENA.format(body=textwrap.indent(body, "      ")))
    return tmp_path


def _problems(tmp_path: Path, body: str) -> list[str]:
    with pytest.raises(BundleInvalid) as caught:
        load_bundle(_bundle(tmp_path, body))
    return [str(p) for p in caught.value.problems]


def _line(tmp_path: Path, marker: str) -> int:
    lines = (tmp_path / "config.arena.yaml").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if marker in line)


def test_a_good_composition_loads(tmp_path: Path) -> None:
    bundle = load_bundle(_bundle(tmp_path, GOOD))
    assert list(bundle.compositions.specs) == ["c"]
    assert bundle.compositions.prompts["classify_doc"] == "classify"


STEP = '  - {id: a, kind: prompt, prompt_task: classify_doc, input: "${input}"}\n'
STEP_B = STEP.replace("id: a", "id: b")
CASES = [
    # (body, marker on the line the problem is reported at, message)
    ("version: 2\nsteps:\n" + STEP, "version: 2", "version must be 1, got 2"),
    ("version: 1\nsteps: []\n", "steps: []", "needs at least one step"),
    ("version: 1\nsteps:\n  - {id: 9x, kind: prompt, prompt_task: classify_doc}\n", "9x", "must match"),
    ("version: 1\nsteps:\n" + STEP + STEP.replace("input", "output_schema: schema.json, x"), "id: a, kind: prompt, "
     "prompt_task: classify_doc, output_schema", "duplicate step id 'a'"),
    ("version: 1\nsteps:\n  - {id: a, kind: promt, prompt_task: classify_doc}\n", "promt",
     "unknown kind 'promt' (did you mean 'prompt'?)"),
    ("version: 1\nsteps:\n  - {id: a, kind: prompt, prompt_task: classify}\n", "prompt_task: classify}",
     "prompt config 'classify' has task_type 'classify_doc'"),
    ("version: 1\nsteps:\n  - {id: a, kind: prompt, prompt_task: classify_doc, then: a}\n", "then: a",
     "field 'then' is not allowed for kind 'prompt'"),
    ("version: 1\nsteps:\n  - {id: a, kind: agent, prompt_task: classify_doc}\n", "kind: agent",
     "must declare termination"),
    ("version: 1\nsteps:\n  - {id: a, kind: tool, tool: lokup}\n", "lokup", "lokup"),
    ("version: 1\nsteps:\n" + STEP + "  - id: r\n    kind: branch\n    predicate: {path: '${a.output.x}', "
     "op: equals, value: 1}\n    then: nowhere\n", "then: nowhere", "then 'nowhere' does not name a step"),
    ("version: 1\nsteps:\n" + STEP + "  - id: r\n    kind: branch\n    predicate: {path: '${a.output.x}', "
     "op: bigger, value: 1}\n    then: b\n" + STEP_B, "op: bigger", "predicate op 'bigger' is not valid"),
    ("version: 1\nsteps:\n" + STEP + "  - id: r\n    kind: branch\n    predicate: {path: '${a.output.x}', "
     "op: in, value: 1}\n    then: b\n" + STEP_B, "op: in", "op 'in' needs a list value"),
    ("version: 1\nsteps:\n" + STEP + "  - id: r\n    kind: branch\n    predicate: {path: 'a.output.x', "
     "op: equals, value: 1}\n    then: b\n" + STEP_B, "path: 'a.output.x'", "must be a single reference"),
    ("version: 1\nsteps:\n" + STEP + "  - id: r\n    kind: branch\n    predicate: {path: '${a.output.x}', "
     "op: equals, value: 1, exists: true}\n    then: b\n" + STEP_B, "predicate:", "exactly one of"),
    # a then pointing back closes a cycle: r → a (sequential) and a → r (then)
    ("version: 1\nsteps:\n" + STEP + "  - id: r\n    kind: branch\n    predicate: {path: '${a.output.x}', "
     "exists: true}\n    then: a\n", "- {id: a", "cycle: a → r → a"),
    ("version: 1\nsteps:\n  - {id: a, kind: prompt, prompt_task: classify_doc, input: '${b.output}'}\n"
     "  - {id: b, kind: prompt, prompt_task: classify_doc}\n", "input: '${b.output}'",
     "references step 'b', which has not run when 'a' does"),
    ("version: 1\nsteps:\n  - {id: a, kind: prompt, prompt_task: classify_doc, input: '${clasify.output}'}\n",
     "${clasify", "references unknown 'clasify'"),
    ("version: 1\noutput: missing\nsteps:\n" + STEP, "output: missing", "output 'missing' does not name a step"),
    ("version: 1\nsteps:\n  - id: p\n    kind: parallel\n    branches:\n"
     "      - {id: x, kind: prompt, prompt_task: classify_doc}\n"
     "      - {id: y, kind: branch, predicate: {path: '${input}', exists: true}, then: x}\n"
     "    reduce: {strategy: barrier, into: m}\n", "id: y", "a parallel branch must be a prompt, agent or tool"),
    ("version: 1\nsteps:\n  - id: p\n    kind: parallel\n    branches:\n"
     "      - {id: x, kind: prompt, prompt_task: classify_doc}\n"
     "      - {id: y, kind: prompt, prompt_task: classify_doc}\n"
     "    reduce: {strategy: merge, into: m}\n", "strategy: merge", "reduce.strategy 'merge' is not valid"),
    ("version: 1\nsteps:\n  - id: p\n    kind: parallel\n    branches:\n"
     "      - {id: x, kind: prompt, prompt_task: classify_doc}\n"
     "      - {id: y, kind: prompt, prompt_task: classify_doc}\n"
     "    reduce: {strategy: barrier, into: m}\n  - {id: z, kind: prompt, prompt_task: classify_doc, "
     "input: '${x.output}'}\n", "id: z", "a branch of parallel step 'p'"),
    ("version: 1\nsteps:\n  - {id: a, kind: prompt, prompt_task: classify_doc, output_schema: nope.json}\n",
     "nope.json", "nope.json: schema file not found"),
    ("version: 1\nsteps:\n  - {id: a, kind: prompt, prompt_task: classify_doc, output_schema: ../x.json}\n",
     "../x.json", "is outside the bundle"),
    ("version: 1\nsteps:\n  - {id: a, kind: prompt, prompt_task: classify_doc, output_schema: broken.json}\n",
     "broken.json", "broken.json: not a JSON schema"),
    ("version: 1\nsteps:\n  - {id: a, kind: agent, prompt_task: classify_doc, termination: {max_steps: 500}}\n",
     "max_steps: 500", "less than or equal to 50"),
    ("version: 1\nsteps:\n" + "".join(f"  - {{id: s{i}, kind: prompt, prompt_task: classify_doc}}\n"
                                       for i in range(MAX_STEPS + 1)), "steps:", f"at most {MAX_STEPS}"),
    ("version: 1\nsteps:\n  - id: p\n    kind: parallel\n    branches:\n" + "".join(
        f"      - {{id: b{i}, kind: prompt, prompt_task: classify_doc}}\n" for i in range(MAX_PARALLEL_BRANCHES + 1))
     + "    reduce: {strategy: append, into: m}\n", "branches:", f"at most {MAX_PARALLEL_BRANCHES}"),
]


@pytest.mark.parametrize(("body", "marker", "message"), CASES, ids=[c[2][:40] for c in CASES])
def test_problem_names_file_and_line(tmp_path: Path, body: str, marker: str, message: str) -> None:
    problems = _problems(tmp_path, body)
    line = _line(tmp_path, marker)
    assert any(p.startswith(f"config.arena.yaml:{line}:") and message in p for p in problems), problems


def test_unknown_keys_are_warnings_with_a_suggestion(tmp_path: Path) -> None:
    bundle = load_bundle(_bundle(tmp_path, GOOD.replace('input: "${input}"', 'input: "${input}", ouptut_schema: x')),
                         log_warnings=False)
    assert any("unknown key 'ouptut_schema' (did you mean 'output_schema'?)" in str(w) for w in bundle.warnings)


def test_schema_only_skips_references(tmp_path: Path) -> None:
    body = "version: 1\nsteps:\n  - {id: a, kind: prompt, prompt_task: nothing_like_it, output_schema: gone.json}\n"
    assert "c" in load_bundle(_bundle(tmp_path, body), schema_only=True).compositions.specs
