"""`arena run job.yaml`: the same manifests a cluster runs, locally — ArenaSource fetched from a real git daemon,
Providers from the file swapped in exactly as the operator does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.fakes.services import GitDaemon

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart"
API = "omnia.altairalabs.ai/v1alpha1"


def arena(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "arena_operator.cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120, check=False)


def provider(name: str, labels: dict[str, str]) -> dict[str, Any]:
    mock = yaml.safe_load((QUICKSTART / "mocks" / "assistant.yaml").read_text())
    return {"apiVersion": API, "kind": "Provider", "metadata": {"name": name, "labels": labels},
            "spec": {"type": "mock", "mockConfig": mock}}


def manifests(source_url: str | None, **job_spec: Any) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = [
        provider("mock-a", {"tier": "production"}), provider("mock-b", {"tier": "production"}),
        {"apiVersion": API, "kind": "ArenaConfig", "metadata": {"name": "cfg"},
         "spec": {"sourceRef": {"name": "prompts"}, "providerRef": {"name": "mock-a"}, "trials": 2}},
        {"apiVersion": API, "kind": "ArenaJob", "metadata": {"name": "local"},
         "spec": {"configRef": {"name": "cfg"}, "evaluation": {"outputFormats": ["junit"]}, **job_spec}},
    ]
    if source_url:
        docs.append({"apiVersion": API, "kind": "ArenaSource", "metadata": {"name": "prompts"},
                     "spec": {"type": "git", "git": {"url": source_url, "ref": {"branch": "main"}}}})
    return docs


def write(path: Path, docs: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump_all(docs))
    return path


def test_job_file_fetches_the_source_and_uses_the_config_provider(git_daemon: GitDaemon, tmp_path: Path) -> None:
    git_daemon.create_repo("prompts")
    files = {str(p.relative_to(QUICKSTART)): p.read_text() for p in QUICKSTART.rglob("*") if p.is_file()}
    git_daemon.work("prompts").commit(files)
    job = write(tmp_path / "job.yaml", manifests(git_daemon.url("prompts")))
    done = arena("run", str(job), "-q", "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    # outputFormats [junit]: no results.json(l); every run is in units/, as in a distributed job's sink
    runs = [json.loads(p.read_text()) for p in (tmp_path / "out" / "units").glob("*.json")]
    assert len(runs) == 6 * 2 and {r["ProviderID"] for r in runs} == {"mock-a"}
    # the Provider's inline mockConfig answered: the quickstart's order-status tool round trip passes
    assert {r["Status"] for r in runs if r["ScenarioID"] == "order-status"} == {"passed"}
    assert (tmp_path / "out" / "junit.xml").exists() and not (tmp_path / "out" / "results.csv").exists()


def test_provider_overrides_and_bundle_flag(tmp_path: Path) -> None:
    job = write(tmp_path / "job.yaml", manifests(None, providerOverrides={
        "default": {"selector": {"matchLabels": {"tier": "production"}}}}, scenarios={"include": ["greeting"]}))
    done = arena("run", str(job), "--bundle", str(QUICKSTART), "-q", "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    runs = [json.loads(p.read_text()) for p in (tmp_path / "out" / "units").glob("*.json")]
    assert sorted((r["ProviderID"], r["Trial"]) for r in runs) == [("mock-a", 0), ("mock-a", 1), ("mock-b", 0),
                                                                  ("mock-b", 1)]


def test_job_file_errors_are_precise(tmp_path: Path) -> None:
    docs = manifests(None)
    docs[3]["spec"]["configRef"]["name"] = "missing"
    done = arena("run", str(write(tmp_path / "a.yaml", docs)), "-q", "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "spec.configRef 'missing' has no ArenaConfig" in done.stderr
    nomatch = manifests(None, providerOverrides={"judge": {"selector": {"matchLabels": {"role": "evaluator"}}}})
    done = arena("run", str(write(tmp_path / "b.yaml", nomatch)), "--bundle", str(QUICKSTART), "-q",
                 "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "providerOverrides.judge" in done.stderr
