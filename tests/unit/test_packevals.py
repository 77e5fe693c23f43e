"""Pack evals: the load-time checks (table), the flags' selection, upstream's deterministic sampling, the
pass rule, and a turn and a session run over a real transcript."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from arena_operator.engine.assertions.base import EvalServices
from arena_operator.engine.bundle import load_bundle
from arena_operator.engine.errors import BundleInvalid
from arena_operator.engine.packeval_spec import PackEvalDef, select
from arena_operator.engine.packevals import PackEvals, _fnv1a64, passed, sampled
from arena_operator.engine.types import Message
from arena_operator.results.packeval_rows import PackEvalTally, as_assertion_rows

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "bundles" / "pack-evals"
GOOD = {"id": "polite", "type": "content_includes", "trigger": "every_turn", "params": {"patterns": ["thank"]}}


def bundle_with(tmp_path: Path, pack_evals: Any) -> Path:
    root = tmp_path / "b"
    shutil.copytree(FIXTURE, root)
    config = root / "config.arena.yaml"
    data = yaml.safe_load(config.read_text())
    data["spec"]["pack_evals"] = pack_evals
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return root


PROBLEMS: list[tuple[str, Any, str, str]] = [
    ("not a list", {"polite": GOOD}, "pack_evals", "must be a list"),
    ("no id", [{**GOOD, "id": ""}], "pack_evals[0].id", "at least 1 character"),
    ("unknown type", [{**GOOD, "type": "content_include"}], "pack_evals[0].type",
     "unknown eval type 'content_include' (did you mean 'content_includes'?)"),
    ("unknown trigger", [{**GOOD, "trigger": "every_turns"}], "pack_evals[0].trigger",
     "unknown trigger 'every_turns' (did you mean 'every_turn'?)"),
    ("no trigger", [{k: v for k, v in GOOD.items() if k != "trigger"}], "pack_evals[0].trigger", "required"),
    ("duplicate id", [GOOD, GOOD], "pack_evals[1].id", "duplicate pack eval id 'polite'"),
    ("sample over 100", [{**GOOD, "trigger": "sample_turns", "sample_percentage": 150}],
     "pack_evals[0].sample_percentage", "less than or equal to 100"),
]


@pytest.mark.parametrize(("evals", "field", "message"), [(e, f, m) for _, e, f, m in PROBLEMS],
                         ids=[i for i, *_ in PROBLEMS])
def test_bad_pack_evals_fail_the_load_at_their_line(tmp_path: Path, evals: Any, field: str, message: str) -> None:
    root = bundle_with(tmp_path, evals)
    with pytest.raises(BundleInvalid) as caught:
        load_bundle(root)
    found = [p for p in caught.value.problems if p.field == field]
    assert found and message in found[0].message, caught.value.problems
    assert found[0].file == "config.arena.yaml" and found[0].line > 0


def test_idle_triggers_load_with_a_warning(tmp_path: Path) -> None:
    bundle = load_bundle(bundle_with(tmp_path, [{**GOOD, "trigger": "on_conversation_complete"}]))
    assert [d.trigger for d in bundle.pack_evals] == ["on_conversation_complete"]
    assert any("does not run pack evals on it" in w.message for w in bundle.warnings)


def test_the_fixture_loads_every_eval() -> None:
    bundle = load_bundle(FIXTURE)
    assert [d.id for d in bundle.pack_evals] == ["polite", "every-sampled-turn", "never-sampled", "short-session",
                                                "only-with-tools", "switched-off"]


DEFS = [PackEvalDef(id="a", type="contains", trigger="every_turn"),
        PackEvalDef(id="b", type="max_length", trigger="on_session_complete"),
        PackEvalDef(id="c", type="contains", trigger="sample_turns")]


@pytest.mark.parametrize(("skip", "types", "ids"), [
    (False, [], ["a", "b", "c"]), (True, [], []), (True, ["contains"], []), (False, ["contains"], ["a", "c"]),
    (False, ["max_length", "regex"], ["b"]), (False, ["content"], []),
])
def test_flags_select_by_exact_type(skip: bool, types: list[str], ids: list[str]) -> None:
    assert [d.id for d in select(DEFS, skip, types)] == ids


def test_fnv1a64_known_vectors() -> None:
    # The FNV-1a 64-bit test vectors (as Go's hash/fnv computes them).
    assert _fnv1a64(b"") == 0xCBF29CE484222325
    assert _fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert _fnv1a64(b"foobar") == 0x85944171F73967E8


@pytest.mark.parametrize(("pct", "share"), [(0.0, 0.0), (100.0, 1.0), (50.0, 0.5), (5.0, 0.05)])
def test_sampling_is_deterministic_and_near_its_percentage(pct: float, share: float) -> None:
    hits = [sampled(f"session-{i}", 0, pct) for i in range(2000)]
    assert hits == [sampled(f"session-{i}", 0, pct) for i in range(2000)]
    assert abs(sum(hits) / len(hits) - share) < 0.04


@pytest.mark.parametrize(("result", "ok"), [
    ({"score": 1.0}, True), ({"score": 0.99}, False), ({"score": None}, False), ({"score": 1.0, "error": "x"}, False),
    ({"skipped": True}, True), ({"score": 0.6, "threshold": {"min_score": 0.5}}, True),
    ({"score": 0.4, "threshold": {"min_score": 0.5}}, False), ({"score": 0.9, "threshold": {"max_score": 0.8}}, False),
])
def test_pass_rule(result: dict[str, Any], ok: bool) -> None:
    assert passed(result) is ok


async def test_turn_and_session_evals_over_a_transcript() -> None:
    defs = [PackEvalDef(id="polite", type="content_includes", trigger="every_turn", params={"patterns": ["thank"]}),
            PackEvalDef(id="short", type="max_length", trigger="on_session_complete",
                        params={"max_characters": 5}, threshold={"min_score": 0.1}),
            PackEvalDef(id="tools", type="contains", trigger="every_turn", when={"any_tool_called": True},
                        params={"substring": "x"}),
            PackEvalDef(id="off", type="contains", trigger="every_turn", enabled=False, params={"substring": "x"}),
            PackEvalDef(id="none", type="contains", trigger="sample_sessions", sample_percentage=0,
                        params={"substring": "x"})]
    evals = PackEvals(defs)
    first = [Message("user", "hi"), Message("assistant", "Thanks for writing")]
    turn = await evals.after_turn(first, first, "run-1", EvalServices())
    assert [(r["eval_id"], r["turn_index"], r["passed"], r.get("skipped", False)) for r in turn] == [
        ("polite", 0, True, False), ("tools", 0, True, True)]
    assert turn[1]["skip_reason"] == "no tool calls in turn"
    both = [*first, Message("user", "and?"), Message("assistant", "Done.")]
    second = await evals.after_turn(both, both[2:], "run-1", EvalServices())
    assert (second[0]["turn_index"], second[0]["passed"], second[0]["explanation"]) == (
        1, False, "missing patterns: thank")
    end = await evals.at_end(both, "run-1", EvalServices())
    assert [(r["eval_id"], r["trigger"], r["session_id"], r["passed"]) for r in end] == [
        ("short", "on_session_complete", "run-1", True)]
    assert end[0]["threshold"] == {"min_score": 0.1}


def test_rows_and_tally_for_the_reports() -> None:
    results = [{"eval_id": "polite", "type": "content_includes", "trigger": "every_turn", "turn_index": 0,
                "passed": False, "score": 0.0, "explanation": "missing patterns: thank", "duration_ms": 1},
               {"eval_id": "tools", "type": "contains", "trigger": "every_turn", "turn_index": 0, "passed": True,
                "skipped": True, "skip_reason": "no tool calls in turn", "duration_ms": 0}]
    rows = as_assertion_rows(results)
    assert [(r["type"], r["passed"], r["message"]) for r in rows] == [
        ("pack_eval:content_includes", False, "missing patterns: thank"),
        ("pack_eval:contains", True, "skipped: no tool calls in turn")]
    tally = PackEvalTally()
    tally.add({"eval_results": results})
    tally.add({"eval_results": results[:1]})
    assert tally.markdown()[-2:] == ["| polite | pack_eval:content_includes | 2 | 0 | 2 | 0 |",
                                     "| tools | pack_eval:contains | 1 | 0 | 0 | 1 |"]
    assert PackEvalTally().markdown() == []


def with_pack(tmp_path: Path, pack: Any, pack_evals: Any = None, ref: str = "support.pack.json") -> Path:
    root = bundle_with(tmp_path, pack_evals if pack_evals is not None else [])
    config = root / "config.arena.yaml"
    data = yaml.safe_load(config.read_text())
    data["spec"]["pack_file"] = ref
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    (root / "support.pack.json").write_text(pack if isinstance(pack, str) else json.dumps(pack, indent=2))
    return root


def eval_def(eval_id: str, kind: str = "contains", trigger: str = "every_turn") -> dict[str, Any]:
    return {"id": eval_id, "type": kind, "trigger": trigger, "params": {"substring": eval_id}}


def test_a_compiled_packs_evals_merge_as_upstream(tmp_path: Path) -> None:
    pack = {"id": "support", "evals": [eval_def("a"), eval_def("b"), eval_def("c")],
            "prompts": {"concierge": {"id": "concierge", "evals": [eval_def("b", "max_length"), eval_def("d")]},
                        "other": {"id": "other"}}}
    bundle = load_bundle(with_pack(tmp_path, pack, [eval_def("c", "regex"), eval_def("e")]))
    # pack evals, a prompt's overriding by id in place and adding new ones, then the arena file's over all
    assert [(d.id, d.type) for d in bundle.pack_evals] == [
        ("a", "contains"), ("b", "max_length"), ("c", "regex"), ("d", "contains"), ("e", "contains")]


PACK_PROBLEMS: list[tuple[str, Any, str, str, str]] = [
    ("outside the bundle", {}, "../elsewhere.pack.json", "config.arena.yaml", "is outside the bundle"),
    ("missing", None, "missing.pack.json", "config.arena.yaml", "not found"),
    ("not JSON", '{"evals": [', "support.pack.json", "support.pack.json", ""),
    ("not an object", "[1, 2]", "support.pack.json", "support.pack.json", "must be a JSON object"),
    ("bad eval in a prompt", {"prompts": {"p": {"evals": [eval_def("x", trigger="hourly")]}}}, "support.pack.json",
     "support.pack.json", "unknown trigger 'hourly'"),
]


@pytest.mark.parametrize(("pack", "ref", "file", "message"), [(p, r, f, m) for _, p, r, f, m in PACK_PROBLEMS],
                         ids=[i for i, *_ in PACK_PROBLEMS])
def test_a_bad_pack_file_fails_the_load(tmp_path: Path, pack: Any, ref: str, file: str, message: str) -> None:
    root = with_pack(tmp_path, pack if pack is not None else {}, ref=ref)
    if pack is None:
        (root / "support.pack.json").unlink()
    with pytest.raises(BundleInvalid) as caught:
        load_bundle(root)
    [problem] = [p for p in caught.value.problems if p.file == file]
    assert message in problem.message and problem.line > 0
    if file == "support.pack.json" and message.startswith("unknown trigger"):
        assert problem.field == "prompts.p.evals[0].trigger"
        assert problem.line == (root / file).read_text().splitlines().index('          "trigger": "hourly",') + 1
