"""Workflows, skills, compositions and duplex scenarios through the cluster: their fixture bundles in git
ArenaSources, run by ArenaJobs through the real kopf operator, the emulated API and the test kubelet (real `arena
worker` processes, Redis, S3). The distributed runs have the outcomes `arena run` gives locally: the same per-run
status and error kind, the same states speaking, the same transitions, artifacts, skill activations and composition
records."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from arena_operator import cli
from tests.e2e.bundle_jobs import BUNDLES, bundle_cluster, bundle_files, run_job_results
from tests.fakes.services import GitDaemon
from tests.harness.k8s import K8sApi
from tests.harness.k8s import k8s_api as k8s_api

NAMES = ("workflow", "compositions", "duplex")
# In the cluster a bundle brings only mock providers (the rest are Provider objects): the duplex bundle's realtime
# provider, whose runs fail duplex_unsupported before any call (tests/unit/test_duplex.py), stays out there.
CLUSTER_ONLY_MOCKS = {"duplex": ("    - file: providers/realtime.provider.yaml\n", "realtime")}
Run = dict[str, Any]
Key = tuple[str, str]


@pytest.fixture
def cluster(k8s_api: K8sApi, git_daemon: GitDaemon, redis_server: Any, s3_server: Any, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with bundle_cluster(k8s_api, git_daemon, redis_server.url, s3_server.url, tmp_path, monkeypatch,
                        {name: _cluster_files(name) for name in NAMES}) as cluster:
        yield cluster


def _cluster_files(name: str) -> dict[str, str | bytes]:
    files = bundle_files(BUNDLES / name)
    if name in CLUSTER_ONLY_MOCKS:
        line, _ = CLUSTER_ONLY_MOCKS[name]
        arena = files["config.arena.yaml"]
        assert isinstance(arena, bytes) and line.encode() in arena
        files["config.arena.yaml"] = arena.replace(line.encode(), b"")
    return files


def _local_copy(name: str, where: Path) -> Path:
    for relative, content in _cluster_files(name).items():
        (where / relative).parent.mkdir(parents=True, exist_ok=True)
        (where / relative).write_bytes(content if isinstance(content, bytes) else content.encode())
    return where


def _by_key(runs: list[Run]) -> dict[Key, Run]:
    return {(r["ScenarioID"], r["ProviderID"]): r for r in runs}


def _local_runs(bundle: Path, out: Path) -> dict[Key, Run]:
    cli.main(["run", str(bundle), "--out", str(out), "--formats", "json", "-q"])
    return _by_key([json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()])


def _expected(name: str) -> dict[Key, str]:
    """expected.yaml's status of every run: scenario → provider → status (or {status, …})."""
    scenarios = yaml.safe_load((BUNDLES / name / "expected.yaml").read_text())["scenarios"]
    dropped = CLUSTER_ONLY_MOCKS.get(name, ("", ""))[1]
    return {(scenario, provider): outcome if isinstance(outcome, str) else outcome["status"]
            for scenario, providers in scenarios.items() for provider, outcome in providers.items()
            if provider != dropped}


def _conversation(run: Run) -> list[tuple[str, str, str]]:
    """(role, state stamp, text) of every message: what must not differ between local and distributed runs."""
    return [(m["role"], (m.get("meta") or {}).get("current_workflow_state", {}).get("current_state", ""),
             m["content"]) for m in run["Messages"]]


def _snapshots(run: Run) -> list[Any]:
    return [(m.get("meta") or {}).get("_composition_snapshot") for m in run["Messages"]]


@pytest.mark.parametrize("name", NAMES)
def test_the_bundle_runs_distributed_with_the_local_outcomes(cluster: dict[str, Any], tmp_path: Path,
                                                            name: str) -> None:
    obj, runs = run_job_results(cluster, f"{name}-eval", name, workers={"replicas": 2})
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    remote, expected = _by_key(runs), _expected(name)
    assert {key: run["Status"] for key, run in remote.items()} == expected
    assert obj["status"]["progress"]["total"] == len(expected)
    local = _local_runs(_local_copy(name, tmp_path / "bundle"), tmp_path / "local")
    for key, run in remote.items():
        mine = local[key]
        assert _conversation(run) == _conversation(mine), key
        assert _snapshots(run) == _snapshots(mine), key
        assert (run.get("Workflow"), run["Violations"], run["ErrorKind"]) == (
            mine.get("Workflow"), mine["Violations"], mine["ErrorKind"]), key
    if name == "compositions":
        assert any(_snapshots(remote[("billing-route", "mock-compose")]))
    if name == "workflow":
        assert remote[("tech-loop", "mock-desk")]["Workflow"]["workflow_artifacts"] == {"notes": "rebooted; reset; "}
        assert remote[("billing-flow", "mock-desk")]["Workflow"]["skills_activated"] == ["refunds"]
    if name == "duplex":
        assert {key for key, run in remote.items() if run["Status"] == "passed"} == set(expected)
