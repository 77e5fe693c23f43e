"""The Argo CD health scripts (examples/argocd/health/*.lua) run with Lua 5.1 (Argo CD's gopher-lua speaks 5.1)
through lupa, against status objects made by the operator's own code: ArenaSource statuses from real reconcile
passes (a ConfigMap bundle, then the ConfigMap gone, an invalid bundle, suspended), ArenaJob and ArenaConfig
statuses from the reconcile contract (run_steps computing Ready from each step's conditions, rejected_spec for an
unusable spec), all written through operator.status.apply_outcome and checked against the CRD schema."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kopf
import lupa.lua51 as lupa  # test extra: Lua 5.1, as gopher-lua in Argo CD

from arena_operator.api import API_VERSION, KINDS_BY_NAME, render_crds
from arena_operator.api import conditions as c
from arena_operator.api.arenasource import ArenaSourceSpec
from arena_operator.operator.status import apply_outcome
from arena_operator.reconcile import arenaconfig as config_reconcile
from arena_operator.reconcile import arenajob as job_reconcile
from arena_operator.reconcile.arenasource import READY_RULE as SOURCE_READY_RULE
from arena_operator.reconcile.arenasource import SourceContext, reconcile_source
from arena_operator.reconcile.outcome import Outcome, Step, rejected_spec, run_steps
from arena_operator.sources.store import ArtifactStore
from tests.unit.test_api_manifests import HAS_CEL, crd_problems

HEALTH = Path(__file__).resolve().parents[2] / "examples" / "argocd" / "health"
Object = dict[str, Any]


def health(kind: str, obj: Object) -> tuple[str, str]:
    """(status, message) of Argo CD's health for this object: the script with `obj` as a Lua table."""
    lua = lupa.LuaRuntime()
    lua.globals().obj = lua.table_from(copy.deepcopy(obj), recursive=True)
    result = lua.execute((HEALTH / f"{kind.lower()}.lua").read_text())
    return str(result["status"]), str(result["message"])


def _merge(target: Any, patch: Any) -> Any:
    """A JSON merge patch (RFC 7386), as kopf's status patch is applied by the API server."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


def written(obj: Object, outcome: Outcome) -> Object:
    """The object after the operator wrote this outcome (operator.status.apply_outcome, events left out), and
    checked against the kind's CRD schema as the API server would."""
    generation = obj["metadata"]["generation"]
    outcome.events.clear()
    patch = kopf.Patch()
    apply_outcome(kopf.Body(obj), patch, obj.get("status") or {}, outcome, generation)
    result = _prune({**obj, "status": _merge(obj.get("status") or {}, dict(patch)["status"])})
    assert crd_problems(result, cel=HAS_CEL) == []
    return result


def _prune(obj: Object) -> Object:
    """What the API server stores: fields the CRD's structural schema does not declare are dropped (status
    patches are not strictly validated). E.g. ``status.message`` of an ArenaSource rejected for its spec
    (reconcile.outcome.rejected_spec writes it; ArenaSourceStatus has no such field)."""
    schema = render_crds()[KINDS_BY_NAME[obj["kind"]].crd_name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]

    def prune(node: Object, value: Any) -> Any:
        if isinstance(value, dict) and "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            return {k: prune(node["properties"][k], v) for k, v in value.items() if k in node["properties"]}
        if isinstance(value, dict) and isinstance(node.get("additionalProperties"), dict):
            return {k: prune(node["additionalProperties"], v) for k, v in value.items()}
        if isinstance(value, list) and isinstance(node.get("items"), dict):
            return [prune(node["items"], item) for item in value]
        return value

    return {**obj, "status": prune(schema["properties"]["status"], obj["status"])}


def _object(kind: str, spec: Object, generation: int = 1) -> Object:
    return {"apiVersion": API_VERSION, "kind": kind,
            "metadata": {"name": kind.lower(), "namespace": "arena", "generation": generation}, "spec": spec}


# -- ArenaSource: real reconcile passes ----------------------------------------------------------------------

BUNDLE = {
    "config.arena.yaml": "apiVersion: promptkit.altairalabs.ai/v1alpha1\nkind: Arena\nmetadata: {name: cm}\n"
                         "spec:\n  providers: [{file: provider.yaml}]\n  scenarios: [{file: scenario.yaml}]\n"
                         "  defaults: {}\n",
    "provider.yaml": "kind: Provider\nmetadata: {name: bot}\nspec: {type: mock}\n",
    "scenario.yaml": "kind: Scenario\nmetadata: {name: hello}\nspec:\n  description: says hello\n"
                     "  turns: [{role: user, content: hi}]\n",
}


def _source_pass(tmp_path: Path, obj: Object, data: dict[str, str] | None) -> Object:
    async def read_config_map(namespace: str, name: str) -> tuple[dict[str, str], str]:
        if data is None:
            raise LookupError(name)
        return dict(data), str(abs(hash(tuple(sorted(data.items())))))

    async def read_secret(namespace: str, name: str) -> dict[str, str]:
        raise LookupError(name)

    ctx = SourceContext(namespace="arena", name=obj["metadata"]["name"], generation=obj["metadata"]["generation"],
                        spec=ArenaSourceSpec.model_validate(obj["spec"]), status=dict(obj.get("status") or {}),
                        annotations={}, store=ArtifactStore(tmp_path / "artifacts"), base_url="http://operator:8080",
                        read_secret=read_secret, read_config_map=read_config_map)
    return written(obj, asyncio.run(reconcile_source(ctx)))


def test_arena_source_health(tmp_path: Path) -> None:
    spec = {"type": "configmap", "configMap": {"name": "bundle"}}
    fresh = _object("ArenaSource", spec)
    assert health("ArenaSource", fresh) == ("Progressing", "Waiting for the arena operator")

    ready = _source_pass(tmp_path, fresh, BUNDLE)
    assert ready["status"]["phase"] == "Ready"
    status, message = health("ArenaSource", ready)
    assert status == "Healthy" and message == f"Artifact {ready['status']['artifact']['revision']}"

    # the spec changed, the operator has not caught up yet
    edited = {**ready, "metadata": {**ready["metadata"], "generation": 2}}
    assert health("ArenaSource", edited) == ("Progressing",
                                             "Waiting for the arena operator to observe generation 2")

    gone = _source_pass(tmp_path, ready, None)  # the ConfigMap was deleted: the last good artifact is kept
    assert gone["status"]["phase"] == "Error" and gone["status"]["artifact"] == ready["status"]["artifact"]
    status, message = health("ArenaSource", gone)
    assert status == "Degraded" and message.startswith("ConfigMapNotFound: ")

    broken = _source_pass(tmp_path, fresh, {**BUNDLE, "scenario.yaml": "kind: Scenario\nspec: {turns: 3}\n"})
    assert broken["status"]["phase"] == "Error"
    status, message = health("ArenaSource", broken)
    assert status == "Degraded" and message.startswith(c.INVALID_BUNDLE), message

    suspended = _source_pass(tmp_path, _object("ArenaSource", {**spec, "suspend": True}), BUNDLE)
    assert suspended["status"]["phase"] == "Suspended"
    assert health("ArenaSource", suspended) == ("Suspended", "Suspended")

    stalled = written(fresh, rejected_spec("spec.git: git is required when type is git", "Error", {},
                                           SOURCE_READY_RULE, 1))
    assert health("ArenaSource", stalled) == ("Degraded", "InvalidSpec: spec.git: git is required when type is git")


# -- ArenaJob and ArenaConfig: the reconcile contract with each step's conditions -------------------------------

StepSpec = tuple[str, bool | str, str, str]  # the condition a step sets: (type, status, reason, message)


def _pass(obj: Object, steps: list[tuple[str, StepSpec | None, bool]], rule: Any, **status: Any) -> Object:
    """One reconcile pass through run_steps: each step owns one condition type, sets it (or nothing), and may stop
    the pass blocked (a missing prerequisite). Ready is computed by the operator's own rule."""
    def step(spec: StepSpec | None, stop: bool) -> Callable[[Any, Outcome], Any]:
        async def run(_ctx: Any, out: Outcome) -> None:
            if spec is not None:
                out.condition(*spec)
            if stop:
                out.stop(blocked=True)
        return run

    out = Outcome(status={"observedGeneration": obj["metadata"]["generation"], **status})
    chain = [Step(step(spec, stop), owns=(owned,)) for owned, spec, stop in steps]
    outcome = asyncio.run(run_steps(None, chain, out, (obj.get("status") or {}).get("conditions") or [], rule))
    return written(obj, outcome)


def _job_steps(config: StepSpec | None = None, planned: StepSpec | None = None, created: StepSpec | None = None,
               complete: StepSpec | None = None, stop_at: str = "") -> list[tuple[str, StepSpec | None, bool]]:
    return [(c.CONFIG_VALID, config, stop_at == c.CONFIG_VALID), (c.PLANNED, planned, stop_at == c.PLANNED),
            (c.JOB_CREATED, created, stop_at == c.JOB_CREATED), (c.COMPLETE, complete, False)]


CONFIG_OK: StepSpec = (c.CONFIG_VALID, True, c.CONFIG_READY, "ArenaConfig cfg at main@sha1:abc")
PLANNED: StepSpec = (c.PLANNED, True, c.PLANNED_REASON, "12 work units")
CREATED: StepSpec = (c.JOB_CREATED, True, c.CREATED, "worker Job j-worker with 2 replicas")


def test_arena_job_health() -> None:
    rule = job_reconcile.READY_RULE
    job = _object("ArenaJob", {"configRef": {"name": "cfg"}})
    assert health("ArenaJob", job) == ("Progressing", "Waiting for the arena operator")

    waiting = _pass(job, _job_steps(config=(c.CONFIG_VALID, False, c.CONFIG_NOT_READY, "ArenaConfig cfg is not "
                                            "Ready: validating"), stop_at=c.CONFIG_VALID), rule, phase="Pending")
    assert health("ArenaJob", waiting) == ("Progressing", "ConfigNotReady: ArenaConfig cfg is not Ready: validating")

    running = _pass(waiting, _job_steps(CONFIG_OK, PLANNED, CREATED, (c.COMPLETE, "Unknown", c.RUNNING, "5/12")),
                    rule, phase="Running", progressText="5/12", activeWorkers=2,
                    progress={"total": 12, "completed": 5, "failed": 0, "pending": 7})
    assert [cond["status"] for cond in running["status"]["conditions"] if cond["type"] == c.READY] == ["Unknown"]
    assert health("ArenaJob", running) == ("Progressing", "Running: 5/12 work units")

    redis_down = written(running, _redis_unavailable())
    status, message = health("ArenaJob", redis_down)
    assert status == "Progressing" and message.startswith("Running: 5/12 work units (RedisUnavailable: "), message

    done = _pass(running, _job_steps(CONFIG_OK, PLANNED, CREATED, (c.COMPLETE, True, c.COMPLETED, "12 units")),
                 rule, phase="Succeeded", progressText="12/12",
                 result={"url": "s3://results/arena/j/", "summary": {"total": {"runs": 12}}})
    assert health("ArenaJob", done) == ("Healthy", "Succeeded: 12/12 work units")

    failed = _pass(running, _job_steps(CONFIG_OK, PLANNED, CREATED, (c.COMPLETE, False, c.WORKER_JOB_FAILED,
                                                                    "worker Job j-worker failed: BackoffLimit")),
                   rule, phase="Failed", message="worker Job j-worker failed: BackoffLimit")
    assert health("ArenaJob", failed) == ("Degraded", "WorkerJobFailed: worker Job j-worker failed: BackoffLimit")

    cancelled = _pass(running, _job_steps(CONFIG_OK, PLANNED, CREATED, (c.COMPLETE, False, c.CANCELLED, "suspended")),
                      rule, phase="Cancelled", message="cancelled: spec.suspend is true")
    assert health("ArenaJob", cancelled) == ("Suspended", "cancelled: spec.suspend is true")

    stalled = written(job, rejected_spec("spec.workers: maxReplicas must be >= minReplicas", "Failed", {}, rule, 1))
    assert health("ArenaJob", stalled) == ("Degraded", "InvalidSpec: spec.workers: maxReplicas must be >= minReplicas")

    behind = {**done, "metadata": {**done["metadata"], "generation": 3}}
    assert health("ArenaJob", behind)[0] == "Progressing"


def _redis_unavailable() -> Outcome:
    """What operator.arenajob writes when Redis is down (its _redis_unavailable): Ready False, nothing else."""
    out = Outcome()
    out.condition(c.READY, False, c.REDIS_UNAVAILABLE, "Redis unavailable (ConnectionError); retrying")
    return out


def test_arena_config_health() -> None:
    rule = config_reconcile.READY_RULE
    config = _object("ArenaConfig", {"sourceRef": {"name": "src"}})
    assert health("ArenaConfig", config)[0] == "Progressing"
    steps = [(c.SOURCE_READY, (c.SOURCE_READY, False, c.SOURCE_NOT_READY, "ArenaSource src has no artifact"), True),
             (c.VALID, None, False)]
    pending = _pass(config, steps, rule, phase="Pending")
    assert health("ArenaConfig", pending) == ("Progressing", "SourceNotReady: ArenaSource src has no artifact")
    ok = [(c.SOURCE_READY, (c.SOURCE_READY, True, c.SUCCEEDED, "main@sha1:abc"), False),
          (c.VALID, (c.VALID, True, c.VALIDATED, "6 scenarios, 2 providers"), False)]
    ready = _pass(pending, ok, rule, phase="Ready", scenarioCount=6)
    assert health("ArenaConfig", ready) == ("Healthy", "Validated: 6 scenarios, 2 providers")
    bad = [ok[0], (c.VALID, (c.VALID, False, c.NO_SCENARIOS, "the filters select no scenario"), False)]
    invalid = _pass(ready, bad, rule, phase="Invalid")
    assert health("ArenaConfig", invalid) == ("Degraded", "NoScenarios: the filters select no scenario")
