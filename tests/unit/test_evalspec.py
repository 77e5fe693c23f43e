"""Eval manifests at load time (engine/evalspec.py) and eval-mode planning (engine/plan.py, runplan/units.py):
each broken eval or replay provider is a `file:line: field: message` problem; the plan is scenarios or evals,
never both, as upstream's GenerateRunPlan."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from arena_operator.engine.bundle import load_bundle
from arena_operator.engine.errors import BundleInvalid
from arena_operator.engine.plan import EVAL_PROVIDER, RunFilters, generate_plan
from arena_operator.runplan.units import PlanInputs, WorkUnit, iter_units

ARENA = """\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Arena
metadata:
  name: evals
spec:
  providers:
    - file: providers/judge.yaml
{scenarios}  evals:
    - file: evals/check.eval.yaml
  defaults:
    concurrency: 1
"""
SCENARIOS = """\
  scenarios:
    - file: scenarios/hello.yaml
"""
JUDGE = """\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Provider
metadata:
  name: judge
spec:
  id: judge
  type: mock
  model: m
"""
SCENARIO = """\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Scenario
metadata:
  name: hello
spec:
  id: hello
  description: hi
  turns:
    - role: user
      content: hi
"""
EVAL = """\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Eval
metadata:
  name: check
spec:
  id: check
  recording:
    path: {path}
{extra}  turns:
    - all_turns:
        assertions:
          - type: {assertion}
            params:
              patterns: ["a"]
"""
RECORDING = json.dumps({"RunID": "r", "Messages": [{"role": "user", "content": "q"},
                                                     {"role": "assistant", "content": "a"}]}, indent=1)


def write(root: Path, eval_text: str, scenarios: bool = False, files: dict[str, str] | None = None) -> Path:
    parts = {"config.arena.yaml": ARENA.format(scenarios=SCENARIOS if scenarios else ""),
             "providers/judge.yaml": JUDGE, "scenarios/hello.yaml": SCENARIO, "evals/check.eval.yaml": eval_text,
             "recordings/run.json": RECORDING, **(files or {})}
    for name, text in parts.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def eval_text(path: str = "../recordings/run.json", extra: str = "", assertion: str = "contains") -> str:
    return EVAL.format(path=path, extra=extra, assertion=assertion)


def problems(root: Path) -> list[str]:
    with pytest.raises(BundleInvalid) as caught:
        load_bundle(root)
    return [str(p) for p in caught.value.problems]


PATH_LINE = 8  # `path:` in EVAL


@pytest.mark.parametrize(("text", "files", "want"), [
    (eval_text("../recordings/nope.json"), {}, f"evals/check.eval.yaml:{PATH_LINE}:5: recording.path: recording "
                                               "'../recordings/nope.json' not found (looked for recordings/nope.json)"),
    (eval_text("../../elsewhere.json"), {}, f"evals/check.eval.yaml:{PATH_LINE}:5: recording.path: recording "
                                            "'../../elsewhere.json' is outside the bundle"),
    (eval_text("/etc/hostname"), {}, f"evals/check.eval.yaml:{PATH_LINE}:5: recording.path: recording "
                                     "'/etc/hostname' is outside the bundle"),
    (eval_text("../recordings/*.none.json"), {}, f"evals/check.eval.yaml:{PATH_LINE}:5: recording.path: no "
                                                 "recording matches '../recordings/*.none.json'"),
    (eval_text(extra="    type: tape\n"), {}, f"evals/check.eval.yaml:{PATH_LINE + 1}:5: recording.type: unknown "
                                                "recording type 'tape'"),
    (eval_text(), {"recordings/run.json": '{"Messages": [\n  {"role": "user", "content": "q"},\n]}'},
     "recordings/run.json:3: invalid JSON"),
    (eval_text(), {"recordings/run.json": '{"Messages": [\n  {"role": "bot", "content": "q"}]}'},
     "recordings/run.json:2: message role 'bot' is not one of system, user, assistant, tool"),
    (eval_text(assertion="contians"), {},
     "evals/check.eval.yaml:12:13: turns[0].all_turns.assertions[0].type: unknown"),
    (eval_text(extra="  mode: warp\n"), {}, "evals/check.eval.yaml:9:3: mode: got 'warp', expected one of"),
    (eval_text().replace("  recording:\n    path: ../recordings/run.json\n", "  recording: {}\n"), {},
     "evals/check.eval.yaml:7:3: recording.path: required field is missing"),
])
def test_broken_evals_name_file_and_line(tmp_path: Path, text: str, files: dict[str, str], want: str) -> None:
    found = problems(write(tmp_path, text, files=files))
    assert any(p.startswith(want) for p in found), found


def test_a_symlink_leading_out_is_outside_the_bundle(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text(RECORDING)
    root = write(tmp_path / "b", eval_text("../recordings/link.json"))
    os.symlink(secret, root / "recordings" / "link.json")
    assert any("recording '../recordings/link.json' is outside the bundle" in p for p in problems(root))


def test_an_eval_without_recording_loads_with_a_warning_and_plans_nothing(tmp_path: Path) -> None:
    text = eval_text().replace("  recording:\n    path: ../recordings/run.json\n", "")
    bundle = load_bundle(write(tmp_path, text))
    assert "check" in bundle.evals
    assert any("no recording" in str(w) for w in bundle.warnings)
    assert generate_plan(bundle).combinations == []


def test_eval_ids_are_spec_ids_and_a_duplicate_is_refused(tmp_path: Path) -> None:
    root = write(tmp_path, eval_text().replace("  id: check", "  id: spec-id"))
    assert set(load_bundle(root).eval_runs) == {"spec-id"}
    arena = (root / "config.arena.yaml").read_text().replace(
        "    - file: evals/check.eval.yaml\n", "    - file: evals/check.eval.yaml\n    - file: evals/check.eval.yaml\n")
    (root / "config.arena.yaml").write_text(arena)
    assert any("duplicate eval id 'spec-id'" in p for p in problems(root))


REPLAY = """\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Provider
metadata:
  name: replay
spec:
  id: replay
  type: replay
  model: m
  additional_config:
    recording: {path}
"""


@pytest.mark.parametrize(("scenarios", "path", "want_error", "want_warning"), [
    (True, "recordings/nope.json", "providers/replay.yaml:10:5: additional_config.recording: recordings/nope.json: "
                                   "recording not found", None),
    (True, "../out.json", "providers/replay.yaml:10:5: additional_config.recording: ../out.json: recording is "
                          "outside the bundle", None),
    (True, "recordings/run.json", None, None),
    (False, "../out.json", None, "no scenario uses replay provider 'replay'"),
])
def test_replay_providers_are_checked_when_a_scenario_may_use_them(
        tmp_path: Path, scenarios: bool, path: str, want_error: str | None, want_warning: str | None) -> None:
    root = write(tmp_path, eval_text(), scenarios=scenarios, files={"providers/replay.yaml": REPLAY.format(path=path)})
    arena = (root / "config.arena.yaml").read_text().replace(
        "    - file: providers/judge.yaml\n", "    - file: providers/judge.yaml\n    - file: providers/replay.yaml\n")
    (root / "config.arena.yaml").write_text(arena)
    if want_error:
        assert any(p.startswith(want_error) for p in problems(root)), problems(root)
        return
    bundle = load_bundle(root)
    warnings = [str(w) for w in bundle.warnings]
    assert (want_warning is None) == (not any("replay provider" in w for w in warnings)), warnings


@pytest.mark.parametrize(("scenarios", "filters", "want"), [
    (True, RunFilters(), [("hello", "judge")]),  # scenarios and evals: scenarios, as upstream
    (True, RunFilters(evals=["check"]), [("check", EVAL_PROVIDER)]),  # --eval selects eval mode
    (True, RunFilters(evals=["evals/*.eval.yaml"]), [("check", EVAL_PROVIDER)]),  # by file glob too
    (True, RunFilters(evals=["other"]), []),
    (False, RunFilters(), [("check", EVAL_PROVIDER)]),  # evals only: eval mode
    (False, RunFilters(scenarios=["x"]), []),  # a scenario filter never plans evals
    (False, RunFilters(providers=["nope"], regions=["eu"], trials=3), [("check", EVAL_PROVIDER)]),
])
def test_plan_is_scenarios_or_evals(tmp_path: Path, scenarios: bool, filters: RunFilters,
                                    want: list[tuple[str, str]]) -> None:
    bundle = load_bundle(write(tmp_path, eval_text(), scenarios=scenarios))
    plan = generate_plan(bundle, filters)
    assert [(c.scenario_id, c.provider_id) for c in plan.combinations] == want
    for combo in plan.combinations:
        assert bool(combo.recording) == (combo.provider_id == EVAL_PROVIDER)


def test_a_glob_and_a_results_array_plan_one_run_per_conversation(tmp_path: Path) -> None:
    runs = json.dumps([json.loads(RECORDING), json.loads(RECORDING)])
    root = write(tmp_path, eval_text("../recordings/*.json"), files={"recordings/all.json": runs})
    plan = generate_plan(load_bundle(root))
    assert [c.recording for c in plan.combinations] == ["recordings/all.json#0", "recordings/all.json#1",
                                                        "recordings/run.json#0"]
    assert len({c.run_id for c in plan.combinations}) == 3
    assert [c.run_id for c in generate_plan(load_bundle(root)).combinations] == [c.run_id for c in plan.combinations]


def test_work_units_carry_the_recording(tmp_path: Path) -> None:
    bundle = load_bundle(write(tmp_path, eval_text()))
    units = list(iter_units(bundle, PlanInputs([], [], 1)))
    assert [u.to_json() for u in units] == [{"id": units[0].id, "scenario": "check", "provider": EVAL_PROVIDER,
                                             "region": "default", "trial": 0, "recording": "recordings/run.json#0"}]
    again = WorkUnit.from_json(units[0].to_json())
    assert again == units[0] and again.combination() == generate_plan(bundle).combinations[0]
    old = {"id": "x", "scenario": "s", "provider": "p", "region": "default", "trial": 0}
    assert WorkUnit.from_json(old).combination().recording == "" and WorkUnit.from_json(old).to_json() == old


def test_unknown_eval_keys_are_warnings(tmp_path: Path) -> None:
    text = eval_text(extra="    format: tape\n").replace("  turns:",
                                                         "  judge_targets: {default: {type: openai}}\n  turns:")
    bundle = load_bundle(write(tmp_path, text))
    warnings = [str(w) for w in bundle.warnings]
    assert any(w.startswith("evals/check.eval.yaml:9:5: recording.format: unknown key 'format'") for w in warnings)
    assert any("judge_targets: unknown key 'judge_targets'" in w for w in warnings), warnings
    with pytest.raises(BundleInvalid):
        load_bundle(tmp_path, strict=True)
