"""Fixture bundles through the cluster: each bundle in a git ArenaSource, the real kopf operator and the test
kubelet, an S3 bucket on moto; ArenaJobs over a source, their runs read back from S3 by scenario."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.e2e.operator_env import NAMESPACE, arena_operator
from tests.e2e.test_arenajob import BUCKET, finished, s3_output
from tests.fakes.services import GitDaemon
from tests.harness.k8s import ARENA_API_VERSION, K8sApi, dig
from tests.harness.kubelet import Kubelet

BUNDLES = Path(__file__).resolve().parents[1] / "fixtures" / "bundles"
JOB_TIMEOUT = 120


def bundle_files(root: Path) -> dict[str, str | bytes]:
    """A bundle directory as the files of a git commit (no caches; expected.yaml is the tests', not the bundle's)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()
            and "__pycache__" not in p.parts and p.name != "expected.yaml"}


@contextmanager
def bundle_cluster(k8s_api: K8sApi, git_daemon: GitDaemon, redis_url: str, s3_url: str, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch, sources: dict[str, dict[str, str | bytes]],
                   env: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """Operator (with `env` set on it), kubelet, the S3 credentials Secret, and one Ready git ArenaSource per
    entry of `sources` (name → files)."""
    for name, files in sources.items():
        git_daemon.create_repo(name)
        git_daemon.work(name).commit(files)
    s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1", aws_access_key_id="test",
                      aws_secret_access_key="test")
    s3.create_bucket(Bucket=BUCKET)
    settings = {"ARENA_REDIS_URL": redis_url, "ARENA_VISIBILITY_TIMEOUT_SECONDS": "5",
                "ARENA_AGGREGATION_LEASE_SECONDS": "2", **(env or {})}
    for variable, value in settings.items():
        monkeypatch.setenv(variable, value)
    with arena_operator(k8s_api, tmp_path / "artifacts", monkeypatch), \
            Kubelet(k8s_api, tmp_path / "kubelet", namespaces=[NAMESPACE]):
        k8s_api.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-credentials",
                                                                         "namespace": NAMESPACE},
                        "stringData": {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}})
        for name in sources:
            k8s_api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaSource",
                            "metadata": {"name": name, "namespace": NAMESPACE},
                            "spec": {"type": "git", "interval": "5m",
                                     "git": {"url": git_daemon.url(name), "ref": {"branch": "main"}}}})
        for name in sources:
            k8s_api.wait_for(ARENA_API_VERSION, "arenasources", NAMESPACE, name,
                             lambda o: dig(o, "status.phase") == "Ready", timeout=30)
        yield {"api": k8s_api, "s3": s3, "s3_url": s3_url}


def run_job_results(cluster: dict[str, Any], name: str, source: str,
                    **spec: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Create an ArenaJob over `source` (S3 output), wait for its end; its object and its runs."""
    cluster["api"].create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaJob",
                           "metadata": {"name": name, "namespace": NAMESPACE},
                           "spec": {"sourceRef": {"name": source}, "output": s3_output(cluster["s3_url"]), **spec}})
    obj = cluster["api"].wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, name, finished, timeout=JOB_TIMEOUT)
    try:
        body = cluster["s3"].get_object(Bucket=BUCKET, Key=f"evals/parallel/{NAMESPACE}/{name}/results.json")
    except cluster["s3"].exceptions.NoSuchKey:
        pytest.fail(f"job {name} wrote no results.json: {obj['status']}")
    return obj, json.loads(body["Body"].read())


def run_job(cluster: dict[str, Any], name: str, source: str,
            **spec: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """run_job_results for a bundle whose scenarios run on one provider each: the runs by scenario."""
    obj, runs = run_job_results(cluster, name, source, **spec)
    return obj, {r["ScenarioID"]: r for r in runs}
