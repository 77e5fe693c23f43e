"""Session recording and eval mode end to end: `arena run` records each run (defaults.output.recording, --record),
an eval over that recording applies its assertions without a model; in the cluster the worker (the real runtime:
artifact over HTTP, redis-server queue, moto S3 sink) puts each recording beside the units and RecordingPath names
the object, and eval units run through the same worker."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from arena_operator import cli
from arena_operator.engine.bundle import load_bundle
from arena_operator.engine.dispatch import RunExecutor
from arena_operator.engine.plan import RunFilters, generate_plan
from arena_operator.engine.providers.registry import build_providers
from arena_operator.runplan.units import PlanInputs, batches, iter_units
from arena_operator.sources.artifact import build_artifact
from arena_operator.sources.server import ArtifactServer
from arena_operator.sources.store import ArtifactStore
from arena_operator.worker.run import WorkerSettings, run_worker
from arena_operator.workqueue.queue import WorkQueue, job_key
from tests.fakes.services import S3_TEST_KEY, S3Server

ARENA = """\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Arena
metadata:
  name: recorded
spec:
  providers:
    - file: providers/mock.yaml
  scenarios:
    - file: scenarios/shop.yaml
{evals}  defaults:
    concurrency: 2
    output:
      recording:
        enabled: {enabled}
        dir: sessions
"""
PROVIDER = """\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Provider
metadata:
  name: mock
spec:
  id: mock
  type: mock
  model: shop-model
  additional_config:
    mock_config: mocks.yaml
"""
MOCKS = """\
scenarios:
  shop:
    turns:
      1: "We open at 9 on weekdays."
      2: "Parking is behind the shop."
"""
SCENARIO = """\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Scenario
metadata:
  name: shop
spec:
  id: shop
  description: two questions
  turns:
    - role: user
      content: When do you open?
    - role: user
      content: Where can I park?
"""
EVAL = """\
apiVersion: promptkit.altairalabs.ai/v1alpha1
kind: Eval
metadata:
  name: replayed
spec:
  id: replayed
  recording:
    path: ../{path}
  turns:
    - all_turns:
        assertions:
          - type: contains
            params:
              patterns: ["9"]
  conversation_assertions:
    - type: contains_any
      params:
        patterns: ["Parking"]
"""


def write_bundle(root: Path, enabled: bool = True, eval_path: str | None = None) -> Path:
    evals = "  evals:\n    - file: evals/replayed.yaml\n" if eval_path else ""
    files = {"config.arena.yaml": ARENA.format(evals=evals, enabled=str(enabled).lower()),
             "providers/mock.yaml": PROVIDER, "mocks.yaml": MOCKS, "scenarios/shop.yaml": SCENARIO}
    if eval_path:
        files["evals/replayed.yaml"] = EVAL.format(path=eval_path)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def runs_of(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def turn_outcomes(run: dict[str, Any]) -> list[bool]:
    return [m["meta"]["assertions"]["passed"] for m in run["Messages"] if (m.get("meta") or {}).get("assertions")]


def test_record_a_run_then_eval_over_the_recording(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "bundle")
    out = root / "out"
    assert cli.main(["run", str(root), "--out", str(out), "--formats", "json", "-q"]) == 0
    [recorded] = runs_of(out)
    path = out / "sessions" / f"{recorded['RunID']}.jsonl"
    assert recorded["RecordingPath"] == str(path) and path.is_file()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert {line["event"]["session_id"] for line in lines} == {recorded["RunID"]}

    relative = f"out/sessions/{recorded['RunID']}.jsonl"
    write_bundle(root, enabled=False, eval_path=relative)
    again = tmp_path / "eval-out"
    # Scenarios and evals in one bundle: --eval chooses the evals (upstream's GenerateRunPlan).
    assert cli.main(["run", str(root), "--eval", "replayed", "--out", str(again), "--formats", "json", "-q",
                     "--ci"]) == 1
    [evaluated] = runs_of(again)
    assert (evaluated["ScenarioID"], evaluated["ProviderID"], evaluated["Status"]) == ("replayed", "eval", "failed")
    assert [(m["role"], m["content"]) for m in evaluated["Messages"]] == [
        (m["role"], m["content"]) for m in recorded["Messages"]]
    assert turn_outcomes(evaluated) == [True, False]  # the second recorded reply has no "9"
    assert [r["passed"] for r in evaluated["conversation_assertions"]["results"]] == [True]
    assert evaluated["Params"]["session_id"] == recorded["RunID"] and "RecordingPath" not in evaluated
    assert evaluated["Cost"]["total_cost_usd"] == pytest.approx(recorded["Cost"]["total_cost_usd"])


def test_record_flag_and_no_recording_by_default(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "bundle", enabled=False)
    assert cli.main(["run", str(root), "--out", str(tmp_path / "plain"), "--formats", "json", "-q"]) == 0
    assert "RecordingPath" not in runs_of(tmp_path / "plain")[0]
    assert not (tmp_path / "plain" / "recordings").exists()
    assert cli.main(["run", str(root), "--out", str(tmp_path / "rec"), "--formats", "json", "-q", "--record"]) == 0
    [run] = runs_of(tmp_path / "rec")
    assert Path(run["RecordingPath"]) == tmp_path / "rec" / "sessions" / f"{run['RunID']}.jsonl"  # the dir set


def test_bad_evals_stop_arena_run_with_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_bundle(tmp_path / "bundle", eval_path="recordings/missing.jsonl")
    assert cli.main(["run", str(root), "--eval", "replayed", "--out", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "evals/replayed.yaml:8:5: recording.path: recording '../recordings/missing.jsonl' not found" in err
    (root / "recordings").mkdir()
    (root / "recordings" / "missing.jsonl").write_text('{"seq":1,"event":{"type":"message.created"}}\n{"seq":2,')
    assert cli.main(["run", str(root), "--eval", "replayed", "--out", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "recordings/missing.jsonl:1: a message must be an object, got NoneType" in err
    (root / "recordings" / "missing.jsonl").write_text('{"seq":1,"event":{"type":"message.created","data":'
                                                       '{"Role":"user","Content":"q"}}}\n{"seq":2,')
    assert cli.main(["run", str(root), "--eval", "replayed", "--out", str(tmp_path / "o"), "-q"]) == 2
    assert "recordings/missing.jsonl:2: invalid JSON" in capsys.readouterr().err


def test_an_eval_filter_that_selects_nothing_names_the_evals(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    root = write_bundle(tmp_path / "bundle", eval_path="recordings/r.json")
    (root / "recordings").mkdir()
    (root / "recordings" / "r.json").write_text('[{"role": "user", "content": "q"}]')
    assert cli.main(["run", str(root), "--eval", "nope", "--out", str(tmp_path / "o"), "-q"]) != 0
    err = capsys.readouterr().err
    assert "--eval nope selects no scenario × provider" in err and "evals: replayed" in err


async def test_a_recording_gone_after_loading_is_an_error_of_kind_recording(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "bundle", eval_path="recordings/r.json")
    (root / "recordings").mkdir()
    (root / "recordings" / "r.json").write_text('[{"role": "user", "content": "q"}]')
    bundle = load_bundle(root)
    [combo] = generate_plan(bundle, RunFilters(evals=["replayed"])).combinations
    (root / "recordings" / "r.json").unlink()
    executor = RunExecutor(bundle, build_providers(bundle.providers, bundle.root))
    result = (await executor.execute(combo)).to_dict()
    await executor.aclose()
    assert (result["Status"], result["ErrorKind"]) == ("error", "recording")
    assert result["Error"].startswith("recordings/r.json: cannot read the recording")


# --- the worker ------------------------------------------------------------------------------------------------------

BUCKET_PREFIX = "arena/"


@pytest.fixture
def bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket; credentials only from the env vars a worker pod gets, no metadata service."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    for name, value in S3_TEST_KEY.items():
        monkeypatch.setenv(name, value)
    name = f"arena-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    return name


def s3_output(s3: S3Server, bucket: str) -> dict[str, Any]:
    return {"type": "s3", "s3": {"bucket": bucket, "prefix": BUCKET_PREFIX, "region": "us-east-1",
                                 "endpoint": s3.endpoint}}


async def _run_job(tmp_path: Path, redis_url: str, output: dict[str, Any], root: Path, job: str,
                   filters: PlanInputs) -> None:
    """Plan `root`'s units into a real queue and run one worker on them, results to `output` (a pvc output is
    mounted at tmp_path/pvc)."""
    bundle = load_bundle(root)
    info = build_artifact(root, tmp_path / f"{job}.tar.gz")
    store = ArtifactStore(tmp_path / "store")
    stored = store.put("ns", "src", info.digest, tmp_path / f"{job}.tar.gz")
    artifacts = ArtifactServer(store, "127.0.0.1", 0)
    port = await artifacts.start()
    client = aioredis.from_url(redis_url)
    key = job_key("ns", job, "u1")
    queue = WorkQueue(client, key)
    try:
        await queue.put_config({"namespace": "ns", "job": job, "type": "evaluation", "revision": "main@sha1:1",
                                "arenaFile": "config.arena.yaml", "providers": {}, "tools": {},
                                "visibilityTimeout": 30, "maxAttempts": 2, "aggregationLease": 2,
                                "formats": ["json"]})
        for batch in batches(iter_units(bundle, filters)):
            await queue.enqueue(batch)
        await queue.seal()
        settings = WorkerSettings(
            artifact_url=f"http://127.0.0.1:{port}/artifacts/{stored.relative_url}", artifact_digest=info.digest,
            redis_url=redis_url, job_key=key,
            output=output, namespace="ns", job=job, concurrency=2, consumer="w1", workdir=tmp_path,
            results_dir=tmp_path / "pvc")
        assert await asyncio.wait_for(run_worker(settings), 60) == 0
    finally:
        await queue.delete()
        await client.aclose()
        await artifacts.stop()


def _units(s3: S3Server, bucket: str, job: str) -> list[dict[str, Any]]:
    client = s3.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=f"{BUCKET_PREFIX}ns/{job}/units/")
            .get("Contents", [])]
    return [json.loads(client.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in keys]


async def test_the_worker_puts_recordings_in_the_sink_and_runs_eval_units(
        tmp_path: Path, redis_server: Any, s3_server: S3Server, bucket: str) -> None:
    root = write_bundle(tmp_path / "bundle")
    await _run_job(tmp_path, redis_server.url, s3_output(s3_server, bucket), root, "record", PlanInputs([], [], 3))
    units = _units(s3_server, bucket, "record")
    assert len(units) == 3 and {u["Status"] for u in units} == {"passed"}
    client = s3_server.client()
    for unit in units:
        key = f"{BUCKET_PREFIX}ns/record/sessions/{unit['RunID']}.jsonl"
        assert unit["RecordingPath"] == f"s3://{bucket}/{key}"
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        events = [json.loads(line)["event"] for line in body.splitlines()]
        assert [e["data"]["Content"] for e in events if e["type"] == "message.created"] == [
            "When do you open?", "We open at 9 on weekdays.", "Where can I park?", "Parking is behind the shop."]
    assert not list(tmp_path.glob("recordings-*/*.jsonl"))  # the worker's local copies are gone

    # The recording, brought into an eval bundle, runs as eval units through the same worker.
    evals = tmp_path / "evals"
    shutil.copytree(root, evals)
    (evals / "recordings").mkdir()
    first = units[0]["RunID"]
    client.download_file(bucket, f"{BUCKET_PREFIX}ns/record/sessions/{first}.jsonl",
                         str(evals / "recordings" / "shop.jsonl"))
    write_bundle(evals, enabled=False, eval_path="recordings/shop.jsonl")
    (evals / "config.arena.yaml").write_text((evals / "config.arena.yaml").read_text().replace(
        "  scenarios:\n    - file: scenarios/shop.yaml\n", ""))
    await _run_job(tmp_path, redis_server.url, s3_output(s3_server, bucket), evals, "evaluate",
                   PlanInputs([], [], 1))
    [evaluated] = _units(s3_server, bucket, "evaluate")
    assert (evaluated["ScenarioID"], evaluated["ProviderID"], evaluated["Status"]) == ("replayed", "eval", "failed")
    assert turn_outcomes(evaluated) == [True, False]
    report = client.get_object(Bucket=bucket, Key=f"{BUCKET_PREFIX}ns/evaluate/results.json")["Body"].read()
    assert [r["ScenarioID"] for r in json.loads(report)] == ["replayed"]  # the aggregation read the eval unit


async def test_the_worker_puts_recordings_in_a_pvc_output(tmp_path: Path, redis_server: Any) -> None:
    root = write_bundle(tmp_path / "bundle")
    (tmp_path / "pvc").mkdir()
    output = {"type": "pvc", "pvc": {"claimName": "results", "subPath": "team"}}
    await _run_job(tmp_path, redis_server.url, output, root, "onpvc", PlanInputs([], [], 2))
    job_dir = tmp_path / "pvc" / "team" / "ns" / "onpvc"
    units = [json.loads(p.read_text()) for p in sorted((job_dir / "units").glob("*.json"))]
    assert len(units) == 2
    for unit in units:
        assert unit["RecordingPath"] == f"pvc://results/team/ns/onpvc/sessions/{unit['RunID']}.jsonl"
        recorded = (job_dir / "sessions" / f"{unit['RunID']}.jsonl").read_text().splitlines()
        assert json.loads(recorded[0])["event"]["type"] == "conversation.started"


async def test_a_recording_that_cannot_be_written_leaves_the_run_without_one(tmp_path: Path) -> None:
    from arena_operator.engine.recording import SessionRecorder

    root = write_bundle(tmp_path / "bundle")
    (tmp_path / "taken").write_text("a file where the recordings directory should be")
    bundle = load_bundle(root)
    [combo] = generate_plan(bundle).combinations
    executor = RunExecutor(bundle, build_providers(bundle.providers, bundle.root), SessionRecorder(tmp_path / "taken"))
    result = (await executor.execute(combo)).to_dict()
    await executor.aclose()
    assert result["Status"] == "passed" and "RecordingPath" not in result


def test_validate_counts_evals_and_their_runs(capsys: pytest.CaptureFixture[str]) -> None:
    bundle = Path(__file__).resolve().parents[1] / "fixtures" / "bundles" / "eval-replay"
    assert cli.main(["validate", str(bundle)]) == 0
    assert "bundle: 0 scenarios, 5 evals, 1 providers, 7 runs planned" in capsys.readouterr().out
