"""Broken bundles: every problem is reported as `file:line: field: message`, and all of them at once.

Each case starts from a small valid bundle (BASE), replaces whole files with a broken version and checks
that `load_bundle` raises BundleInvalid listing the exact problem line. Line numbers refer to the file text
written in the case, so they can be checked by reading it. Field paths are relative to `spec` (the loader
reports `turns[0].assertions[0].type`, not `spec.turns[0]…`); paths outside `spec` keep their root
(`metadata.name`, `kind`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from arena_operator import cli
from arena_operator.engine.bundle import load_bundle
from arena_operator.engine.errors import BundleInvalid, BundleProblem

ARENA = """\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Arena
metadata:
  name: broken
spec:
  prompt_configs:
    - id: support
      file: prompts/support.yaml
  providers:
    - file: providers/mock.yaml
  scenarios:
    - file: scenarios/refund.yaml
  self_play:
    personas:
      - file: personas/angry-customer.yaml
    roles:
      - id: customer
        provider: mock
  defaults:
    temperature: 0
"""

PROVIDER = """\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Provider
metadata:
  name: mock
spec:
  type: mock
  model: mock-model
"""

PROMPT = """\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: PromptConfig
metadata:
  name: support
spec:
  task_type: support
  system_template: You help customers of {{company}}.
  variables:
    - name: company
      default: Acme
"""

PERSONA = """\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Persona
metadata:
  name: angry-customer
spec:
  description: Upset about a late delivery
  system_prompt: You are angry about a late delivery.
"""

SCENARIO = """\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Scenario
metadata:
  name: refund
spec:
  description: Refund request
  task_type: support
  turns:
    - role: user
      content: I want a refund.
      assertions:
        - type: contains
          params:
            patterns: [refund]
    - role: customer
      persona: angry-customer
      turns: 2
"""

BASE: dict[str, str] = {
    "config.arena.yaml": ARENA,
    "providers/mock.yaml": PROVIDER,
    "prompts/support.yaml": PROMPT,
    "personas/angry-customer.yaml": PERSONA,
    "scenarios/refund.yaml": SCENARIO,
}

UNSET_ENV = "ARENA_COMPAT_TEST_UNSET_BASE_URL"


def write_bundle(root: Path, overrides: dict[str, str]) -> Path:
    for name, text in {**BASE, **overrides}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def problems_of(root: Path) -> list[BundleProblem]:
    with pytest.raises(BundleInvalid) as info:
        load_bundle(root)
    assert info.value.problems, "BundleInvalid without problems"
    return info.value.problems


def _scenario(text: str) -> dict[str, str]:
    return {"scenarios/refund.yaml": text}


# The YAML parser's wording depends on whether PyYAML runs on libyaml (the normal case for the wheels).
_YAML_PROBLEM = ("did not find expected '-' indicator" if yaml.__with_libyaml__
                 else "expected <block end>, but found '<block mapping start>'")


@dataclass(frozen=True)
class Case:
    id: str
    files: dict[str, str]
    expected: str
    env_unset: tuple[str, ...] = field(default=())


CASES = [
    Case("yaml-syntax", _scenario("""\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Scenario
metadata:
  name: refund
spec:
  description: Refund request
  task_type: support
  turns:
    - role: user
      content: I want a refund.
     assertions:
        - type: contains
"""), f"scenarios/refund.yaml:11:6: invalid YAML: {_YAML_PROBLEM}"),
    Case("wrong-kind", _scenario(SCENARIO.replace("kind: Scenario", "kind: Scenaro")),
         "scenarios/refund.yaml:2:1: kind: expected kind 'Scenario', got 'Scenaro'"),
    Case("missing-description", _scenario("""\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Scenario
metadata:
  name: refund
spec:
  task_type: support
  turns:
    - role: user
      content: I want a refund.
"""), "scenarios/refund.yaml:5:1: description: required field is missing"),
    Case("provider-type-enum", {"providers/mock.yaml": """\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Provider
metadata:
  name: mock
spec:
  type: openia
  model: gpt-4o-mini
"""}, "providers/mock.yaml:6:3: type: unknown provider type 'openia' (did you mean 'openai'?); upstream knows "
          "openai, claude, gemini, ollama, vllm, mock, replay, imagen, huggingface, elevenlabs, cartesia, voyageai"),
    Case("unknown-assertion", _scenario("""\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Scenario
metadata:
  name: refund
spec:
  description: Refund request
  task_type: support
  turns:
    - role: user
      content: Hello
    - role: user
      content: I want a refund.
    - role: user
      content: Now, please.
      assertions:
        - type: contians
          params:
            patterns: [refund]
"""), "scenarios/refund.yaml:16:11: turns[2].assertions[0].type: unknown assertion 'contians' "
      "(did you mean 'contains'?)"),
    Case("wrapper-params-missing", _scenario("""\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Scenario
metadata:
  name: refund
spec:
  description: Refund request
  task_type: support
  turns:
    - role: user
      content: I want a refund.
      assertions:
        - type: assertion
          params:
            eval_params:
              criteria: Polite
            min_score: 0.8
"""), "scenarios/refund.yaml:13:11: turns[0].assertions[0].params: assertion 'assertion' needs params.eval_type"),
    Case("wrapper-unknown-eval-type", _scenario(SCENARIO.replace("""        - type: contains
          params:
            patterns: [refund]""", """        - type: assertion
          params:
            eval_type: llm_jugde""")),
         "scenarios/refund.yaml:13:11: turns[0].assertions[0].params: params.eval_type: unknown assertion 'llm_jugde' "
         "(did you mean 'llm_judge'?)"),
    Case("unknown-validator", {"prompts/support.yaml": PROMPT + "  validators:\n    - type: banned_wrods\n"},
         "prompts/support.yaml:12:7: validators[0].type: unknown validator 'banned_wrods' (any eval type is a "
         "validator) (did you mean 'banned_words'?)"),
    Case("mcp-tool-of-undeclared-server", {"prompts/support.yaml": PROMPT + "  allowed_tools:\n  - mcp__fs__read\n"},
         "prompts/support.yaml:12:5: allowed_tools[0]: unknown tool 'mcp__fs__read': 'fs' is not in spec.mcp_servers"),
    Case("unknown-provider", _scenario("""\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Scenario
metadata:
  name: refund
spec:
  description: Refund request
  task_type: support
  providers:
    - mock
    - mok
  turns:
    - role: user
      content: I want a refund.
"""), "scenarios/refund.yaml:10:7: providers[1]: unknown provider 'mok' (did you mean 'mock'?)"),
    Case("unknown-persona", _scenario(SCENARIO.replace("persona: angry-customer", "persona: angry-custmer")),
         "scenarios/refund.yaml:16:7: turns[1].persona: unknown persona 'angry-custmer' "
         "(did you mean 'angry-customer'?)"),
    Case("unsupported-role", _scenario(SCENARIO.replace("    - role: customer", "    - role: assistant")),
         "scenarios/refund.yaml:15:7: turns[1].role: unsupported role 'assistant'"),
    Case("task-type-without-prompt", _scenario(SCENARIO.replace("task_type: support", "task_type: suport")),
         "scenarios/refund.yaml:7:3: task_type: no prompt config has task_type 'suport' (did you mean 'support'?)"),
    Case("unresolved-template-variable", {"prompts/support.yaml": PROMPT.replace(
        "of {{company}}.", "of {{company}} in {{region}}.")},
         "scenarios/refund.yaml:5:1: variables: system_template of task 'support': unresolved placeholder {{region}}"),
    Case("duplicate-scenario-id", {
        "scenarios/refund-copy.yaml": SCENARIO,
        "config.arena.yaml": ARENA.replace("    - file: scenarios/refund.yaml\n",
                                           "    - file: scenarios/refund.yaml\n"
                                           "    - file: scenarios/refund-copy.yaml\n"),
    }, "scenarios/refund-copy.yaml:4:3: metadata.name: duplicate scenario id 'refund' "
       "(also defined in scenarios/refund.yaml)"),
    Case("unset-env-in-provider", {"providers/mock.yaml": f"""\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Provider
metadata:
  name: mock
spec:
  type: openai
  model: gpt-4o-mini
  base_url: ${{{UNSET_ENV}}}
  headers:
    X-Team: ${{ARENA_COMPAT_TEST_TEAM:-support}}
"""}, f"providers/mock.yaml:8:3: base_url: environment variable {UNSET_ENV} is not set (and has no default)",
         env_unset=(UNSET_ENV, "ARENA_COMPAT_TEST_TEAM")),
    Case("arena-defaults-missing", {"config.arena.yaml": ARENA.replace("  defaults:\n    temperature: 0\n", "")},
         "config.arena.yaml:5:1: defaults: required field is missing"),
    Case("turn-count-not-integer", _scenario(SCENARIO.replace("turns: 2", "turns: two")),
         "scenarios/refund.yaml:17:7: turns[1].turns: Input should be a valid integer, "
         "unable to parse string as an integer"),
    Case("judge-unknown-provider", {"config.arena.yaml": ARENA.replace(
        "  defaults:\n", "  judges:\n    - name: grader\n      provider: gpt-judge\n  defaults:\n")},
         "config.arena.yaml:21:7: judges[0].provider: unknown provider 'gpt-judge'"),
    # An allowed tool the bundle does not define: reported in the prompt file, on its line, like the rest.
    Case("unknown-allowed-tool", {"prompts/support.yaml": PROMPT + "  allowed_tools:\n    - serch\n"},
         "prompts/support.yaml:12:7: allowed_tools[0]: unknown tool 'serch'"),
    # A scenario written inline in the arena file: the field path says where it is in that file.
    Case("inline-scenario-unknown-assertion", {"config.arena.yaml": ARENA.replace("  defaults:\n", """\
  scenario_specs:
    quick:
      description: Inline smoke test
      turns:
        - role: user
          content: hi
          assertions:
            - type: contians
              params: {patterns: [hi]}
  defaults:
""")}, "config.arena.yaml:26:15: scenario_specs.quick.turns[0].assertions[0].type: unknown assertion 'contians' "
       "(did you mean 'contains'?)"),
]


# Warnings: the bundle loads (as upstream loads it) and `validate`/`run` print them; `strict` makes them errors.
WARNINGS: list[Case] = [
    Case("assertion-params-missing", _scenario("""\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Scenario
metadata:
  name: refund
spec:
  description: Refund request
  task_type: support
  turns:
    - role: user
      content: I want a refund.
      assertions:
        - type: contains
        - type: json_path
          params:
            expected: 3
"""), "scenarios/refund.yaml:12:11: turns[0].assertions[0].params: assertion 'contains' needs params.patterns "
          "(without it upstream scores 0: the assertion fails)"),
    Case("unknown-scenario-key", _scenario(SCENARIO.replace(
        "  turns:\n", "  turn:\n    - role: user\n      content: hi\n  turns:\n")),
         "scenarios/refund.yaml:8:3: turn: unknown key 'turn' (did you mean 'turns'?)"),
    Case("unknown-turn-key", _scenario(SCENARIO.replace("      content: I want a refund.\n",
                                                        "      content: I want a refund.\n      asertions: []\n")),
         "scenarios/refund.yaml:11:7: turns[0].asertions: unknown key 'asertions' (did you mean 'assertions'?)"),
    Case("unknown-param", _scenario(SCENARIO.replace("patterns: [refund]", "pattern: [refund]")),
         "scenarios/refund.yaml:13:11: turns[0].assertions[0].params: params.pattern: 'contains' does not read this "
         "param (did you mean 'patterns'?)"),
    Case("scalar-where-a-list-is-read", _scenario(SCENARIO.replace("patterns: [refund]", "patterns: refund")),
         "scenarios/refund.yaml:13:11: turns[0].assertions[0].params: params.patterns: upstream reads a list here; "
         "a single string counts as none"),
    Case("threshold-next-to-type", _scenario(SCENARIO.replace("        - type: contains\n",
                                                              "        - type: contains\n          min_score: 0.5\n")),
         "scenarios/refund.yaml:13:11: turns[0].assertions[0].min_score: upstream's schema has no min_score here; put "
         "it under params"),
]


@pytest.mark.parametrize("case", WARNINGS, ids=[c.id for c in WARNINGS])
def test_warnings_load_and_strict_refuses(case: Case, tmp_path: Path) -> None:
    root = write_bundle(tmp_path, case.files)
    assert case.expected in [str(w) for w in load_bundle(root).warnings]
    with pytest.raises(BundleInvalid) as info:
        load_bundle(root, strict=True)
    assert case.expected in [str(p) for p in info.value.problems]


def test_warnings_are_printed_by_default(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Logged at WARNING by a load (the level `arena run` prints without -v); `arena validate` prints them."""
    root = write_bundle(tmp_path, WARNINGS[1].files)
    with caplog.at_level("WARNING"):
        load_bundle(root)
    assert WARNINGS[1].expected in caplog.text
    assert cli.main(["validate", str(root)]) == 0
    assert f"warning: {WARNINGS[1].expected}" in capsys.readouterr().err


def test_base_bundle_is_valid(tmp_path: Path) -> None:
    bundle = load_bundle(write_bundle(tmp_path, {}))
    assert set(bundle.scenarios) == {"refund"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_problem_names_file_line_and_field(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in case.env_unset:
        monkeypatch.delenv(name, raising=False)
    problems = [str(p) for p in problems_of(write_bundle(tmp_path, case.files))]
    assert case.expected in problems


def test_missing_referenced_file_points_at_the_reference(tmp_path: Path) -> None:
    """The missing file has no line to show: the problem is located where the arena file names it."""
    arena = ARENA.replace("    - file: scenarios/refund.yaml\n",
                          "    - file: scenarios/refund.yaml\n    - file: scenarios/exchange.yaml\n")
    problems = problems_of(write_bundle(tmp_path, {"config.arena.yaml": arena}))
    assert len(problems) == 1, [str(p) for p in problems]
    problem = problems[0]
    assert (problem.file, problem.line, problem.field) == ("config.arena.yaml", 13, "scenarios[1].file")
    assert "scenarios/exchange.yaml" in problem.message and "not found" in problem.message


def test_all_problems_are_reported_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three independent mistakes in three files (scenario, arena, an extra provider): all three, nothing else."""
    monkeypatch.delenv(UNSET_ENV, raising=False)
    arena = ARENA.replace("    - file: providers/mock.yaml\n",
                          "    - file: providers/mock.yaml\n    - file: providers/backup.yaml\n      group: backup\n")
    arena = arena.replace("  defaults:\n", "  judges:\n    - name: grader\n      provider: gpt-judge\n  defaults:\n")
    backup = f"""\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Provider
metadata:
  name: backup
spec:
  type: openai
  model: gpt-4o
  base_url: ${{{UNSET_ENV}}}
"""
    root = write_bundle(tmp_path, {
        "config.arena.yaml": arena,
        "providers/backup.yaml": backup,
        "scenarios/refund.yaml": SCENARIO.replace("type: contains", "type: contians"),
    })
    problems = sorted(str(p) for p in problems_of(root))
    assert problems == sorted([
        "config.arena.yaml:23:7: judges[0].provider: unknown provider 'gpt-judge'",
        f"providers/backup.yaml:8:3: base_url: environment variable {UNSET_ENV} is not set (and has no default)",
        "scenarios/refund.yaml:12:11: turns[0].assertions[0].type: unknown assertion 'contians' "
        "(did you mean 'contains'?)",
    ])


def test_cli_validate_prints_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = SCENARIO.replace("type: contains", "type: contians").replace("task_type: support",
                                                                           "task_type: suport")
    root = write_bundle(tmp_path, {"scenarios/refund.yaml": scenario})
    assert cli.main(["validate", str(root)]) == 1
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    assert "scenarios/refund.yaml:7:3: task_type: no prompt config has task_type 'suport'" in printed
    assert "scenarios/refund.yaml:12:11: turns[0].assertions[0].type: unknown assertion 'contians'" in printed
    assert "2 problem(s) found" in printed


@pytest.mark.parametrize(("arena_extra", "tools"), [
    ("  mcp_servers:\n    - name: docs\n      command: docs-server\n", ["mcp__docs__search"]),
    ("  a2a_agents:\n    - name: research\n", ["a2a__research__search_papers"]),
    ("", ["skill__activate", "memory__recall", "workflow__transition", "image__generate", "video__generate"]),
    ("  runtime:\n    tools:\n      run_tests: {command: ./test.sh}\n", ["run_tests"]),
    ("  runtime:\n    mcp_servers:\n      - name: fs\n        command: fs-server\n", ["mcp__fs__read"]),
    # A source-backed server (docker, a registry, …) lists its tools only at run time: any bare name may be one.
    ("  mcp_servers:\n    - name: sandbox\n      source: docker\n", ["Read", "Edit", "Bash", "run_lint"]),
])
def test_tools_from_declared_servers_and_the_runtime_are_known(arena_extra: str, tools: list[str],
                                                               tmp_path: Path) -> None:
    prompt = PROMPT + "  allowed_tools:\n" + "".join(f"    - {t}\n" for t in tools)
    arena = ARENA.replace("  defaults:\n", arena_extra + "  defaults:\n")
    bundle = load_bundle(write_bundle(tmp_path, {"config.arena.yaml": arena, "prompts/support.yaml": prompt}))
    assert bundle.prompt_configs["support"].allowed_tools == tools
