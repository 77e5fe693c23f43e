"""Workflows, skills and compositions through the cluster: the workflow and compositions fixture bundles in git
ArenaSources, run by ArenaJobs through the real kopf operator, the emulated API and the test kubelet (real `arena
worker` processes, Redis, S3). The distributed runs have the outcomes `arena run` gives locally: the same per-run
status, the same states speaking, the same transitions, artifacts, skill activations and composition records."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from arena_operator import cli
from tests.e2e.bundle_jobs import BUNDLES, bundle_cluster, bundle_files, run_job
from tests.fakes.services import GitDaemon
from tests.harness.k8s import K8sApi
from tests.harness.k8s import k8s_api as k8s_api

NAMES = ("workflow", "compositions")


@pytest.fixture
def cluster(k8s_api: K8sApi, git_daemon: GitDaemon, redis_server: Any, s3_server: Any, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with bundle_cluster(k8s_api, git_daemon, redis_server.url, s3_server.url, tmp_path, monkeypatch,
                        {name: bundle_files(BUNDLES / name) for name in NAMES}) as cluster:
        yield cluster


def _local_runs(bundle: Path, out: Path) -> dict[str, dict[str, Any]]:
    cli.main(["run", str(bundle), "--out", str(out), "--formats", "json", "-q"])
    return {r["ScenarioID"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


def _conversation(run: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(role, state stamp, text) of every message: what must not differ between local and distributed runs."""
    return [(m["role"], (m.get("meta") or {}).get("current_workflow_state", {}).get("current_state", ""),
             m["content"]) for m in run["Messages"]]


@pytest.mark.parametrize("name", NAMES)
def test_the_bundle_runs_distributed_with_the_local_outcomes(cluster: dict[str, Any], tmp_path: Path,
                                                            name: str) -> None:
    obj, remote = run_job(cluster, f"{name}-eval", name, workers={"replicas": 2})
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    expected = yaml.safe_load((BUNDLES / name / "expected.yaml").read_text())["scenarios"]
    outcomes = {scenario: next(iter(by_provider.values())) for scenario, by_provider in expected.items()}
    assert {s: r["Status"] for s, r in remote.items()} == {
        s: (e if isinstance(e, str) else e["status"]) for s, e in outcomes.items()}
    assert obj["status"]["progress"]["total"] == len(expected)
    local = _local_runs(BUNDLES / name, tmp_path / "local")
    for scenario, run in remote.items():
        mine = local[scenario]
        assert _conversation(run) == _conversation(mine), scenario
        assert (run["Workflow"], run["Violations"], run["ErrorKind"]) == (
            mine["Workflow"], mine["Violations"], mine["ErrorKind"]), scenario
    if name == "compositions":
        snapshot = [(m.get("meta") or {}).get("_composition_snapshot") for m in remote["billing-route"]["Messages"]]
        assert any(snapshot) and snapshot == [(m.get("meta") or {}).get("_composition_snapshot")
                                              for m in local["billing-route"]["Messages"]]
    if name == "workflow":
        assert remote["tech-loop"]["Workflow"]["workflow_artifacts"] == {"notes": "rebooted; reset; "}
        assert remote["billing-flow"]["Workflow"]["skills_activated"] == ["refunds"]
