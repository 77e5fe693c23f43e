"""Load tests against real local HTTP providers (the OpenAI wire-format fake) and a real Redis: what the engine
measures is checked against what the server did. Timing is asserted on counts and on server-side truth with
margins a loaded 2-core machine keeps (never wall-clock equalities)."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import xmlschema

from arena_operator.engine.bundle import load_bundle
from arena_operator.engine.plan import RunFilters
from arena_operator.loadtest.coord import LEAD_S, LIVENESS_S, REFRESH_S, RedisCoordinator
from arena_operator.loadtest.metrics import Recorder, new_histogram
from arena_operator.loadtest.profile import LoadProfile
from arena_operator.loadtest.run import load_config, mix_of
from arena_operator.loadtest.store import LoadStore
from arena_operator.loadtest.thresholds import METRICS
from arena_operator.loadtest.worker import run_load_test_worker
from arena_operator.local.loadtest import run_load_test_local
from arena_operator.local.run import LocalRunOptions
from arena_operator.results.dirsink import DirSink
from arena_operator.workqueue.queue import WorkQueue, job_key
from tests.fakes.latency_server import latency_server
from tests.fakes.llm_servers import FakeLLMServer, Recorded, Reply

REPO = Path(__file__).resolve().parents[2]
KEY_ENV = "ARENA_LOADTEST_TEST_KEY"
PRICE_IN, PRICE_OUT = 0.5, 1.5  # USD per 1k tokens


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-local-test")


def write_bundle(root: Path, base_url: str, *, streaming: bool = False, priced: bool = True,
                 price_in: float = PRICE_IN) -> Path:
    """One OpenAI-compatible provider at ``base_url`` and one scenario whose reply must say "echo"."""
    (root / "providers").mkdir(parents=True)
    (root / "scenarios").mkdir()
    head = "apiVersion: promptkit.altairalabs.ai/v1alpha1\n"
    (root / "config.arena.yaml").write_text(
        f"{head}kind: Arena\nmetadata: {{name: load}}\nspec:\n  providers:\n    - file: providers/llm.yaml\n"
        "  scenarios:\n    - file: scenarios/ask.yaml\n  defaults: {temperature: 0, run_timeout: 30s}\n")
    pricing = f"  pricing: {{input_cost_per_1k: {price_in}, output_cost_per_1k: {PRICE_OUT}}}\n" if priced else ""
    (root / "providers" / "llm.yaml").write_text(
        f"{head}kind: Provider\nmetadata: {{name: llm}}\nspec:\n  type: openai\n  model: m-load\n"
        f"  base_url: {base_url}\n  credential: {{api_key_env: {KEY_ENV}}}\n{pricing}")
    (root / "scenarios" / "ask.yaml").write_text(
        f"{head}kind: Scenario\nmetadata: {{name: ask}}\nspec:\n  description: one question\n"
        f"  streaming: {str(streaming).lower()}\n  turns:\n"
        "    - role: user\n      content: ping\n      assertions:\n        - type: contains\n"
        "          params: {patterns: [echo]}\n")
    return root


def cli(**values: Any) -> argparse.Namespace:
    base = {"rps": None, "vus": None, "duration": None, "ramp_up": "0s", "threshold": None, "quiet": True, "ci": True}
    return argparse.Namespace(**{**base, **values})


async def run_local(bundle: Path, out: Path, **flags: Any) -> dict[str, Any]:
    outcome = await run_load_test_local(LocalRunOptions(bundle=bundle, out_dir=out), cli(**flags), None, None)
    return outcome.summary


def exact_percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


class Delays:
    """A responder with a known latency distribution; it records what it served (the server-side truth)."""

    def __init__(self, delays: list[float], reply: Callable[[int], Reply] | None = None) -> None:
        self.delays, self.served, self.reply = delays, [], reply

    def __call__(self, request: Recorded) -> Reply:
        index = len(self.served)
        delay = self.delays[index % len(self.delays)]
        self.served.append(delay)
        reply = self.reply(index) if self.reply else Reply("echo: pong")
        reply.delay = delay
        return reply


async def test_measured_percentiles_match_the_servers_latency_distribution(tmp_path: Path) -> None:
    delays = [20.0 + i for i in range(100)]  # uniform 20..119 ms, in a fixed shuffled order
    random.Random(11).shuffle(delays)
    with latency_server(delays) as (url, _):  # its own process: the server's work is not in the client's loop
        summary = await run_local(write_bundle(tmp_path / "b", url), tmp_path / "out", rps=25, duration="4s")
    assert summary["arrivals"] == summary["requests"] == summary["successful_requests"] == 100
    assert summary["dropped"] == 0 and summary["errors"] == dict.fromkeys(summary["errors"], 0)
    for key, pct in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99)):
        truth = exact_percentile(delays, pct)  # the 100 requests got each delay once
        # the client sees the server's delay plus its own overhead, never less (HDR precision: 0.1 %)
        assert truth * 0.999 <= summary["latency_ms"][key] <= truth + 30, (key, truth, summary["latency_ms"])
    assert summary["achieved_rps"] == pytest.approx(25, rel=0.01)


async def test_a_slow_server_yields_dropped_arrivals_not_a_lower_arrival_rate(tmp_path: Path) -> None:
    async with FakeLLMServer(Delays([1.0])) as server:
        summary = await run_local(write_bundle(tmp_path / "b", server.openai_url), tmp_path / "out", rps=20,
                                  duration="3s", vus=4)
        served = len(server.requests)
    assert summary["arrivals"] == 60  # every arrival came due on time, whatever the server did
    assert summary["runs"]["started"] + summary["dropped"] == 60
    assert summary["runs"]["started"] == served == summary["requests"]
    assert served <= 4 * 4  # at most 4 in flight, each holding its slot ~1 s, over 3 s (+ the last ones)
    assert summary["dropped"] >= 60 - 16
    assert summary["latency_ms"]["p50"] >= 1000


async def test_every_threshold_metric_passes_and_fails_on_a_real_run(tmp_path: Path) -> None:
    def reply(index: int) -> Reply:
        if index % 10 == 3:
            return Reply(status=429, headers={"Retry-After": "1"}, error="slow down")
        if index % 15 == 7:
            return Reply(status=500, error="boom")
        return Reply("echo: pong", usage=(40, 10)) if index % 7 else Reply("no match", usage=(40, 10))

    responder = Delays([0.015, 0.025, 0.035], reply)
    async with FakeLLMServer(responder, chunk_delay=0.005) as server:
        bundle = write_bundle(tmp_path / "b", server.openai_url, streaming=True)
        probe = await run_local(bundle, tmp_path / "probe", rps=20, duration="3s")
        statuses = [r.status for r in map(reply, range(len(responder.served)))]
        limited, failed = statuses.count(429), statuses.count(429) + statuses.count(500)
        requests = len(server.requests)
        # the server's own account of the run
        assert probe["requests"] == requests == 60 and probe["error_rate"] == pytest.approx(failed / requests, abs=1e-6)
        assert probe["rate_limit_rate"] == pytest.approx(limited / requests, abs=1e-6)
        assert probe["errors"]["rate_limited"] == limited and probe["errors"]["server_error"] == failed - limited
        ok = requests - failed
        assert probe["ttft_ms"]["count"] == probe["successful_requests"] == ok
        assert probe["cost_usd"] == pytest.approx(ok * (40 * PRICE_IN + 10 * PRICE_OUT) / 1000, abs=1e-6)
        assert probe["ttft_ms"]["p50"] <= probe["latency_ms"]["p50"]
        measured = {t["metric"]: t["measured"] for t in probe["thresholds"]}
        assert measured == {}
        expressions = []
        for metric in sorted(METRICS):
            value = {"rps": probe["achieved_rps"], "total_cost": probe["cost_usd"], "error_rate": probe["error_rate"],
                     "rate_limit_rate": probe["rate_limit_rate"], "pass_rate": probe["pass_rate"]}.get(metric)
            if value is None:
                family, stat = metric.split("_")
                value = probe[f"{family}_ms"][stat]
            expressions += [f"{metric}<{value * 1.5 + 1:g}", f"{metric}>{value * 1.5 + 1:g}"]
        server.requests.clear()
        responder.served.clear()
        summary = await run_local(bundle, tmp_path / "out", rps=20, duration="3s", threshold=expressions)
    results = summary["thresholds"]
    assert len(results) == 2 * len(METRICS)
    for below, above in zip(results[::2], results[1::2], strict=True):
        assert below["measured"] is not None and below["passed"] and not above["passed"], (below, above)
    xmlschema.XMLSchema(str(REPO / "tests/fixtures/junit.xsd")).validate(str(tmp_path / "out" / "junit.xml"))
    junit = (tmp_path / "out" / "junit.xml").read_text()
    assert junit.count("<testcase") == 2 * len(METRICS) and f'failures="{len(METRICS)}"' in junit


async def test_budget_stops_the_test_and_keeps_the_results(tmp_path: Path) -> None:
    # ~25 input tokens at $40 per 1k: about $1 a request; the budget is $8
    async with FakeLLMServer(Delays([0.02])) as server:
        bundle = write_bundle(tmp_path / "b", server.openai_url, price_in=40.0)
        outcome = await run_load_test_local(
            LocalRunOptions(bundle=bundle, out_dir=tmp_path / "out"), cli(rps=20, duration="6s"),
            _budget(8.0), None)
    summary = outcome.summary
    assert summary["stopped"]["reason"] == "BudgetExceeded" and "reached loadTest.budgetLimit 8" in \
        summary["stopped"]["message"]
    assert summary["budget"]["spent"] >= 8 and summary["cost_usd"] < 8 + 20 * 1.2  # < 1 s of spend over
    assert summary["runs"]["started"] < 60 and not outcome.passed
    assert 'type="BudgetExceeded"' in (tmp_path / "out" / "junit.xml").read_text()
    assert (tmp_path / "out" / "report.html").exists() and "Stopped early (BudgetExceeded)" in \
        (tmp_path / "out" / "report.html").read_text()


def _budget(limit: float) -> Any:
    from arena_operator.api.arenajob import LoadTestSettings

    return LoadTestSettings.model_validate({"targetRPS": 20, "rampUp": "0s", "duration": "6s",
                                            "budgetLimit": str(limit), "budgetCurrency": "USD"})


# --- distributed: several workers through Redis ---------------------------------------------------------------


async def test_histograms_of_three_workers_merge_through_redis_to_exactly_the_union(redis_server: Any) -> None:
    client = aioredis.from_url(redis_server.url)
    key = job_key("ns", "merge", "u1")
    union = new_histogram()
    rng = random.Random(3)
    try:
        for index in range(3):
            coordinator = RedisCoordinator(client, key, f"w{index}", f"{key}:cancel")
            await coordinator.join()
            recorder = Recorder(lambda: 0.5)
            for _ in range(1500):
                seconds = rng.uniform(0.01, 0.2) * (index + 1)
                recorder.request(seconds, seconds * 500, (1, 1), 0.0, None)
                union.record_value(round(seconds * 1_000_000))
            await coordinator.push(recorder, final=True)
        state = await LoadStore(client, key).state()
        merged = state.merged().hists["lat"]
        assert [w.name for w in state.workers] == ["w0", "w1", "w2"] and state.over  # all pushed their last
        for pct in (50, 90, 95, 99, 99.9):
            assert merged.get_value_at_percentile(pct) == union.get_value_at_percentile(pct)
        assert merged.get_total_count() == 4500
    finally:
        await WorkQueue(client, key).delete()
        await client.aclose()


async def _plan(client: aioredis.Redis, key: str, bundle: Path, profile: LoadProfile) -> WorkQueue:
    """What the operator does for a load test: the job config with the profile and the mix, no units."""
    queue = WorkQueue(client, key)
    mix = mix_of(load_bundle(bundle), RunFilters())
    await queue.put_config({"type": "loadtest", "loadTest": load_config(profile, mix), "aggregationLease": 2})
    await queue.seal()
    return queue


async def workers(client: aioredis.Redis, key: str, bundle: Path, config: dict[str, Any], count: int,
                  sink: DirSink | None) -> None:
    """``count`` workers of one job in this process, each with its own providers, as pods would be."""
    await asyncio.gather(*(run_load_test_worker(WorkQueue(client, key), load_bundle(bundle), config, sink, f"w{i}",
                                                {"job": "ns/test"}) for i in range(count)))


async def test_three_workers_share_the_rate_and_one_writes_the_reports(tmp_path: Path, redis_server: Any) -> None:
    client = aioredis.from_url(redis_server.url)
    key = job_key("ns", "share", "u1")
    async with FakeLLMServer(Delays([0.03])) as server:
        bundle = write_bundle(tmp_path / "b", server.openai_url)
        profile = LoadProfile(model="open", duration=4, target_rps=30, budget_limit=None)
        queue = await _plan(client, key, bundle, profile)
        config = await queue.get_config() or {}
        (tmp_path / "out").mkdir()
        sink = DirSink.at(tmp_path / "out")
        try:
            await asyncio.wait_for(workers(client, key, bundle, config, 3, sink), timeout=60)
            record = await queue.aggregated()
        finally:
            await queue.delete()
            await client.aclose()
        served = len(server.requests)
    assert record is not None
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary == record["summary"]
    assert summary["arrivals"] == summary["expected_arrivals"] == 120 == served == summary["requests"]
    started = sorted(w["started"] for w in summary["workers"])
    assert sum(started) == 120 and started[0] >= 30  # each worker ran about a third (joins are staggered)
    rows = (tmp_path / "out" / "timeseries.csv").read_text().splitlines()
    assert rows[1].split(",")[1] == "3"  # three workers sent the first second's bucket


async def test_a_budget_is_shared_by_the_workers(tmp_path: Path, redis_server: Any) -> None:
    client = aioredis.from_url(redis_server.url)
    key = job_key("ns", "budget", "u1")
    async with FakeLLMServer(Delays([0.02])) as server:
        bundle = write_bundle(tmp_path / "b", server.openai_url, price_in=40.0)
        profile = LoadProfile(model="open", duration=8, target_rps=20, budget_limit=12.0)
        queue = await _plan(client, key, bundle, profile)
        config = await queue.get_config() or {}
        try:
            await asyncio.wait_for(workers(client, key, bundle, config, 2, None), timeout=60)
            summary = (await queue.aggregated() or {})["summary"]
        finally:
            await queue.delete()
            await client.aclose()
    assert summary["stopped"]["reason"] == "BudgetExceeded"
    assert 12 <= summary["cost_usd"] < 12 + 20 * 1.2 * 2  # each worker overshoots by at most ~1 s of its spend
    assert summary["runs"]["started"] < 8 * 20 / 2
    assert all(w["started"] > 0 for w in summary["workers"])


WORKER_SCRIPT = """
import asyncio, sys
from pathlib import Path
import redis.asyncio as aioredis
from arena_operator.engine.bundle import load_bundle
from arena_operator.loadtest.worker import run_load_test_worker
from arena_operator.results.dirsink import DirSink
from arena_operator.workqueue.queue import WorkQueue

async def main(url, key, bundle, out, name):
    client = aioredis.from_url(url)
    queue = WorkQueue(client, key)
    await run_load_test_worker(queue, load_bundle(Path(bundle)), await queue.get_config(), DirSink.at(Path(out)),
                               name, {"job": "ns/kill"})
    await client.aclose()

asyncio.run(main(*sys.argv[1:]))
"""


async def test_a_sigkilled_worker_s_share_is_taken_over(tmp_path: Path, redis_server: Any) -> None:
    client = aioredis.from_url(redis_server.url)
    key = job_key("ns", "kill", "u1")
    rate, duration = 30, 10
    async with FakeLLMServer(Delays([0.02])) as server:
        bundle = write_bundle(tmp_path / "b", server.openai_url)
        queue = await _plan(client, key, bundle, LoadProfile(model="open", duration=duration, target_rps=rate))
        (tmp_path / "out").mkdir()
        procs = [subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, redis_server.url, key, str(bundle),
                                   str(tmp_path / "out"), f"w{i}"], cwd=REPO) for i in range(3)]
        store = LoadStore(client, key)
        try:
            for _ in range(200):  # until all three run and the test is a few seconds in
                state = await store.state()
                if len(state.alive) == 3 and state.elapsed > 2.5:
                    break
                await asyncio.sleep(0.1)
            assert len(state.alive) == 3, "the workers did not start"
            procs[0].send_signal(signal.SIGKILL)
            killed_at = (await store.state()).elapsed
            for proc in procs[1:]:
                while proc.poll() is None:
                    await asyncio.sleep(0.2)
                assert proc.returncode == 0
            summary = (await queue.aggregated() or {})["summary"]
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            await queue.delete()
            await client.aclose()
        served = len(server.requests)
    workers = {w["name"]: w for w in summary["workers"]}
    assert workers["w0"]["how"] == "lost" and workers["w1"]["how"] == workers["w2"]["how"] == "finished"
    assert workers["w0"]["left_s"] >= killed_at
    # the survivors ran their thirds, and half each of the rest from the switch on: the killed worker's share is
    # missing only while it was being noticed (liveness, a refresh, the switch lead; margins for a loaded machine)
    gap = LIVENESS_S + 2 * REFRESH_S + LEAD_S + 1.0
    survivors = workers["w1"]["started"] + workers["w2"]["started"]
    assert survivors >= rate * duration * 2 / 3 + rate * (duration - killed_at - gap) / 3 - rate / 2, survivors
    assert rate * duration - rate * (gap + 1) <= summary["arrivals"] <= rate * duration
    assert served >= summary["requests"] - rate  # the killed worker's last second never reached Redis
    html = (tmp_path / "out" / "report.html").read_text()
    assert "worker w0 stopped answering (killed?)" in html and "remaining worker(s) (w1, w2)" in html


async def test_the_closed_model_keeps_its_virtual_users_busy_back_to_back(tmp_path: Path) -> None:
    async with FakeLLMServer(Delays([0.1])) as server:
        summary = await run_local(write_bundle(tmp_path / "b", server.openai_url), tmp_path / "out", vus=3,
                                  duration="2s")
        peak = server.max_in_flight
    assert summary["model"] == "closed" and peak == 3  # never more than the virtual users
    assert summary["dropped"] == 0 and summary["scheduling_lag_ms"]["count"] == 0  # no arrival times to miss
    assert 3 * 2 / 0.1 * 0.6 <= summary["runs"]["started"] <= 3 * 2 / 0.1 + 3  # ~0.1 s a run, back to back


JOB_FILE = """
apiVersion: omnia.altairalabs.ai/v1alpha1
kind: ArenaJob
metadata: {{name: local-load, namespace: arena}}
spec:
  sourceRef: {{name: prompts}}
  type: loadtest
  loadTest:
    targetRPS: 10
    rampUp: 0s
    duration: 3s
    thresholds:
      - {{metric: latency_p95, operator: "<", value: {latency}}}
      - {{metric: error_rate, operator: "<=", value: "0.01"}}
"""


@pytest.mark.parametrize(("latency", "code"), [("2s", 0), ("1ms", 1)])
async def test_arena_run_job_yaml_honours_the_load_test_block(tmp_path: Path, latency: str, code: int) -> None:
    async with FakeLLMServer(Delays([0.02])) as server:
        bundle = write_bundle(tmp_path / "b", server.openai_url)
        job = tmp_path / "job.yaml"
        job.write_text(JOB_FILE.format(latency=latency))
        done = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "arena_operator.cli", "run", str(job), "--bundle", str(bundle), "--ci", "-q",
            "--out", str(tmp_path / "out"), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stdout, stderr = await done.communicate()
    assert done.returncode == code, (stdout.decode(), stderr.decode())
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["target_rps"], summary["duration_s"], summary["arrivals"]) == (10, 3, 30)
    assert [t["metric"] for t in summary["thresholds"]] == ["latency_p95", "error_rate"]
    verdict = "PASS" if code == 0 else "FAIL"
    assert f"{verdict} latency_p95 < {latency} (measured" in stdout.decode()


async def test_a_bad_threshold_is_a_usage_error(tmp_path: Path) -> None:
    done = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "arena_operator.cli", "run", str(REPO / "examples" / "quickstart"), "--type", "loadtest",
        "--rps", "5", "--duration", "1s", "--threshold", "latency_p42<5", "--out", str(tmp_path / "out"), cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, stderr = await done.communicate()
    assert done.returncode == 2 and "unknown threshold metric 'latency_p42'" in stderr.decode()
