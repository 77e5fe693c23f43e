"""A test-side kubelet (and Job controller) for the emulated Kubernetes API of :mod:`tests.harness.k8s`.

:class:`Kubelet` polls ``batch/v1`` Jobs every ``interval`` (50 ms) from a background thread and runs their
pods as local processes, the way a cluster would: it creates a ``v1`` Pod object per pod (``generateName:
<job>-``, labels ``job-name``/``controller-uid`` and their ``batch.kubernetes.io/`` twins plus the template's,
an ownerReference to the Job, the ``batch.kubernetes.io/job-tracking`` finalizer while the pod is being
accounted), moves its ``status.phase`` Pending → Running → Succeeded/Failed, and writes the Job's ``status``
subresource as the Job controller does (``active``, ``ready``, ``terminating``, ``succeeded``, ``failed``,
``startTime``, ``completionTime``, ``completedIndexes``, ``conditions``).

Job semantics
    * ``parallelism`` (default 1) pods at a time. ``completions`` unset = work-queue pattern: no new pod after the
      first success, Complete once a pod succeeded and none is active. ``completions: N`` = until N pods
      succeeded; with ``completionMode: Indexed`` each index 0..N-1 must succeed once (env
      ``JOB_COMPLETION_INDEX``, hostname ``<job>-<index>``).
    * ``backoffLimit`` (default 6): failed pods (and ``restartPolicy: OnFailure`` restarts) are replaced until
      there are more than ``backoffLimit`` of them; then FailureTarget, and Failed (reason
      BackoffLimitExceeded) once the remaining pods are gone. There is no back-off delay between attempts.
    * ``activeDeadlineSeconds`` from ``startTime`` → pods killed, Failed (reason DeadlineExceeded).
    * ``suspend: true`` → pods stopped, condition Suspended; resuming resets ``startTime``.
    * ``parallelism`` patched → pods started, or stopped (SIGTERM, pending pods first, then the newest).
    * Job deleted (directly or by garbage collection) → its processes stopped. ``ttlSecondsAfterFinished`` →
      the kubelet deletes the finished Job. Jobs with a foreign ``spec.managedBy`` are left alone.
    * Stopping a pod = delete its Pod object (it stays "Terminating" thanks to the finalizer), SIGTERM to its
      process group, SIGKILL after ``min(grace_period, terminationGracePeriodSeconds)`` (2 s by default).
    * Accounting: exit 0 → succeeded (even when the pod was being stopped, as in Kubernetes); a non-zero exit
      → failed, except for pods the controller stopped because of a scale-down or suspension. Pods that crash
      (see :meth:`Kubelet.kill`), are deleted by someone else, or are killed because the Job failed (deadline,
      backoff limit) count as failed; pods of a deleted Job are not counted at all.

A pod
    The first container only (no init containers or sidecars). ``command`` + ``args`` with Kubernetes
    ``$(VAR)`` expansion (``$$`` escapes, unknown references stay as written); without ``command`` the image's
    entrypoint comes from ``Kubelet(entrypoints={'image[:tag]': [...]})``, else the pod fails (StartError).
    It runs via ``subprocess.Popen`` in its own session/process group, stdin from /dev/null, stdout and stderr
    to ``<workdir>/pods/<namespace>/<pod>/{stdout,stderr}.log``, cwd ``<pod dir>/rootfs`` (or the mapped
    ``workingDir``). An executable that cannot be started fails the pod (StartError, exit code 128).

Environment (Kubernetes order: ``envFrom``, then ``env``, later entries win)
    * base: ``PATH`` (this venv's ``bin`` first, so ``arena`` and ``python3`` are the venv's), ``HOME`` (a
      per-pod dir), ``LANG=C.UTF-8``, ``TMPDIR`` (the host dir of a ``/tmp`` mount if any, else a per-pod dir),
      ``PYTHONUNBUFFERED=1``, ``PYTHONPATH``/``COVERAGE_PROCESS_START`` if the test process has them,
      ``HOSTNAME`` (the pod name, or ``<job>-<index>`` for Indexed Jobs), ``Kubelet(extra_env=...)``;
      container env entries override all of these.
    * ``value`` ($(VAR) expanded with the entries before it); ``valueFrom.secretKeyRef`` (``data`` base64-decoded,
      ``stringData`` also read), ``configMapKeyRef`` (``data``, ``binaryData``), ``fieldRef``
      (``metadata.name|namespace|uid``, ``metadata.labels['k']``, ``metadata.annotations['k']``,
      ``spec.nodeName`` = "kubelet", ``spec.serviceAccountName``, ``status.podIP``/``hostIP`` = 127.0.0.1),
      ``resourceFieldRef`` (the container's limits/requests; unset limits = this machine); ``envFrom``
      ``secretRef``/``configMapRef`` with ``prefix``. All honour ``optional``.
    * A missing Secret/ConfigMap or key (not optional) is what a kubelet reports as CreateContainerConfigError:
      the pod stays Pending with that waiting reason (``PodProcess.reason``), no process runs and nothing is
      counted (the Job stays active, not Complete); a Warning event is posted and the kubelet retries every
      ``config_retry`` seconds, so creating the Secret later starts the pod, as in a cluster.

Volumes and mounts — processes share the host's file system, so mount paths are *rewritten*
    * ``persistentVolumeClaim`` → ``<workdir>/pvcs/<namespace>/<claimName>`` (shared by all pods, kept). No PVC
      object is needed while the emulator does not serve ``persistentvolumeclaims`` (k8s.py does not declare
      them); if it does, a missing claim leaves the pod Pending with reason FailedMount.
    * ``emptyDir`` → ``<pod dir>/volumes/<name>``; ``secret``/``configMap`` (``items``, ``defaultMode``,
      ``optional``; a missing object → Pending, FailedMount) and ``projected`` secret/configMap sources,
      ``downwardAPI`` → files there; ``hostPath`` → that path. Other volume types become empty dirs.
    * each ``volumeMounts[]`` maps ``mountPath`` → the volume's dir (``/ subPath``, created, ``subPathExpr``
      expanded) and is exported as ``ARENA_TEST_MOUNT_<MOUNTPATH>`` (upper-cased, non-alphanumerics → ``_``;
      ``/results`` → ``ARENA_TEST_MOUNT_RESULTS``); ``PodProcess.mounts`` has the same map.
    * **rewrite**: every container env value, ``workingDir``, and every command/args item that is a mount path
      or below one (longest mount wins; also the part after ``=`` in ``--flag=/path``) is replaced by the host
      path. So ``ARENA_RESULTS_DIR=/results`` with ``/results`` mounted from a PVC reaches the worker as
      ``<workdir>/pvcs/<ns>/<claim>``, and ``HOME=/tmp`` with ``/tmp`` an emptyDir as that dir. Values already
      under the kubelet's workdir, pytest's base temp dir or ``Kubelet(host_paths=...)`` are never rewritten
      (so a ``/tmp`` mount does not capture host paths a test passes in). Paths inside shell scripts
      (``sh -c "... /results/x"``) are not rewritten: use an env var (``"$ARENA_RESULTS_DIR/x"``).

Test helpers: :meth:`Kubelet.pods` (handles: pid, returncode/exit_code, phase, reason, log paths, env, mounts),
:meth:`~Kubelet.kill`, :meth:`~Kubelet.logs`, :meth:`~Kubelet.wait_job`, :meth:`~Kubelet.wait_pods`,
:meth:`~Kubelet.wait`, :meth:`~Kubelet.describe` (Job status + every pod with log paths and tails: timeouts include
it), :func:`pid_alive`; fixtures ``kubelet`` (needs ``k8s_api`` imported too) and ``kubelet_factory``.

Not emulated: images, networking (every pod is 127.0.0.1 and shares the host's ports), resource limits,
probes, init containers, ``podFailurePolicy``, ``backoffLimitPerIndex``, back-off delays, ``successPolicy``.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import logging
import math
import os
import posixpath
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx
import kmock
import pytest

from tests.harness.k8s import ApiError, Body, K8sApi, api_path, dig

log = logging.getLogger(__name__)
log.setLevel(logging.INFO)  # pod starts/exits (with log paths) show in pytest's "Captured log" of a failed test

NODE_NAME = 'kubelet'
POD_IP = '127.0.0.1'
TRACKING_FINALIZER = 'batch.kubernetes.io/job-tracking'
JOB_CONTROLLER = 'kubernetes.io/job-controller'
MOUNT_ENV_PREFIX = 'ARENA_TEST_MOUNT_'
PVCS = kmock.resource('', 'v1', 'persistentvolumeclaims')
VENV_BIN = Path(sys.executable).parent
# Pods stopped by the Job controller itself: their non-zero exit is not a failure of the Job.
_CONTROLLER_STOPS = frozenset({'ScaleDown', 'JobSuspended', 'JobFinished', 'JobDeleted', 'KubeletStopped'})


def _now() -> str:
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: ``$(A)`` → the value of A if defined, else left as written; ``$$`` → ``$``."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char != '$' or i + 1 == n:
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == '$':
            out.append('$')
            i += 2
        elif following == '(':
            end = text.find(')', i + 2)
            if end < 0:
                out.append('$(')
                i += 2
            else:
                name = text[i + 2:end]
                out.append(env.get(name, f'$({name})'))
                i = end + 1
        else:
            out.append('$' + following)
            i += 2
    return ''.join(out)


def mount_env_name(mount_path: str) -> str:
    """``ARENA_TEST_MOUNT_<MOUNTPATH>``: ``/var/arena-results`` → ``ARENA_TEST_MOUNT_VAR_ARENA_RESULTS``."""
    return MOUNT_ENV_PREFIX + (re.sub(r'[^A-Za-z0-9]+', '_', mount_path).strip('_').upper() or 'ROOT')


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for a reaper counts as dead)."""
    try:
        stat = Path(f'/proc/{pid}/stat').read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(')')[2].split()[0] not in ('Z', 'X')


def _compress_indexes(indexes: set[int]) -> str:
    """``{0, 1, 2, 5}`` → ``0-2,5`` (the format of ``status.completedIndexes``)."""
    runs: list[list[int]] = []
    for index in sorted(indexes):
        if runs and index == runs[-1][1] + 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    return ','.join(str(first) if first == last else f'{first}-{last}' for first, last in runs)


def _parse_indexes(text: str | None) -> set[int]:
    result: set[int] = set()
    for part in (text or '').split(','):
        if '-' in part:
            first, last = part.split('-', 1)
            result.update(range(int(first), int(last) + 1))
        elif part.strip():
            result.add(int(part))
    return result


_QUANTITY = re.compile(r'^([0-9.]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$')
_SUFFIXES = {None: 1, 'm': 1e-3, 'k': 1e3, 'M': 1e6, 'G': 1e9, 'T': 1e12, 'P': 1e15, 'E': 1e18,
             'Ki': 2 ** 10, 'Mi': 2 ** 20, 'Gi': 2 ** 30, 'Ti': 2 ** 40, 'Pi': 2 ** 50, 'Ei': 2 ** 60}


def _quantity(text: Any) -> float:
    m = _QUANTITY.match(str(text).strip())
    if m is None:
        raise ValueError(f'not a quantity: {text!r}')
    return float(m[1]) * _SUFFIXES[m[2]]


class _NotReady(Exception):
    """The pod cannot start yet: a kubelet reason (CreateContainerConfigError, FailedMount) and its message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f'{reason}: {message}')
        self.reason, self.message = reason, message


class PodProcess:
    """One pod of the kubelet, as a test sees it (read-only for tests; the kubelet thread updates it).

    ``phase`` is the Pod's phase, ``reason``/``message`` the container's waiting/terminated reason
    (ContainerCreating, CreateContainerConfigError, FailedMount, Completed, Error, StartError). ``returncode`` is
    :class:`subprocess.Popen`'s (negative for a signal); ``exit_code`` the container's (``128 + signal``).
    ``stop_reason`` says why the kubelet stopped it (ScaleDown, JobSuspended, JobFinished, JobDeleted, Deleted,
    KubeletStopped), ``None`` if it ran on its own.
    """

    def __init__(self, *, namespace: str, name: str, uid: str, job_name: str, job_uid: str, index: int | None,
                 directory: Path, body: Body) -> None:
        self.namespace, self.name, self.uid = namespace, name, uid
        self.job_name, self.job_uid, self.index = job_name, job_uid, index
        self.dir = directory
        self.stdout_path = directory / 'stdout.log'
        self.stderr_path = directory / 'stderr.log'
        self.phase = 'Pending'
        self.reason: str | None = 'ContainerCreating'
        self.message = ''
        self.command: list[str] = []
        self.env: dict[str, str] = {}
        self.cwd: Path | None = None
        self.mounts: dict[str, Path] = {}
        self.pid: int | None = None
        self.pids: list[int] = []  # of every start (OnFailure restarts run again in the same pod)
        self.returncode: int | None = None
        self.exit_code: int | None = None
        self.restart_count = 0
        self.stop_reason: str | None = None
        self.terminated = False  # no process left and none to come
        self.started_at: str | None = None
        self.finished_at: str | None = None
        # kubelet internals
        self._body = body  # the Pod object as created
        self._created = time.monotonic()
        self._created_rv = int(dig(body, 'metadata.resourceVersion', '0'))
        self._process: subprocess.Popen[bytes] | None = None
        self._files: list[IO[bytes]] = []
        self._stop_counts = True
        self._kill_at: float | None = None
        self._retry_at = 0.0
        self._event_reasons: set[str] = set()
        self._accounted = False
        self._status_written: Body | None = None
        self._object_gone = False
        self._finalized = False

    @property
    def running(self) -> bool:
        return self._process is not None and self.returncode is None

    @property
    def hostname(self) -> str:
        return str(dig(self._body, 'spec.hostname') or self.name)

    def __repr__(self) -> str:
        return (f'<pod {self.namespace}/{self.name} phase={self.phase} reason={self.reason} pid={self.pid} '
                f'exit={self.exit_code} stop={self.stop_reason}>')


class _JobState:
    """What the Job controller remembers of one Job (by uid)."""

    def __init__(self, job: Body) -> None:
        meta = job['metadata']
        self.namespace, self.name, self.uid = meta['namespace'], meta['name'], meta['uid']
        status = job.get('status') or {}
        self.job = job
        self.succeeded = int(status.get('succeeded') or 0)
        self.failed = int(status.get('failed') or 0)
        self.restarts = 0
        self.completed_indexes = _parse_indexes(status.get('completedIndexes'))
        self.start_time: str | None = status.get('startTime')
        self.started = time.monotonic()
        self.completion_time: str | None = status.get('completionTime')
        self.conditions: list[Body] = copy.deepcopy(status.get('conditions') or [])
        self.target: tuple[str, str, str] | None = None  # (Complete|Failed, reason, message) once decided
        self.finished: str | None = next((c['type'] for c in self.conditions if c.get('type') in (
            'Complete', 'Failed') and c.get('status') == 'True'), None)
        self.finished_at = time.monotonic()
        self.ttl_deleted = False
        self.deleted = False
        self.pods: list[PodProcess] = []

    def condition(self, kind: str) -> Body | None:
        return next((c for c in self.conditions if c.get('type') == kind), None)

    def set_condition(self, kind: str, status: str, reason: str, message: str) -> None:
        existing = self.condition(kind)
        if existing and (existing['status'], existing.get('reason'), existing.get('message')) == (
                status, reason, message):
            return
        now = _now()
        new = {'type': kind, 'status': status, 'lastProbeTime': now, 'lastTransitionTime': now,
               'reason': reason, 'message': message}
        if existing:
            if existing['status'] == status:
                new['lastTransitionTime'] = existing.get('lastTransitionTime', now)
            self.conditions[self.conditions.index(existing)] = new
        else:
            self.conditions.append(new)


class _Client:
    """The kubelet thread's own HTTP client to the emulator (the test's :class:`K8sApi` stays in the test thread)."""

    def __init__(self, url: str) -> None:
        self._http = httpx.Client(base_url=url, timeout=5.0)

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, body: Any = None, *, params: Mapping[str, str] | None = None,
                merge: bool = True) -> Any:
        content_type = 'application/merge-patch+json' if merge else 'application/json-patch+json'
        response = self._http.request(method, path, params=params,
                                      content=None if body is None else json.dumps(body),
                                      headers={'Content-Type': content_type if method == 'PATCH' else
                                               'application/json'})
        result = response.json() if response.content else None
        if response.status_code >= 400:
            raise ApiError(response.status_code, result)
        return result

    def get(self, api_version: str, plural: str, namespace: str, name: str) -> Body | None:
        try:
            found: Body = self.request('GET', api_path(api_version, plural, namespace, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        return found

    def list(self, api_version: str, plural: str) -> Body:
        listed: Body = self.request('GET', api_path(api_version, plural))
        return listed


class Kubelet:
    """Runs the emulator's Jobs as local processes (see the module docstring for the exact rules).

    ``with Kubelet(api, workdir) as kubelet:`` starts its thread; leaving the block stops every process it
    started (SIGTERM, then SIGKILL after ``grace_period``) and fails if the kubelet thread itself crashed.
    ``namespaces=None`` watches all namespaces.
    """

    def __init__(self, api: K8sApi, workdir: Path | str, namespaces: Sequence[str] | None = None, *,
                 interval: float = 0.05, grace_period: float = 2.0, config_retry: float = 0.5,
                 extra_env: Mapping[str, str] | None = None,
                 entrypoints: Mapping[str, Sequence[str]] | None = None,
                 host_paths: Sequence[Path | str] = ()) -> None:
        self.api = api
        self.workdir = Path(workdir).resolve()
        self.namespaces = None if namespaces is None else frozenset(namespaces)
        self.interval, self.grace_period, self.config_retry = interval, grace_period, config_retry
        self.extra_env = dict(extra_env or {})
        self.entrypoints = {key: list(value) for key, value in (entrypoints or {}).items()}
        self.host_paths = [str(self.workdir), *(str(Path(p).resolve()) for p in host_paths)]
        self.host_paths += [str(p) for p in self.workdir.parents if p.name.startswith('pytest-of-')]
        self.errors: list[BaseException] = []  # crashes of the kubelet thread (raised by stop())
        self.api_errors: list[ApiError | httpx.HTTPError] = []  # tolerated API failures, for diagnostics
        self._jobs: dict[str, _JobState] = {}
        self._pods: list[PodProcess] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: _Client | None = None
        self._list_rv = 0

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> Kubelet:
        if self._thread is not None:
            raise RuntimeError('the kubelet is already started')
        (self.workdir / 'pods').mkdir(parents=True, exist_ok=True)
        (self.workdir / 'pvcs').mkdir(parents=True, exist_ok=True)
        self._client = _Client(self.api.url)
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
        live = [pod for pod in self._pods if pod.running]
        for pod in live:
            pod.stop_reason = pod.stop_reason or 'KubeletStopped'
            self._signal(pod, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_period
        while any(pod.running for pod in live) and time.monotonic() < deadline:
            for pod in live:
                self._poll(pod)
            time.sleep(0.01)
        for pod in self._pods:
            if pod._process is not None:
                if pod.running:
                    self._signal(pod, signal.SIGKILL)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        pod._process.wait(5)
                self._poll(pod)
                self._signal(pod, signal.SIGKILL)  # stragglers of its process group
            self._close_files(pod)
        for pod in self._pods:  # do not leave Pod objects stuck on our finalizer (best effort)
            if not pod._finalized and not pod._object_gone:
                with contextlib.suppress(ApiError, httpx.HTTPError):
                    self._remove_finalizer(pod)
        assert self._client is not None
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
        with self._lock:
            pods = list(self._pods)
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
        while not self._stopping.is_set():
            try:
                self._tick()
            except (ApiError, httpx.HTTPError) as e:
                self.api_errors.append(e)
                log.debug('kubelet: API error (retrying): %s', e)
            except Exception as e:  # a bug of the kubelet: keep running, fail the test at stop()
                self.errors.append(e)
                if len(self.errors) <= 3:
                    log.exception('kubelet: crashed in a tick')
            self._stopping.wait(self.interval)

    def _watched(self, obj: Body) -> bool:
        return self.namespaces is None or dig(obj, 'metadata.namespace') in self.namespaces

    def _tick(self) -> None:
        client = self._client
        assert client is not None
        job_list = client.list('batch/v1', 'jobs')
        pod_list = client.list('v1', 'pods')
        self._list_rv = int(dig(pod_list, 'metadata.resourceVersion', '0'))
        jobs = {job['metadata']['uid']: job for job in job_list['items'] if self._watched(job)}
        pod_objects = {(dig(p, 'metadata.namespace'), dig(p, 'metadata.name')): p for p in pod_list['items']}

        for state in list(self._jobs.values()):
            if state.uid not in jobs and not state.deleted:
                state.deleted = True
                log.info('job %s/%s deleted: stopping its pods', state.namespace, state.name)
            for pod in state.pods:
                self._poll(pod)
                if state.deleted:
                    self._stop(pod, 'JobDeleted', counts=False)
                else:
                    self._check_object(pod, pod_objects)
                self._settle(state, pod)
        for uid, job in jobs.items():
            if uid not in self._jobs:
                if dig(job, 'spec.managedBy', JOB_CONTROLLER) != JOB_CONTROLLER:
                    continue
                self._jobs[uid] = _JobState(job)
            state = self._jobs[uid]
            state.job = job
            self._sync_job(state)
        for state in list(self._jobs.values()):
            for pod in state.pods:
                self._progress_pod(state, pod)
            if not state.deleted:
                self._write_job_status(state)
            elif all(pod._finalized or pod._object_gone for pod in state.pods):
                del self._jobs[state.uid]

    # -- the Job controller -----------------------------------------------------------------------

    def _sync_job(self, state: _JobState) -> None:
        job = state.job
        spec = job.get('spec') or {}
        if state.finished:
            ttl = spec.get('ttlSecondsAfterFinished')
            if ttl is not None and not state.ttl_deleted and time.monotonic() - state.finished_at >= ttl:
                state.ttl_deleted = True
                assert self._client is not None
                with contextlib.suppress(ApiError):
                    self._client.request('DELETE', api_path('batch/v1', 'jobs', state.namespace, state.name),
                                         {'propagationPolicy': 'Background'})
            return
        parallelism = int(spec['parallelism'] if spec.get('parallelism') is not None else 1)
        completions = spec.get('completions')
        indexed = spec.get('completionMode') == 'Indexed' and completions is not None
        backoff_limit = int(spec.get('backoffLimit') if spec.get('backoffLimit') is not None else 6)
        deadline = spec.get('activeDeadlineSeconds')
        live = [pod for pod in state.pods if not pod.terminated]
        active = [pod for pod in live if pod.stop_reason is None]

        if state.target is None:
            if spec.get('suspend'):
                for pod in active:
                    self._stop(pod, 'JobSuspended', counts=False)
                state.set_condition('Suspended', 'True', 'JobSuspended', 'Job suspended')
                return
            suspended = state.condition('Suspended')
            if suspended and suspended['status'] == 'True':
                state.set_condition('Suspended', 'False', 'JobResumed', 'Job resumed')
                state.start_time = None
            if state.start_time is None:
                state.start_time, state.started = _now(), time.monotonic()
            if deadline is not None and time.monotonic() - state.started >= float(deadline):
                state.target = ('Failed', 'DeadlineExceeded', 'Job was active longer than specified deadline')
            elif state.failed + state.restarts > backoff_limit:
                state.target = ('Failed', 'BackoffLimitExceeded', 'Job has reached the specified backoff limit')
            elif (indexed and len(state.completed_indexes) >= int(completions)) or (
                    not indexed and completions is not None and state.succeeded >= int(completions)) or (
                    completions is None and state.succeeded > 0 and not active):
                state.target = ('Complete', 'CompletionsReached', 'Reached expected number of succeeded pods')
            if state.target is not None:
                kind, reason, message = state.target
                interim = 'FailureTarget' if kind == 'Failed' else 'SuccessCriteriaMet'
                state.set_condition(interim, 'True', reason, message)
                log.info('job %s/%s: %s (%s)', state.namespace, state.name, interim, reason)
                for pod in active:
                    self._stop(pod, 'JobFinished', counts=False)
            elif not dig(job, 'metadata.deletionTimestamp'):
                self._scale(state, active, parallelism, completions, indexed)

        if state.target is not None and all(pod.terminated for pod in state.pods):
            kind, reason, message = state.target
            state.set_condition(kind, 'True', reason, message)
            if kind == 'Complete':
                state.completion_time = _now()
            state.finished, state.finished_at = kind, time.monotonic()
            log.info('job %s/%s: %s (%s)', state.namespace, state.name, kind, reason)

    def _scale(self, state: _JobState, active: list[PodProcess], parallelism: int, completions: Any,
               indexed: bool) -> None:
        if completions is None:
            want = len(active) if state.succeeded > 0 else parallelism
        elif indexed:
            want = min(parallelism, int(completions) - len(state.completed_indexes))
        else:
            want = min(parallelism, int(completions) - state.succeeded)
        want = max(want, 0)
        if len(active) > want:
            # As the Job controller ranks them: not-yet-running pods go first, then the newest.
            ranked = sorted(active, key=lambda pod: (pod.phase == 'Running', -pod._created))
            for pod in ranked[:len(active) - want]:
                self._stop(pod, 'ScaleDown', counts=False)
        elif len(active) < want:
            if indexed:
                busy = state.completed_indexes | {pod.index for pod in active}
                free = [i for i in range(int(completions)) if i not in busy]
                for index in free[:want - len(active)]:
                    self._create_pod(state, index)
            else:
                for _ in range(want - len(active)):
                    self._create_pod(state, None)

    def _write_job_status(self, state: _JobState) -> None:
        live = [pod for pod in state.pods if not pod.terminated]
        active = [pod for pod in live if pod.stop_reason is None]
        status: Body = {}
        if active:
            status['active'] = len(active)
        status['ready'] = sum(1 for pod in active if pod.phase == 'Running')
        status['terminating'] = len(live) - len(active)
        if state.succeeded:
            status['succeeded'] = state.succeeded
        if state.failed:
            status['failed'] = state.failed
        if dig(state.job, 'spec.completionMode') == 'Indexed' and state.completed_indexes:
            status['completedIndexes'] = _compress_indexes(state.completed_indexes)
        if state.start_time:
            status['startTime'] = state.start_time
        if state.completion_time:
            status['completionTime'] = state.completion_time
        if state.conditions:
            status['conditions'] = copy.deepcopy(state.conditions)
        status['uncountedTerminatedPods'] = {}
        current = state.job.get('status') or {}
        if status == current:
            return
        patch = {key: status.get(key) for key in set(current) | set(status)}
        assert self._client is not None
        try:
            state.job = self._client.request('PATCH', api_path('batch/v1', 'jobs', state.namespace, state.name,
                                                               'status'), {'status': patch})
        except ApiError as e:
            if e.status != 404:
                raise  # gone meanwhile: the next tick sees it deleted

    # -- pods: creation ---------------------------------------------------------------------------

    def _create_pod(self, state: _JobState, index: int | None) -> None:
        job = state.job
        template = copy.deepcopy(dig(job, 'spec.template') or {})
        meta = template.get('metadata') or {}
        spec = template.get('spec') or {}
        labels = {**(meta.get('labels') or {}), 'job-name': state.name, 'controller-uid': state.uid,
                  'batch.kubernetes.io/job-name': state.name, 'batch.kubernetes.io/controller-uid': state.uid}
        annotations = dict(meta.get('annotations') or {})
        generate_name = f'{state.name}-'
        if index is not None:
            labels['batch.kubernetes.io/job-completion-index'] = str(index)
            annotations['batch.kubernetes.io/job-completion-index'] = str(index)
            generate_name = f'{state.name}-{index}-'
            spec['hostname'] = f'{state.name}-{index}'
        spec['nodeName'] = NODE_NAME
        spec.setdefault('restartPolicy', 'Never')
        body = {
            'apiVersion': 'v1', 'kind': 'Pod',
            'metadata': {'generateName': generate_name, 'namespace': state.namespace, 'labels': labels,
                         'annotations': annotations, 'finalizers': [TRACKING_FINALIZER],
                         'ownerReferences': [{'apiVersion': 'batch/v1', 'kind': 'Job', 'name': state.name,
                                              'uid': state.uid, 'controller': True, 'blockOwnerDeletion': True}]},
            'spec': spec,
        }
        if not annotations:
            del body['metadata']['annotations']
        assert self._client is not None
        created: Body = self._client.request('POST', api_path('v1', 'pods', state.namespace), body)
        name = created['metadata']['name']
        directory = self.workdir / 'pods' / state.namespace / name
        for sub in ('rootfs', 'home', 'tmp', 'volumes'):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        pod = PodProcess(namespace=state.namespace, name=name, uid=created['metadata']['uid'], job_name=state.name,
                         job_uid=state.uid, index=index, directory=directory, body=created)
        with self._lock:
            self._pods.append(pod)
        state.pods.append(pod)
        log.info('pod %s/%s created for job %s (logs: %s, %s)', pod.namespace, name, state.name,
                 pod.stdout_path, pod.stderr_path)
        self._write_pod_status(pod)
        self._try_start(pod)

    def _try_start(self, pod: PodProcess) -> None:
        try:
            argv, env, cwd, mounts = self._prepare(pod)
        except _NotReady as e:
            pod.reason, pod.message = e.reason, e.message
            pod._retry_at = time.monotonic() + self.config_retry
            if e.reason not in pod._event_reasons:
                pod._event_reasons.add(e.reason)
                log.warning('pod %s/%s cannot start: %s: %s', pod.namespace, pod.name, e.reason, e.message)
                self._post_event(pod, 'Failed' if e.reason == 'CreateContainerConfigError' else 'FailedMount',
                                 f'Error: {e.message}' if e.reason == 'CreateContainerConfigError' else e.message)
            return
        pod.command, pod.env, pod.cwd, pod.mounts = argv, env, cwd, mounts
        self._spawn(pod)

    def _spawn(self, pod: PodProcess) -> None:
        self._close_files(pod)
        stdout = pod.stdout_path.open('ab')
        stderr = pod.stderr_path.open('ab')
        pod._files = [stdout, stderr]
        try:
            if not pod.command:
                raise FileNotFoundError(f'the container of {pod.name} has no command and the kubelet knows no '
                                        f'entrypoint for its image (pass Kubelet(entrypoints={{image: [...]}}))')
            process = subprocess.Popen(pod.command, cwd=pod.cwd, env=pod.env, stdin=subprocess.DEVNULL,
                                       stdout=stdout, stderr=stderr, start_new_session=True)
        except OSError as e:
            message = f'failed to start the container process: {e}'
            stderr.write(f'[kubelet] {message}\n'.encode())
            self._close_files(pod)
            pod.phase, pod.reason, pod.message = 'Failed', 'StartError', message
            pod.returncode, pod.exit_code, pod.terminated = 128, 128, True
            pod.finished_at = _now()
            log.warning('pod %s/%s: %s', pod.namespace, pod.name, message)
            return
        pod._process = process
        pod.pid, pod.returncode, pod.exit_code = process.pid, None, None
        pod.pids.append(process.pid)
        pod.phase, pod.reason, pod.message = 'Running', None, ''
        pod.started_at = _now()
        log.info('pod %s/%s started: pid %d, %s', pod.namespace, pod.name, process.pid, pod.command)

    # -- pods: environment and volumes -------------------------------------------------------------

    def _prepare(self, pod: PodProcess) -> tuple[list[str], dict[str, str], Path, dict[str, Path]]:
        spec = pod._body.get('spec') or {}
        containers = spec.get('containers') or []
        if not containers:
            raise _NotReady('CreateContainerConfigError', 'the pod has no containers')
        container = containers[0]
        lookups = _Lookups(self, pod.namespace)

        # Environment, in the kubelet's order: envFrom, then env; $(VAR) sees the entries before it.
        env: dict[str, str] = {}
        for source in container.get('envFrom') or []:
            prefix = source.get('prefix') or ''
            for kind, ref in (('Secret', source.get('secretRef')), ('ConfigMap', source.get('configMapRef'))):
                if ref is None:
                    continue
                data = lookups.data(kind, ref.get('name', ''), optional=bool(ref.get('optional')), env=True)
                for key, value in (data or {}).items():
                    if '=' not in key:
                        env[prefix + key] = value
        if pod.index is not None:
            env['JOB_COMPLETION_INDEX'] = str(pod.index)
        for item in container.get('env') or []:
            name = item['name']
            if 'valueFrom' not in item:
                env[name] = expand(str(item.get('value') or ''), env)
                continue
            value = self._value_from(pod, container, item['valueFrom'], lookups)
            if value is not None:
                env[name] = value

        # Volumes → host dirs, then mounts → mountPath: host path.
        volume_dirs = {volume['name']: volume for volume in spec.get('volumes') or []}
        mounts: dict[str, Path] = {}
        for mount in container.get('volumeMounts') or []:
            volume = volume_dirs.get(mount['name'])
            if volume is None:
                raise _NotReady('CreateContainerConfigError', f'volume "{mount["name"]}" is not in the pod spec')
            base = self._volume_dir(pod, volume, lookups)
            sub = mount.get('subPath') or (expand(mount['subPathExpr'], env) if mount.get('subPathExpr') else '')
            host = base / sub if sub else base
            if sub and not host.exists():
                host.mkdir(parents=True, exist_ok=True)
            mounts[posixpath.normpath(mount['mountPath'])] = host

        def rewrite(value: str) -> str:
            return self._rewrite(value, mounts)

        full: dict[str, str] = {
            'PATH': os.pathsep.join([str(VENV_BIN), '/usr/local/bin', '/usr/bin', '/bin']),
            'HOME': str(pod.dir / 'home'),
            'LANG': 'C.UTF-8',
            'TMPDIR': str(mounts.get('/tmp', pod.dir / 'tmp')),
            'PYTHONUNBUFFERED': '1',
            'HOSTNAME': pod.hostname,
        }
        for passthrough in ('PYTHONPATH', 'COVERAGE_PROCESS_START'):
            if os.environ.get(passthrough):
                full[passthrough] = os.environ[passthrough]
        full.update(self.extra_env)
        full.update({mount_env_name(path): str(host) for path, host in mounts.items()})
        full.update({name: rewrite(value) for name, value in env.items()})

        command = [expand(str(arg), env) for arg in container.get('command') or []]
        args = [expand(str(arg), env) for arg in container.get('args') or []]
        if not command:
            image = str(container.get('image') or '')
            command = list(self.entrypoints.get(image) or self.entrypoints.get(image.rsplit(':', 1)[0]) or [])
            if not command:
                args = []  # nothing to run: _spawn reports a StartError
        argv = [rewrite(arg) for arg in command + args]
        working_dir = container.get('workingDir')
        if working_dir:
            mapped = rewrite(working_dir)
            in_container = mapped == working_dir and not self._is_host_path(working_dir)
            cwd = pod.dir / 'rootfs' / working_dir.lstrip('/') if in_container else Path(mapped)
        else:
            cwd = pod.dir / 'rootfs'
        cwd.mkdir(parents=True, exist_ok=True)
        return argv, full, cwd, mounts

    def _is_host_path(self, path: str) -> bool:
        return any(path == host or path.startswith(host.rstrip('/') + '/') for host in self.host_paths)

    def _rewrite(self, value: str, mounts: Mapping[str, Path]) -> str:
        """A container path under a mount → its host path (also after ``=`` in ``--flag=/path``)."""
        def mapped(path: str) -> str | None:
            if self._is_host_path(path):
                return None
            for mount in sorted(mounts, key=len, reverse=True):
                if path == mount or path.startswith(mount.rstrip('/') + '/'):
                    return str(mounts[mount]) + path[len(mount.rstrip('/')):] if mount != '/' else (
                        str(mounts[mount]) + path)
            return None

        whole = mapped(value)
        if whole is not None:
            return whole
        flag, equals, rest = value.partition('=')
        if equals and rest.startswith('/'):
            part = mapped(rest)
            if part is not None:
                return f'{flag}={part}'
        return value

    def _value_from(self, pod: PodProcess, container: Body, source: Body, lookups: _Lookups) -> str | None:
        for kind, field in (('Secret', 'secretKeyRef'), ('ConfigMap', 'configMapKeyRef')):
            if field in source:
                ref = source[field]
                optional = bool(ref.get('optional'))
                data = lookups.data(kind, ref.get('name', ''), optional=optional, env=True)
                if data is None:
                    return None
                if ref.get('key') not in data:
                    if optional:
                        return None
                    raise _NotReady('CreateContainerConfigError',
                                    f'couldn\'t find key {ref.get("key")} in {kind} {pod.namespace}/{ref.get("name")}')
                return data[ref['key']]
        if 'fieldRef' in source:
            return self._field(pod, source['fieldRef'].get('fieldPath', ''))
        if 'resourceFieldRef' in source:
            ref = source['resourceFieldRef']
            resource = ref.get('resource', '')
            kind, _, name = resource.partition('.')
            value = dig(container, f'resources.{kind}.{name}')
            if value is None and kind == 'requests':
                value = dig(container, f'resources.limits.{name}')
            if value is None:  # no limit: the node's capacity
                value = (os.cpu_count() or 1) if name == 'cpu' else (
                    os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES'))
            amount = _quantity(value) / _quantity(ref.get('divisor') or '1')
            return str(math.ceil(amount))
        raise _NotReady('CreateContainerConfigError', f'unsupported valueFrom: {json.dumps(source)}')

    def _field(self, pod: PodProcess, path: str) -> str:
        body = pod._body
        if m := re.fullmatch(r"metadata\.(labels|annotations)\['([^']*)'\]", path):
            return str((dig(body, f'metadata.{m[1]}') or {}).get(m[2], ''))
        values = {
            'metadata.name': pod.name, 'metadata.namespace': pod.namespace, 'metadata.uid': pod.uid,
            'spec.nodeName': NODE_NAME, 'spec.serviceAccountName': dig(body, 'spec.serviceAccountName') or 'default',
            'status.podIP': POD_IP, 'status.podIPs': POD_IP, 'status.hostIP': POD_IP, 'status.hostIPs': POD_IP,
        }
        if path not in values:
            raise _NotReady('CreateContainerConfigError', f'unsupported fieldRef fieldPath: {path}')
        return str(values[path])

    def _volume_dir(self, pod: PodProcess, volume: Body, lookups: _Lookups) -> Path:
        name = volume['name']
        if 'persistentVolumeClaim' in volume:
            claim = volume['persistentVolumeClaim'].get('claimName', '')
            if PVCS in self.api.emulator.resources and lookups.get('v1', 'persistentvolumeclaims', claim) is None:
                raise _NotReady('FailedMount', f'persistentvolumeclaim "{claim}" not found')
            path = self.workdir / 'pvcs' / pod.namespace / claim
            path.mkdir(parents=True, exist_ok=True)
            return path
        if 'hostPath' in volume:
            path = Path(volume['hostPath'].get('path', '/'))
            if volume['hostPath'].get('type') == 'DirectoryOrCreate':
                path.mkdir(parents=True, exist_ok=True)
            return path
        path = pod.dir / 'volumes' / name
        path.mkdir(parents=True, exist_ok=True)
        failed = f'MountVolume.SetUp failed for volume "{name}" : '
        if 'secret' in volume or 'configMap' in volume:
            kind, source = ('Secret', volume['secret']) if 'secret' in volume else ('ConfigMap', volume['configMap'])
            object_name = source.get('secretName' if kind == 'Secret' else 'name', '')
            self._project(path, lookups, kind, object_name, source, source.get('defaultMode'), failed)
        elif 'projected' in volume:
            default_mode = volume['projected'].get('defaultMode')
            for item in volume['projected'].get('sources') or []:
                for kind, key in (('Secret', 'secret'), ('ConfigMap', 'configMap')):
                    if key in item:
                        self._project(path, lookups, kind, item[key].get('name', ''), item[key], default_mode, failed)
                if 'downwardAPI' in item:
                    self._downward(pod, path, item['downwardAPI'].get('items') or [])
        elif 'downwardAPI' in volume:
            self._downward(pod, path, volume['downwardAPI'].get('items') or [])
        elif 'emptyDir' not in volume:
            log.warning('pod %s/%s: volume %s of an unsupported type is an empty dir', pod.namespace, pod.name, name)
        return path

    @staticmethod
    def _project(path: Path, lookups: _Lookups, kind: str, name: str, source: Body, default_mode: Any,
                 failed: str) -> None:
        data = lookups.data(kind, name, optional=bool(source.get('optional')), env=False, failed=failed)
        if data is None:
            return
        items = source.get('items') or [{'key': key, 'path': key} for key in data]
        for item in items:
            if item['key'] not in data:
                if source.get('optional'):
                    continue
                what = 'configmap references non-existent config key' if kind == 'ConfigMap' else (
                    'references non-existent secret key')
                raise _NotReady('FailedMount', f'{failed}{what}: {item["key"]}')
            target = path / item['path']
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(os.fsencode(data[item['key']]))
            mode = item.get('mode', default_mode)
            target.chmod(int(mode) if mode is not None else 0o644)

    def _downward(self, pod: PodProcess, path: Path, items: Sequence[Body]) -> None:
        for item in items:
            if 'fieldRef' in item:
                target = path / item['path']
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(self._field(pod, item['fieldRef'].get('fieldPath', '')))

    # -- pods: running, stopping, accounting ---------------------------------------------------------

    def _poll(self, pod: PodProcess) -> None:
        """Reap the pod's process if it exited (and kill what is left of its process group)."""
        if pod._process is None or pod.returncode is not None:
            return
        returncode = pod._process.poll()
        if returncode is None:
            return
        self._signal(pod, signal.SIGKILL)  # the container is gone: so are its other processes
        self._close_files(pod)
        pod.returncode = returncode
        pod.exit_code = returncode if returncode >= 0 else 128 - returncode
        pod.finished_at = _now()
        state = self._jobs.get(pod.job_uid)
        restart = (dig(pod._body, 'spec.restartPolicy') == 'OnFailure' and pod.exit_code != 0
                   and pod.stop_reason is None and state is not None and state.target is None and not state.deleted)
        log.info('pod %s/%s: pid %d exited with %d%s (stderr: %s)', pod.namespace, pod.name, pod.pid, pod.exit_code,
                 f' while stopping ({pod.stop_reason})' if pod.stop_reason else '', pod.stderr_path)
        if restart and state is not None:
            pod.restart_count += 1
            state.restarts += 1
            backoff_limit = dig(state.job, 'spec.backoffLimit')
            if state.failed + state.restarts <= (6 if backoff_limit is None else int(backoff_limit)):
                self._spawn(pod)
                return
        pod.phase = 'Succeeded' if pod.exit_code == 0 else 'Failed'
        pod.reason = 'Completed' if pod.exit_code == 0 else 'Error'
        pod.terminated = True
        pod._kill_at = None

    def _signal(self, pod: PodProcess, sig: int) -> None:
        if pod.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pod.pid, sig)

    def _stop(self, pod: PodProcess, reason: str, *, counts: bool) -> None:
        """Stop a pod as the Job controller does: delete its object, SIGTERM, SIGKILL after the grace period."""
        if pod.terminated or pod.stop_reason is not None:
            return
        pod.stop_reason, pod._stop_counts = reason, counts
        if reason in _CONTROLLER_STOPS and not pod._object_gone:
            assert self._client is not None
            try:
                self._client.request('DELETE', api_path('v1', 'pods', pod.namespace, pod.name))
            except ApiError as e:
                if e.status != 404:
                    raise
                pod._object_gone = True
        if pod.running:
            grace = dig(pod._body, 'spec.terminationGracePeriodSeconds')
            grace = self.grace_period if grace is None else min(self.grace_period, float(grace))
            log.info('pod %s/%s: stopping (%s): SIGTERM, SIGKILL in %.1fs', pod.namespace, pod.name, reason, grace)
            self._signal(pod, signal.SIGTERM)
            pod._kill_at = time.monotonic() + grace
        else:
            pod.terminated = True  # never started: nothing to kill

    def _check_object(self, pod: PodProcess, objects: Mapping[tuple[str, str], Body]) -> None:
        """A Pod object deleted by someone else (or gone) stops its process, which then counts as failed."""
        if pod.terminated or pod._object_gone or self._list_rv < pod._created_rv:
            return
        obj = objects.get((pod.namespace, pod.name))
        if obj is None:
            pod._object_gone = True
        if (obj is None or dig(obj, 'metadata.deletionTimestamp')) and pod.stop_reason is None:
            self._stop(pod, 'Deleted', counts=True)

    def _progress_pod(self, state: _JobState, pod: PodProcess) -> None:
        now = time.monotonic()
        self._poll(pod)
        if pod.running and pod._kill_at is not None and now >= pod._kill_at:
            log.info('pod %s/%s: grace period over: SIGKILL', pod.namespace, pod.name)
            self._signal(pod, signal.SIGKILL)
            pod._kill_at = None
        if (pod._process is None and not pod.terminated and pod.stop_reason is None and now >= pod._retry_at
                and not state.deleted):
            self._try_start(pod)
        self._settle(state, pod)
        self._write_pod_status(pod)
        if pod.terminated and not pod._finalized and not pod._object_gone:
            self._remove_finalizer(pod)

    def _settle(self, state: _JobState, pod: PodProcess) -> None:
        """Count a pod that terminated into its Job's status, once (before the Job is synced again)."""
        if pod.terminated and not pod._accounted:
            pod._accounted = True
            self._account(state, pod)

    def _account(self, state: _JobState, pod: PodProcess) -> None:
        if state.deleted or state.finished or pod.exit_code is None:
            return
        if state.target is not None:  # pods killed because the Job failed count as failed, as in Kubernetes
            if state.target[0] == 'Failed' and pod.exit_code != 0:
                state.failed += 1
            return
        if pod.exit_code == 0:
            if pod.index is None:
                state.succeeded += 1
            elif pod.index not in state.completed_indexes:
                state.completed_indexes.add(pod.index)
                state.succeeded += 1
        elif pod._stop_counts:
            state.failed += 1

    def _remove_finalizer(self, pod: PodProcess) -> None:
        assert self._client is not None
        try:
            current = self._client.get('v1', 'pods', pod.namespace, pod.name)
            if current is not None and dig(current, 'metadata.uid') == pod.uid:
                others = [f for f in dig(current, 'metadata.finalizers') or [] if f != TRACKING_FINALIZER]
                self._client.request('PATCH', api_path('v1', 'pods', pod.namespace, pod.name),
                                     {'metadata': {'finalizers': others or None}})
        except ApiError as e:
            if e.status != 404:
                raise
        pod._finalized = True

    def _pod_status(self, pod: PodProcess) -> Body:
        container = (dig(pod._body, 'spec.containers') or [{}])[0]
        state: Body
        if pod.phase == 'Running':
            state = {'running': {'startedAt': pod.started_at}}
        elif pod.phase in ('Succeeded', 'Failed'):
            state = {'terminated': {'exitCode': pod.exit_code, 'reason': pod.reason, 'message': pod.message or None,
                                    'startedAt': pod.started_at, 'finishedAt': pod.finished_at}}
            if not pod.message:
                del state['terminated']['message']
        else:
            state = {'waiting': {'reason': pod.reason or 'ContainerCreating'}}
            if pod.message:
                state['waiting']['message'] = pod.message
        ready = pod.phase == 'Running' and pod.stop_reason is None
        created = dig(pod._body, 'metadata.creationTimestamp')
        conditions = [
            {'type': 'PodScheduled', 'status': 'True', 'lastTransitionTime': created},
            {'type': 'Initialized', 'status': 'True', 'lastTransitionTime': created},
            {'type': 'ContainersReady', 'status': str(ready), 'lastTransitionTime': pod.started_at or created},
            {'type': 'Ready', 'status': str(ready), 'lastTransitionTime': pod.started_at or created},
        ]
        return {
            'phase': pod.phase,
            'conditions': conditions,
            'hostIP': POD_IP, 'podIP': POD_IP, 'podIPs': [{'ip': POD_IP}],
            'startTime': created,
            'containerStatuses': [{
                'name': container.get('name', ''), 'image': container.get('image', ''), 'imageID': '',
                'ready': ready, 'started': pod.phase == 'Running', 'restartCount': pod.restart_count,
                'state': state, **({'containerID': f'kubelet://{pod.pid}'} if pod.pid else {}),
            }],
        }

    def _write_pod_status(self, pod: PodProcess) -> None:
        if pod._object_gone or pod._finalized:
            return
        status = self._pod_status(pod)
        if status == pod._status_written:
            return
        previous = pod._status_written or {}
        patch = {key: status.get(key) for key in set(previous) | set(status)}
        assert self._client is not None
        try:
            self._client.request('PATCH', api_path('v1', 'pods', pod.namespace, pod.name, 'status'),
                                 {'status': patch})
        except ApiError as e:
            if e.status != 404:
                raise
            pod._object_gone = True
        pod._status_written = status

    def _post_event(self, pod: PodProcess, reason: str, message: str) -> None:
        assert self._client is not None
        now = _now()
        container = (dig(pod._body, 'spec.containers') or [{}])[0].get('name', '')
        event = {
            'apiVersion': 'v1', 'kind': 'Event',
            'metadata': {'generateName': f'{pod.name}.', 'namespace': pod.namespace},
            'involvedObject': {'apiVersion': 'v1', 'kind': 'Pod', 'name': pod.name, 'namespace': pod.namespace,
                               'uid': pod.uid, 'fieldPath': f'spec.containers{{{container}}}'},
            'reason': reason, 'message': message, 'type': 'Warning', 'count': 1,
            'firstTimestamp': now, 'lastTimestamp': now, 'source': {'component': 'kubelet', 'host': NODE_NAME},
        }
        with contextlib.suppress(ApiError):
            self._client.request('POST', api_path('v1', 'events', pod.namespace), event)

    @staticmethod
    def _close_files(pod: PodProcess) -> None:
        for file in pod._files:
            file.close()
        pod._files = []


class _Lookups:
    """Secrets/ConfigMaps/PVCs of one pod start, each fetched once, with the kubelet's error messages."""

    def __init__(self, kubelet: Kubelet, namespace: str) -> None:
        self._kubelet, self._namespace = kubelet, namespace
        self._cache: dict[tuple[str, str], Body | None] = {}

    def get(self, api_version: str, plural: str, name: str) -> Body | None:
        key = (plural, name)
        if key not in self._cache:
            client = self._kubelet._client
            assert client is not None
            self._cache[key] = client.get(api_version, plural, self._namespace, name)
        return self._cache[key]

    def data(self, kind: str, name: str, *, optional: bool, env: bool, failed: str = '') -> dict[str, str] | None:
        """The decoded data of a Secret or ConfigMap (values as str, bytes kept via surrogateescape)."""
        obj = self.get('v1', 'secrets' if kind == 'Secret' else 'configmaps', name)
        if obj is None:
            if optional:
                return None
            message = f'{kind.lower()} "{name}" not found'
            if env:
                raise _NotReady('CreateContainerConfigError', message)
            raise _NotReady('FailedMount', failed + message)
        data: dict[str, str] = {}
        if kind == 'Secret':
            for key, value in (obj.get('data') or {}).items():
                data[key] = os.fsdecode(base64.b64decode(value))
            data.update({key: str(value) for key, value in (obj.get('stringData') or {}).items()})
        else:
            if not env:
                for key, value in (obj.get('binaryData') or {}).items():
                    data[key] = os.fsdecode(base64.b64decode(value))
            data.update({key: str(value) for key, value in (obj.get('data') or {}).items()})
        return data


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
