"""The reconcile contract (reconcile.outcome) and the steps of the ArenaConfig and ArenaJob reconcilers, table-driven
with in-memory fakes for the queue, workloads and the Kubernetes reads; the real parts have their own tests."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from arena_operator.api.arenaconfig import ArenaConfigSpec
from arena_operator.api.arenajob import ArenaJobSpec
from arena_operator.kube import NotFound
from arena_operator.reconcile import arenaconfig as rconfig
from arena_operator.reconcile import arenajob as rjob
from arena_operator.reconcile import jobcontext
from arena_operator.reconcile.outcome import Outcome, ReadyRule, Step, run_steps, summarize_ready
from arena_operator.sources.artifact import build_artifact
from arena_operator.sources.store import ArtifactStore
from arena_operator.workqueue.queue import Counters

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
REVISION = "main@sha1:" + "a" * 40


def cond(type_: str, status: str, reason: str = "Because", message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


# -- the contract ---------------------------------------------------------------------------------------------

RULE = ReadyRule(positive=("A", "B"), abnormal=("Stalled", "Broken"))


@pytest.mark.parametrize(("conditions", "expected"), [
    ([cond("A", "True"), cond("B", "True", "AllGood", "fine")], (True, "AllGood", "fine")),
    ([cond("A", "False", "NoA", "a is missing"), cond("B", "True")], (False, "NoA", "a is missing")),
    ([cond("A", "Unknown", "Waiting"), cond("B", "False", "NoB")], (False, "NoB", "")),  # False before Unknown
    ([cond("A", "True"), cond("B", "Unknown", "Running", "3/9")], ("Unknown", "Running", "3/9")),
    ([cond("A", "True")], ("Unknown", "Progressing", "B not yet determined")),
    ([cond("A", "True"), cond("B", "True"), cond("Broken", "True", "FetchFailed", "x")],
     (False, "FetchFailed", "x")),
    ([cond("A", "False", "NoA"), cond("Stalled", "True", "InvalidSpec", "spec.x")], (False, "InvalidSpec", "spec.x")),
    ([cond("A", "True"), cond("B", "True", "Ok"), cond("Broken", "False")], (True, "Ok", "")),
])
def test_summarize_ready(conditions: list[dict[str, Any]], expected: tuple[Any, str, str]) -> None:
    ready = summarize_ready(conditions, RULE)
    assert (ready.status, ready.reason, ready.message) == expected


async def test_a_blocked_pass_makes_later_conditions_unknown_not_stale() -> None:
    async def first(ctx: None, out: Outcome) -> None:
        out.condition("A", False, "SourceNotFound", "gone")
        out.stop(blocked=True)

    async def second(ctx: None, out: Outcome) -> None:
        raise AssertionError("a blocked pass runs no later step")

    steps = (Step(first, owns=("A",)), Step(second, owns=("B",)))
    out = await run_steps(None, steps, Outcome(), [cond("A", "True"), cond("B", "True", "Validated")], RULE)
    assert out.conditions["B"].status == "Unknown" and out.conditions["B"].reason == "SourceNotFound"
    assert "waiting for A: gone" in out.conditions["B"].message
    assert (out.conditions["Ready"].status, out.conditions["Ready"].reason) == (False, "SourceNotFound")


async def test_a_decided_pass_keeps_later_conditions_and_a_fixed_spec_clears_stalled() -> None:
    async def finished(ctx: None, out: Outcome) -> None:
        out.stop()

    current = [cond("A", "True"), cond("B", "True", "Done"), cond("Stalled", "True", "InvalidSpec")]
    out = await run_steps(None, (Step(finished), Step(finished, owns=("B",))), Outcome(), current, RULE)
    assert "B" not in out.conditions
    assert out.conditions["Stalled"].status is None  # removed
    assert out.conditions["Ready"].status is True


# -- ArenaConfig ----------------------------------------------------------------------------------------------

@pytest.fixture
def store(tmp_path: Path) -> tuple[ArtifactStore, str]:
    """The quickstart bundle stored as source ns/src; returns the store and the artifact digest."""
    store = ArtifactStore(tmp_path / "store")
    info = build_artifact(REPO / "examples" / "quickstart", tmp_path / "a.tar.gz")
    store.put("ns", "src", info.digest, tmp_path / "a.tar.gz")
    return store, info.digest


def config_ctx(store: ArtifactStore, source: rconfig.SourceInfo | None, spec: dict[str, Any] | None = None,
               providers: set[str] | None = None) -> rconfig.ConfigContext:
    raw = {"sourceRef": {"name": "src"}, **(spec or {})}
    return rconfig.ConfigContext("ns", "cfg", 2, ArenaConfigSpec.model_validate(raw), source, store,
                                 providers or set(), 10_000_000)


VALIDATED = [cond("SourceReady", "True", "ArtifactAvailable"), cond("Valid", "True", "Validated"),
             cond("Ready", "True", "Validated")]


@pytest.mark.parametrize(("case", "spec", "providers", "phase", "expected"), [
    ("ok", {}, set(), "Ready", {"SourceReady": True, "Valid": True, "Ready": (True, "Validated")}),
    ("source-gone", {}, set(), "Pending",
     {"SourceReady": False, "Valid": "Unknown", "Ready": (False, "SourceNotFound")}),
    ("source-not-ready", {}, set(), "Pending",
     {"SourceReady": False, "Valid": "Unknown", "Ready": (False, "SourceNotReady")}),
    ("missing-provider", {"providerRef": {"name": "gpt4"}}, set(), "Invalid",
     {"SourceReady": True, "Valid": False, "Ready": (False, "ProviderNotFound")}),
    ("present-provider", {"providerRef": {"name": "gpt4"}}, {"gpt4"}, "Ready", {"Ready": (True, "Validated")}),
    ("no-scenarios", {"scenarios": {"include": ["nothing-*"]}}, set(), "Invalid",
     {"Valid": False, "Ready": (False, "NoScenarios")}),
])
async def test_config_steps(store: tuple[ArtifactStore, str], case: str, spec: dict[str, Any], providers: set[str],
                            phase: str, expected: dict[str, Any]) -> None:
    artifacts, digest = store
    source = {"source-gone": None,
              "source-not-ready": rconfig.SourceInfo(False, None, None, None, "cloning")}.get(
        case, rconfig.SourceInfo(True, REVISION, digest, "http://op/a.tar.gz"))
    out = await rconfig.reconcile_config(config_ctx(artifacts, source, spec, providers), VALIDATED)
    assert out.status["phase"] == phase and out.status["observedGeneration"] == 2
    for type_, want in expected.items():
        got = out.conditions[type_]
        if isinstance(want, tuple):
            assert (got.status, got.reason) == want, got
        else:
            assert got.status == want, (type_, got)
    if phase == "Ready":
        assert out.status["revision"] == REVISION and out.status["scenarioCount"] == 6


async def test_config_with_a_broken_bundle_names_the_file(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "examples" / "quickstart", bundle)
    scenario = bundle / "scenarios" / "competitor-question.yaml"
    scenario.write_text(scenario.read_text().replace("type: content_excludes", "type: content_excludez"))
    info = build_artifact(bundle, tmp_path / "b.tar.gz")
    store = ArtifactStore(tmp_path / "store")
    store.put("ns", "src", info.digest, tmp_path / "b.tar.gz")
    out = await rconfig.reconcile_config(
        config_ctx(store, rconfig.SourceInfo(True, REVISION, info.digest, "u")), [])
    assert out.conditions["Valid"].reason == "InvalidBundle"
    message = out.conditions["Valid"].message
    assert "competitor-question.yaml:" in message and "content_excludez" in message
    assert out.events[0].type == "Warning" and out.status["phase"] == "Invalid"


# -- ArenaJob -------------------------------------------------------------------------------------------------

@dataclass
class FakeRedis:
    """Just enough for workqueue.reclaim.release: the script is the one tests/reliability runs for real."""

    released: list[list[Any]] = field(default_factory=list)

    def register_script(self, _source: str) -> Any:
        async def run(keys: list[str], args: list[Any]) -> int:
            self.released.append(args[4:])
            return 0
        return run


@dataclass
class FakeQueue:
    key: str = "arena:{ns/job/uid}"
    counters_now: Counters = field(default_factory=lambda: Counters(6, 0, 0, 6, 0, 0, 0, 0, 0))
    fatal_error: str | None = None
    aggregate: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    units: list[dict[str, Any]] = field(default_factory=list)
    sealed: bool = False
    cancelled: bool = False
    ttl: int | None = None
    consumers: int = 1
    visibility_timeout: float = 120.0
    redis: FakeRedis = field(default_factory=FakeRedis)
    keys: dict[str, str] = field(default_factory=lambda: {"stream": "s", "heartbeats": "h"})

    async def cancel(self) -> None:
        self.cancelled = True

    async def counters(self) -> Counters:
        return self.counters_now

    async def put_config(self, config: dict[str, Any]) -> None:
        self.config = config

    async def get_config(self) -> dict[str, Any] | None:
        return self.config

    async def enqueue(self, batch: list[dict[str, Any]]) -> None:
        self.units += batch

    async def seal(self) -> None:
        self.sealed = True

    async def fatal(self) -> str | None:
        return self.fatal_error

    async def aggregated(self) -> dict[str, Any] | None:
        return self.aggregate

    async def set_ttl(self, seconds: int) -> None:
        self.ttl = seconds

    async def active_consumers(self, within: float = 30.0) -> int:
        return self.consumers


@dataclass
class FakeWorkloads:
    created: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    scaled: list[int] = field(default_factory=list)
    secrets: list[dict[str, Any]] = field(default_factory=list)

    async def create_job(self, namespace: str, manifest: dict[str, Any]) -> bool:
        self.created.append(manifest)
        return True

    async def create_secret(self, namespace: str, manifest: dict[str, Any]) -> bool:
        self.secrets.append(manifest)
        return True

    async def delete_job(self, namespace: str, name: str) -> None:
        self.deleted.append(name)

    async def scale_job(self, namespace: str, name: str, parallelism: int) -> None:
        self.scaled.append(parallelism)


@dataclass
class FakeKube:
    secrets: dict[str, set[str]] = field(default_factory=dict)
    claims: set[str] = field(default_factory=set)

    async def secret_keys(self, namespace: str, name: str) -> set[str]:
        if name not in self.secrets:
            raise NotFound("Secret", namespace, name)
        return self.secrets[name]

    async def has_pvc(self, namespace: str, name: str) -> bool:
        return name in self.claims


@dataclass
class JobWorld:
    ctx: jobcontext.JobContext
    queue: FakeQueue
    workloads: FakeWorkloads
    deleted_self: list[bool]


def job_world(store: tuple[ArtifactStore, str], spec: dict[str, Any] | None = None,
              status: dict[str, Any] | None = None, *, config: str = "ready", age: float = 1.0,
              worker_job: dict[str, Any] | None = None, kube: FakeKube | None = None) -> JobWorld:
    artifacts, digest = store
    queue, workloads, deleted = FakeQueue(), FakeWorkloads(), []

    async def delete_self() -> None:
        deleted.append(True)

    configs = {"ready": {"spec": {"sourceRef": {"name": "src"}}, "status": {"phase": "Ready"}},
               "pending": {"spec": {"sourceRef": {"name": "src"}}, "status": {
                   "phase": "Pending", "conditions": [cond("Ready", "False", "SourceNotReady", "cloning")]}}}
    source = {"status": {"artifact": {"revision": REVISION, "digest": digest, "url": "http://op/a.tar.gz"}}}
    settings = jobcontext.JobSettings(image="arena:test", worker_redis_url="redis://r", max_units=1000, config_wait=60)
    ctx = jobcontext.JobContext(
        namespace="ns", name="job", uid="uid", generation=1, created=NOW - timedelta(seconds=age),
        spec=ArenaJobSpec.model_validate({"configRef": {"name": "cfg"}, **(spec or {})}), status=status or {},
        config=configs.get(config), source=source, providers=[], registries=[], worker_job=worker_job,
        queue=queue, store=artifacts, workloads=workloads, settings=settings, max_bytes=10_000_000,  # type: ignore
        delete_self=delete_self, kube=kube or FakeKube(), now=NOW)  # type: ignore[arg-type]
    return JobWorld(ctx, queue, workloads, deleted)


def ready_of(out: Outcome) -> tuple[Any, str]:
    return out.conditions["Ready"].status, out.conditions["Ready"].reason


async def test_first_pass_plans_launches_and_is_running_with_ready_unknown(store: tuple[ArtifactStore, str]) -> None:
    world = job_world(store)
    out = await rjob.reconcile_job(world.ctx)
    assert out.status["phase"] == "Running" and out.status["progress"]["total"] == 6 == len(world.queue.units)
    assert world.queue.sealed and world.queue.config and world.queue.config["formats"]
    assert [m["metadata"]["name"] for m in world.workloads.created] == ["job-worker"]
    statuses = {t: u.status for t, u in out.conditions.items()}
    assert statuses == {"ConfigValid": True, "Planned": True, "JobCreated": True, "Complete": "Unknown",
                        "Progressing": True, "Ready": "Unknown"}
    assert out.conditions["Ready"].reason == "Running"
    assert [e.reason for e in out.events] == ["Planned", "JobCreated"]


RUNNING = {"phase": "Running", "progress": {"total": 6}, "conditions": [
    cond("ConfigValid", "True", "ConfigReady"), cond("Planned", "True", "Planned"),
    cond("JobCreated", "True", "Created"), cond("Complete", "Unknown", "Running")]}
WORKER = {"name": "job-worker", "spec": {"parallelism": 3}, "status": {"active": 3}}


@pytest.mark.parametrize(("case", "phase", "ready", "complete"), [
    ("aggregated", "Succeeded", (True, "Completed"), True),
    ("aggregated-nothing-ran", "Failed", (False, "NoUnitRan"), False),
    ("fatal", "Failed", (False, "WorkerFailed"), False),
    ("worker-job-failed", "Failed", (False, "WorkerJobFailed"), False),
    ("worker-job-complete-without-reports", "Failed", (False, "NoReports"), False),
    ("still-running", "Running", ("Unknown", "Running"), "Unknown"),
])
async def test_observe_decides_the_end(store: tuple[ArtifactStore, str], case: str, phase: str,
                                       ready: tuple[Any, str], complete: Any) -> None:
    worker = {**WORKER, "status": dict(WORKER["status"])}
    world = job_world(store, status=RUNNING, worker_job=worker)
    q = world.queue
    if case.startswith("aggregated"):
        done = 0 if case.endswith("nothing-ran") else 6
        q.counters_now = Counters(6, done, 6 - done, 0, 0, 0, done, 0, 6 - done)
        q.aggregate = {"url": "s3://b/p/", "summary": {"passRate": 1.0 if done else 0.0, "errorKinds": {}}}
    elif case == "fatal":
        q.fatal_error = "S3 bucket no-such-bucket not found"
    elif case == "worker-job-failed":
        worker["status"]["conditions"] = [cond("Failed", "True", "BackoffLimitExceeded", "pods failed")]
    elif case == "worker-job-complete-without-reports":
        worker["status"]["conditions"] = [cond("Complete", "True")]
    out = await rjob.reconcile_job(world.ctx)
    assert out.status.get("phase", "Running") == phase
    assert ready_of(out) == ready and out.conditions["Complete"].status == complete
    if phase != "Running":
        assert out.status["activeWorkers"] == 0 and out.status["completionTime"] == "2026-11-23T12:00:00Z"
        assert out.conditions["Progressing"].status is False
    else:
        assert out.status["activeWorkers"] == 3
    if case == "fatal":
        assert world.workloads.deleted == ["job-worker"]
    if case == "aggregated":
        assert out.status["result"]["url"] == "s3://b/p/"


@pytest.mark.parametrize(("config", "age", "phase", "reason"), [
    (None, 1.0, "Pending", "ConfigNotFound"),
    ("pending", 1.0, "Pending", "ConfigNotReady"),
    (None, 120.0, "Failed", "ConfigNotFound"),  # waited longer than config_wait (60 s)
])
async def test_a_job_waits_for_its_config_then_gives_up(store: tuple[ArtifactStore, str], config: str | None,
                                                        age: float, phase: str, reason: str) -> None:
    world = job_world(store, config=config or "absent", age=age)
    out = await rjob.reconcile_job(world.ctx)
    assert out.status["phase"] == phase and ready_of(out) == (False, reason)
    assert out.conditions["ConfigValid"].status is False and not world.queue.units
    assert "Planned" not in out.conditions and not world.workloads.created


@pytest.mark.parametrize(("spec", "kube", "reason", "words"), [
    ({"type": "loadtest", "loadTest": {"targetRPS": 5, "rampUp": "2m", "duration": "1m"}}, None, "InvalidSpec",
     "ramps (120s up + 0s down) are longer than loadTest.duration (60s)"),
    ({"scenarios": {"include": ["none-*"]}}, None, "EmptyPlan", "no work units"),
    ({"output": {"type": "pvc", "pvc": {"claimName": "absent"}}}, FakeKube(), "ClaimNotFound",
     "PersistentVolumeClaim ns/absent"),
    ({"output": {"type": "s3", "s3": {"bucket": "b", "secretRef": {"name": "s3"}}}}, FakeKube(), "SecretNotFound",
     "Secret ns/s3 (spec.output.s3.secretRef)"),
    ({"output": {"type": "s3", "s3": {"bucket": "b", "secretRef": {"name": "s3"}}}},
     FakeKube(secrets={"s3": {"AWS_ACCESS_KEY_ID"}}), "SecretKeyNotFound", "'AWS_SECRET_ACCESS_KEY'"),
])
async def test_planning_failures_name_the_cause(store: tuple[ArtifactStore, str], spec: dict[str, Any],
                                                kube: FakeKube | None, reason: str, words: str) -> None:
    world = job_world(store, spec, kube=kube)
    out = await rjob.reconcile_job(world.ctx)
    assert out.status["phase"] == "Failed" and ready_of(out) == (False, reason)
    assert out.conditions["Planned"].status is False and words in out.conditions["Planned"].message
    assert not world.queue.units and not world.workloads.created


async def test_cancel_and_ttl(store: tuple[ArtifactStore, str]) -> None:
    world = job_world(store, {"suspend": True}, status=RUNNING, worker_job=WORKER)
    out = await rjob.reconcile_job(world.ctx)
    assert out.status["phase"] == "Cancelled" and ready_of(out) == (False, "Cancelled")
    assert world.queue.cancelled and world.workloads.deleted == ["job-worker"]
    finished = {**RUNNING, "phase": "Succeeded", "completionTime": "2026-11-23T11:59:00Z"}
    for ttl, deleted in ((120, []), (30, [True])):
        world = job_world(store, {"ttlSecondsAfterFinished": ttl}, status=finished)
        out = await rjob.reconcile_job(world.ctx)
        assert world.deleted_self == deleted and "phase" not in out.status


async def test_autoscale_within_bounds(store: tuple[ArtifactStore, str]) -> None:
    world = job_world(store, {"workers": {"replicas": 1, "minReplicas": 1, "maxReplicas": 3}}, status=RUNNING,
                      worker_job={**WORKER, "spec": {"parallelism": 1}})
    world.queue.config = {"concurrency": 2}
    world.queue.counters_now = Counters(100, 0, 0, 100, 0, 0, 0, 0, 0)
    out = await rjob.reconcile_job(world.ctx)
    assert world.workloads.scaled == [3]
    assert any(e.reason == "Scaled" and "1 → 3" in e.message and "bounds 1..3" in e.message for e in out.events)
