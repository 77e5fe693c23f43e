"""A test-side kubelet (and Job controller) for the emulated Kubernetes API of :mod:`tests.harness.emulator`.

:class:`Kubelet` polls ``batch/v1`` Jobs every ``interval`` (50 ms) from a background thread and runs their
pods as local processes, the way a cluster would. Its parts, one module each:

* :mod:`tests.harness.jobs` — the Job controller: Pod objects for Jobs, accounting, the Job's status, and the
  Job semantics it honours (parallelism, completions, Indexed, backoffLimit, deadlines, suspend, TTL);
* :mod:`tests.harness.runtime` — the pod runtime: processes, their Pod objects' status, stopping and killing;
* :mod:`tests.harness.podspec` — a container's argv, environment, working dir and (rewritten) mount paths;
* :mod:`tests.harness.pods` — :class:`PodProcess`, a pod as a test sees it.

Test helpers: :meth:`Kubelet.pods` (handles: pid, returncode/exit_code, phase, reason, log paths, env, mounts),
:meth:`~Kubelet.kill`, :meth:`~Kubelet.logs`, :meth:`~Kubelet.wait_job`, :meth:`~Kubelet.wait_pods`,
:meth:`~Kubelet.wait`, :meth:`~Kubelet.describe` (Job status + every pod with log paths and tails: timeouts include
it), :func:`pid_alive`; fixtures ``kubelet`` (needs ``k8s_api`` imported too) and ``kubelet_factory``.

Not emulated: images, networking (every pod is 127.0.0.1 and shares the host's ports), resource limits,
probes, init containers, ``podFailurePolicy``, ``backoffLimitPerIndex``, back-off delays, ``successPolicy``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness.client import ApiClient, ApiError
from tests.harness.jobs import JobController
from tests.harness.objects import Body, dig
from tests.harness.pods import PodProcess, log, pid_alive
from tests.harness.podspec import PodSpecResolver, expand, mount_env_name
from tests.harness.resources import PVCS
from tests.harness.runtime import PodRuntime
from tests.harness.server import K8sApi

__all__ = ['Kubelet', 'PodProcess', 'expand', 'kubelet', 'kubelet_factory', 'mount_env_name', 'pid_alive',
           'run_kubelet']


class Kubelet:
    """Runs the emulator's Jobs as local processes (see :mod:`tests.harness.jobs` and the modules it names).

    ``with Kubelet(api, workdir) as kubelet:`` starts its thread; leaving the block stops every process it
    started (SIGTERM, then SIGKILL after ``grace_period``) and fails if the kubelet thread itself crashed.
    ``namespaces=None`` watches all namespaces.
    """

    def __init__(self, api: K8sApi, workdir: Path | str, namespaces: Sequence[str] | None = None, *,
                 interval: float = 0.05, grace_period: float = 2.0, config_retry: float = 0.5,
                 extra_env: Mapping[str, str] | None = None,
                 entrypoints: Mapping[str, Sequence[str]] | None = None,
                 host_paths: Sequence[Path | str] = (), unpullable_images: Collection[str] = (),
                 node_labels: Mapping[str, str] | None = None) -> None:
        self.api = api
        self.workdir = Path(workdir).resolve()
        self.namespaces = None if namespaces is None else frozenset(namespaces)
        self.interval, self.grace_period, self.config_retry = interval, grace_period, config_retry
        self.extra_env = dict(extra_env or {})
        self.entrypoints = {key: list(value) for key, value in (entrypoints or {}).items()}
        self.unpullable_images, self.node_labels = frozenset(unpullable_images), node_labels
        self.host_paths = [str(self.workdir), *(str(Path(p).resolve()) for p in host_paths)]
        self.host_paths += [str(p) for p in self.workdir.parents if p.name.startswith('pytest-of-')]
        self.errors: list[BaseException] = []  # crashes of the kubelet thread (raised by stop())
        self.api_errors: list[ApiError | httpx.HTTPError] = []  # tolerated API failures, for diagnostics
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: ApiClient | None = None  # the kubelet thread's own (the test's K8sApi stays in the test's)
        self._runtime: PodRuntime | None = None
        self._controller: JobController | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> Kubelet:
        if self._thread is not None:
            raise RuntimeError('the kubelet is already started')
        (self.workdir / 'pods').mkdir(parents=True, exist_ok=True)
        (self.workdir / 'pvcs').mkdir(parents=True, exist_ok=True)
        self._client = client = ApiClient(self.api.url, timeout=5.0)
        resolver = PodSpecResolver(client, self.workdir, extra_env=self.extra_env, entrypoints=self.entrypoints,
                                   host_paths=self.host_paths,
                                   serves_pvcs=lambda: PVCS in self.api.emulator.resources,
                                   unpullable_images=self.unpullable_images, node_labels=self.node_labels)
        self._runtime = PodRuntime(client, self.workdir, resolver, grace_period=self.grace_period,
                                   config_retry=self.config_retry, may_restart=self._may_restart)
        self._controller = JobController(client, self._runtime, self.namespaces)
        self._thread = threading.Thread(target=self._run, name='test-kubelet', daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling and kill every process started (SIGTERM, SIGKILL after the grace period); idempotent."""
        if self._thread is None or self._stopping.is_set():
            return
        self._stopping.set()
        self._thread.join(15)
        if self._thread.is_alive():
            self.errors.append(RuntimeError('the kubelet thread did not stop in 15 s'))
        assert self._runtime is not None and self._client is not None
        self._runtime.shutdown(self._runtime.pods())
        self._client.close()
        if self.errors:
            raise AssertionError(f'the test kubelet failed {len(self.errors)} time(s); '
                                 f'first: {self.errors[0]!r}') from self.errors[0]

    def __enter__(self) -> Kubelet:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- test helpers -----------------------------------------------------------------------------

    def pods(self, job_name: str | None = None, namespace: str | None = None) -> list[PodProcess]:
        """Every pod started so far (finished ones too), oldest first; optionally of one Job / namespace."""
        pods = self._runtime.pods() if self._runtime is not None else []
        return [pod for pod in pods if (job_name is None or pod.job_name == job_name)
                and (namespace is None or pod.namespace == namespace)]

    def pod(self, name: str) -> PodProcess:
        for pod in self.pods():
            if pod.name == name:
                return pod
        raise LookupError(f'the kubelet has no pod {name!r}; it has {[p.name for p in self.pods()]}')

    def kill(self, pod: PodProcess | str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the pod's whole process group, as a crash (OOM kill, node problem) would."""
        handle = self.pod(pod) if isinstance(pod, str) else pod
        if not handle.running or handle.pid is None:
            raise AssertionError(f'{handle!r} is not running')
        os.killpg(handle.pid, sig)

    def logs(self, pod: PodProcess | str, stream: str = 'all') -> str:
        """The pod's output: ``stdout``, ``stderr``, or ``all`` (stdout then stderr)."""
        handle = self.pod(pod) if isinstance(pod, str) else pod
        paths = {'stdout': [handle.stdout_path], 'stderr': [handle.stderr_path],
                 'all': [handle.stdout_path, handle.stderr_path]}[stream]
        return ''.join(path.read_text(errors='replace') for path in paths if path.exists())

    def describe(self, job_name: str | None = None, namespace: str | None = None) -> str:
        """A report for error messages: Job status(es), and each pod with its state, log paths and log tails."""
        lines: list[str] = []
        jobs = sorted({(pod.namespace, pod.job_name) for pod in self.pods(job_name, namespace)})
        if job_name is not None and namespace is not None and (namespace, job_name) not in jobs:
            jobs.append((namespace, job_name))
        for ns, name in jobs:
            try:
                job = self.api.get('batch/v1', 'jobs', ns, name)
            except (ApiError, httpx.HTTPError) as e:
                job = {'status': f'<unavailable: {e}>'}
            lines.append(f'job {ns}/{name}: ' + (json.dumps(job.get('status'), sort_keys=True) if job else '<gone>'))
            for pod in self.pods(name, ns):
                lines.append(f'  {pod!r} restarts={pod.restart_count} message={pod.message!r}')
                lines.append(f'    command: {pod.command}')
                lines.append(f'    stdout: {pod.stdout_path}')
                lines.append(f'    stderr: {pod.stderr_path}')
                for stream in ('stdout', 'stderr'):
                    tail = self.logs(pod, stream).splitlines()[-10:]
                    lines += [f'    {stream}| {line}' for line in tail]
        if self.errors:
            lines.append(f'kubelet errors: {self.errors!r}')
        if self.api_errors:
            lines.append(f'tolerated API errors (last 5): {self.api_errors[-5:]!r}')
        return '\n'.join(lines) or 'the kubelet has started no pods'

    def wait(self, predicate: Callable[[], Any], *, timeout: float = 10.0, what: str = 'the condition',
             job_name: str | None = None, namespace: str | None = None) -> Any:
        """Poll ``predicate`` until it returns something truthy (returned); TimeoutError with :meth:`describe`."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            self._raise_errors()
            if time.monotonic() > deadline:
                raise TimeoutError(f'{what} did not happen within {timeout}s\n{self.describe(job_name, namespace)}')
            time.sleep(0.02)

    def wait_job(self, namespace: str, name: str, condition: str = 'Complete', *, timeout: float = 10.0) -> Body:
        """Wait until the Job has ``condition`` (Complete, Failed, Suspended…) True; fail fast on the opposite end."""
        opposite = {'Complete': 'Failed', 'Failed': 'Complete'}.get(condition)

        def check() -> Body | None:
            job = self.api.get('batch/v1', 'jobs', namespace, name)
            if _condition_true(job, condition):
                return job
            if opposite and _condition_true(job, opposite):
                raise AssertionError(f'job {namespace}/{name} is {opposite}, not {condition}\n'
                                     f'{self.describe(name, namespace)}')
            return None

        result: Body = self.wait(check, timeout=timeout, what=f'job {namespace}/{name} {condition}',
                                 job_name=name, namespace=namespace)
        return result

    def wait_pods(self, job_name: str, count: int, *, phase: str = 'Running', namespace: str | None = None,
                  timeout: float = 10.0) -> list[PodProcess]:
        """Wait until exactly ``count`` pods of the Job are in ``phase`` and not being stopped; return them."""
        def check() -> list[PodProcess] | None:
            pods = [pod for pod in self.pods(job_name, namespace) if pod.phase == phase and pod.stop_reason is None
                    and (phase != 'Running' or pod.running)]
            return pods if len(pods) == count else None

        result: list[PodProcess] = self.wait(check, timeout=timeout, what=f'{count} {phase} pod(s) of {job_name}',
                                             job_name=job_name, namespace=namespace)
        return result

    def _raise_errors(self) -> None:
        if self.errors:
            raise AssertionError(f'the test kubelet crashed: {self.errors[0]!r}') from self.errors[0]

    # -- the loop ---------------------------------------------------------------------------------

    def _run(self) -> None:
        assert self._controller is not None
        while not self._stopping.is_set():
            try:
                self._controller.tick()
            except (ApiError, httpx.HTTPError) as e:
                self.api_errors.append(e)
                log.debug('kubelet: API error (retrying): %s', e)
            except Exception as e:  # a bug of the kubelet: keep running, fail the test at stop()
                self.errors.append(e)
                if len(self.errors) <= 3:
                    log.exception('kubelet: crashed in a tick')
            self._stopping.wait(self.interval)

    def _may_restart(self, pod: PodProcess) -> bool:
        return self._controller is not None and self._controller.may_restart(pod)


def _condition_true(obj: Body | None, kind: str) -> bool:
    return any(c.get('type') == kind and c.get('status') == 'True' for c in dig(obj, 'status.conditions') or [])


@contextlib.contextmanager
def run_kubelet(api: K8sApi, workdir: Path | str, namespaces: Sequence[str] | None = None,
                **options: Any) -> Iterator[Kubelet]:
    """``with run_kubelet(api, tmp_path / 'kubelet') as kubelet:`` — the same as ``with Kubelet(...)``."""
    with Kubelet(api, workdir, namespaces, **options) as kubelet:
        yield kubelet


@pytest.fixture
def kubelet(k8s_api: K8sApi, tmp_path: Path) -> Iterator[Kubelet]:
    """A :class:`Kubelet` for all namespaces of the test's ``k8s_api``, its files under ``tmp_path/kubelet``."""
    with Kubelet(k8s_api, tmp_path / 'kubelet') as running:
        yield running


@pytest.fixture
def kubelet_factory(tmp_path: Path) -> Iterator[Callable[..., Kubelet]]:
    """``kubelet_factory(api, workdir=None, namespaces=None, **options)`` → a started Kubelet, stopped at teardown."""
    started: list[Kubelet] = []

    def make(api: K8sApi, workdir: Path | str | None = None, namespaces: Sequence[str] | None = None,
             **options: Any) -> Kubelet:
        directory = workdir if workdir is not None else tmp_path / f'kubelet-{len(started)}'
        running = Kubelet(api, directory, namespaces, **options).start()
        started.append(running)
        return running

    yield make
    for running in reversed(started):
        running.stop()
