"""The operator under test: a real kopf operator with our handlers against the emulated API."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kopf
import kubernetes

from arena_operator.kube import Kube
from arena_operator.operator.main import HANDLER_MODULES
from tests.harness.k8s import ARENA_API_VERSION, K8sApi, dig, run_operator

OPERATOR_MODULES = [f"arena_operator.operator.{module}" for module in HANDLER_MODULES]
NAMESPACE = "arena"
#: The operator's own credentials, in both its clients (kopf's and the Kubernetes client on memo.kube): the
#: identity `ClusterEmulator.rbac` restricts. The tests' client and the kubelet send no token.
OPERATOR_TOKEN = "arena-operator-token"


def kube_for(api: K8sApi, token: str | None = OPERATOR_TOKEN) -> Kube:
    config = kubernetes.client.Configuration()
    config.host = api.url
    if token:
        config.api_key = {"BearerToken": token}
        config.api_key_prefix = {"BearerToken": "Bearer"}
    return Kube(kubernetes.client.ApiClient(config))


@contextmanager
def arena_operator(api: K8sApi, artifacts: Path, monkeypatch: Any, port: int = 0, *, clusterwide: bool = False,
                   configure: Callable[[kopf.OperatorSettings], None] | None = None) -> Iterator[Kube]:
    """Start the operator with its artifact store in `artifacts` and its server on a loopback port
    (a free one by default; a fixed one to restart "the same" operator); it watches NAMESPACE, or all
    namespaces. `configure` adjusts kopf's settings (see run_operator)."""
    monkeypatch.setenv("ARENA_ARTIFACT_DIR", str(artifacts))
    monkeypatch.setenv("ARENA_ARTIFACT_HOST", "127.0.0.1")
    monkeypatch.setenv("ARENA_ARTIFACT_PORT", str(port))
    monkeypatch.delenv("ARENA_ARTIFACT_BASE_URL", raising=False)
    # The tests' model servers, registries and tools listen on loopback: the cluster admin's allowance, explicitly
    # (the operator copies it into every worker Job; without it the workers refuse them).
    monkeypatch.setenv("ARENA_EGRESS_ALLOW_PRIVATE", "true")
    api.create_namespace(NAMESPACE)
    kube = kube_for(api)
    try:
        with run_operator(OPERATOR_MODULES, api, namespaces=[NAMESPACE], memo=kopf.Memo(kube=kube),
                          token=OPERATOR_TOKEN, clusterwide=clusterwide, configure=configure):
            yield kube
    finally:
        kube.close()


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for item in dig(obj, "status.conditions", []) or []:
        if item.get("type") == kind:
            return item
    return {}


def source(api: K8sApi, name: str) -> dict[str, Any] | None:
    return api.get(ARENA_API_VERSION, "arenasources", NAMESPACE, name)


def events(api: K8sApi, name: str) -> list[dict[str, Any]]:
    return [e for e in api.list("v1", "events", NAMESPACE) if dig(e, "involvedObject.name") == name]


def wait_event(api: K8sApi, name: str, reason: str, kind: str = "Normal", timeout: float = 10.0) -> dict[str, Any]:
    """kopf posts events in the background, shortly after the status patch: poll for them."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in events(api, name) if e.get("reason") == reason and e.get("type") == kind]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            seen = [(e.get("type"), e.get("reason")) for e in events(api, name)]
            raise TimeoutError(f"no {kind} event {reason!r} for {name}; saw {seen}")
        time.sleep(0.05)
