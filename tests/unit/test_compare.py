"""A run against its baseline: per scenario × provider deltas, newly failing/passing by run id, the verdict;
and which run is the baseline."""

from __future__ import annotations

from typing import Any

import pytest

from arena_operator.api.arenajob import ArenaJobSpec
from arena_operator.reconcile.baseline import choose_baseline
from arena_operator.results.compare import compare


def run(run_id: str, scenario: str, provider: str, status: str, ms: float = 100.0,
        cost: float = 0.001) -> dict[str, Any]:
    return {"RunID": run_id, "ScenarioID": scenario, "ProviderID": provider, "Status": status, "Duration": ms,
            "Cost": {"total_cost_usd": cost}}


BASE = [run("g1", "greeting", "a", "passed"), run("g2", "greeting", "a", "passed"),
        run("r1", "refund", "a", "passed", 200), run("r2", "refund", "a", "failed", 220),
        run("e1", "escalation", "a", "failed")]


def test_a_dropped_pass_rate_is_a_regression_naming_the_scenario() -> None:
    now = [run("g1", "greeting", "a", "passed"), run("g2", "greeting", "a", "failed"),
           run("r1", "refund", "a", "passed", 400), run("r2", "refund", "a", "passed", 420),
           run("e1", "escalation", "a", "failed"), run("n1", "new-one", "a", "passed")]
    result = compare(BASE, now, baseline={"revision": "main@sha1:old"}, max_pass_rate_drop=0.0)
    assert result.regressed
    assert [(c["scenario"], c["delta"]) for c in result.regressions] == [("greeting", -0.5)]
    assert result.counts == {"newlyFailing": 1, "newlyPassing": 1, "unchanged": 3, "added": 1, "removed": 0}
    cells = {c["scenario"]: c for c in result.cells}
    assert cells["greeting"]["newlyFailing"] == ["g2"] and cells["refund"]["newlyPassing"] == ["r2"]
    assert cells["refund"]["p95DeltaMs"] > 150 and cells["new-one"]["baselinePassRate"] is None
    assert "greeting × a 100% → 50%" in result.message() and "main@sha1:old" in result.message()
    short = result.summary()
    assert short["regressed"] and short["topRegressions"][0]["scenario"] == "greeting" and "cells" not in short


@pytest.mark.parametrize(("allowed", "regressed"), [(0.0, True), (0.49, True), (0.5, False)])
def test_the_allowed_drop(allowed: float, regressed: bool) -> None:
    now = [run("g1", "greeting", "a", "passed"), run("g2", "greeting", "a", "failed")]
    assert compare(BASE[:2], now, max_pass_rate_drop=allowed).regressed is regressed


def test_identical_runs_do_not_regress() -> None:
    result = compare(BASE, BASE)
    assert not result.regressed and result.counts["unchanged"] == 5 and "no scenario" in result.message()


def outline(name: str, phase: str, completed: str, parent: str | None = "nightly", url: str = "s3://b/p/") -> dict:
    return {"name": name, "phase": phase, "completionTime": completed, "parent": parent, "revision": f"rev-{name}",
            "result": {"url": url + name + "/"}}


JOBS = [outline("nightly-1", "Succeeded", "2026-01-01T02:10:00Z"),
        outline("nightly-2", "Failed", "2026-01-02T02:10:00Z"),
        outline("nightly-3", "Succeeded", "2026-01-03T02:10:00Z"),
        outline("other", "Succeeded", "2026-01-04T00:00:00Z", parent=None),
        outline("nightly-4", "Running", "")]


@pytest.mark.parametrize(("compare_spec", "name", "parent", "expected"), [
    (None, "nightly-4", "nightly", {"url": "s3://b/p/nightly-3/", "revision": "rev-nightly-3", "job": "nightly-3"}),
    (None, "one-off", None, None),
    ({"baseline": {"jobName": "other"}}, "one-off", None,
     {"url": "s3://b/p/other/", "revision": "rev-other", "job": "other"}),
    ({"baseline": {"url": "pvc://results/evals/x/"}}, "nightly-4", "nightly",
     {"url": "pvc://results/evals/x/", "revision": None, "job": None}),
])
def test_choose_baseline(compare_spec: dict | None, name: str, parent: str | None, expected: dict | None) -> None:
    spec = ArenaJobSpec.model_validate({"configRef": {"name": "c"}, **({"compare": compare_spec} if compare_spec
                                                                        else {})})
    assert choose_baseline(spec, name, parent, JOBS) == expected


def test_a_named_baseline_that_cannot_be_used_says_why() -> None:
    spec = ArenaJobSpec.model_validate({"configRef": {"name": "c"}, "compare": {"baseline": {"jobName": "nightly-2"}}})
    assert "nightly-2" in choose_baseline(spec, "x", None, JOBS)["reason"]
    with pytest.raises(ValueError, match="exactly one of jobName and url"):
        ArenaJobSpec.model_validate({"configRef": {"name": "c"}, "compare": {"baseline": {}}})
