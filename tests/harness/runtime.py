"""The pod runtime of the test kubelet: pods as local processes, and their Pod objects kept up to date.

A pod runs via ``subprocess.Popen`` in its own session/process group, stdin from /dev/null, stdout and stderr
to ``<workdir>/pods/<namespace>/<pod>/{stdout,stderr}.log``, with what :mod:`tests.harness.podspec` prepared.
An executable that cannot be started fails the pod (StartError, exit code 128). A pod whose Secret/ConfigMap
or volume is missing stays Pending with the kubelet's waiting reason (CreateContainerConfigError,
FailedMount): no process runs, a Warning event is posted and the start is retried every ``config_retry`` s.

The Pod's ``status`` goes Pending → Running → Succeeded/Failed (``restartPolicy: OnFailure`` restarts the
process in the same pod while the Job controller allows it). Stopping a pod = delete its Pod object (it stays
"Terminating" thanks to the Job controller's finalizer), SIGTERM to its process group, SIGKILL after
``min(grace_period, terminationGracePeriodSeconds)``; the finalizer is removed once the process is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx

from tests.harness.client import ApiClient, ApiError, api_path
from tests.harness.objects import Body, dig, now
from tests.harness.pods import NODE_NAME, POD_IP, TRACKING_FINALIZER, PodProcess, log
from tests.harness.podspec import NotReady, PodSpecResolver

# Pods stopped by the Job controller itself: their non-zero exit is not a failure of the Job.
# The event each waiting reason posts (the scheduler's, or the kubelet's); others post "Failed".
EVENT_REASONS = {'FailedMount': 'FailedMount', 'Unschedulable': 'FailedScheduling', 'ImagePullBackOff': 'BackOff'}
CONTROLLER_STOPS = frozenset({'ScaleDown', 'JobSuspended', 'JobFinished', 'JobDeleted', 'KubeletStopped'})


class PodRuntime:
    """Runs pods (see the module docstring); ``may_restart(pod)`` decides on an OnFailure restart (and counts it)."""

    def __init__(self, client: ApiClient, workdir: Path, resolver: PodSpecResolver, *, grace_period: float,
                 config_retry: float, may_restart: Callable[[PodProcess], bool]) -> None:
        self.client, self.workdir, self.resolver = client, workdir, resolver
        self.grace_period, self.config_retry = grace_period, config_retry
        self.may_restart = may_restart
        self._pods: list[PodProcess] = []
        self._lock = threading.Lock()

    def pods(self) -> list[PodProcess]:
        """Every pod admitted so far, oldest first (safe to call from any thread)."""
        with self._lock:
            return list(self._pods)

    # -- starting -----------------------------------------------------------------------------------

    def admit(self, created: Body, *, job_name: str, job_uid: str, index: int | None) -> PodProcess:
        """Take on a Pod object just created: its directories and its handle (then write_status and try_start)."""
        namespace, name = created['metadata']['namespace'], created['metadata']['name']
        directory = self.workdir / 'pods' / namespace / name
        for sub in ('rootfs', 'home', 'tmp', 'volumes'):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        pod = PodProcess(namespace=namespace, name=name, uid=created['metadata']['uid'], job_name=job_name,
                         job_uid=job_uid, index=index, directory=directory, body=created)
        with self._lock:
            self._pods.append(pod)
        log.info('pod %s/%s created for job %s (logs: %s, %s)', pod.namespace, name, job_name,
                 pod.stdout_path, pod.stderr_path)
        return pod

    def try_start(self, pod: PodProcess) -> None:
        try:
            argv, env, cwd, mounts = self.resolver.prepare(pod)
        except NotReady as e:
            pod.reason, pod.message = e.reason, e.message
            pod._retry_at = time.monotonic() + self.config_retry
            if e.reason not in pod._event_reasons:
                pod._event_reasons.add(e.reason)
                log.warning('pod %s/%s cannot start: %s: %s', pod.namespace, pod.name, e.reason, e.message)
                event = EVENT_REASONS.get(e.reason, 'Failed')
                self._post_event(pod, event, e.message if event != 'Failed' else f'Error: {e.message}')
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
            pod.finished_at = now()
            log.warning('pod %s/%s: %s', pod.namespace, pod.name, message)
            return
        pod._process = process
        pod.pid, pod.returncode, pod.exit_code = process.pid, None, None
        pod.pids.append(process.pid)
        pod.phase, pod.reason, pod.message = 'Running', None, ''
        pod.started_at = now()
        log.info('pod %s/%s started: pid %d, %s', pod.namespace, pod.name, process.pid, pod.command)

    # -- running and stopping --------------------------------------------------------------------------

    def poll(self, pod: PodProcess) -> None:
        """Reap the pod's process if it exited (and kill what is left of its process group)."""
        if pod._process is None or pod.returncode is not None:
            return
        returncode = pod._process.poll()
        if returncode is None:
            return
        self.signal(pod, signal.SIGKILL)  # the container is gone: so are its other processes
        self._close_files(pod)
        pod.returncode = returncode
        pod.exit_code = returncode if returncode >= 0 else 128 - returncode
        pod.finished_at = now()
        log.info('pod %s/%s: pid %d exited with %d%s (stderr: %s)', pod.namespace, pod.name, pod.pid, pod.exit_code,
                 f' while stopping ({pod.stop_reason})' if pod.stop_reason else '', pod.stderr_path)
        if (dig(pod._body, 'spec.restartPolicy') == 'OnFailure' and pod.exit_code != 0 and pod.stop_reason is None
                and self.may_restart(pod)):
            self._spawn(pod)
            return
        pod.phase = 'Succeeded' if pod.exit_code == 0 else 'Failed'
        pod.reason = 'Completed' if pod.exit_code == 0 else 'Error'
        pod.terminated = True
        pod._kill_at = None

    def progress(self, pod: PodProcess, *, may_start: bool) -> None:
        """Reap, SIGKILL once the grace period is over, and retry a start that was not ready."""
        now_monotonic = time.monotonic()
        self.poll(pod)
        if pod.running and pod._kill_at is not None and now_monotonic >= pod._kill_at:
            log.info('pod %s/%s: grace period over: SIGKILL', pod.namespace, pod.name)
            self.signal(pod, signal.SIGKILL)
            pod._kill_at = None
        if (pod._process is None and not pod.terminated and pod.stop_reason is None
                and now_monotonic >= pod._retry_at and may_start):
            self.try_start(pod)

    def signal(self, pod: PodProcess, sig: int) -> None:
        if pod.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pod.pid, sig)

    def stop(self, pod: PodProcess, reason: str, *, counts: bool) -> None:
        """Stop a pod as the Job controller does: delete its object, SIGTERM, SIGKILL after the grace period."""
        if pod.terminated or pod.stop_reason is not None:
            return
        pod.stop_reason, pod._stop_counts = reason, counts
        if (reason in CONTROLLER_STOPS and not pod._object_gone
                and self.client.delete('v1', 'pods', pod.namespace, pod.name, missing_ok=True) is None):
            pod._object_gone = True  # deleted already
        if pod.running:
            grace = dig(pod._body, 'spec.terminationGracePeriodSeconds')
            grace = self.grace_period if grace is None else min(self.grace_period, float(grace))
            log.info('pod %s/%s: stopping (%s): SIGTERM, SIGKILL in %.1fs', pod.namespace, pod.name, reason, grace)
            self.signal(pod, signal.SIGTERM)
            pod._kill_at = time.monotonic() + grace
        else:
            pod.terminated = True  # never started: nothing to kill

    def check_object(self, pod: PodProcess, objects: Mapping[tuple[str, str], Body], list_rv: int) -> None:
        """A Pod object deleted by someone else (or gone) stops its process, which then counts as failed."""
        if pod.terminated or pod._object_gone or list_rv < pod._created_rv:
            return
        obj = objects.get((pod.namespace, pod.name))
        if obj is None:
            pod._object_gone = True
        if (obj is None or dig(obj, 'metadata.deletionTimestamp')) and pod.stop_reason is None:
            self.stop(pod, 'Deleted', counts=True)

    def shutdown(self, pods: Sequence[PodProcess]) -> None:
        """Kill every process (SIGTERM, SIGKILL after the grace period) and release the pods' finalizers."""
        live = [pod for pod in pods if pod.running]
        for pod in live:
            pod.stop_reason = pod.stop_reason or 'KubeletStopped'
            self.signal(pod, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_period
        while any(pod.running for pod in live) and time.monotonic() < deadline:
            for pod in live:
                self.poll(pod)
            time.sleep(0.01)
        for pod in pods:
            if pod._process is not None:
                if pod.running:
                    self.signal(pod, signal.SIGKILL)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        pod._process.wait(5)
                self.poll(pod)
                self.signal(pod, signal.SIGKILL)  # stragglers of its process group
            self._close_files(pod)
        for pod in pods:  # do not leave Pod objects stuck on our finalizer (best effort)
            if not pod._finalized and not pod._object_gone:
                with contextlib.suppress(ApiError, httpx.HTTPError):
                    self._remove_finalizer(pod)

    # -- the Pod object -------------------------------------------------------------------------------

    def report(self, pod: PodProcess) -> None:
        """Write the pod's status, and drop the finalizer once it terminated (and was accounted)."""
        self.write_status(pod)
        if pod.terminated and not pod._finalized and not pod._object_gone:
            self._remove_finalizer(pod)

    def _remove_finalizer(self, pod: PodProcess) -> None:
        try:
            current = self.client.get('v1', 'pods', pod.namespace, pod.name)
            if current is not None and dig(current, 'metadata.uid') == pod.uid:
                others = [f for f in dig(current, 'metadata.finalizers') or [] if f != TRACKING_FINALIZER]
                self.client.patch('v1', 'pods', pod.namespace, pod.name, {'metadata': {'finalizers': others or None}})
        except ApiError as e:
            if e.status != 404:
                raise
        pod._finalized = True

    @staticmethod
    def pod_status(pod: PodProcess) -> Body:
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
        scheduled = {'type': 'PodScheduled', 'status': 'True', 'lastTransitionTime': created}
        if pod.reason == 'Unschedulable' and pod.phase == 'Pending':
            scheduled.update(status='False', reason='Unschedulable', message=pod.message)
        conditions = [
            scheduled,
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

    def write_status(self, pod: PodProcess) -> None:
        if pod._object_gone or pod._finalized:
            return
        status = self.pod_status(pod)
        if status == pod._status_written:
            return
        previous = pod._status_written or {}
        patch = {key: status.get(key) for key in set(previous) | set(status)}
        try:
            self.client.patch('v1', 'pods', pod.namespace, pod.name, {'status': patch}, subresource='status')
        except ApiError as e:
            if e.status != 404:
                raise
            pod._object_gone = True
        pod._status_written = status

    def _post_event(self, pod: PodProcess, reason: str, message: str) -> None:
        timestamp = now()
        container = (dig(pod._body, 'spec.containers') or [{}])[0].get('name', '')
        event = {
            'apiVersion': 'v1', 'kind': 'Event',
            'metadata': {'generateName': f'{pod.name}.', 'namespace': pod.namespace},
            'involvedObject': {'apiVersion': 'v1', 'kind': 'Pod', 'name': pod.name, 'namespace': pod.namespace,
                               'uid': pod.uid, 'fieldPath': f'spec.containers{{{container}}}'},
            'reason': reason, 'message': message, 'type': 'Warning', 'count': 1,
            'firstTimestamp': timestamp, 'lastTimestamp': timestamp,
            'source': {'component': 'kubelet', 'host': NODE_NAME},
        }
        with contextlib.suppress(ApiError):
            self.client.request('POST', api_path('v1', 'events', pod.namespace), event)

    @staticmethod
    def _close_files(pod: PodProcess) -> None:
        for file in pod._files:
            file.close()
        pod._files = []
