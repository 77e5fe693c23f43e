"""`arena run job.yaml` with the Go operator's manifests (tests/fixtures/goform): no ArenaConfig, a workspace
source next to the file, providers as a pool or as a map of the bundle's ids — each gives the same results as
its documented-form equivalent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.integration.test_local_job import API, QUICKSTART, arena, provider, write
from tests.unit.test_goform import go_manifest, outcomes

MOCKS = QUICKSTART / "mocks"


def mock(name: str, mock_file: str) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "Provider", "metadata": {"name": name},
            "spec": {"type": "mock", "mockConfig": yaml.safe_load((MOCKS / mock_file).read_text())}}


def documented(job_spec: dict[str, Any], **config: Any) -> list[dict[str, Any]]:
    return [{"apiVersion": API, "kind": "ArenaConfig", "metadata": {"name": "cfg"},
             "spec": {"sourceRef": {"name": "prompts"}, **config}},
            {"apiVersion": API, "kind": "ArenaJob", "metadata": {"name": "documented"},
             "spec": {"configRef": {"name": "cfg"}, **job_spec}}]


def runs(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((out / "units").glob("*.json"))]


def run(job: Path, out: Path, *extra: str) -> None:
    done = arena("run", str(job), "-q", "--out", str(out), *extra)
    assert done.returncode == 0, done.stderr


def test_a_go_form_job_on_a_workspace_source_runs_as_its_documented_equivalent(tmp_path: Path) -> None:
    go_dir = tmp_path / "go"
    shutil.copytree(QUICKSTART, go_dir / "projects" / "support")  # the workspace path, relative to the file
    go = write(go_dir / "job.yaml", [go_manifest("go-workspace"), go_manifest("go-workspace-eval"),
                                     provider("mock-a", {"tier": "production"})])
    run(go, tmp_path / "go-out")
    doc = write(tmp_path / "doc.yaml", [*documented({}, providerRef={"name": "mock-a"}, trials=1),
                                        provider("mock-a", {"tier": "production"})])
    run(doc, tmp_path / "doc-out", "--bundle", str(QUICKSTART))
    assert len(runs(tmp_path / "go-out")) == 6
    assert outcomes(runs(tmp_path / "go-out")) == outcomes(runs(tmp_path / "doc-out"))
    assert {r["ProviderID"] for r in runs(tmp_path / "go-out")} == {"mock-a"}


def test_a_go_form_map_group_runs_as_the_documented_selectors(tmp_path: Path) -> None:
    go = write(tmp_path / "go.yaml", [go_manifest("go-mapping"), mock("mock-a", "assistant.yaml"),
                                      mock("mock-judge", "judge.yaml")])
    run(go, tmp_path / "go-out", "--bundle", str(QUICKSTART))
    judge = mock("mock-judge", "judge.yaml")
    judge["metadata"]["labels"] = {"role": "judge"}
    assistant = mock("mock-a", "assistant.yaml")
    assistant["metadata"]["labels"] = {"tier": "production"}
    doc = write(tmp_path / "doc.yaml", [*documented({"scenarios": {"exclude": ["escalation"]}, "providerOverrides": {
        "default": {"selector": {"matchLabels": {"tier": "production"}}},
        "judge": {"selector": {"matchLabels": {"role": "judge"}}}}}), assistant, judge])
    run(doc, tmp_path / "doc-out", "--bundle", str(QUICKSTART))
    # the map kept the bundle's id (support-assistant) with mock-a's settings; the selector named it mock-a
    assert {r["ProviderID"] for r in runs(tmp_path / "go-out")} == {"support-assistant"}
    assert len(runs(tmp_path / "go-out")) == 5
    assert outcomes(runs(tmp_path / "go-out"), {"support-assistant": "mock-a"}) == outcomes(runs(tmp_path / "doc-out"))


def test_an_agent_ref_is_refused_plainly(tmp_path: Path) -> None:
    job = write(tmp_path / "agent.yaml", [go_manifest("go-agent"), mock("mock-a", "assistant.yaml")])
    done = arena("run", str(job), "-q", "--out", str(tmp_path / "out"), "--bundle", str(QUICKSTART))
    assert done.returncode != 0
    assert "agentRef support-agent needs an AgentRuntime" in done.stderr, done.stderr
