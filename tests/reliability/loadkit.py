"""The load tests' kit: the operator as its own process (`arena operator`, as users start it), so that its memory
is its own to measure; a sampler of that memory; namespaces provisioned with cluster.py's bundle; the sizes of a
quick (CI) and a full run; and the figures' formatting.

Sizes: the default is quick (CI, a few minutes on a loaded 2-core machine); ARENA_RELIABILITY_FULL=1 runs the
sizes the issue names (200 jobs, 100k units, more simulated days)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.fakes.services import free_port
from tests.harness.k8s import ARENA_API_VERSION, K8sApi, dig
from tests.reliability.cluster import CONFIG, Redis

RSS_SAMPLE_SECONDS = 0.02


def wait_configs_ready(api: K8sApi, namespaces: list[str], timeout: float = 90.0) -> None:
    for namespace in namespaces:
        api.wait_for(ARENA_API_VERSION, "arenaconfigs", namespace, CONFIG,
                     lambda o: dig(o, "status.phase") == "Ready", timeout=timeout)


def job(namespace: str, name: str, replicas: int = 1) -> dict[str, Any]:
    return {"apiVersion": ARENA_API_VERSION, "kind": "ArenaJob", "metadata": {"name": name, "namespace": namespace},
            "spec": {"configRef": {"name": CONFIG}, "type": "evaluation", "workers": {"replicas": replicas}}}


@contextmanager
def operator_process(api: K8sApi, workdir: Path, redis: Redis, namespaces: list[str] | None = None,
                     **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """`arena operator` in its own process, logged in through the emulator's kubeconfig, watching `namespaces`
    (None: all); stopped by SIGTERM (a SIGKILL if it does not go in 30 s). Its log is `workdir/operator.log`."""
    workdir.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "KUBECONFIG": str(api.kubeconfig), "ARENA_ARTIFACT_DIR": str(workdir / "artifacts"),
                "ARENA_ARTIFACT_HOST": "127.0.0.1", "ARENA_ARTIFACT_PORT": str(free_port()),
                "ARENA_REDIS_URL": redis.url, "ARENA_AGGREGATION_LEASE_SECONDS": "2", **env}
    full_env.pop("ARENA_ARTIFACT_BASE_URL", None)
    selected = [arg for namespace in namespaces or [] for arg in ("-n", namespace)]
    with (workdir / "operator.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "arena_operator.cli", "operator", *selected], env=full_env,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """A field of /proc/<pid>/status in KiB (VmRSS: now; VmHWM: the peak so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(f"{field} not in /proc/{pid}/status")


class RssSampler:
    """The resident memory of one process, sampled every 20 ms in a thread: the peak within a window the test
    marks (`start`/`stop`), which VmHWM (a whole-life peak) cannot give."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self.baseline = pid, 0, 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.baseline = self.peak = rss_kib(self.pid)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_SECONDS):
            try:
                self.peak = max(self.peak, rss_kib(self.pid))
            except (OSError, LookupError):  # the process is gone
                return

    def stop(self) -> int:
        """The growth within the window (peak − baseline), KiB."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        return self.peak - self.baseline


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (no interpolation: a figure that was measured)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def report(title: str, **figures: Any) -> None:
    """The figures on stdout (pytest -s shows them; the README records them)."""
    print(f"\n[load] {title}: " + ", ".join(f"{key}={value}" for key, value in figures.items()), flush=True)


def wait(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f}s")
        time.sleep(interval)
