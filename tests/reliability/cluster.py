"""The operator-side reliability tests' cluster: a real kopf operator and the test kubelet against the emulator,
a ConfigMap bundle whose mock provider takes `UNIT_SECONDS` per call, and a redis-server the test may kill and
restart (with an append-only file, or with no persistence at all)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kopf
import pytest

from tests.e2e.operator_env import NAMESPACE, arena_operator
from tests.e2e.test_arenasource import FLAT_BUNDLE
from tests.fakes.services import free_port, redis_answers, stop, wait_until
from tests.harness.faults import Fault
from tests.harness.k8s import ARENA_API_VERSION, K8sApi, dig
from tests.harness.kubelet import Kubelet

# CI runs a quick subset (one timing seed or fault point per test, small loads); ARENA_RELIABILITY_FULL=1 runs all.
FULL = os.environ.get("ARENA_RELIABILITY_FULL") == "1"
UNIT_SECONDS = 1.5  # each unit's one model call: long enough to kill a worker in the middle of it
CONFIG = "lifetime"  # the ArenaConfig every provisioned namespace has
# The flat ConfigMap bundle of the ArenaSource tests (one scenario, one mock provider), its provider slowed down.
BUNDLE = {**FLAT_BUNDLE, "provider.yaml": "kind: Provider\nmetadata: {name: bot}\nspec: {type: mock, "
                                          f"additional_config: {{latency_ms: {int(UNIT_SECONDS * 1000)}}}}}\n"}


class Redis:
    """A redis-server on a free port that a test can SIGKILL and start again on the same port and directory."""

    def __init__(self, directory: Path, *, appendonly: bool) -> None:
        self.port, self.dir, self.appendonly = free_port(), directory, appendonly
        self.url = f"redis://127.0.0.1:{self.port}/0"
        directory.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else \
            ["--appendonly", "no"]
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--dir", str(self.dir), *persistence],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: redis_answers(self.port), self.proc, "redis-server", timeout=30)

    def crash(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def scan(self) -> list[str]:
        out = subprocess.run(["redis-cli", "-p", str(self.port), "--scan"], capture_output=True, text=True)
        return out.stdout.split()

    def command(self, *args: str) -> str:
        out = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def ttl(self, key: str) -> int:
        return int(self.command("ttl", key))

    def close(self) -> None:
        if self.proc is not None:
            stop(self.proc)


def provision(api: K8sApi, namespace: str, *, trials: int, concurrency: int = 1, unit_seconds: float = UNIT_SECONDS,
              bundle: dict[str, str] | None = None) -> None:
    """Namespace `namespace` with ConfigMap `bundle` (BUNDLE, its mock provider taking `unit_seconds` a call, or the
    files given), ArenaSource `cm` on it and ArenaConfig `lifetime` with `trials` units, `concurrency` model calls
    at a time per worker."""
    api.create_namespace(namespace)
    provider = BUNDLE["provider.yaml"].replace(str(int(UNIT_SECONDS * 1000)), str(int(unit_seconds * 1000)))
    api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bundle", "namespace": namespace},
                "data": bundle or {**BUNDLE, "provider.yaml": provider}})
    api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaSource",
                "metadata": {"name": "cm", "namespace": namespace},
                "spec": {"type": "configmap", "configMap": {"name": "bundle"}}})
    api.create({"apiVersion": ARENA_API_VERSION, "kind": "ArenaConfig",
                "metadata": {"name": CONFIG, "namespace": namespace},
                "spec": {"sourceRef": {"name": "cm"}, "trials": trials, "concurrency": concurrency}})


@contextmanager
def workers_and_bundle(api: K8sApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis: Redis, *, trials: int,
                       unit_seconds: float = UNIT_SECONDS, **kubelet_options: Any) -> Iterator[Kubelet]:
    """The kubelet, and ArenaSource `cm` on the bundle with ArenaConfig `lifetime` (`trials` units, one model call
    at a time per worker): everything but the operator, which a test may then start and stop as it likes. The
    visibility timeout is the default (120 s): nothing here waits for it."""
    monkeypatch.setenv("ARENA_REDIS_URL", redis.url)
    monkeypatch.setenv("ARENA_AGGREGATION_LEASE_SECONDS", "2")
    provision(api, NAMESPACE, trials=trials, unit_seconds=unit_seconds)
    with Kubelet(api, tmp_path / "kubelet", namespaces=[NAMESPACE], **kubelet_options) as kubelet:
        yield kubelet


def wait_config_ready(api: K8sApi) -> None:
    api.wait_for(ARENA_API_VERSION, "arenaconfigs", NAMESPACE, CONFIG,
                 lambda o: dig(o, "status.phase") == "Ready", timeout=30)


@contextmanager
def lifetime_cluster(api: K8sApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis: Redis, *,
                     trials: int, configure: Callable[[kopf.OperatorSettings], None] | None = None,
                     faults: Sequence[Fault] = (), **kubelet_options: Any) -> Iterator[Kubelet]:
    """`workers_and_bundle` with the operator running (kopf settings adjusted by `configure`; `faults` injected
    into the API server from its start on) and the config Ready."""
    with workers_and_bundle(api, tmp_path, monkeypatch, redis, trials=trials, **kubelet_options) as kubelet:
        api.emulator.faults.add(*faults)
        with arena_operator(api, tmp_path / "artifacts", monkeypatch, configure=configure):
            wait_config_ready(api)
            yield kubelet


def sized(full: list[Any], quick: list[Any]) -> list[Any]:
    """The parameters of a test: all of them with ARENA_RELIABILITY_FULL=1, else the quick subset."""
    return full if FULL else quick


def arenajob(name: str, replicas: int, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": ARENA_API_VERSION, "kind": "ArenaJob", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"configRef": {"name": CONFIG}, "type": "evaluation", "workers": {"replicas": replicas},
                     **spec}}


def finished(obj: dict[str, Any] | None) -> bool:
    return dig(obj, "status.phase") in ("Succeeded", "Failed", "Cancelled")


def wait_running_unit(kubelet: Kubelet, redis: Redis, job: str, timeout: float = 30.0,
                      fresh_ms: int = 300) -> str:
    """The name of a running worker pod that was handed a unit under `fresh_ms` ago (XPENDING of the job's
    stream), so that a kill now lands while it still holds it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = {pod.name for pod in kubelet.pods(f"{job}-worker") if pod.running}
        for key in redis.scan():
            if key.endswith(":stream") and f"/{job}/" in key:
                out = subprocess.run(["redis-cli", "-p", str(redis.port), "xpending", key, "workers", "-", "+", "10"],
                                     capture_output=True, text=True).stdout.split()
                entries = [out[i:i + 4] for i in range(0, len(out) - 3, 4)]  # id, consumer, idle ms, deliveries
                holders = [consumer for _, consumer, idle, _ in entries
                           if consumer in running and idle.isdigit() and int(idle) < fresh_ms]
                if holders:
                    return holders[0]
        time.sleep(0.02)
    raise AssertionError(f"no worker of {job} was seen holding a unit")
