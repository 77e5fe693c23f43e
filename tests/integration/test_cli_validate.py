"""`arena validate` as a user runs it: bundles and Kubernetes manifests, every problem at file:line:column with
the field path and what was expected, `--schema-only`, `--strict`, `--bundle`, and the exit codes (0 valid,
1 invalid, 2 a path that does not exist). Tools named by assertions are checked against the bundle's."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from arena_operator import cli

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart"


def arena(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "arena_operator.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, timeout=120, check=False)


def closed_port() -> int:
    """A loopback port nothing listens on: a git source there can only fail to fetch."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


BROKEN = """\
apiVersion: omnia.altairalabs.ai/v1alpha1
kind: ArenaJob
metadata:
  name: nightly
spec:
  configRf:
    name: quickstart
  type: evalution
  workers:
    replicas: "2"
  ttlSecondsAfterFinished: -5
---
apiVersion: omnia.altairalabs.ai/v1alpha1
kind: ArenaSource
metadata: {name: prompts}
spec:
  type: git
  interval: 5 minutes
  git: {url: "https://git.example/prompts", ref: {brnch: main}}
---
apiVersion: omnia.altairalabs.ai/v1alpha1
kind: ArenaJb
metadata: {name: typo}
spec: {}
---
apiVersion: omnia.altairalabs.ai/v1alpha1
kind: Provider
metadata: {name: gpt}
spc: {type: openai}
"""


def test_manifest_errors_name_file_line_column_field_and_expectation(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(BROKEN)
    done = arena("validate", path)
    assert done.returncode == 1, done.stderr
    lines = [line.removeprefix(f"{path}:") for line in done.stderr.splitlines()]
    assert lines == [
        "6:3: spec.configRf: unknown field 'configRf' (did you mean 'configRef'?)",
        "8:3: spec.type: got 'evalution', expected one of 'evaluation', 'loadtest' or 'datagen' "
        "(did you mean 'evaluation'?)",
        "10:5: spec.workers.replicas: got '2', expected an integer (without quotes)",
        "11:3: spec.ttlSecondsAfterFinished: got -5, expected a number ≥ 0",
        "18:3: spec.interval: got '5 minutes', expected a duration such as 30s, 5m or 1h30m (units ms, s, m, h)",
        "19:51: spec.git.ref.brnch: unknown field 'brnch' (did you mean 'branch'?)",
        "22:1: kind: unknown kind 'ArenaJb' (did you mean 'ArenaJob'?); expected one of ArenaSource, ArenaConfig, "
        "ArenaJob, Provider, ToolRegistry",
        "26:1: spec: required field is missing",
        "29:1: spc: unknown field 'spc' (did you mean 'spec'?)",
        "9 problem(s) found",
    ]
    assert "Traceback" not in done.stderr and "pydantic" not in done.stderr


def _cluster_quickstart(tmp_path: Path, **replace: str) -> Path:
    text = (REPO / "examples" / "cluster-quickstart" / "job.yaml").read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path


def test_a_runnable_job_file_is_checked_through_to_its_plan() -> None:
    """ConfigMap source in the same file: fetched, loaded, selection and providers resolved, runs counted."""
    done = arena("validate", REPO / "examples" / "cluster-quickstart" / "job.yaml")
    assert done.returncode == 0, done.stderr
    assert "ok: 4 objects valid (1 ArenaConfig, 1 ArenaJob, 1 ArenaSource, 1 Provider)" in done.stdout
    assert "ok: ArenaJob quickstart: 4 scenarios in its bundle, 4 runs planned" in done.stdout


def test_what_the_job_would_run_is_checked_unless_schema_only(tmp_path: Path) -> None:
    path = _cluster_quickstart(tmp_path, **{"  name: quickstart\n  namespace: arena\nspec:\n  configRef:":
                                            "  name: quickstart\n  namespace: arena\nspec:\n  scenarios: "
                                            "{include: [no-such-*]}\n  configRef:"})
    done = arena("validate", path)
    assert done.returncode == 1
    assert "spec.scenarios: selects no scenario of the bundle (scenarios: " in done.stderr
    schema = arena("validate", path, "--schema-only")
    assert schema.returncode == 0, schema.stderr
    assert "runs planned" not in schema.stdout


def test_schema_only_fetches_nothing(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/prompts.git"
    path = _cluster_quickstart(tmp_path, **{"  type: configmap\n  configMap:\n    name: quickstart-bundle":
                                            f"  type: git\n  git:\n    url: {url}\n    ref: {{branch: main}}"})
    fetched = arena("validate", path)
    assert fetched.returncode == 1
    assert "spec.git: fetch failed (" in fetched.stderr and "--bundle DIR" in fetched.stderr
    assert arena("validate", path, "--schema-only").returncode == 0


def test_bundle_flag_replaces_the_fetch() -> None:
    done = arena("validate", REPO / "examples" / "manifests", "--bundle", QUICKSTART)
    assert done.returncode == 0, done.stderr
    assert "ok: ArenaJob quickstart-eval: 6 scenarios in its bundle, 6 runs planned" in done.stdout


def test_references_outside_the_files_warn_and_strict_refuses(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text((REPO / "examples" / "manifests" / "evaluation.yaml").read_text())
    lenient = arena("validate", job)
    assert lenient.returncode == 0, lenient.stderr
    assert (f"warning: {job}:8:5: spec.sourceRef.name: ArenaSource 'quickstart' is not in the files given; it must "
            "exist in namespace arena when this is applied") in lenient.stderr
    strict = arena("validate", job, "--strict")
    assert strict.returncode == 1 and "2 problem(s) found" in strict.stderr


def _quickstart(tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    shutil.copytree(QUICKSTART, bundle)
    return bundle


def test_bundle_exit_codes_and_schema_only(tmp_path: Path) -> None:
    bundle = _quickstart(tmp_path)
    greeting = bundle / "scenarios" / "greeting.yaml"
    greeting.write_text(greeting.read_text().replace("  task_type: support", "  task_type: suport"))
    done = arena("validate", bundle)
    assert done.returncode == 1
    assert ("scenarios/greeting.yaml:7:3: task_type: no prompt config has task_type 'suport' "
            "(did you mean 'support'?)") in done.stderr
    schema = arena("validate", bundle, "--schema-only")  # a cross-file reference: not the schema's business
    assert schema.returncode == 0, schema.stderr
    assert "ok: " in schema.stdout and "runs planned" not in schema.stdout
    greeting.write_text(greeting.read_text().replace("type: contains", "type: contians"))
    assert arena("validate", bundle, "--schema-only").returncode == 1  # the vocabulary is the schema's
    assert arena("validate", tmp_path / "nowhere").returncode == 2
    assert arena("run", bundle, "-o", tmp_path / "out").returncode == 2  # arena run: bad input stays 2


def test_schema_only_warns_of_a_missing_referenced_file(tmp_path: Path) -> None:
    """Upstream's `--schema-only` reads no referenced file; here the ones that exist are checked, a missing one is
    a warning (an example bundle whose pack is built later validates), and a full validate fails on it."""
    bundle = _quickstart(tmp_path)
    (bundle / "scenarios" / "greeting.yaml").unlink()
    schema = arena("validate", bundle, "--schema-only")
    assert schema.returncode == 0, schema.stderr
    assert "scenarios/greeting.yaml: Scenario file not found" in schema.stderr and "warning: " in schema.stderr
    full = arena("validate", bundle)
    assert full.returncode == 1 and "scenarios/greeting.yaml: Scenario file not found" in full.stderr


TOOL_CASES = [
    ("tools_called", "tools: [lookup_order]", "tools: [lookup_ordr]", "params.tools[0]", "never passes", True),
    ("tool_args", "tool_name: lookup_order", "tool_name: lookupOrder", "params.tool_name", "never passes", True),
    ("wrapped", "- type: tools_called\n          params:\n            tools: [lookup_order]",
     "- type: assertion\n          params:\n            eval_type: tool_called\n            eval_params: "
     "{tool_names: [lookup_ordr]}", "params.eval_params.tool_names[0]", "never passes", True),
    ("chain", "- type: contains\n          params:\n            patterns: [\"shipped\"]",
     "- type: tool_call_chain\n          params:\n            steps: [{tool: lookup_order}, {tool: refund_ordr}]",
     "params.steps[1].tool", "never passes", True),
    ("not-called", "- type: contains\n          params:\n            patterns: [\"shipped\"]",
     "- type: tools_not_called\n          params:\n            tools: [delete_acount]", "params.tools[0]",
     "always passes", False),
    ("when", "- type: contains\n          params:\n            patterns: [\"shipped\"]",
     "- type: contains\n          when: {tool_called: lookup_ordr}\n          params:\n            patterns: [x]",
     "when.tool_called", "always skipped", False),
]


@pytest.mark.parametrize(("old", "new", "field", "effect", "error"), [c[1:] for c in TOOL_CASES],
                         ids=[c[0] for c in TOOL_CASES])
def test_an_assertion_naming_an_unknown_tool(tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str,
                                             new: str, field: str, effect: str, error: bool) -> None:
    """Never-passing assertions are errors; always-passing (or skipped) ones warnings, errors with --strict."""
    bundle = _quickstart(tmp_path)
    scenario = bundle / "scenarios" / "order-status.yaml"
    assert old in scenario.read_text()
    scenario.write_text(scenario.read_text().replace(old, new, 1))
    assert cli.main(["validate", str(bundle)]) == (1 if error else 0)
    printed = capsys.readouterr().err
    assert "scenarios/order-status.yaml:" in printed and ": turns[0].assertions[" in printed
    assert f"{field}: unknown tool " in printed and "the bundle's tools: lookup_order" in printed
    assert f"this assertion {effect}" in printed
    assert cli.main(["validate", str(bundle), "--strict"]) == 1


def test_arena_run_refuses_an_unknown_tool_before_running(tmp_path: Path) -> None:
    """The exact line, column and suggestion; `arena run` refuses the same bundle before running anything."""
    bundle = _quickstart(tmp_path)
    scenario = bundle / "scenarios" / "order-status.yaml"
    scenario.write_text(scenario.read_text().replace("tools: [lookup_order]", "tools: [lookup_ordr]"))
    expected = ("scenarios/order-status.yaml:14:21: turns[0].assertions[0].params.tools[0]: unknown tool "
                "'lookup_ordr' (did you mean 'lookup_order'?): the bundle's tools: lookup_order; this assertion "
                "never passes")
    validated = arena("validate", bundle)
    assert validated.returncode == 1 and expected in validated.stderr
    run = arena("run", bundle, "-o", tmp_path / "out", "-q")
    assert run.returncode == 2 and expected in run.stderr
    assert not (tmp_path / "out" / "units").exists() or not list((tmp_path / "out" / "units").iterdir())
