"""The Helm chart with the real helm binary: lint --strict, template with the defaults and with each major option,
every rendered object validated against the Kubernetes OpenAPI schemas (kubernetes-validate, strict), the pod
security and the RBAC rules asserted — the rules compared with what the operator's code calls."""

from __future__ import annotations

import ast
import base64
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from arena_operator.api.common import GROUP
from arena_operator.api.crds import check_crds
from tests.integration.kube_tools import (
    CHART,
    NAMESPACE,
    RELEASE,
    REPO,
    Object,
    by_kind,
    helm,
    one,
    pod_specs,
    render,
    restricted_problems,
    set_args,
    validate_objects,
)

FULLNAME = RELEASE  # the release is named like the chart
SRC = REPO / "src" / "arena_operator"

#: Each major option of the chart, as the values that switch it on.
OPTIONS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "watch-namespaces": {"watchNamespaces": ["team-a", "team-b"]},
    "external-redis": {"redis": {"enabled": False, "url": "rediss://redis.infra.svc.cluster.local:6380/2",
                                 "existingSecret": "redis-auth", "existingSecretPasswordKey": "password"}},
    "external-redis-no-password": {"redis": {"enabled": False, "url": "redis://redis.infra:6379/0"}},
    "redis-without-auth-or-disk": {"redis": {"auth": {"enabled": False}, "persistence": {"enabled": False},
                                             "networkPolicy": {"enabled": False}}},
    "artifacts-emptydir": {"artifacts": {"persistence": {"enabled": False}}},
    "artifacts-existing-claim": {"artifacts": {"persistence": {"existingClaim": "my-artifacts"}}},
    "monitoring": {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
                               "podMonitor": {"enabled": True},
                               "grafanaDashboard": {"enabled": True, "namespace": "monitoring"}}},
    "worker-defaults": {"worker": {
        "image": {"repository": "registry.example.com/arena-worker", "tag": "1.2.3"},
        "serviceAccount": {"namespaces": ["evals"], "annotations": {"eks.amazonaws.com/role-arn": "arn:x"}},
        "nodeSelector": {"pool": "llm"}, "tolerations": [{"key": "llm", "operator": "Exists", "effect": "NoSchedule"}],
        "podOverrides": {"priorityClassName": "batch-low"}}},
    "no-rbac-existing-service-account": {"rbac": {"create": False},
                                         "serviceAccount": {"create": False, "name": "arena"}},
    "pinned-digest": {"image": {"digest": "sha256:" + "a" * 64}, "imagePullSecrets": [{"name": "ghcr"}],
                      "operator": {"logFormat": "text", "nodeSelector": {"kubernetes.io/os": "linux"},
                                   "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}]}},
}


def _option_params() -> list[Any]:
    return [pytest.param(values, id=name) for name, values in OPTIONS.items()]


def test_helm_lint_strict_passes_with_every_option() -> None:
    for name, values in OPTIONS.items():
        done = helm("lint", "--strict", CHART, "--namespace", NAMESPACE, *set_args(values))
        assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout, (name, done.stdout)
        assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, (name, done.stdout)


@pytest.mark.parametrize("values", _option_params())
def test_rendered_manifests_are_valid_kubernetes_objects(values: dict[str, Any]) -> None:
    objects = render(values, include_crds=True)
    assert validate_objects(objects) == len(objects)
    names = [(obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]) for obj in objects]
    assert len(names) == len(set(names)), "no object is rendered twice"
    for obj in objects:
        if obj["kind"] != "CustomResourceDefinition":
            assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE, obj["metadata"]
            if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
                assert obj["metadata"].get("namespace"), f"{obj['kind']} {obj['metadata']['name']} has a namespace"


@pytest.mark.parametrize("values", _option_params())
def test_every_pod_meets_the_restricted_pod_security_standard(values: dict[str, Any]) -> None:
    pods = pod_specs(render(values))
    assert pods
    problems = [problem for where, pod in pods for problem in restricted_problems(where, pod)]
    assert problems == []


def test_the_crds_in_the_chart_are_the_generated_ones() -> None:
    assert check_crds(CHART / "crds") == [], "run `arena crds` and commit charts/arena-operator/crds"
    crds = [obj for obj in render(include_crds=True) if obj["kind"] == "CustomResourceDefinition"]
    assert sorted(crd["metadata"]["name"] for crd in crds) == sorted(
        path.name.removesuffix(".yaml") for path in (REPO / "crds").glob("*.yaml"))


# -- the operator Deployment -----------------------------------------------------------------------------

def _env(container: Object) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env") or []}


def _operator(objects: list[Object]) -> tuple[Object, Object]:
    deployment = one(objects, "Deployment", FULLNAME)
    return deployment, deployment["spec"]["template"]["spec"]["containers"][0]


def test_operator_deployment_defaults() -> None:
    objects = render()
    deployment, container = _operator(objects)
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == FULLNAME
    assert pod["securityContext"]["runAsUser"] == 65532 and pod["securityContext"]["fsGroup"] == 65532
    assert container["command"] == ["arena"]
    assert container["args"] == ["operator", "--liveness", "http://0.0.0.0:8081/healthz", "--log-format", "json"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": 8080, "health": 8081}
    # liveness (and start-up) on kopf's health endpoint, readiness on the artifact server's /healthz
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["resources"]["limits"] and container["resources"]["requests"]
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert mounts == {"/tmp": "tmp", "/var/lib/arena/artifacts": "artifacts"}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["artifacts"]["persistentVolumeClaim"] == {"claimName": f"{FULLNAME}-artifacts"}
    assert one(objects, "PersistentVolumeClaim")["spec"]["resources"]["requests"]["storage"] == "1Gi"

    env = _env(container)
    service = one(objects, "Service", FULLNAME)
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    host = f"{FULLNAME}.{NAMESPACE}.svc.cluster.local"
    assert env["ARENA_ARTIFACT_BASE_URL"] == f"http://{host}:8080"
    assert env["ARENA_ARTIFACT_DIR"] == "/var/lib/arena/artifacts" and env["ARENA_ARTIFACT_PORT"] == "8080"
    assert env["ARENA_WORKER_IMAGE"] == "ghcr.io/arena-operator/arena-operator:0.1.0"
    assert env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert json.loads(env["ARENA_WORKER_RESOURCES"]) == {"requests": {"cpu": "250m", "memory": "256Mi"},
                                                         "limits": {"cpu": "1", "memory": "1Gi"}}


#: Variables the chart sets that no Python code reads: the Redis password is expanded into ARENA_REDIS_URL by the
#: kubelet ($(ARENA_REDIS_PASSWORD)).
EXPANDED_BY_THE_KUBELET = {"ARENA_REDIS_PASSWORD"}


def test_every_setting_the_chart_passes_is_one_the_code_reads() -> None:
    sources = "\n".join(path.read_text() for path in SRC.rglob("*.py"))
    read = set(re.findall(r"[\"'](ARENA_[A-Z_]+|POD_IP|HOME)[\"']", sources))
    names = set()
    for values in OPTIONS.values():
        names |= {name for name in _env(_operator(render(values))[1]) if name.startswith("ARENA_")}
    unknown = names - read - EXPANDED_BY_THE_KUBELET
    assert unknown == set(), "the chart sets variables nothing reads"


def test_watch_namespaces_become_operator_arguments() -> None:
    _, container = _operator(render(OPTIONS["watch-namespaces"]))
    assert container["args"][-4:] == ["--namespace", "team-a", "--namespace", "team-b"]


def test_artifacts_emptydir_and_existing_claim() -> None:
    objects = render(OPTIONS["artifacts-emptydir"])
    deployment, _ = _operator(objects)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["artifacts"] == {"name": "artifacts", "emptyDir": {}}
    assert not by_kind(objects, "PersistentVolumeClaim")
    objects = render(OPTIONS["artifacts-existing-claim"])
    deployment, _ = _operator(objects)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["artifacts"]["persistentVolumeClaim"] == {"claimName": "my-artifacts"}
    assert not by_kind(objects, "PersistentVolumeClaim")


def test_worker_defaults_reach_the_operator() -> None:
    objects = render(OPTIONS["worker-defaults"])
    env = _env(_operator(objects)[1])
    assert env["ARENA_WORKER_IMAGE"] == "registry.example.com/arena-worker:1.2.3"
    assert env["ARENA_WORKER_SERVICE_ACCOUNT"] == f"{FULLNAME}-worker"
    assert json.loads(env["ARENA_WORKER_NODE_SELECTOR"]) == {"pool": "llm"}
    assert json.loads(env["ARENA_WORKER_TOLERATIONS"]) == [{"key": "llm", "operator": "Exists", "effect": "NoSchedule"}]
    assert json.loads(env["ARENA_WORKER_POD_OVERRIDES"]) == {"priorityClassName": "batch-low"}
    accounts = [sa for sa in by_kind(objects, "ServiceAccount") if sa["metadata"]["name"] == f"{FULLNAME}-worker"]
    assert sorted(sa["metadata"]["namespace"] for sa in accounts) == sorted([NAMESPACE, "evals"])
    assert all(sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:x"} for sa in accounts)


def test_image_digest_pull_secrets_and_extra_env() -> None:
    deployment, container = _operator(render(OPTIONS["pinned-digest"]))
    assert container["image"] == "ghcr.io/arena-operator/arena-operator@sha256:" + "a" * 64
    assert _env(container)["ARENA_WORKER_IMAGE"] == container["image"]
    assert _env(container)["HTTPS_PROXY"] == "http://proxy:3128"
    assert deployment["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "ghcr"}]
    assert container["args"][-2:] == ["--log-format", "text"]


# -- RBAC: the rules are exactly what the code calls -------------------------------------------------------

Permission = tuple[str, str, str]  # (apiGroup, resource, verb)
_VERBS = {"read": "get", "create": "create", "patch": "patch", "delete": "delete", "list": "list",
          "replace": "update"}
_PLURALS = {"secret": "secrets", "config_map": "configmaps", "persistent_volume_claim": "persistentvolumeclaims",
            "job": "jobs", "pod": "pods", "service": "services", "event": "events"}


def _kube_py_permissions() -> set[Permission]:
    """Every Kubernetes client method kube.py references (`self.core.read_namespaced_secret`, ...), as RBAC."""
    tree = ast.parse((SRC / "kube.py").read_text())
    found: set[Permission] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"):
            continue
        api, method = node.value.attr, node.attr
        match = re.fullmatch(r"(read|create|patch|delete|list|replace)_namespaced_(\w+)", method)
        if api not in ("core", "batch", "custom") or not match:
            continue
        verb, resource = _VERBS[match.group(1)], match.group(2)
        if api == "custom":
            found |= {(GROUP, plural, verb) for plural in _custom_plurals(f"{match.group(1)}_custom")}
        else:
            found.add(("" if api == "core" else "batch", _PLURALS[resource], verb))
    return found


def _custom_plurals(wrapper: str) -> set[str]:
    """The plurals passed to Workloads.<wrapper>(GROUP, VERSION, <plural>, ...) anywhere in the package: a string,
    or a module-level constant of the calling module."""
    import importlib

    plurals = set()
    for path in SRC.rglob("*.py"):
        module = None
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == wrapper
                    and len(node.args) >= 3):
                continue
            arg = node.args[2]
            if isinstance(arg, ast.Constant):
                plurals.add(arg.value)
            else:
                assert isinstance(arg, ast.Name), f"{path}:{node.lineno}: plural is neither a string nor a name"
                dotted = ".".join(("arena_operator", *path.relative_to(SRC).with_suffix("").parts))
                module = module or importlib.import_module(dotted)
                plurals.add(getattr(module, arg.id))
    return plurals  # empty when nothing calls the wrapper: then no permission is needed for it


def _kopf_permissions() -> set[Permission]:
    """What kopf does for the registered handlers: list+watch every resource it indexes or handles; patch the
    objects it runs timers or delete handlers for (finalizer, progress annotations) and their status."""
    import kopf

    from arena_operator.operator.main import register_handlers

    register_handlers()
    registry = kopf.get_default_registry()
    found: set[Permission] = set()
    for kind in ("_indexing", "_watching", "_spawning", "_changing"):
        for handler in getattr(registry, kind).get_all_handlers():
            group, plural = handler.selector.group or "", handler.selector.plural or handler.selector.any_name
            found |= {(group, plural, "list"), (group, plural, "watch")}
            if kind in ("_spawning", "_changing"):
                found |= {(group, plural, "patch"), (group, f"{plural}/status", "patch")}
    sources = "\n".join(path.read_text() for path in (SRC / "operator").glob("*.py"))
    if "kopf.event(" in sources:
        found.add(("", "events", "create"))
    return found


def _owner_reference_permissions() -> set[Permission]:
    """A worker Job's ownerReference blocks its ArenaJob's deletion: with OwnerReferencesPermissionEnforcement
    that needs update on the owner's finalizers subresource."""
    from arena_operator.reconcile.worker_job import WorkerJobParams, build_worker_job

    job = build_worker_job(WorkerJobParams(namespace="n", job_name="j", job_uid="u", image="i", artifact_url="a",
                                           artifact_digest="d", job_key="k", redis_url="redis://r"))
    [owner] = job["metadata"]["ownerReferences"]
    assert owner["blockOwnerDeletion"] is True and owner["kind"] == "ArenaJob"
    return {(GROUP, "arenajobs/finalizers", "update")}


def _granted(rules: list[Object]) -> set[Permission]:
    granted = set()
    for rule in rules:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
        assert not rule.get("resourceNames") and not rule.get("nonResourceURLs"), rule
        granted |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    return granted


def _required() -> set[Permission]:
    return _kube_py_permissions() | _kopf_permissions() | _owner_reference_permissions()


def test_rbac_is_exactly_what_the_code_calls() -> None:
    required = _required()
    # a sanity check of the derivation itself: what the README says the operator does
    assert {("", "secrets", "get"), ("", "configmaps", "get"), ("", "persistentvolumeclaims", "get"),
            ("batch", "jobs", "create"), ("batch", "jobs", "patch"), ("batch", "jobs", "delete"),
            (GROUP, "arenajobs", "delete"), (GROUP, "arenajobs/status", "patch"),
            (GROUP, "providers", "watch")} <= required
    objects = render()
    role = one(objects, "ClusterRole", FULLNAME)
    assert _granted(role["rules"]) == required
    # Secrets are only read by name, never listed or watched, and created (each job's worker Secret), never
    # updated, patched or deleted; nothing is granted on pods, roles or the like
    assert {perm[2] for perm in _granted(role["rules"]) if perm[1] == "secrets"} == {"get", "create"}
    binding = one(objects, "ClusterRoleBinding", FULLNAME)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": FULLNAME}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
    # kopf's resource observation: read-only, cluster-scoped, CRDs only when cluster-wide (no namespace listing)
    observer = one(objects, "ClusterRole", f"{FULLNAME}-observer")
    assert _granted(observer["rules"]) == {("apiextensions.k8s.io", "customresourcedefinitions", "list"),
                                           ("apiextensions.k8s.io", "customresourcedefinitions", "watch")}


def test_rbac_with_watch_namespaces_is_a_role_per_namespace() -> None:
    objects = render(OPTIONS["watch-namespaces"])
    assert [role["metadata"]["name"] for role in by_kind(objects, "ClusterRole")] == [f"{FULLNAME}-observer"]
    observer = one(objects, "ClusterRole", f"{FULLNAME}-observer")
    assert {verb for _, _, verb in _granted(observer["rules"])} == {"list", "watch"}
    assert ("", "namespaces", "list") in _granted(observer["rules"])
    roles = by_kind(objects, "Role")
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["team-a", "team-b"]
    for role in roles:
        assert _granted(role["rules"]) == _required()
    bindings = by_kind(objects, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role" and binding["subjects"][0]["namespace"] == NAMESPACE
    # worker ServiceAccounts where the workers run: the watched namespaces
    workers = [sa for sa in by_kind(objects, "ServiceAccount") if sa["metadata"]["name"] == f"{FULLNAME}-worker"]
    assert sorted(sa["metadata"]["namespace"] for sa in workers) == ["team-a", "team-b"]


def test_the_worker_service_account_has_no_permissions_and_no_token() -> None:
    for values in OPTIONS.values():
        objects = render(values)
        worker = f"{FULLNAME}-worker"
        for account in by_kind(objects, "ServiceAccount"):
            if account["metadata"]["name"] == worker:
                assert account["automountServiceAccountToken"] is False
        subjects = [subject["name"] for binding in by_kind(objects, "RoleBinding") + by_kind(
            objects, "ClusterRoleBinding") for subject in binding["subjects"]]
        assert worker not in subjects


def test_rbac_can_be_left_to_the_cluster_admin() -> None:
    objects = render(OPTIONS["no-rbac-existing-service-account"])
    assert not [obj for obj in objects if obj["apiVersion"].startswith("rbac.authorization.k8s.io")]
    assert _operator(objects)[0]["spec"]["template"]["spec"]["serviceAccountName"] == "arena"
    assert [sa["metadata"]["name"] for sa in by_kind(objects, "ServiceAccount")] == [f"{FULLNAME}-worker"]


# -- Redis ----------------------------------------------------------------------------------------------

def test_bundled_redis_has_aof_and_a_generated_password() -> None:
    objects = render()
    name = f"{FULLNAME}-redis"
    secret = one(objects, "Secret", name)
    password = base64.b64decode(secret["data"]["redis-password"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{32}", password)
    assert render() == objects, "cached"
    again = helm("template", RELEASE, CHART, "--namespace", NAMESPACE).stdout
    assert password not in again, "a new password per install (an upgrade keeps the cluster's, by lookup)"

    statefulset = one(objects, "StatefulSet", name)
    assert statefulset["spec"]["replicas"] == 1 and statefulset["spec"]["serviceName"] == name
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes" and args[args.index("--appendfsync") + 1] == "everysec"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    ref = {"secretKeyRef": {"name": name, "key": "redis-password"}}
    assert _env(container)["REDIS_PASSWORD"] == ref and _env(container)["REDISCLI_AUTH"] == ref
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data" and claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    service = one(objects, "Service", name)
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["ports"][0]["port"] == 6379

    env = _env(_operator(objects)[1])
    assert env["ARENA_REDIS_PASSWORD"] == ref
    assert env["ARENA_REDIS_URL"] == f"redis://:$(ARENA_REDIS_PASSWORD)@{name}.{NAMESPACE}.svc.cluster.local:6379/0"
    # $(VAR) expands only to variables defined earlier in the list
    names = [item["name"] for item in _operator(objects)[1]["env"]]
    assert names.index("ARENA_REDIS_PASSWORD") < names.index("ARENA_REDIS_URL")


def test_redis_network_policy_admits_the_operator_and_the_workers_only() -> None:
    from arena_operator.reconcile.worker_job import WORKER_APP

    objects = render()
    policy = one(objects, "NetworkPolicy", f"{FULLNAME}-redis")
    statefulset = one(objects, "StatefulSet")
    assert policy["spec"]["podSelector"]["matchLabels"] == statefulset["spec"]["selector"]["matchLabels"]
    [rule] = policy["spec"]["ingress"]
    operator_labels = _operator(objects)[0]["spec"]["template"]["metadata"]["labels"]
    assert rule["from"][0]["podSelector"]["matchLabels"].items() <= operator_labels.items()
    assert rule["from"][1] == {"namespaceSelector": {}, "podSelector": {"matchLabels": {
        "app.kubernetes.io/name": WORKER_APP}}}
    assert [p["metadata"]["name"] for p in by_kind(render(OPTIONS["redis-without-auth-or-disk"]),
                                                   "NetworkPolicy")] == [FULLNAME]


def test_the_artifact_server_admits_worker_pods_only() -> None:
    """Artifacts have no per-job token (issue 16): the chart's NetworkPolicy keeps other pods off the operator's
    port; extraFrom adds peers (Prometheus); it can be switched off."""
    from arena_operator.reconcile.worker_job import WORKER_APP

    objects = render()
    policy = one(objects, "NetworkPolicy", FULLNAME)
    assert policy["spec"]["podSelector"]["matchLabels"] == one(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [rule] = policy["spec"]["ingress"]
    assert rule == {"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {
        "app.kubernetes.io/name": WORKER_APP}}}], "ports": [{"port": "http", "protocol": "TCP"}]}
    prometheus = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    extra = render({"artifacts": {"networkPolicy": {"extraFrom": [prometheus]}}})
    assert one(extra, "NetworkPolicy", FULLNAME)["spec"]["ingress"][0]["from"][1] == prometheus
    off = render({"artifacts": {"networkPolicy": {"enabled": False}}})
    assert [p["metadata"]["name"] for p in by_kind(off, "NetworkPolicy")] == [f"{FULLNAME}-redis"]


def test_egress_settings_reach_the_operator() -> None:
    env = _env(_operator(render())[1])
    assert env["ARENA_EGRESS_ALLOW_PRIVATE"] == "false" and "ARENA_EGRESS_ALLOW_CIDRS" not in env
    env = _env(_operator(render({"egress": {"allowPrivate": True, "allowCIDRs": ["10.96.0.0/12", "fd00::/8"]}}))[1])
    assert env["ARENA_EGRESS_ALLOW_PRIVATE"] == "true" and env["ARENA_EGRESS_ALLOW_CIDRS"] == "10.96.0.0/12,fd00::/8"


def test_the_stdio_mcp_gate_reaches_the_operator_off_by_default() -> None:
    assert _env(_operator(render())[1])["ARENA_ALLOW_MCP_STDIO"] == "false"
    assert _env(_operator(render({"mcp": {"allowStdio": True}}))[1])["ARENA_ALLOW_MCP_STDIO"] == "true"


def test_the_exec_gates_reach_the_operator_off_by_default() -> None:
    env = _env(_operator(render())[1])
    assert (env["ARENA_ALLOW_EXEC"], env["ARENA_EXEC_ALLOW_NETWORK"]) == ("false", "false")
    env = _env(_operator(render({"exec": {"allowTools": True, "allowWithoutNetworkIsolation": True}}))[1])
    assert (env["ARENA_ALLOW_EXEC"], env["ARENA_EXEC_ALLOW_NETWORK"]) == ("true", "true")


def test_external_redis_with_a_password_secret() -> None:
    objects = render(OPTIONS["external-redis"])
    assert not by_kind(objects, "StatefulSet") and not by_kind(objects, "Secret")
    env = _env(_operator(objects)[1])
    assert env["ARENA_REDIS_PASSWORD"] == {"secretKeyRef": {"name": "redis-auth", "key": "password"}}
    assert env["ARENA_REDIS_URL"] == "rediss://:$(ARENA_REDIS_PASSWORD)@redis.infra.svc.cluster.local:6380/2"
    objects = render(OPTIONS["external-redis-no-password"])
    env = _env(_operator(objects)[1])
    assert env["ARENA_REDIS_URL"] == "redis://redis.infra:6379/0" and "ARENA_REDIS_PASSWORD" not in env


def test_redis_without_auth_or_persistence() -> None:
    objects = render(OPTIONS["redis-without-auth-or-disk"])
    assert not by_kind(objects, "Secret")
    statefulset = one(objects, "StatefulSet")
    assert "volumeClaimTemplates" not in statefulset["spec"]
    assert statefulset["spec"]["template"]["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}]
    args = statefulset["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--requirepass" not in args and args[args.index("--protected-mode") + 1] == "no"
    assert "ARENA_REDIS_PASSWORD" not in _env(_operator(objects)[1])


def test_redis_url_is_required_without_the_bundled_redis() -> None:
    done = helm("template", RELEASE, CHART, "--set", "redis.enabled=false", check=False)
    assert done.returncode != 0 and "redis.url is required when redis.enabled is false" in done.stderr


# -- monitoring -----------------------------------------------------------------------------------------

def test_service_monitor_pod_monitor_and_dashboard() -> None:
    from arena_operator.reconcile.worker_job import MANAGER, WORKER_APP

    objects = render(OPTIONS["monitoring"])
    monitor = one(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["selector"]["matchLabels"] == one(objects, "Service", FULLNAME)["spec"]["selector"]
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s",
                                             "honorLabels": True}]
    pods = one(objects, "PodMonitor")
    assert pods["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": WORKER_APP,
                                                       "app.kubernetes.io/managed-by": MANAGER}
    assert pods["spec"]["namespaceSelector"] == {"any": True}
    assert pods["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    dashboard = one(objects, "ConfigMap", f"{FULLNAME}-dashboard")
    assert dashboard["metadata"]["namespace"] == "monitoring"
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    board = json.loads(dashboard["data"]["arena-operator.json"])
    assert board["uid"] == "arena-operator" and len(board["panels"]) >= 8
    assert not {"ServiceMonitor", "PodMonitor", "ConfigMap"} & {obj["kind"] for obj in render()}


def test_the_dashboard_queries_only_metrics_the_code_exports() -> None:
    board = json.loads((CHART / "files" / "dashboard.json").read_text())
    queried = {re.sub(r"_(bucket|count|sum)$", "", name)
               for panel in board["panels"] for target in panel["targets"]
               for name in re.findall(r"\barena_[a-z_]+\b", target["expr"])}
    exported = set()
    for path in (SRC / "operator" / "metrics.py", SRC / "worker" / "metrics.py"):
        exported |= set(re.findall(r"(?:Counter|Gauge|Histogram|Summary)\(\s*\"(arena_[a-z_]+)\"", path.read_text()))
    assert queried <= exported, f"not exported: {queried - exported}"
    assert exported <= queried, f"no panel for {exported - queried}"


# -- values.schema.json -----------------------------------------------------------------------------------

WRONG_VALUES = [
    ('watchNamespaces="team-a"', "watchNamespaces: Invalid type. Expected: array, given: string"),
    ('service.port="http"', "service.port: Invalid type. Expected: integer, given: string"),
    ('redis.enabled="yes"', "redis.enabled: Invalid type. Expected: boolean, given: string"),
    ('operator.logFormat="yaml"', "operator.logFormat"),
    ("operator.settings.maxUnits=0", "operator.settings.maxUnits"),
    ('redis.url="http://redis:6379"', "redis.url"),
    ("worker.tolerations={}", "worker.tolerations: Invalid type. Expected: array, given: object"),
    ('worker.resources={"limits": {"cpu": "lots"}}', "worker.resources.limits.cpu"),
    ('artifacts.persistence.size="big"', "artifacts.persistence.size"),
    ('replicaCount=2', "Additional property replicaCount is not allowed"),
    ('operator.replicas=2', "Additional property replicas is not allowed"),
    ('watchNamespaces=["Team_A"]', "watchNamespaces.0"),
]


@pytest.mark.parametrize(("setting", "message"), WRONG_VALUES, ids=[s.split("=")[0] for s, _ in WRONG_VALUES])
def test_values_schema_rejects_wrong_types(setting: str, message: str) -> None:
    done = helm("template", RELEASE, CHART, "--set-json", setting, check=False)
    assert done.returncode != 0 and message in done.stderr, done.stderr


def test_values_schema_accepts_the_documented_values() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for name, override in OPTIONS.items():
        assert set(override) <= set(values), name
    helm("template", RELEASE, CHART, "-f", CHART / "values.yaml")


# -- NOTES.txt ----------------------------------------------------------------------------------------------

def _notes(tmp_path: Path, *args: str) -> str:
    """NOTES.txt as `helm install` prints it. `helm install --dry-run=client` still wants a cluster, so a copy of
    the chart renders the same text through `tpl`, with the same values and release, by `helm template`."""
    copy = tmp_path / "chart"
    if not copy.exists():
        shutil.copytree(CHART, copy)
        shutil.copy(CHART / "templates" / "NOTES.txt", copy / "notes-source.txt")
        (copy / "templates" / "notes-under-test.yaml").write_text(
            'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n'
            'data: {notes: {{ tpl (.Files.Get "notes-source.txt") . | quote }}}\n')
    done = helm("template", RELEASE, copy, "--namespace", NAMESPACE, "--show-only", "templates/notes-under-test.yaml",
                *args)
    return str(yaml.safe_load(done.stdout)["data"]["notes"])


def test_notes_tell_the_next_commands(tmp_path: Path) -> None:
    notes = _notes(tmp_path)
    assert f"kubectl -n {NAMESPACE} rollout status deployment/{FULLNAME}" in notes
    assert "examples/cluster-quickstart/job.yaml" in notes and "watching all namespaces" in notes
    assert "kubectl -n arena wait arenajob/quickstart --for=condition=Ready" in notes
    assert f"password in Secret {FULLNAME}-redis" in notes
    notes = _notes(tmp_path, "--set-json", 'watchNamespaces=["team-a"]', "--set-json",
                   'redis={"enabled": false, "url": "redis://r:6379/0"}')
    assert "watching team-a" in notes and "Redis: redis://r:6379/0" in notes
    assert (REPO / "examples" / "cluster-quickstart" / "job.yaml").exists()


def test_validated_object_count() -> None:
    """Every option renders something, and the totals are reported (pytest -s)."""
    counts = {name: len(render(values, include_crds=True)) for name, values in OPTIONS.items()}
    assert min(counts.values()) >= 13
    print(f"\nrendered objects per option: {counts}; {sum(counts.values())} in all")
