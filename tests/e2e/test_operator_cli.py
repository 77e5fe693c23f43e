"""`arena operator` as users start it: a separate process, logged in through a kubeconfig, JSON logs, stopped by
SIGTERM — against the emulated API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.test_arenasource import FLAT_BUNDLE, ready
from tests.fakes.services import free_port
from tests.harness.k8s import ARENA_API_VERSION, K8sApi
from tests.harness.k8s import k8s_api as k8s_api

NAMESPACE = "arena"


def test_operator_command_reconciles_serves_and_stops(k8s_api: K8sApi, tmp_path: Path) -> None:
    k8s_api.create_namespace(NAMESPACE)
    port = free_port()
    env = {**os.environ, "KUBECONFIG": str(k8s_api.kubeconfig), "ARENA_ARTIFACT_DIR": str(tmp_path / "artifacts"),
           "ARENA_ARTIFACT_HOST": "127.0.0.1", "ARENA_ARTIFACT_PORT": str(port),
           "ARENA_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "ARENA_SOURCE_TICK_SECONDS": "0.2"}
    log = (tmp_path / "operator.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "arena_operator.cli", "operator", "-n", NAMESPACE,
                             "--log-format", "json"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        k8s_api.create({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "bundle", "namespace": NAMESPACE}, "data": FLAT_BUNDLE})
        k8s_api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaSource",
                        "metadata": {"name": "cm-src", "namespace": NAMESPACE},
                        "spec": {"type": "configmap", "configMap": {"name": "bundle"}}})
        obj = k8s_api.wait_for(ARENA_API_VERSION, "arenasources", NAMESPACE, "cm-src", ready, timeout=30)
        assert obj["status"]["artifact"]["url"].startswith(f"http://127.0.0.1:{port}/artifacts/")
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).text == "ok"
        assert "arena_operator_source_fetch_seconds_count" in httpx.get(f"http://127.0.0.1:{port}/metrics",
                                                                        timeout=5).text
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
        log.close()
    lines = (tmp_path / "operator.log").read_text().splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert code == 0, "\n".join(lines[-20:])
    assert records and len(records) == len([line for line in lines if line.strip()]), "every log line is JSON"
    assert any(r.get("object", {}).get("name") == "cm-src" for r in records if isinstance(r.get("object"), dict))
