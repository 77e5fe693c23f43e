"""The load-test engine's pure parts: arrival curves, the roster's shares, thresholds, HDR merging, the summary's
keys and the reports (no network, no clock)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
import xmlschema
from hdrh.histogram import HdrHistogram

from arena_operator.api.arenajob import ArenaJobSpec
from arena_operator.loadtest.metrics import Recorder, Tally, error_class, merge, percentiles_ms
from arena_operator.loadtest.profile import LoadProfile, profile_from_spec, ramp_curve
from arena_operator.loadtest.reports import timeseries, write_reports
from arena_operator.loadtest.roster import Roster, next_arrival
from arena_operator.loadtest.summary import WorkerInfo, build_summary
from arena_operator.loadtest.thresholds import METRICS, evaluate, parse_threshold, threshold_from_spec

REPO = Path(__file__).resolve().parents[2]
STABLE_KEYS = {"target_rps", "achieved_rps", "requests", "dropped", "errors", "error_rate", "latency_ms", "ttft_ms",
               "scheduling_lag_ms", "cost_usd", "thresholds"}


def arrivals(curve: Any, roster: Roster, worker: str) -> list[int]:
    found, last = [], -1
    while (step := next_arrival(curve, roster, worker, last)) is not None:
        last = step[0]
        found.append(last)
    return found


@pytest.mark.parametrize(("rate", "duration", "up", "down", "expected"), [
    (20, 6, 0, 0, 120), (10, 10, 2, 2, 80), (500, 30 * 60, 120, 0, 870_000), (7, 3, 3, 0, 10.5)])
def test_curve_counts_the_arrivals_of_the_target(rate: float, duration: float, up: float, down: float,
                                                 expected: float) -> None:
    curve = ramp_curve(rate, duration, up, down)
    assert curve.integral(duration) == pytest.approx(expected)
    times = [curve.inverse(k) for k in range(0, math.ceil(expected), max(1, int(expected) // 1000))]
    assert all(t is not None and 0 <= t < duration for t in times) and times == sorted(times)  # type: ignore[type-var]
    assert curve.inverse(expected + 1) is None


def test_ramp_is_linear_from_zero() -> None:
    curve = ramp_curve(10, 10, 2, 2)
    assert [round(curve.at(t), 3) for t in (0, 1, 2, 5, 8, 9, 9.999)] == [0, 5, 10, 10, 10, 5, 0.005]
    assert curve.inverse(5) == pytest.approx(math.sqrt(2))  # 5 arrivals in the first √2 s of the ramp


def test_shares_interleave_and_cover_every_arrival_once() -> None:
    curve = ramp_curve(20, 6, 0, 0)
    roster = Roster.of((0.0, ("a", "b", "c")))
    shares = {w: arrivals(curve, roster, w) for w in "abc"}
    assert shares["a"][:3] == [0, 3, 6] and shares["b"][:3] == [1, 4, 7]
    assert sorted(k for s in shares.values() for k in s) == list(range(120))


@pytest.mark.parametrize("history", [
    ((0.0, ("a", "b", "c")), (3.3, ("a", "b"))),  # c left
    ((0.0, ("a", "b")), (2.1, ("a", "b", "c")), (2.6, ("a", "b", "c", "d"))),  # c, then d joined
    ((0.0, ("a",)), (1.5, ()), (2.0, ("b", "c"))),  # a gap with nobody: those arrivals are missed, not doubled
])
def test_roster_changes_at_their_times_keep_every_arrival_at_most_once(
        history: tuple[tuple[float, tuple[str, ...]], ...]) -> None:
    curve = ramp_curve(20, 6, 1, 0)
    roster = Roster(history)
    everyone = {w for _, workers in history for w in workers}
    shares = {w: arrivals(curve, roster, w) for w in everyone}
    taken = sorted(k for s in shares.values() for k in s)
    due = [k for k in range(round(curve.integral(6))) if roster.at(curve.inverse(k)) != ()]  # type: ignore[arg-type]
    assert taken == due  # each arrival due under a roster with workers runs exactly once
    for worker, ks in shares.items():  # and on the worker the roster in effect at its time names
        for k in ks:
            workers = roster.at(curve.inverse(k))  # type: ignore[arg-type]
            assert workers.index(worker) == k % len(workers)


def test_closed_model_splits_the_virtual_users() -> None:
    profile = LoadProfile(model="closed", duration=10, concurrency=20, vus_per_worker=5)
    assert [profile.vus_for(5, i, 4) for i in range(4)] == [(5, 0)] * 4
    assert profile.vus_for(5, 0, 2) == (5, 5)  # 10 wanted, capped at vusPerWorker: saturated
    assert [profile.vus_for(5, i, 3)[0] for i in range(3)] == [5, 5, 5]
    only_per_worker = LoadProfile(model="closed", duration=10, vus_per_worker=3, ramp_up=2)
    assert only_per_worker.vus_for(1, 0, 7) == (2, 0) and only_per_worker.vus_for(5, 6, 7) == (3, 0)


def test_both_forms_make_one_profile() -> None:
    seed = ArenaJobSpec.model_validate({"configRef": {"name": "c"}, "type": "loadtest",
                                        "loadTest": {"rampUp": "2m", "duration": "30m", "targetRPS": 500}})
    assert seed.load_test is not None
    open_model = profile_from_spec(seed.load_test, None, 6)
    assert (open_model.model, open_model.target_rps, open_model.ramp_up, open_model.duration) == \
        ("open", 500, 120, 1800)
    go = ArenaJobSpec.model_validate({"sourceRef": {"name": "s"}, "type": "loadtest", "trials": 200, "loadTest": {
        "concurrency": 20, "vusPerWorker": 5, "ramp": {"up": "2m", "down": "30s"}, "budgetLimit": "25.00",
        "budgetCurrency": "USD", "thresholds": [{"metric": "latency_p95", "operator": "<", "value": "3s"},
                                                {"metric": "error_rate", "operator": "<=", "value": "0.01"}]}})
    assert go.load_test is not None
    closed = profile_from_spec(go.load_test, go.trials, 3)
    assert (closed.model, closed.concurrency, closed.vus_per_worker, closed.iterations) == ("closed", 20, 5, 600)
    assert (closed.ramp_up, closed.ramp_down, closed.budget_limit) == (120, 30, 25.0)
    assert [(t.metric, t.operator, t.limit) for t in closed.thresholds] == [("latency_p95", "<", 3000.0),
                                                                           ("error_rate", "<=", 0.01)]
    assert LoadProfile.from_config(json.loads(json.dumps(closed.to_config()))) == closed


def test_ramp_up_and_ramp_up_of_the_go_form_both_set_says_which_wins() -> None:
    spec = ArenaJobSpec.model_validate({"configRef": {"name": "c"}, "type": "loadtest", "loadTest": {
        "targetRPS": 5, "rampUp": "1m", "ramp": {"up": "10s"}, "duration": "2m"}})
    assert spec.load_test is not None
    profile = profile_from_spec(spec.load_test, None, 1)
    assert profile.ramp_up == 10 and "ramp.up (10s) wins over loadTest.rampUp (1m)" in profile.notes[0]


def test_impossible_profiles_are_refused() -> None:
    spec = ArenaJobSpec.model_validate({"configRef": {"name": "c"}, "type": "loadtest", "loadTest": {
        "targetRPS": 5, "rampUp": "2m", "duration": "1m"}})
    assert spec.load_test is not None
    with pytest.raises(ValueError, match=r"ramps .* longer than loadTest.duration"):
        profile_from_spec(spec.load_test, None, 1)


@pytest.mark.parametrize(("text", "metric", "operator", "limit"), [
    ("latency_p95<500", "latency_p95", "<", 500.0), ("ttft_p99 <= 2s", "ttft_p99", "<=", 2000.0),
    ("latency_avg<250ms", "latency_avg", "<", 250.0), ("error_rate<0.01", "error_rate", "<", 0.01),
    ("rps>=19.5", "rps", ">=", 19.5), ("total_cost<$5", "total_cost", "<", 5.0)])
def test_cli_thresholds(text: str, metric: str, operator: str, limit: float) -> None:
    threshold = parse_threshold(text)
    assert (threshold.metric, threshold.operator, threshold.limit) == (metric, operator, limit)


@pytest.mark.parametrize(("text", "words"), [("latency_p42<5", "unknown threshold metric"),
                                             ("error_rate=0.1", "write METRIC<VALUE"),
                                             ("latency_p95<fast", "invalid duration")])
def test_bad_cli_thresholds_say_why(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_threshold(text)


def _summary_of(recorder: Recorder, profile: LoadProfile, unpriced: list[str] | None = None) -> dict[str, Any]:
    return build_summary(profile, recorder.total, elapsed=profile.duration,
                         workers=[WorkerInfo("w", 0.0, profile.duration, "finished", recorder.total)],
                         unpriced=unpriced)


def _recorded(streaming: bool = True, priced: bool = True) -> Recorder:
    recorder = Recorder(lambda: 1.5, (0.0, 10.0))
    for i in range(100):
        recorder.arrival(True, 0.001)
        error = "rate_limited" if i % 20 == 0 else ("server_error" if i % 25 == 1 else None)
        recorder.request(0.040 + i / 1000, 5.0 + i / 10 if streaming and not error else None, (10, 20),
                         0.001 if priced else None, error)
        recorder.run_done("error" if error else ("failed" if i % 10 == 9 else "passed"))
    return recorder


def test_every_threshold_metric_is_computed_and_passes_or_fails_on_its_value() -> None:
    profile = LoadProfile(model="open", duration=10, target_rps=10)
    summary = _summary_of(_recorded(), profile)
    for metric in sorted(METRICS):
        [measured] = evaluate([threshold_from_spec(metric, ">=", "0")], summary)
        assert measured["passed"] and measured["measured"] is not None, metric
        value = measured["measured"]
        above, below = threshold_from_spec(metric, "<", str(value * 1.01 + 1e-6)), \
            threshold_from_spec(metric, "<", str(value * 0.99 - 1e-6))
        assert [r["passed"] for r in evaluate([above, below], summary)] == [True, False], (metric, value)
    [rate] = evaluate([threshold_from_spec("error_rate", "<", "1")], summary)
    assert rate["measured"] == pytest.approx(9 / 100)  # 5 × 429 + 4 × 5xx of 100 requests
    [limited] = evaluate([threshold_from_spec("rate_limit_rate", "<", "1")], summary)
    assert limited["measured"] == pytest.approx(5 / 100)
    [passing] = evaluate([threshold_from_spec("pass_rate", ">", "0")], summary)
    assert passing["measured"] == pytest.approx(summary["runs"]["passed"] / 100)
    assert summary["errors"]["rate_limited"] == 5 and summary["errors"]["server_error"] == 4


@pytest.mark.parametrize(("metric", "recorder", "unpriced", "reason"), [
    ("ttft_p95", {"streaming": False}, None, "no streamed response"),
    ("ttft_avg", {"streaming": False}, None, "streaming requests only"),
    ("total_cost", {"priced": False}, ["llm"], "provider(s) llm have no pricing"),
])
def test_a_metric_that_cannot_be_computed_fails_its_threshold(metric: str, recorder: dict[str, bool],
                                                              unpriced: list[str] | None, reason: str) -> None:
    profile = LoadProfile(model="open", duration=10, target_rps=10)
    summary = _summary_of(_recorded(**recorder), profile, unpriced)
    for operator in ("<", ">", "<=", ">="):
        [result] = evaluate([threshold_from_spec(metric, operator, "1000000")], summary)
        assert result["passed"] is False and result["measured"] is None and reason in result["reason"]


def test_nothing_measured_fails_every_threshold() -> None:
    profile = LoadProfile(model="open", duration=10, target_rps=10)
    summary = _summary_of(Recorder(lambda: 0.0), profile)
    results = evaluate([threshold_from_spec(m, "<", "1000") for m in sorted(METRICS) if m != "rps"], summary)
    assert [r["metric"] for r in results if r["passed"]] == ["total_cost"]  # no request: nothing spent (known 0)


def test_histograms_of_three_workers_merge_to_exactly_the_union() -> None:
    rng = random.Random(7)
    workers = [Recorder(lambda: 0.5) for _ in range(3)]
    union = HdrHistogram(1, 3_600_000_000, 3)
    values: list[float] = []
    for index, recorder in enumerate(workers):
        for _ in range(2000 + 500 * index):  # different shapes and sizes per worker
            seconds = rng.lognormvariate(math.log(0.05 * (index + 1)), 0.4)
            recorder.request(seconds, None, (1, 1), 0.0, None)
            union.record_value(round(seconds * 1_000_000))
            values.append(seconds * 1000)
    merged = merge(json.loads(json.dumps(json.loads(r.totals()))) for r in workers)  # through JSON, as via Redis
    for pct in (50, 90, 95, 99, 99.9):
        assert merged.hists["lat"].get_value_at_percentile(pct) == union.get_value_at_percentile(pct)
    mine = percentiles_ms(merged, "lat")
    exact = sorted(values)
    for key, pct in (("p50", 50), ("p95", 95), ("p99", 99)):
        truth = exact[math.ceil(pct / 100 * len(exact)) - 1]
        assert mine[key] == pytest.approx(truth, rel=2e-3)  # HDR's 3 significant digits
    assert mine["avg"] == pytest.approx(sum(values) / len(values), rel=1e-4)  # the exact mean, not bucketed
    naive = sum(percentiles_ms(r.total, "lat")["p99"] for r in workers) / 3
    assert abs(naive - mine["p99"]) > 5  # an average of per-worker percentiles would be wrong here


def test_error_classes() -> None:
    assert [error_class(k, s) for k, s in [("rate_limited", 429), ("server_error", 503), ("overloaded", 529),
                                            ("timeout", None), ("connection", None), ("auth_error", 401),
                                            ("bad_response", 200), ("internal", None)]] == \
        ["rate_limited", "server_error", "server_error", "timeout", "connection", "client_error", "other", "other"]


def test_buckets_close_once_and_carry_their_second() -> None:
    now = [0.2]
    recorder = Recorder(lambda: now[0])
    recorder.arrival(True, 0.0)
    now[0] = 1.1
    recorder.arrival(False, 0.002)
    closed = recorder.take_closed()
    assert list(closed) == ["0"] and recorder.take_closed() == {}
    assert list(recorder.take_closed(final=True)) == ["1"]
    assert Tally.decode(json.loads(closed["0"])).counts["started"] == 1


def test_summary_keeps_the_stable_keys_and_the_reports_are_self_contained(tmp_path: Path) -> None:
    profile = LoadProfile(model="open", duration=2, target_rps=50, budget_limit=10.0,
                          thresholds=(parse_threshold("latency_p95<500"), parse_threshold("ttft_p95<1")))
    recorder = _recorded()
    summary = _summary_of(recorder, profile)
    assert set(summary) >= STABLE_KEYS
    assert set(summary["latency_ms"]) >= {"p50", "p90", "p95", "p99", "max", "avg"}
    assert set(summary["scheduling_lag_ms"]) >= {"p50", "p99"}
    assert set(summary["thresholds"][0]) >= {"metric", "operator", "value", "measured", "passed"}
    rows = timeseries({1: [json.dumps(recorder.total.encode())]}, profile, 2.0)
    files = write_reports(tmp_path, summary, rows, {"job": "arena/lt"})
    assert [f.name for f in files] == ["summary.json", "timeseries.csv", "report.html", "junit.xml"]
    html = (tmp_path / "report.html").read_text()
    assert "<svg" in html and html.count("<svg") == 3 and "<script" not in html
    assert "http://" not in html and "https://" not in html and " src=" not in html
    assert "Latency percentiles per second" in html and "Errors per second" in html
    xmlschema.XMLSchema(str(REPO / "tests/fixtures/junit.xsd")).validate(str(tmp_path / "junit.xml"))
    junit = (tmp_path / "junit.xml").read_text()
    assert junit.count("<testcase") == 3 and 'failures="1"' in junit  # two thresholds and the budget
    assert "ttft_p95 &lt; 1 (measured" in junit
    header = (tmp_path / "timeseries.csv").read_text().splitlines()[0].split(",")
    assert {"second", "arrivals", "completed", "dropped", "err_rate_limited", "latency_p95_ms", "ttft_p99_ms",
            "cost_usd"} <= set(header)
