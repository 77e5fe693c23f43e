"""The batch/v1 Job controller of the test kubelet: Pods for Jobs, and the Job's ``status`` as Kubernetes keeps it.

Each tick (see :class:`~tests.harness.kubelet.Kubelet`) lists Jobs and Pods and, per Job, creates ``v1`` Pod
objects (``generateName: <job>-``, labels ``job-name``/``controller-uid`` and their ``batch.kubernetes.io/``
twins plus the template's, an ownerReference to the Job, the ``batch.kubernetes.io/job-tracking`` finalizer
while the pod is being accounted), hands them to the pod runtime (:mod:`tests.harness.runtime`), and writes
the Job's ``status`` subresource (``active``, ``ready``, ``terminating``, ``succeeded``, ``failed``,
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
      the controller deletes the finished Job. Jobs with a foreign ``spec.managedBy`` are left alone.
    * Accounting: exit 0 → succeeded (even when the pod was being stopped, as in Kubernetes); a non-zero exit
      → failed, except for pods the controller stopped because of a scale-down or suspension. Pods that crash
      (see :meth:`Kubelet.kill`), are deleted by someone else, or are killed because the Job failed (deadline,
      backoff limit) count as failed; pods of a deleted Job are not counted at all.

Not emulated: ``podFailurePolicy``, ``backoffLimitPerIndex``, back-off delays, ``successPolicy``.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Collection
from typing import Any

from tests.harness.client import ApiClient, ApiError
from tests.harness.objects import Body, dig, now
from tests.harness.pods import NODE_NAME, TRACKING_FINALIZER, PodProcess, log
from tests.harness.runtime import PodRuntime

JOB_CONTROLLER = 'kubernetes.io/job-controller'


def compress_indexes(indexes: set[int]) -> str:
    """``{0, 1, 2, 5}`` → ``0-2,5`` (the format of ``status.completedIndexes``)."""
    runs: list[list[int]] = []
    for index in sorted(indexes):
        if runs and index == runs[-1][1] + 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    return ','.join(str(first) if first == last else f'{first}-{last}' for first, last in runs)


def parse_indexes(text: str | None) -> set[int]:
    result: set[int] = set()
    for part in (text or '').split(','):
        if '-' in part:
            first, last = part.split('-', 1)
            result.update(range(int(first), int(last) + 1))
        elif part.strip():
            result.add(int(part))
    return result


class JobState:
    """What the Job controller remembers of one Job (by uid)."""

    def __init__(self, job: Body) -> None:
        meta = job['metadata']
        self.namespace, self.name, self.uid = meta['namespace'], meta['name'], meta['uid']
        status = job.get('status') or {}
        self.job = job
        self.succeeded = int(status.get('succeeded') or 0)
        self.failed = int(status.get('failed') or 0)
        self.restarts = 0
        self.completed_indexes = parse_indexes(status.get('completedIndexes'))
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
        timestamp = now()
        new = {'type': kind, 'status': status, 'lastProbeTime': timestamp, 'lastTransitionTime': timestamp,
               'reason': reason, 'message': message}
        if existing:
            if existing['status'] == status:
                new['lastTransitionTime'] = existing.get('lastTransitionTime', timestamp)
            self.conditions[self.conditions.index(existing)] = new
        else:
            self.conditions.append(new)


class JobController:
    """Drives every Job (in ``namespaces``, None = all) one tick at a time (see the module docstring)."""

    def __init__(self, client: ApiClient, runtime: PodRuntime, namespaces: Collection[str] | None) -> None:
        self.client, self.runtime, self.namespaces = client, runtime, namespaces
        self.jobs: dict[str, JobState] = {}  # by uid

    def _watched(self, obj: Body) -> bool:
        return self.namespaces is None or dig(obj, 'metadata.namespace') in self.namespaces

    def tick(self) -> None:
        """One pass over the Jobs and Pods of the API: reap and account pods, sync Jobs, write statuses."""
        job_list = self.client.collection('batch/v1', 'jobs')
        pod_list = self.client.collection('v1', 'pods')
        list_rv = int(dig(pod_list, 'metadata.resourceVersion', '0'))
        jobs = {job['metadata']['uid']: job for job in job_list['items'] if self._watched(job)}
        pod_objects = {(dig(p, 'metadata.namespace'), dig(p, 'metadata.name')): p for p in pod_list['items']}

        for state in list(self.jobs.values()):
            if state.uid not in jobs and not state.deleted:
                state.deleted = True
                log.info('job %s/%s deleted: stopping its pods', state.namespace, state.name)
            for pod in state.pods:
                self.runtime.poll(pod)
                if state.deleted:
                    self.runtime.stop(pod, 'JobDeleted', counts=False)
                else:
                    self.runtime.check_object(pod, pod_objects, list_rv)
                self.settle(state, pod)
        for uid, job in jobs.items():
            if uid not in self.jobs:
                if dig(job, 'spec.managedBy', JOB_CONTROLLER) != JOB_CONTROLLER:
                    continue
                self.jobs[uid] = JobState(job)
            state = self.jobs[uid]
            state.job = job
            self.sync_job(state)
        for state in list(self.jobs.values()):
            for pod in state.pods:
                self.runtime.progress(pod, may_start=not state.deleted)
                self.settle(state, pod)
                self.runtime.report(pod)
            if not state.deleted:
                self.write_status(state)
            elif all(pod._finalized or pod._object_gone for pod in state.pods):
                del self.jobs[state.uid]

    def may_restart(self, pod: PodProcess) -> bool:
        """An OnFailure container exited non-zero: count the restart; whether it is within the backoff limit."""
        state = self.jobs.get(pod.job_uid)
        if state is None or state.target is not None or state.deleted:
            return False
        pod.restart_count += 1
        state.restarts += 1
        backoff_limit = dig(state.job, 'spec.backoffLimit')
        return state.failed + state.restarts <= (6 if backoff_limit is None else int(backoff_limit))

    def sync_job(self, state: JobState) -> None:
        job = state.job
        spec = job.get('spec') or {}
        if state.finished:
            ttl = spec.get('ttlSecondsAfterFinished')
            if ttl is not None and not state.ttl_deleted and time.monotonic() - state.finished_at >= ttl:
                state.ttl_deleted = True
                with contextlib.suppress(ApiError):
                    self.client.delete('batch/v1', 'jobs', state.namespace, state.name,
                                       propagation_policy='Background')
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
                    self.runtime.stop(pod, 'JobSuspended', counts=False)
                state.set_condition('Suspended', 'True', 'JobSuspended', 'Job suspended')
                return
            suspended = state.condition('Suspended')
            if suspended and suspended['status'] == 'True':
                state.set_condition('Suspended', 'False', 'JobResumed', 'Job resumed')
                state.start_time = None
            if state.start_time is None:
                state.start_time, state.started = now(), time.monotonic()
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
                    self.runtime.stop(pod, 'JobFinished', counts=False)
            elif not dig(job, 'metadata.deletionTimestamp'):
                self._scale(state, active, parallelism, completions, indexed)

        if state.target is not None and all(pod.terminated for pod in state.pods):
            kind, reason, message = state.target
            state.set_condition(kind, 'True', reason, message)
            if kind == 'Complete':
                state.completion_time = now()
            state.finished, state.finished_at = kind, time.monotonic()
            log.info('job %s/%s: %s (%s)', state.namespace, state.name, kind, reason)

    def _scale(self, state: JobState, active: list[PodProcess], parallelism: int, completions: Any,
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
                self.runtime.stop(pod, 'ScaleDown', counts=False)
        elif len(active) < want:
            if indexed:
                busy = state.completed_indexes | {pod.index for pod in active}
                free = [i for i in range(int(completions)) if i not in busy]
                for index in free[:want - len(active)]:
                    self.create_pod(state, index)
            else:
                for _ in range(want - len(active)):
                    self.create_pod(state, None)

    def write_status(self, state: JobState) -> None:
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
            status['completedIndexes'] = compress_indexes(state.completed_indexes)
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
        try:
            state.job = self.client.patch('batch/v1', 'jobs', state.namespace, state.name, {'status': patch},
                                          subresource='status')
        except ApiError as e:
            if e.status != 404:
                raise  # gone meanwhile: the next tick sees it deleted


    def create_pod(self, state: JobState, index: int | None) -> None:
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
        created = self.client.create(body, plural='pods')
        pod = self.runtime.admit(created, job_name=state.name, job_uid=state.uid, index=index)
        state.pods.append(pod)
        self.runtime.write_status(pod)
        self.runtime.try_start(pod)


    def settle(self, state: JobState, pod: PodProcess) -> None:
        """Count a pod that terminated into its Job's status, once (before the Job is synced again)."""
        if pod.terminated and not pod._accounted:
            pod._accounted = True
            self._account(state, pod)

    def _account(self, state: JobState, pod: PodProcess) -> None:
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
