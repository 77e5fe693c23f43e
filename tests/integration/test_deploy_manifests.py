"""deploy/: the plain manifests (`kubectl apply -k deploy/` or `-f deploy/install.yaml`) are the chart rendered
by scripts/render_deploy.py — checked for drift here — and valid, restricted, and free of secrets."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from types import ModuleType
from typing import Any

import yaml

from tests.integration.kube_tools import (
    REPO,
    by_kind,
    one,
    pod_specs,
    restricted_problems,
    run,
    tool,
    validate_objects,
)

DEPLOY = REPO / "deploy"
SCRIPT = REPO / "scripts" / "render_deploy.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_deploy", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _install() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / "install.yaml").read_text()) if doc]


def test_install_yaml_is_the_chart_rendered_by_the_script() -> None:
    assert _script().render(tool("helm")) == (DEPLOY / "install.yaml").read_text(), \
        "deploy/install.yaml is stale (the chart or the CRDs changed): run .venv/bin/python scripts/render_deploy.py"
    done = subprocess.run([sys.executable, str(SCRIPT), "--check", "--helm", str(tool("helm"))],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and "matches the chart" in done.stdout, done.stderr


def test_kustomization_applies_the_same_objects() -> None:
    built = [doc for doc in yaml.safe_load_all(run(tool("kubectl"), "kustomize", DEPLOY).stdout) if doc]

    def key(obj: dict[str, Any]) -> tuple[str, str, str]:
        return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]

    assert sorted(map(key, built)) == sorted(map(key, _install()))
    assert {key(obj): obj for obj in built} == {key(obj): obj for obj in _install()}


def test_install_yaml_is_valid_restricted_and_holds_no_secret() -> None:
    objects = _install()
    assert validate_objects(objects) == len(objects) >= 18
    namespace = one(objects, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for obj in objects:
        if obj["kind"] not in ("Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == namespace["metadata"]["name"], obj["metadata"]
        labels = obj["metadata"].get("labels") or {}
        assert "helm.sh/chart" not in labels and labels.get("app.kubernetes.io/managed-by") != "Helm"
    assert [problem for where, pod in pod_specs(objects) for problem in restricted_problems(where, pod)] == []
    assert len(by_kind(objects, "CustomResourceDefinition")) == 5
    # no password is committed: the bundled Redis is open only to the operator and the workers (NetworkPolicy)
    assert not by_kind(objects, "Secret")
    redis = one(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    assert "--requirepass" not in redis["args"]
    redis_policy = one(objects, "NetworkPolicy", "arena-operator-redis")
    assert redis_policy["spec"]["podSelector"] == one(objects, "StatefulSet")["spec"]["selector"]
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
