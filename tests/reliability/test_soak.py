"""A 24-hour-equivalent soak (issue 17, Load) with an injected clock: the operator's controllers — ArenaSource,
ArenaConfig, ArenaJob templates and runs, built by the operator's own context builders (operator/arenajob.py)
and the ArenaJob finalizer — driven through simulated days in 10-minute ticks, with their `now` set to the
simulated clock. Real: redis-server and the work queue, the artifact store on disk (ConfigMap fetch, bounded
validation, unpacking), schedules, history limits and ttlSecondsAfterFinished. In memory: the API objects
(`Cluster`, with the garbage collector's one rule: an object goes with its owner) and the workers (the work
queue's calls a worker makes: claim, complete, aggregate; every 2nd run of one template reports a fatal error).

The ConfigMap changes every 4 simulated hours. Templates: `hourly` (its runs carry ttlSecondsAfterFinished: 2 h),
`kept` (every 3 h, no TTL: the history limits keep 2 Succeeded and 1 Failed) and `on-change` (a run per source
revision, history 1). Afterwards: no Redis key without a TTL, and none once the TTL (2 real seconds here) passed;
worker Jobs and child ArenaJobs only as many as the history limits keep; artifacts and unpacked bundles only the
store's `keep`."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kopf
import redis.asyncio as aioredis

from arena_operator.api.arenaconfig import ArenaConfigSpec
from arena_operator.api.arenajob import ArenaJobSpec
from arena_operator.api.arenasource import ArenaSourceSpec
from arena_operator.api.common import API_VERSION, LABEL_ARENAJOB, rfc3339
from arena_operator.api.conditions import remove_condition, set_condition
from arena_operator.operator import arenajob as handler
from arena_operator.operator.indexes import arena_jobs
from arena_operator.operator.metrics import OperatorMetrics
from arena_operator.reconcile.arenaconfig import ConfigContext, reconcile_config, source_info
from arena_operator.reconcile.arenajob import reconcile_job
from arena_operator.reconcile.arenasource import SourceContext, reconcile_source
from arena_operator.reconcile.jobcontext import JobSettings
from arena_operator.reconcile.outcome import Outcome
from arena_operator.reconcile.template import is_template, reconcile_template
from arena_operator.sources.store import BUNDLES_DIR, ArtifactStore
from arena_operator.worker.run import summary_from_queue
from tests.reliability.cluster import BUNDLE, FULL, Redis
from tests.reliability.loadkit import report, wait

DAYS = 7 if FULL else 1
TICK = timedelta(minutes=10)
REVISION_EVERY = timedelta(hours=4)
START = datetime(2026, 3, 1, 0, 5, tzinfo=UTC)
NS = "soak"
KEY_TTL_SECONDS = 2  # ARENA_FINISHED_KEY_TTL_SECONDS, real seconds (Redis expires keys on its own clock)
KEEP = 3  # artifacts per source
TEMPLATES: dict[str, dict[str, Any]] = {
    "hourly": {"schedule": {"cron": "0 * * * *"}, "ttlSecondsAfterFinished": 7200},
    "kept": {"schedule": {"cron": "30 */3 * * *"}, "successfulJobsHistoryLimit": 2, "failedJobsHistoryLimit": 1},
    "on-change": {"trigger": {"onSourceChange": True, "debounce": "1m"}, "successfulJobsHistoryLimit": 1},
}


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """A JSON merge patch (RFC 7386), as the status patch kopf sends."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value


def apply(obj: dict[str, Any], outcome: Outcome) -> None:
    """operator/status.apply_outcome without kopf: status fields merged, conditions set or removed."""
    status = obj.setdefault("status", {})
    merge(status, outcome.status)
    conditions = list(status.get("conditions") or [])
    for update in outcome.conditions.values():
        conditions = remove_condition(conditions, update.type) if update.status is None else \
            set_condition(conditions, update.type, update.status, update.reason, update.message, 1)
    status["conditions"] = conditions


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(ref["uid"] == uid for ref in obj["metadata"].get("ownerReferences", []))


class Cluster:
    """The API objects, in memory, behind the calls of arena_operator.kube.Workloads the controllers make."""

    def __init__(self, clock: list[datetime]) -> None:
        self.clock, self.uids = clock, itertools.count()
        self.arenajobs: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}  # worker batch/v1 Jobs
        self.secrets: dict[str, dict[str, Any]] = {}  # the worker Secrets (the Redis URL)
        self.deleted: list[dict[str, Any]] = []  # ArenaJobs whose finalizer is still to run

    def new(self, body: dict[str, Any]) -> dict[str, Any]:
        obj = {**body, "metadata": {**body["metadata"], "uid": f"uid-{next(self.uids)}", "generation": 1,
                                    "creationTimestamp": rfc3339(self.clock[0])}, "status": {}}
        return obj

    async def create_custom(self, group: str, version: str, plural: str, namespace: str, body: dict) -> bool:
        if body["metadata"]["name"] in self.arenajobs:
            return False
        self.arenajobs[body["metadata"]["name"]] = self.new(body)
        return True

    async def patch_custom(self, group: str, version: str, plural: str, namespace: str, name: str,
                           patch: dict) -> None:
        if name in self.arenajobs:
            merge(self.arenajobs[name], patch)

    async def delete_custom(self, group: str, version: str, plural: str, namespace: str, name: str) -> None:
        obj = self.arenajobs.pop(name, None)
        if obj is None:
            return
        self.deleted.append(obj)
        uid = obj["metadata"]["uid"]
        for kind in (self.jobs, self.secrets):
            for name_ in [n for n, o in kind.items() if owned_by(o, uid)]:
                kind.pop(name_)
        for child in [n for n, o in self.arenajobs.items() if owned_by(o, uid)]:
            await self.delete_custom(group, version, plural, namespace, child)

    async def create_job(self, namespace: str, manifest: dict) -> bool:
        if manifest["metadata"]["name"] in self.jobs:
            return False
        self.jobs[manifest["metadata"]["name"]] = {**manifest, "status": {}}
        return True

    async def create_secret(self, namespace: str, manifest: dict) -> bool:
        if manifest["metadata"]["name"] in self.secrets:
            return False
        self.secrets[manifest["metadata"]["name"]] = manifest
        return True

    async def delete_job(self, namespace: str, name: str) -> None:
        self.jobs.pop(name, None)

    async def scale_job(self, namespace: str, name: str, parallelism: int) -> None:
        self.jobs[name]["spec"]["parallelism"] = parallelism


class Soak:
    """The operator's memo and the three kinds' objects, advanced one tick at a time."""

    def __init__(self, tmp: Path, redis: Redis) -> None:
        self.clock = [START]
        self.cluster = Cluster(self.clock)
        self.store = ArtifactStore(tmp / "artifacts", keep=KEEP)
        self.redis = aioredis.Redis.from_url(redis.url)
        self.memo = kopf.Memo(redis=self.redis, store=self.store, workloads=self.cluster, kube=None,
                              metrics=OperatorMetrics(), artifact_base_url="http://127.0.0.1:9",
                              config=type("Config", (), {"max_artifact_bytes": 10_000_000})(),
                              job_settings=JobSettings(image="arena:soak", worker_redis_url=redis.url,
                                                       max_units=1000, config_wait=600,
                                                       finished_key_ttl=KEY_TTL_SECONDS))
        self.source: dict[str, Any] = {"status": {}}
        self.config: dict[str, Any] = {"spec": {"sourceRef": {"name": "cm"}, "trials": 2}, "status": {}}
        self.revision, self.runs, self.kept_runs = 0, 0, 0

    async def read_config_map(self, namespace: str, name: str) -> tuple[dict[str, str], str]:
        marker = f"kind: Scenario\nmetadata: {{name: hello}}\nspec: {{description: revision {self.revision}, " \
                 "turns: [{role: user, content: hi}]}\n"
        return {**BUNDLE, "scenario.yaml": marker, "provider.yaml": BUNDLE["provider.yaml"].replace(
            "latency_ms: 1500", "latency_ms: 0")}, str(self.revision)

    async def sources(self) -> None:
        ctx = SourceContext(NS, "cm", 1, ArenaSourceSpec.model_validate(
            {"type": "configmap", "configMap": {"name": "bundle"}}), dict(self.source["status"]), {}, self.store,
            "http://127.0.0.1:9", self._no_secret, self.read_config_map, now=self.clock[0])
        apply(self.source, await reconcile_source(ctx))
        ctx_config = ConfigContext(NS, "lifetime", 1, ArenaConfigSpec.model_validate(self.config["spec"]),
                                   source_info(self.source), self.store, set(), 10_000_000)
        apply(self.config, await reconcile_config(ctx_config, self.config["status"].get("conditions") or []))

    async def _no_secret(self, namespace: str, name: str) -> dict[str, str]:
        raise LookupError(name)

    def indexes(self) -> dict[str, Any]:
        outlines = [next(iter(arena_jobs(namespace=NS, name=n, meta=o["metadata"], body=o).values()))
                    for n, o in self.cluster.arenajobs.items()]
        return {"arena_configs": {(NS, "lifetime"): [self.config]}, "arena_sources": {(NS, "cm"): [self.source]},
                "providers_by_namespace": {}, "tool_registries_by_namespace": {}, "worker_pods": {},
                "arena_jobs": {NS: outlines},
                "worker_jobs": {(NS, j["metadata"]["labels"][LABEL_ARENAJOB]): [
                    {"name": n, "spec": j["spec"], "status": j["status"]}] for n, j in self.cluster.jobs.items()}}

    async def reconcile(self, name: str) -> None:
        obj = self.cluster.arenajobs.get(name)
        if obj is None:
            return
        meta, spec = obj["metadata"], ArenaJobSpec.model_validate(obj["spec"])
        indexes = self.indexes()
        if is_template(spec):
            ctx = handler._template(self.memo, NS, name, meta["uid"], 1, meta, spec, obj["spec"], obj["status"],
                                    self.source, indexes["arena_jobs"][NS])
            ctx.now = self.clock[0]
            apply(obj, await reconcile_template(ctx))
            return
        run = handler._run(self.memo, NS, name, meta["uid"], 1, meta, spec, dict(obj["status"]), self.config,
                           self.source, indexes)
        run.now = self.clock[0]
        outcome = await reconcile_job(run)
        if name in self.cluster.arenajobs:  # not deleted by its TTL in this pass
            apply(obj, outcome)

    async def workers(self) -> None:
        """Each worker Job not yet done: its units claimed and recorded, then aggregated, as workers do."""
        for job in list(self.cluster.jobs.values()):
            if job["status"].get("succeeded"):
                continue
            owner = self.cluster.arenajobs[job["metadata"]["ownerReferences"][0]["name"]]
            queue = handler._queue(self.memo, NS, owner["metadata"]["name"], owner["metadata"]["uid"])
            self.runs += 1
            self.kept_runs += owner["metadata"]["name"].startswith("kept-")
            if owner["metadata"]["name"].startswith("kept-") and self.kept_runs % 2 == 0:
                await queue.report_fatal("the provider refused the credentials (simulated)")
            else:
                while claimed := await queue.claim("worker-0", count=10, block_ms=1):
                    await queue.complete_many([(c, {"Passed": True}, "passed") for c in claimed])
                assert await queue.claim_aggregation("worker-0")
                await queue.mark_aggregated("", await summary_from_queue(queue))
            job["status"] = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}

    async def finalizers(self) -> None:
        while self.cluster.deleted:
            obj = self.cluster.deleted.pop()
            await handler.arenajob_delete(namespace=NS, name=obj["metadata"]["name"], uid=obj["metadata"]["uid"],
                                          memo=self.memo)

    async def tick(self) -> None:
        self.revision = (self.clock[0] - START) // REVISION_EVERY + 1
        await self.sources()
        for _ in range(2):  # a run plans and launches in one pass, finishes in the next
            for name in sorted(self.cluster.arenajobs):
                await self.reconcile(name)
            await self.workers()
            await self.finalizers()
        self.clock[0] += TICK


def bundles(store: ArtifactStore) -> list[str]:
    directory = store.root / BUNDLES_DIR
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


async def test_simulated_days_of_schedules_ttl_and_history_leave_only_what_the_limits_keep(tmp_path: Path) -> None:
    redis = Redis(tmp_path / "redis", appendonly=False)
    soak = Soak(tmp_path, redis)
    try:
        for name, template in TEMPLATES.items():
            await soak.cluster.create_custom("", "", "", NS, {
                "apiVersion": API_VERSION, "kind": "ArenaJob",
                "metadata": {"name": name, "namespace": NS}, "spec": {"configRef": {"name": "lifetime"}, **template}})
        most_bundles = 0
        while soak.clock[0] < START + timedelta(days=DAYS):
            await soak.tick()
            most_bundles = max(most_bundles, len(bundles(soak.store)))
        soak.clock[0] += timedelta(hours=3)  # past the last hourly run's TTL, before the next schedules
        for name in sorted(soak.cluster.arenajobs):
            if not is_template(ArenaJobSpec.model_validate(soak.cluster.arenajobs[name]["spec"])):
                await soak.reconcile(name)
        await soak.finalizers()
        for name in TEMPLATES:  # suspended, so that the last pass prunes to the history limits and starts nothing
            await soak.cluster.patch_custom("", "", "", NS, name, {"spec": {"suspend": True}})
            await soak.reconcile(name)
        await soak.finalizers()
        left = {n: o["status"].get("phase") for n, o in soak.cluster.arenajobs.items() if n not in TEMPLATES}
        children = {t: sorted(p for n, p in left.items() if n.startswith(t + "-")) for t in TEMPLATES}
        persistent = [key for key in redis.scan() if redis.ttl(key) == -1]
        keys_before_ttl = len(redis.scan())
        wait(lambda: not redis.scan(), timeout=30, what="the finished jobs' Redis keys expiring")
        artifacts = sorted(p.name for p in (soak.store.root / NS / "cm").iterdir())
        scratch = list((soak.store.root / ".tmp").iterdir())
    finally:
        await soak.redis.aclose()
        redis.close()
    assert soak.revision >= 6 and soak.runs >= 24 * DAYS
    assert persistent == []  # every key left has a TTL
    assert children["hourly"] == []  # all gone by ttlSecondsAfterFinished
    assert children["kept"] == ["Failed", "Succeeded", "Succeeded"]  # history limits 2 + 1
    assert children["on-change"] == ["Succeeded"]
    # a worker Job only for a kept run that Succeeded (a fatal error deletes the failed run's at once)
    assert sorted(soak.cluster.jobs) == sorted(f"{n}-worker" for n, phase in left.items() if phase == "Succeeded")
    assert sorted(ref["name"] for secret in soak.cluster.secrets.values()
                  for ref in secret["metadata"]["ownerReferences"]) == sorted(left)  # one for each kept run
    assert len(artifacts) == KEEP and len(bundles(soak.store)) <= KEEP and most_bundles <= KEEP + 1
    assert scratch == []
    report(f"soak of {DAYS} simulated day(s)", runs=soak.runs, revisions=soak.revision,
           children_left=len(left), worker_jobs_left=len(soak.cluster.jobs),
           worker_secrets_left=len(soak.cluster.secrets), redis_keys_at_end=keys_before_ttl,
           redis_keys_after_ttl=0, artifacts=len(artifacts), unpacked_bundles=len(bundles(soak.store)),
           most_unpacked_bundles=most_bundles)
