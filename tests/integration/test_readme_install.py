"""Every command of the README's install sections ("Install with Helm" to "Upgrade and uninstall") is exercised:
helm commands as `helm template` / `helm show` with the same chart, release and namespace; kubectl commands on
files through kubectl itself (kustomize) or the manifest checks; the commands a user runs against Arena objects
verbatim, with the real kubectl 1.31, against the emulated API. An unknown command fails the test."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import yaml

from arena_operator import __version__
from arena_operator.api import API_VERSION
from tests.harness.k8s import K8sApi
from tests.harness.k8s import k8s_api as k8s_api  # the fixture, re-exported for pytest
from tests.integration.kube_tools import REPO, helm, one, run, tool, validate_objects

FIRST, END = "## Install with Helm", "## Layout"


def commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text[text.index(FIRST):text.index(END)]
    found = []
    for block in re.findall(r"^```bash\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL):
        for line in block.splitlines():
            command = re.split(r"\s{2,}#", line)[0].strip()
            if command:
                found.append(command)
    return found


def _flag(args: list[str], *names: str) -> str | None:
    for index, arg in enumerate(args):
        if arg in names:
            return args[index + 1]
    return None


def _helm_template(args: list[str]) -> list[dict[str, Any]]:
    """`helm install|upgrade RELEASE CHART --namespace NS [...]` rendered as `helm template` (no cluster here)."""
    release, chart = args[2], args[3]
    namespace = _flag(args, "--namespace", "-n")
    assert (release, namespace) == ("arena-operator", "arena-system")
    extra = [a for a in args[4:] if a not in ("--create-namespace", "--reuse-values", "--wait", "--atomic")]
    text = helm("template", release, REPO / chart, *extra, "--include-crds").stdout
    objects = [doc for doc in yaml.safe_load_all(text) if doc]
    validate_objects(objects)
    return objects


def _quickstart_status() -> dict[str, Any]:
    """What the operator writes when the quickstart succeeded (the shape `kubectl wait` and jsonpath read)."""
    return {"phase": "Succeeded", "observedGeneration": 1, "progressText": "4/4",
            "progress": {"total": 4, "completed": 4, "failed": 0, "pending": 0},
            "result": {"summary": {"total": {"runs": 4, "passed": 4}}},
            "conditions": [{"type": "Ready", "status": "True", "reason": "Completed", "message": "4 units",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}]}


def test_every_install_command_of_the_readme_is_exercised(k8s_api: K8sApi) -> None:
    found = commands()
    assert len(found) >= 15, found
    kubectl = [str(tool("kubectl")), f"--kubeconfig={k8s_api.kubeconfig}"]
    rendered: list[dict[str, Any]] = []
    exercised = []
    run(*kubectl, "apply", "--validate=false", "-f", REPO / "crds")
    # kubectl cached discovery before the CRDs existed; a cluster's CRDs predate the user's kubectl commands
    run(*kubectl, "api-resources", "--categories=arena")
    for command in found:
        if "|" in command:
            left, right = (shlex.split(part) for part in command.split("|"))
            assert left[:3] == ["helm", "show", "crds"] and right == ["kubectl", "apply", "--server-side", "-f", "-"]
            crds = [doc for doc in yaml.safe_load_all(helm("show", "crds", REPO / left[3]).stdout) if doc]
            assert sorted(crd["metadata"]["name"] for crd in crds) == sorted(
                p.name.removesuffix(".yaml") for p in (REPO / "crds").glob("*.yaml"))
            exercised.append(command)
            continue
        args = shlex.split(command)
        if args[:2] == ["docker", "build"]:  # no container runtime here: tests/integration/test_packaging.py
            assert args[-1] == "." and args[args.index("-t") + 1].endswith(f":{__version__}")
            assert (REPO / "Dockerfile").exists()
        elif args[:2] in (["helm", "install"], ["helm", "upgrade"]):
            rendered = _helm_template(args)
        elif args[:2] == ["helm", "uninstall"]:
            assert (args[2], _flag(args, "--namespace")) == ("arena-operator", "arena-system")
        elif "rollout" in args:
            namespace, target = _flag(args, "-n"), args[-1]
            deployment = one(rendered, "Deployment")
            assert (namespace, target) == (deployment["metadata"]["namespace"],
                                           f"deployment/{deployment['metadata']['name']}")
            installed = [doc for doc in yaml.safe_load_all((REPO / "deploy" / "install.yaml").read_text()) if doc]
            assert one(installed, "Deployment")["metadata"]["name"] == deployment["metadata"]["name"]
        elif "patch" in args:
            [patch] = [doc for doc in yaml.safe_load_all((REPO / args[-1]).read_text()) if doc]
            assert (patch["kind"], patch["metadata"]["name"]) == ("ConfigMap", args[args.index("configmap") + 1])
        elif "apply" in args:
            path = REPO / (_flag(args, "-f", "-k") or "")
            assert path.exists(), command
            if "-k" in args:
                run(tool("kubectl"), "kustomize", path)
            docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc] if path.is_file() else []
            if path.name == "job.yaml":  # the quickstart: applied verbatim, then the operator's status written
                run(*kubectl, "apply", "--validate=false", *args[2:], cwd=REPO)  # the emulator serves no OpenAPI
                k8s_api.patch(API_VERSION, "arenajobs", "arena", "quickstart", {"status": _quickstart_status()},
                              subresource="status")
            assert all(isinstance(doc, dict) and doc.get("kind") for doc in docs)
        elif args[:2] == ["kubectl", "delete"] and "-f" in args:
            path = REPO / args[args.index("-f") + 1]
            assert path.is_dir() and sorted(p.name for p in path.glob("*.yaml")) == sorted(
                p.name for p in (REPO / "crds").glob("*.yaml"))
            deleted = run(*kubectl, *args[1:], cwd=REPO).stdout
            assert deleted.count("customresourcedefinition.apiextensions.k8s.io") == 5, deleted
        elif args[0] == "kubectl" and ("wait" in args or "get" in args or "delete" in args):
            done = run(*kubectl, *args[1:], cwd=REPO)
            if "wait" in args:
                assert "arenajob.omnia.altairalabs.ai/quickstart condition met" in done.stdout
            elif "jsonpath" in command:
                assert json.loads(done.stdout) == _quickstart_status()["result"]["summary"]
            else:  # delete arena --all: every Arena object, by the category
                assert "arenajob.omnia.altairalabs.ai \"quickstart\" deleted" in done.stdout, done.stdout
                assert "arenasource.omnia.altairalabs.ai \"quickstart\" deleted" in done.stdout
        else:
            raise AssertionError(f"a README command no test exercises: {command}")
        exercised.append(command)
    assert exercised == found
