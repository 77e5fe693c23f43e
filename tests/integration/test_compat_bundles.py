"""Compatibility bundles: PromptKit Arena bundles written the way upstream users write them.

Each directory under tests/fixtures/bundles/ holds a bundle and an `expected.yaml` with the outcome of
every run (scenario → provider → status, failed assertion types, number of runs). The bundle is run once
per module — through `run_local`, or through `arena run` when its expected.yaml says `via: cli` — and the
outcomes must match exactly. The remaining tests check details of the same runs: mock lookup, tool round
trips, self-play turn counts, judge thresholds, guardrails, variable layering and arena-file extras.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from arena_operator import cli
from arena_operator.engine.assertions import content, structured, toolchains
from arena_operator.engine.assertions import tools as tool_checks
from arena_operator.engine.assertions.registry import ALL_ALIASES, BY_NAME
from arena_operator.engine.bundle import Bundle, find_arena_file, load_bundle
from arena_operator.engine.persona import persona_system_prompt
from arena_operator.engine.plan import generate_plan
from arena_operator.engine.templating import render
from arena_operator.local.run import LocalRunOptions, run_local

BUNDLES = Path(__file__).resolve().parents[1] / "fixtures" / "bundles"
BUNDLE_NAMES = sorted(p.name for p in BUNDLES.iterdir() if (p / "expected.yaml").is_file())
MOCK_PRICE_PER_TOKEN = 0.01 / 1000

Run = dict[str, Any]


@dataclass
class BundleRun:
    """One bundle run: its expected.yaml and every run dict it produced."""

    name: str
    root: Path
    expected: dict[str, Any]
    runs: list[Run]
    exit_code: int | None = None

    def of(self, scenario: str, provider: str | None = None) -> list[Run]:
        found = [r for r in self.runs
                 if r["ScenarioID"] == scenario and (provider is None or r["ProviderID"] == provider)]
        assert found, f"{self.name}: no run of scenario {scenario!r} (provider {provider!r})"
        return found

    def one(self, scenario: str, provider: str | None = None) -> Run:
        runs = self.of(scenario, provider)
        assert len(runs) == 1, f"{self.name}: expected one run of {scenario!r}, got {len(runs)}"
        return runs[0]


def _read_expected(root: Path) -> dict[str, Any]:
    data = yaml.safe_load((root / "expected.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("scenarios"), dict), f"{root}/expected.yaml"
    return data


def read_runs(out: Path) -> list[Run]:
    """The runs of a finished `arena run` from its results.jsonl (written with the json format)."""
    return [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]


def run_cli(root: Path, out: Path, *flags: str) -> tuple[int, list[Run]]:
    """`arena run <bundle> --out <out> --formats json -q <flags>`; returns the exit code and the runs."""
    code = cli.main(["run", str(root), "--out", str(out), "--formats", "json", "-q", *flags])
    return code, read_runs(out)


def _run_bundle(name: str, out: Path) -> BundleRun:
    root = BUNDLES / name
    expected = _read_expected(root)
    how = expected.get("run") or {}
    mock_provider = bool(how.get("mock_provider", True))
    mock_config = root / how["mock_config"] if how.get("mock_config") else None
    if how.get("via") == "cli":
        flags = ["--mock-provider"] if mock_provider else []
        if mock_config is not None:
            flags += ["--mock-config", str(mock_config)]
        code, runs = run_cli(root, out, *flags, "--ci")
        return BundleRun(name, root, expected, runs, code)
    options = LocalRunOptions(bundle=root, out_dir=out, mock_provider=mock_provider, mock_config=mock_config,
                              formats=["json"])
    asyncio.run(run_local(options))
    return BundleRun(name, root, expected, read_runs(out))


@pytest.fixture(scope="module")
def bundle_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], BundleRun]:
    """Runs each bundle at most once per module."""
    cache: dict[str, BundleRun] = {}

    def get(name: str) -> BundleRun:
        if name not in cache:
            cache[name] = _run_bundle(name, tmp_path_factory.mktemp(name))
        return cache[name]

    return get


# ---------------------------------------------------------------------------------------------------------
# Helpers over run dicts (the RunResult.to_dict shape)


def assertion_results(run: Run) -> Iterator[dict[str, Any]]:
    """Every assertion result of a run: turn-level (on the replies) then conversation-level."""
    for message in run["Messages"]:
        yield from (message.get("meta") or {}).get("assertions", {}).get("results", [])
    yield from run["conversation_assertions"]["results"]


def failed_types(run: Run) -> list[str]:
    return sorted(r["type"] for r in assertion_results(run) if not r["passed"])


def contents(run: Run, role: str) -> list[str]:
    return [m["content"] for m in run["Messages"] if m["role"] == role]


def turn_results(run: Run) -> list[list[dict[str, Any]]]:
    """Assertion results per reply that carries them, in conversation order."""
    return [m["meta"]["assertions"]["results"] for m in run["Messages"]
            if (m.get("meta") or {}).get("assertions")]


def summarise(runs: list[Run]) -> dict[str, dict[str, dict[str, Any]]]:
    """scenario → provider → {status, failed, runs[, error_kind]}, the shape of a normalised expected.yaml."""
    grouped: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in runs:
        grouped[(run["ScenarioID"], run["ProviderID"])].append(run)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (scenario, provider), group in grouped.items():
        outcomes = {(r["Status"], tuple(failed_types(r)), r.get("ErrorKind") or "") for r in group}
        entry: dict[str, Any]
        if len(outcomes) == 1:
            status, failed, kind = outcomes.pop()
            entry = {"status": status, "failed": list(failed), "runs": len(group)}
            if kind:
                entry["error_kind"] = kind
        else:
            entry = {"runs": len(group), "differing trials": sorted(outcomes)}
        out.setdefault(scenario, {})[provider] = entry
    return out


def normalise_expected(expected: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for scenario, providers in expected["scenarios"].items():
        for provider, want in providers.items():
            want = {"status": want} if isinstance(want, str) else dict(want)
            entry = {"status": want["status"], "failed": sorted(want.get("failed") or []),
                     "runs": int(want.get("runs", 1))}
            if want.get("error_kind"):
                entry["error_kind"] = want["error_kind"]
            out.setdefault(scenario, {})[provider] = entry
    return out


# ---------------------------------------------------------------------------------------------------------
# Every bundle: outcomes exactly as expected.yaml says


@pytest.mark.parametrize("name", BUNDLE_NAMES)
def test_outcomes_match_expected(name: str, bundle_run: Callable[[str], BundleRun]) -> None:
    result = bundle_run(name)
    assert summarise(result.runs) == normalise_expected(result.expected)


def test_expected_files_are_well_formed() -> None:
    assert len(BUNDLE_NAMES) >= 8
    for name in BUNDLE_NAMES:
        expected = _read_expected(BUNDLES / name)
        for providers in expected["scenarios"].values():
            for want in providers.values():
                status = want if isinstance(want, str) else want["status"]
                assert status in ("passed", "failed", "error"), f"{name}: bad status {status!r}"
                if status == "failed":
                    assert isinstance(want, dict) and want.get("failed"), f"{name}: a failed run lists its failures"


# ---------------------------------------------------------------------------------------------------------
# Mock provider: lookup order, fallback text, tokens and cost, --mock-provider/--mock-config


def test_mock_lookup_order(bundle_run: Callable[[str], BundleRun]) -> None:
    result = bundle_run("mock-responses")
    assert contents(result.one("turn-keys"), "assistant") == [
        "Breakfast is served from 7 to 10 in the garden room.",
        "Checkout is at noon; late checkout costs 30 EUR.",
        "The airport shuttle leaves every hour from the lobby.",
    ]
    assert contents(result.one("scenario-default"), "assistant") == [
        "The pool opens at 8 in the morning.", "Please ask the front desk for that.",
    ]
    assert contents(result.one("global-default"), "assistant") == ["Happy to help with anything during your stay."]
    assert contents(result.one("fallback"), "assistant") == ["Mock response from mock-bare model bare-model"]
    assert contents(result.one("both-providers", "mock-main"), "assistant") == [
        "This text comes from the mock file, not the fallback.",
    ]


def test_mock_tokens_and_cost(bundle_run: Callable[[str], BundleRun]) -> None:
    run = bundle_run("mock-responses").one("turn-keys")
    reply = next(m for m in run["Messages"] if m["role"] == "assistant")
    cost = reply["cost_info"]
    assert cost["output_tokens"] == len(reply["content"]) // 4
    assert cost["input_tokens"] >= 1
    assert cost["output_cost_usd"] == pytest.approx(cost["output_tokens"] * MOCK_PRICE_PER_TOKEN)
    assert cost["input_cost_usd"] == pytest.approx(cost["input_tokens"] * MOCK_PRICE_PER_TOKEN)
    total = sum(m["cost_info"]["total_cost_usd"] for m in run["Messages"] if m["role"] == "assistant")
    assert run["Cost"]["total_cost_usd"] == pytest.approx(total)


def test_trials_are_separate_runs(bundle_run: Callable[[str], BundleRun]) -> None:
    runs = bundle_run("mock-responses").of("repeated")
    assert sorted(r["Trial"] for r in runs) == [0, 1, 2]
    assert len({r["RunID"] for r in runs}) == 3


def test_run_timeout_is_an_error_not_a_failure(bundle_run: Callable[[str], BundleRun]) -> None:
    run = bundle_run("mock-responses").one("stalled")
    assert run["Status"] == "error"
    assert "timed out" in run["Error"]
    assert run["Passed"] is False


def test_mock_config_flag_replaces_openai_provider(bundle_run: Callable[[str], BundleRun]) -> None:
    result = bundle_run("mock-override")
    assert result.exit_code == 0, "--ci with every run passing exits 0"
    assert contents(result.one("greeting"), "assistant") == [
        "Hello from the CI mock, welcome to the science museum!",
    ]
    assert contents(result.one("unscripted"), "assistant") == [
        "Mock response for provider openai-gpt4o-mini model gpt-4o-mini",
    ]


def test_mock_provider_without_mock_config_falls_back(tmp_path: Path) -> None:
    """The openai provider has no mock_config of its own: every reply is upstream's generic mock text."""
    code, runs = run_cli(BUNDLES / "mock-override", tmp_path, "--mock-provider", "--ci")
    assert code == 1, "--ci exits 1 when an assertion failed"
    by_scenario = {r["ScenarioID"]: r for r in runs}
    assert by_scenario["greeting"]["Status"] == "failed"
    assert contents(by_scenario["greeting"], "assistant") == ["Mock response from provider"]
    assert contents(by_scenario["unscripted"], "assistant") == ["Mock response from provider"]
    assert by_scenario["unscripted"]["Status"] == "failed", "the file fallback names the provider; this does not"


def test_mocked_provider_costs_the_mock_rate(bundle_run: Callable[[str], BundleRun]) -> None:
    """PROMPTKIT_FORMATS.md / upstream mock: $0.01 per 1K tokens, also for a provider replaced by the mock."""
    run = bundle_run("mock-override").one("greeting")
    cost = run["Cost"]
    tokens = cost["input_tokens"] + cost["output_tokens"]
    assert cost["total_cost_usd"] == pytest.approx(tokens * MOCK_PRICE_PER_TOKEN)


# ---------------------------------------------------------------------------------------------------------
# Tools


def test_tool_round_trip_advances_the_mock_turn(bundle_run: Callable[[str], BundleRun]) -> None:
    run = bundle_run("tools").one("tool-roundtrip")
    roles = [m["role"] for m in run["Messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "user", "assistant", "tool", "tool", "assistant"]
    messages = run["Messages"]
    assert [c["name"] for c in messages[1]["tool_calls"]] == ["calculator"]
    assert messages[1]["tool_calls"][0]["args"] == {"expression": "6*7"}
    assert json.loads(messages[2]["content"]) == {"result": 42}  # mock_result, an object
    assert messages[3]["content"] == "6 times 7 is 42."  # mock turn 2: the tool round trip counted
    assert [c["name"] for c in messages[5]["tool_calls"]] == ["get_weather", "lookup_order"]
    assert json.loads(messages[6]["content"]) == {"city": "Lisbon", "forecast": "sunny", "temp_c": 21}
    assert messages[7]["content"] == "Order A-17: shipped on Monday"  # inline tool_specs tool
    assert messages[8]["content"] == "Lisbon is sunny at 21 degrees, and order A-17 shipped on Monday."
    assert run["ToolStats"]["TotalCalls"] == 3
    assert run["ToolStats"]["Errors"] == 0


def test_when_condition_skips_or_runs(bundle_run: Callable[[str], BundleRun]) -> None:
    first, second = turn_results(bundle_run("tools").one("tool-roundtrip"))
    skipped = [r for r in first if r.get("skipped")]
    assert len(skipped) == 1 and skipped[0]["type"] == "contains" and skipped[0]["passed"] is True
    assert not any(r.get("skipped") for r in second), "every `when` of turn 2 holds"
    assert len(second) == 6 and all(r["passed"] for r in second)
    failing = turn_results(bundle_run("tools").one("tool-assertions-fail"))[0]
    assert failing[-1]["type"] == "contains" and failing[-1]["passed"] is False and not failing[-1].get("skipped")


def test_tool_arguments_failing_input_schema_are_a_tool_error(bundle_run: Callable[[str], BundleRun]) -> None:
    run = bundle_run("tools").one("tool-schema-error")
    tool_messages = [m for m in run["Messages"] if m["role"] == "tool"]
    assert len(tool_messages) == 1
    assert "input_schema" in tool_messages[0]["tool_result"]["error"]
    assert run["ToolStats"]["Errors"] == 1
    assert contents(run, "assistant")[-1] == "Sorry, the calculator rejected my request."
    failure = next(r for r in assertion_results(run) if not r["passed"])
    assert failure["type"] == "no_tool_errors"
    assert failure["message"].startswith("The calculator must accept the arguments")
    assert "input_schema" in failure["message"]


def test_max_tool_calls_per_turn_ends_the_loop(bundle_run: Callable[[str], BundleRun]) -> None:
    run = bundle_run("tools").one("tool-loop-limit")
    assert run["ToolStats"]["TotalCalls"] == 2
    assert any("tool call limit" in v for v in run["Violations"])
    assert len(contents(run, "assistant")) == 3, "two executed rounds, then the third request is refused"
    called = [c["args"]["expression"] for m in run["Messages"] for c in m.get("tool_calls", [])]
    assert "4+4" not in called, "the model is not called again after the limit"


# ---------------------------------------------------------------------------------------------------------
# Self-play


def test_selfplay_lines_come_from_the_persona_section(bundle_run: Callable[[str], BundleRun]) -> None:
    run = bundle_run("self-play").one("selfplay-fixed")
    assert contents(run, "user") == [
        "Hi, I'm looking for a laptop.",
        "How long does the battery last?",
        "What about the warranty?",
        "Does it come with a charger?",
    ]
    assert len(contents(run, "assistant")) == 4
    assert run["SelfPlay"] is True
    assert run["PersonaID"] == "curious-shopper"
    generated = [m for m in run["Messages"] if m["role"] == "user"][1:]
    assert all((m.get("meta") or {}).get("self_play") for m in generated)


def test_completion_marker_ends_selfplay_early(bundle_run: Callable[[str], BundleRun]) -> None:
    run = bundle_run("self-play").one("selfplay-natural-end")
    assert contents(run, "user") == [
        "Tell me about your laptops.",
        "Does the laptop have a backlit keyboard?",
        "Perfect, that's all I needed.",  # the marker is stripped, the message is still answered
    ]
    assert contents(run, "assistant")[-1] == "Glad I could help with the Aero 14!"


def test_completion_marker_before_min_turns_does_not_end_selfplay(bundle_run: Callable[[str], BundleRun]) -> None:
    """`turns` is the minimum number of exchanges: a marker on exchange 1 of turns: 2 is ignored (upstream)."""
    run = bundle_run("self-play").one("selfplay-min-turns")
    assert contents(run, "user") == [
        "I'll take the blue one.",
        "Actually, does it come in red?",
        "Great, ordering the red one now.",
    ]


def test_persona_without_selfplay_entry_falls_through(bundle_run: Callable[[str], BundleRun]) -> None:
    run = bundle_run("self-play").one("selfplay-fallthrough")
    assert contents(run, "user") == ["Is there a student discount?", "Can you do 10 percent off?"]
    assert run["PersonaID"] == "bargain-hunter"


def test_failing_selfplay_turn_stops_the_conversation(bundle_run: Callable[[str], BundleRun]) -> None:
    run = bundle_run("self-play").one("selfplay-assert-fail")
    assert len(contents(run, "user")) == 2
    assert not any("never be produced" in text for text in contents(run, "assistant"))
    conversation = run["conversation_assertions"]
    assert conversation["total"] == 1 and conversation["passed"] is True


def test_persona_prompt_uses_scenario_variables_and_optional_defaults() -> None:
    bundle = load_bundle(BUNDLES / "self-play")
    persona = bundle.personas["curious-shopper"]
    prompt = persona_system_prompt(persona, bundle.variables_for(bundle.scenarios["selfplay-fixed"]))
    assert "You are shopping for a laptop with a budget of 900 EUR." in prompt
    assert "Find out battery life" in prompt
    assert bundle.role_provider("shopper") == "mock-user"


# ---------------------------------------------------------------------------------------------------------
# Judges


def test_judge_threshold_uses_the_score(bundle_run: Callable[[str], BundleRun]) -> None:
    result = bundle_run("judges")
    high = next(assertion_results(result.one("judge-min-score-high")))
    low = next(assertion_results(result.one("judge-min-score-low")))
    assert high["type"] == low["type"] == "assertion:llm_judge"
    assert high["score"] == low["score"] == pytest.approx(0.6)
    assert high["passed"] is False and low["passed"] is True
    assert high["message"].startswith("Reset instructions must be good enough to follow")


def test_conversation_judges_see_the_conversation(bundle_run: Callable[[str], BundleRun]) -> None:
    run = bundle_run("judges").one("judge-pass")
    conversation = run["conversation_assertions"]["results"]
    assert [r["type"] for r in conversation] == ["llm_judge_conversation", "assertion:llm_judge_conversation"]
    assert all(r["passed"] and r["score"] == pytest.approx(1.0) for r in conversation)
    assistant_cost = sum(m["cost_info"]["total_cost_usd"] for m in run["Messages"] if m["role"] == "assistant")
    assert run["Cost"]["total_cost_usd"] > assistant_cost, "judge calls are part of the run's cost"


# ---------------------------------------------------------------------------------------------------------
# Guardrails and variables


def test_variables_layer_prompt_defaults_arena_vars_scenario_variables() -> None:
    bundle = load_bundle(BUNDLES / "guardrails-vars")
    scenario = bundle.scenarios["vars-layering"]
    variables = bundle.variables_for(scenario)
    assert variables == {
        "agent_name": "Ava",  # prompt default
        "company": "Globex",  # arena vars over the prompt default
        "language": "German",  # scenario variables over arena vars
        "tone": "formal",  # scenario variables over the prompt default
        "signature": "{{agent_name}} at {{company}}",
    }
    prompt, arena_vars = bundle.prompt_for(scenario)
    assert prompt is not None and arena_vars == {"company": "Globex", "language": "French"}
    assert render(prompt.system_template, variables) == (
        "You are Ava, the refund assistant of Globex. Answer in German with a formal tone.\n"
        'Sign every answer with "Ava at Globex".'
    )
    plain = bundle.variables_for(bundle.scenarios["clean-reply"])
    assert render(prompt.system_template, plain).startswith(
        "You are Ava, the refund assistant of Globex. Answer in French with a friendly tone.")


def test_guardrail_results_name_the_validator(bundle_run: Callable[[str], BundleRun]) -> None:
    result = bundle_run("guardrails-vars")
    unexpected = next(assertion_results(result.one("guardrail-unexpected")))
    assert unexpected["passed"] is False and "banned_words" in unexpected["message"]
    length = turn_results(result.one("length-guardrail"))[0]
    assert [r["passed"] for r in length] == [True, True]


def test_triggered_guardrails_enforce_on_the_reply(bundle_run: Callable[[str], BundleRun]) -> None:
    """Upstream validators act, not just observe: a banned word replaces the reply, `length` truncates it."""
    result = bundle_run("guardrails-vars")
    banned = contents(result.one("banned-word-fires"), "assistant")[-1]
    assert "guarantee" not in banned.lower()
    long_reply = contents(result.one("length-guardrail"), "assistant")[-1]
    assert len(long_reply) <= 120


# ---------------------------------------------------------------------------------------------------------
# Assertion coverage and stop-on-failure

COVERAGE_BUNDLES = ("assertion-matrix", "tools", "guardrails-vars", "mock-responses")
COVERED_MODULES = (content, structured, tool_checks, toolchains)
# Upstream's sentence_count (and max_sentences) always scores 1.0; cosine_similarity needs an embedding that
# no conversation provides. Their pass/fail sides are checked in tests/unit/test_assertions.py.
ONE_SIDED = {"sentence_count", "max_sentences", "cosine_similarity"}


def test_every_content_json_tool_assertion_passes_and_fails(bundle_run: Callable[[str], BundleRun]) -> None:
    names = {**{n: n for n in BY_NAME}, **ALL_ALIASES}
    wanted = {name for name, target in names.items() if name not in ONE_SIDED
              and any(BY_NAME[target].run.__module__ == module.__name__ for module in COVERED_MODULES)}
    assert {"contains", "json_path", "tool_args", "not_contains", "tool_call_chain", "banned_words"} <= wanted
    seen: dict[str, set[bool]] = defaultdict(set)
    for name in COVERAGE_BUNDLES:
        for run in bundle_run(name).runs:
            for result in assertion_results(run):
                if not result.get("skipped"):
                    seen[result["type"]].add(bool(result["passed"]))
    missing = {t: sorted({True, False} - seen[t]) for t in sorted(wanted) if seen[t] != {True, False}}
    assert not missing, f"assertion types never seen passing/failing: {missing}"
    assert {True, False} <= seen["guardrail_triggered"]


def test_failing_turn_assertion_stops_the_conversation(bundle_run: Callable[[str], BundleRun]) -> None:
    run = bundle_run("assertion-matrix").one("content-fail")
    assert [m["role"] for m in run["Messages"]] == ["user", "assistant"]
    assert contents(run, "user") == ["Where is my order?"]
    assert run["Status"] == "failed" and run["Error"] == ""
    conversation = run["conversation_assertions"]
    assert conversation["total"] == 2 and conversation["failed"] == 1
    assert [r["passed"] for r in conversation["results"]] == [True, False]


# ---------------------------------------------------------------------------------------------------------
# Arena file extras: lookup order, inline specs, unknown keys, globals, groups


@pytest.fixture(scope="module")
def extras() -> Bundle:
    return load_bundle(BUNDLES / "arena-extras")


def test_arena_file_lookup_order() -> None:
    assert find_arena_file(BUNDLES / "arena-extras").name == "arena.yaml"
    assert find_arena_file(BUNDLES / "tools").name == "config.arena.yaml"


def test_unknown_arena_keys_are_kept(extras: Bundle) -> None:
    extra = extras.arena.model_extra or {}
    assert {"mcp_servers", "a2a_agents", "state_store", "deploy", "pack_evals"} <= set(extra)
    assert extra["mcp_servers"][0]["name"] == "filesystem"
    assert extra["state_store"] == {"type": "memory"}


def test_inline_specs_and_metadata_names(extras: Bundle) -> None:
    assert set(extras.providers) == {"mock-a", "mock-nightly", "inline-mock"}
    assert extras.provider_groups == {"mock-a": "default", "mock-nightly": "nightly", "inline-mock": "default"}
    assert set(extras.scenarios) == {"refund-policy", "nightly-only", "pinned-inline", "boilerplate", "inline-faq"}
    assert "inline-prompt" in extras.prompt_configs
    assert "politeness" in extras.evals
    prompt, _ = extras.prompt_for(extras.scenarios["inline-faq"])
    assert prompt is not None and prompt.task_type == "faq"


def test_run_matrix(extras: Bundle) -> None:
    plan = generate_plan(extras)
    pairs = sorted({(c.scenario_id, c.provider_id) for c in plan.combinations})
    assert pairs == [
        ("boilerplate", "mock-nightly"),
        ("inline-faq", "inline-mock"), ("inline-faq", "mock-a"),
        ("nightly-only", "mock-nightly"),
        ("pinned-inline", "inline-mock"),
        ("refund-policy", "inline-mock"), ("refund-policy", "mock-a"),
    ]
    assert len(plan) == 9  # inline-faq has 2 trials on each of its 2 providers


def test_global_conversation_assertions_apply_to_every_scenario(bundle_run: Callable[[str], BundleRun]) -> None:
    for run in bundle_run("arena-extras").runs:
        results = run["conversation_assertions"]["results"]
        assert [r["type"] for r in results] == ["content_excludes"], run["ScenarioID"]
    failure = bundle_run("arena-extras").one("boilerplate")["conversation_assertions"]["results"][0]
    assert failure["message"].startswith("No boilerplate disclaimers")


def test_streaming_scenario_reports_ttft(bundle_run: Callable[[str], BundleRun]) -> None:
    for run in bundle_run("arena-extras").of("refund-policy"):
        assert run["Params"]["streaming"] is True
        assert run["TTFT"] is not None


def test_cli_validate_accepts_a_fixture_bundle(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", str(BUNDLES / "arena-extras")]) == 0
    assert "9 runs planned" in capsys.readouterr().out
