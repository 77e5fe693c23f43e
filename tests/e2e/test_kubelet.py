"""The test-side kubelet: batch/v1 Jobs of the emulated API run as local processes, with Job/Pod status."""

from __future__ import annotations

import base64
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness.k8s import K8sApi, dig
from tests.harness.k8s import k8s_api as k8s_api  # the fixtures, re-exported for pytest
from tests.harness.kubelet import Kubelet, expand, mount_env_name, pid_alive
from tests.harness.kubelet import kubelet as kubelet
from tests.harness.kubelet import kubelet_factory as kubelet_factory

NS = 'default'
CLAIM = 'shared'
FOREVER = ['sleep', '60']
CHILD_SCRIPT = ['sh', '-c', 'sleep 60 & echo $! > "$DATA/child-$HOSTNAME"; wait']  # a grandchild in the group


def job_manifest(name: str, command: list[str], *, env: list[dict[str, Any]] | None = None,
                 mounts: list[dict[str, Any]] | None = None, volumes: list[dict[str, Any]] | None = None,
                 owner: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    """A Job whose pod mounts the PVC ``shared`` at /data (env DATA=/data) unless told otherwise."""
    container: dict[str, Any] = {
        'name': 'main', 'image': 'busybox', 'command': command,
        'env': [{'name': 'DATA', 'value': '/data'}, *(env or [])],
        'volumeMounts': mounts if mounts is not None else [{'name': 'data', 'mountPath': '/data'}],
    }
    pod_volumes = volumes if volumes is not None else [{'name': 'data', 'persistentVolumeClaim': {'claimName': CLAIM}}]
    metadata: dict[str, Any] = {'name': name, 'namespace': NS}
    if owner is not None:
        metadata['ownerReferences'] = [{'apiVersion': owner['apiVersion'], 'kind': owner['kind'],
                                        'name': owner['metadata']['name'], 'uid': owner['metadata']['uid']}]
    return {
        'apiVersion': 'batch/v1', 'kind': 'Job', 'metadata': metadata,
        'spec': {**spec, 'template': {'metadata': {'labels': {'app': name}},
                                      'spec': {'restartPolicy': 'Never', 'containers': [container],
                                               'volumes': pod_volumes}}},
    }


@pytest.fixture(autouse=True)
def shared_claim(k8s_api: K8sApi) -> None:
    """The emulator knows PersistentVolumeClaims, so, as in a cluster, a pod mounts only claims that exist."""
    k8s_api.create({'apiVersion': 'v1', 'kind': 'PersistentVolumeClaim', 'metadata': {'name': CLAIM, 'namespace': NS},
                    'spec': {'accessModes': ['ReadWriteMany'], 'resources': {'requests': {'storage': '1Gi'}}}})


def data_dir(kubelet: Kubelet) -> Path:
    return kubelet.workdir / 'pvcs' / NS / CLAIM


def job_status(api: K8sApi, name: str) -> dict[str, Any]:
    return dig(api.get('batch/v1', 'jobs', NS, name), 'status', {})


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get('conditions') or [] if c['type'] == kind), {})


def pod_objects(api: K8sApi, job: str) -> list[dict[str, Any]]:
    return api.list('v1', 'pods', NS, label_selector=f'job-name={job}')


def child_pids(kubelet: Kubelet, count: int) -> list[int]:
    """The pids of the background children that ``CHILD_SCRIPT`` pods wrote to the shared PVC."""
    def written() -> list[int] | None:
        pids = [f.read_text().strip() for f in data_dir(kubelet).glob('child-*')]
        return [int(pid) for pid in pids] if len(pids) == count and all(pids) else None
    result: list[int] = kubelet.wait(written, what=f'{count} child pids')
    return result


def wait_status(kubelet: Kubelet, api: K8sApi, name: str, predicate: Any, what: str) -> dict[str, Any]:
    return kubelet.wait(lambda: (lambda s: s if predicate(s) else None)(job_status(api, name)),
                        what=what, job_name=name, namespace=NS)


def test_expansion_follows_kubernetes_rules() -> None:
    env = {'A': 'x', 'B': '$(A)'}
    assert expand('$(A)-$$(A)-$(C)-$(B)-$-a$b-$(', env) == 'x-$(A)-$(C)-$(A)-$-a$b-$('
    assert mount_env_name('/var/arena-results/') == 'ARENA_TEST_MOUNT_VAR_ARENA_RESULTS'


def test_work_queue_job_runs_parallel_pods_to_completion(k8s_api: K8sApi, kubelet: Kubelet) -> None:
    script = 'echo "$HOSTNAME" > "$DATA/$HOSTNAME"; sleep 0.3'
    created = k8s_api.create(job_manifest('queue', ['sh', '-c', script], parallelism=3))

    job = kubelet.wait_job(NS, 'queue', 'Complete')

    status = job['status']
    assert status['succeeded'] == 3 and 'failed' not in status and 'active' not in status
    assert status['ready'] == 0 and status['terminating'] == 0
    assert status['startTime'] and status['completionTime']
    assert condition(status, 'Complete')['status'] == 'True'
    assert condition(status, 'Complete')['reason'] == 'CompletionsReached'
    assert condition(status, 'SuccessCriteriaMet')['status'] == 'True'
    pods = kubelet.pods('queue')
    assert len(pods) == 3 and all(pod.exit_code == 0 and pod.phase == 'Succeeded' for pod in pods)
    assert sorted(p.name for p in data_dir(kubelet).iterdir()) == sorted(pod.name for pod in pods)
    objects = pod_objects(k8s_api, 'queue')
    assert sorted(o['metadata']['name'] for o in objects) == sorted(pod.name for pod in pods)
    for obj in objects:
        assert obj['metadata']['name'].startswith('queue-') and len(obj['metadata']['name']) == len('queue-') + 5
        assert obj['metadata']['labels'] == {'app': 'queue', 'job-name': 'queue',
                                             'controller-uid': created['metadata']['uid'],
                                             'batch.kubernetes.io/job-name': 'queue',
                                             'batch.kubernetes.io/controller-uid': created['metadata']['uid']}
        [owner] = obj['metadata']['ownerReferences']
        assert (owner['kind'], owner['uid'], owner['controller']) == ('Job', created['metadata']['uid'], True)
        assert not obj['metadata'].get('finalizers')  # the tracking finalizer goes once counted
        assert obj['status']['phase'] == 'Succeeded'
        assert obj['status']['containerStatuses'][0]['state']['terminated']['exitCode'] == 0
        assert obj['spec']['nodeName'] == 'kubelet'
    # Kubernetes lets the pods overlap: each ran at the same time as the others.
    assert len({pod.pid for pod in pods}) == 3


def test_completions_and_indexed_jobs(k8s_api: K8sApi, kubelet: Kubelet) -> None:
    k8s_api.create(job_manifest('fixed', ['sh', '-c', 'echo "$HOSTNAME" >> "$DATA/fixed"'],
                                completions=3, parallelism=2))
    k8s_api.create(job_manifest('indexed', ['sh', '-c', 'echo "$JOB_COMPLETION_INDEX $HOSTNAME" >> "$DATA/indexed"'],
                                completions=3, parallelism=3, completionMode='Indexed'))

    fixed = kubelet.wait_job(NS, 'fixed', 'Complete')
    indexed = kubelet.wait_job(NS, 'indexed', 'Complete')

    assert fixed['status']['succeeded'] == 3 and len(kubelet.pods('fixed')) == 3
    assert indexed['status']['succeeded'] == 3 and indexed['status']['completedIndexes'] == '0-2'
    lines = sorted((data_dir(kubelet) / 'indexed').read_text().split('\n')[:-1])
    assert lines == ['0 indexed-0', '1 indexed-1', '2 indexed-2']


def test_env_and_volumes_reach_the_process(k8s_api: K8sApi, kubelet: Kubelet) -> None:
    k8s_api.create({'apiVersion': 'v1', 'kind': 'Secret', 'metadata': {'name': 'creds', 'namespace': NS},
                    'data': {'token': base64.b64encode(b's3cr3t').decode()}, 'stringData': {'user': 'ada'}})
    k8s_api.create({'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'settings', 'namespace': NS},
                    'data': {'level': 'debug', 'app.yaml': 'mode: fast\n'}})
    dump = ('import json, os, sys; out = os.environ["RESULTS_DIR"]; '
            'json.dump({"env": dict(os.environ), "argv": sys.argv[1:], "cwd": os.getcwd(), '
            '"config": open("/etc/app/app.yaml".replace("/etc/app", os.environ["ARENA_TEST_MOUNT_ETC_APP"])).read(),'
            '"secret": open(os.environ["SECRET_FILE"]).read()}, open(out + "/env.json", "w"))')
    env = [
        {'name': 'TOKEN', 'valueFrom': {'secretKeyRef': {'name': 'creds', 'key': 'token'}}},
        {'name': 'USER_NAME', 'valueFrom': {'secretKeyRef': {'name': 'creds', 'key': 'user'}}},
        {'name': 'LEVEL', 'valueFrom': {'configMapKeyRef': {'name': 'settings', 'key': 'level'}}},
        {'name': 'MAYBE', 'valueFrom': {'secretKeyRef': {'name': 'absent', 'key': 'x', 'optional': True}}},
        {'name': 'POD_NAME', 'valueFrom': {'fieldRef': {'fieldPath': 'metadata.name'}}},
        {'name': 'POD_NAMESPACE', 'valueFrom': {'fieldRef': {'fieldPath': 'metadata.namespace'}}},
        {'name': 'NODE', 'valueFrom': {'fieldRef': {'fieldPath': 'spec.nodeName'}}},
        {'name': 'APP', 'valueFrom': {'fieldRef': {'fieldPath': "metadata.labels['app']"}}},
        {'name': 'GREETING', 'value': 'hi $(LEVEL) $$(LEVEL) $(UNDEFINED)'},
        {'name': 'RESULTS_DIR', 'value': '/results'},
        {'name': 'SECRET_FILE', 'value': '/etc/creds/token'},
        {'name': 'HOME', 'value': '/tmp'},
    ]
    manifest = job_manifest(
        'env', ['python3', '-c', dump], env=env,
        mounts=[{'name': 'data', 'mountPath': '/results', 'subPath': 'team-a'},
                {'name': 'creds', 'mountPath': '/etc/creds'},
                {'name': 'config', 'mountPath': '/etc/app'},
                {'name': 'tmp', 'mountPath': '/tmp'}],
        volumes=[{'name': 'data', 'persistentVolumeClaim': {'claimName': CLAIM}},
                 {'name': 'creds', 'secret': {'secretName': 'creds', 'items': [{'key': 'token', 'path': 'token'}]}},
                 {'name': 'config', 'configMap': {'name': 'settings'}},
                 {'name': 'tmp', 'emptyDir': {}}])
    container = manifest['spec']['template']['spec']['containers'][0]
    container['args'] = ['$(TOKEN)', '--out=/results/x', '/elsewhere']
    container['envFrom'] = [{'configMapRef': {'name': 'settings'}, 'prefix': 'CM_'}]
    container['workingDir'] = '/tmp/work'
    k8s_api.create(manifest)

    kubelet.wait_job(NS, 'env', 'Complete')

    [pod] = kubelet.pods('env')
    results = data_dir(kubelet) / 'team-a'
    seen = json.loads((results / 'env.json').read_text())
    process_env = seen['env']
    assert process_env['TOKEN'] == 's3cr3t' and process_env['USER_NAME'] == 'ada'
    assert process_env['LEVEL'] == 'debug' and process_env['CM_level'] == 'debug' and 'MAYBE' not in process_env
    assert process_env['POD_NAME'] == process_env['HOSTNAME'] == pod.name
    assert process_env['POD_NAMESPACE'] == NS and process_env['NODE'] == 'kubelet' and process_env['APP'] == 'env'
    assert process_env['GREETING'] == 'hi debug $(LEVEL) $(UNDEFINED)'
    # Mount paths are rewritten to the host dirs behind them.
    assert process_env['RESULTS_DIR'] == str(results) == process_env['ARENA_TEST_MOUNT_RESULTS']
    assert pod.mounts['/results'] == results
    tmp = pod.mounts['/tmp']
    assert process_env['HOME'] == process_env['TMPDIR'] == str(tmp) and tmp.is_relative_to(pod.dir)
    assert seen['cwd'] == str(tmp / 'work')
    assert seen['argv'] == ['s3cr3t', f'--out={results}/x', '/elsewhere']
    assert seen['secret'] == 's3cr3t' and seen['config'] == 'mode: fast\n'
    # A minimal base env: the venv first on PATH, nothing of the test process.
    assert process_env['PATH'].split(':')[0] == str(Path(sys.executable).parent)
    assert (Path(sys.executable).parent / 'arena').exists()
    assert 'PYTEST_CURRENT_TEST' not in process_env


def test_missing_secret_is_create_container_config_error_until_it_exists(k8s_api: K8sApi, kubelet: Kubelet) -> None:
    env = [{'name': 'KEY', 'valueFrom': {'secretKeyRef': {'name': 'late', 'key': 'key'}}}]
    k8s_api.create(job_manifest('late', ['sh', '-c', 'echo "$KEY" > "$DATA/key"'], env=env))

    [pod] = kubelet.wait(lambda: [p for p in kubelet.pods('late') if p.reason == 'CreateContainerConfigError'],
                         what='CreateContainerConfigError')
    time.sleep(0.3)  # several kubelet ticks (and a retry): still not started, not counted
    assert pod.pid is None and pod.phase == 'Pending' and pod.message == 'secret "late" not found'
    assert len(kubelet.pods('late')) == 1
    status = job_status(k8s_api, 'late')
    assert status['active'] == 1 and status['ready'] == 0 and 'failed' not in status and 'succeeded' not in status
    assert not condition(status, 'Complete') and not condition(status, 'Failed')
    [obj] = pod_objects(k8s_api, 'late')
    assert obj['status']['phase'] == 'Pending'
    assert obj['status']['containerStatuses'][0]['state']['waiting'] == {
        'reason': 'CreateContainerConfigError', 'message': 'secret "late" not found'}
    events = [e for e in k8s_api.list('v1', 'events', NS) if dig(e, 'involvedObject.name') == pod.name]
    assert [(e['type'], e['reason'], e['message']) for e in events] == [
        ('Warning', 'Failed', 'Error: secret "late" not found')]

    # As in a cluster, the kubelet retries: the container starts once the secret exists.
    k8s_api.create({'apiVersion': 'v1', 'kind': 'Secret', 'metadata': {'name': 'late', 'namespace': NS},
                    'stringData': {'key': 'finally'}})
    job = kubelet.wait_job(NS, 'late', 'Complete')
    assert job['status']['succeeded'] == 1 and 'failed' not in job['status']
    assert (data_dir(kubelet) / 'key').read_text() == 'finally\n'
    assert len(kubelet.pods('late')) == 1


def test_backoff_limit_exceeded_fails_the_job(k8s_api: K8sApi, kubelet: Kubelet) -> None:
    k8s_api.create(job_manifest('broken', ['sh', '-c', 'echo boom >&2; exit 3'], backoffLimit=2))

    job = kubelet.wait_job(NS, 'broken', 'Failed')

    status = job['status']
    assert status['failed'] == 3 and 'succeeded' not in status and 'active' not in status
    assert (condition(status, 'Failed')['reason'], condition(status, 'Failed')['message']) == (
        'BackoffLimitExceeded', 'Job has reached the specified backoff limit')
    assert condition(status, 'FailureTarget')['status'] == 'True' and 'completionTime' not in status
    pods = kubelet.pods('broken')
    assert [(p.phase, p.exit_code) for p in pods] == [('Failed', 3)] * 3
    assert kubelet.logs(pods[0]) == 'boom\n' and kubelet.logs(pods[0], 'stdout') == ''
    time.sleep(0.2)
    assert len(kubelet.pods('broken')) == 3  # no pod after the Job failed


def test_parallelism_scaled_up_and_down(k8s_api: K8sApi, kubelet: Kubelet) -> None:
    k8s_api.create(job_manifest('scaled', FOREVER, parallelism=1))
    [first] = kubelet.wait_pods('scaled', 1)

    k8s_api.patch('batch/v1', 'jobs', NS, 'scaled', {'spec': {'parallelism': 3}})
    running = kubelet.wait_pods('scaled', 3)
    assert first in running
    wait_status(kubelet, k8s_api, 'scaled', lambda s: s.get('active') == 3 and s.get('ready') == 3, 'active: 3')
    assert len([o for o in pod_objects(k8s_api, 'scaled') if o['status']['phase'] == 'Running']) == 3

    k8s_api.patch('batch/v1', 'jobs', NS, 'scaled', {'spec': {'parallelism': 1}})
    [kept] = kubelet.wait_pods('scaled', 1)
    assert kept is first  # the newest go first
    stopped = [p for p in running if p is not first]
    kubelet.wait(lambda: all(not pid_alive(p.pid) and p.terminated for p in stopped), what='scale-down')
    assert {p.stop_reason for p in stopped} == {'ScaleDown'} and {p.exit_code for p in stopped} == {143}
    status = wait_status(kubelet, k8s_api, 'scaled', lambda s: s.get('active') == 1 and s['terminating'] == 0,
                         'active: 1')
    assert 'failed' not in status and 'succeeded' not in status
    kubelet.wait(lambda: [o['metadata']['name'] for o in pod_objects(k8s_api, 'scaled')] == [first.name],
                 what='the stopped pods deleted')


def test_deleting_the_owner_garbage_collects_the_job_and_kills_its_processes(
        k8s_api: K8sApi, kubelet: Kubelet) -> None:
    owner = k8s_api.create({'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'owner', 'namespace': NS}})
    k8s_api.create(job_manifest('owned', CHILD_SCRIPT, parallelism=2, owner=owner))
    pods = kubelet.wait_pods('owned', 2)
    children = child_pids(kubelet, 2)
    assert all(pid_alive(pid) for pid in children + [p.pid for p in pods])

    k8s_api.delete('v1', 'configmaps', NS, 'owner')

    k8s_api.wait_gone('batch/v1', 'jobs', NS, 'owned')
    kubelet.wait(lambda: not any(pid_alive(pid) for pid in children + [p.pid for p in pods]), what='processes gone')
    assert {p.stop_reason for p in pods} == {'JobDeleted'}
    kubelet.wait(lambda: not pod_objects(k8s_api, 'owned'), what='pod objects gone')


def test_deleted_job_processes_ignoring_sigterm_are_killed_after_the_grace_period(
        k8s_api: K8sApi, kubelet_factory: Any) -> None:
    kubelet = kubelet_factory(k8s_api, grace_period=0.5)
    k8s_api.create(job_manifest('stubborn', ['sh', '-c', 'trap "" TERM; sleep 60']))
    [pod] = kubelet.wait_pods('stubborn', 1)
    time.sleep(0.1)  # let sh install its trap

    started = time.monotonic()
    k8s_api.delete('batch/v1', 'jobs', NS, 'stubborn')

    kubelet.wait(lambda: pod.terminated, what='the stubborn pod killed')
    assert 0.4 < time.monotonic() - started < 3 and not pid_alive(pod.pid)
    assert pod.returncode == -signal.SIGKILL and pod.exit_code == 137


def test_a_killed_pod_counts_as_failed_and_is_replaced(k8s_api: K8sApi, kubelet: Kubelet) -> None:
    script = 'echo "$HOSTNAME" >> "$DATA/starts"; [ "$(wc -l < "$DATA/starts")" -ge 2 ] && exit 0; sleep 60'
    k8s_api.create(job_manifest('crashy', ['sh', '-c', script], backoffLimit=2))
    [first] = kubelet.wait_pods('crashy', 1)
    kubelet.wait(lambda: (data_dir(kubelet) / 'starts').exists(), what='the first start recorded')
    time.sleep(0.05)  # into its sleep

    kubelet.kill(first, signal.SIGKILL)

    job = kubelet.wait_job(NS, 'crashy', 'Complete')
    assert job['status']['failed'] == 1 and job['status']['succeeded'] == 1
    crashed, replacement = kubelet.pods('crashy')
    assert crashed is first and (crashed.phase, crashed.exit_code, crashed.stop_reason) == ('Failed', 137, None)
    assert (replacement.phase, replacement.exit_code) == ('Succeeded', 0)
    objects = {o['metadata']['name']: o for o in pod_objects(k8s_api, 'crashy')}
    terminated = objects[crashed.name]['status']['containerStatuses'][0]['state']['terminated']
    assert (objects[crashed.name]['status']['phase'], terminated['exitCode'], terminated['reason']) == (
        'Failed', 137, 'Error')


def test_suspend_stops_the_pods_and_resume_starts_new_ones(k8s_api: K8sApi, kubelet: Kubelet) -> None:
    k8s_api.create(job_manifest('pausable', FOREVER, parallelism=2))
    before = kubelet.wait_pods('pausable', 2)

    k8s_api.patch('batch/v1', 'jobs', NS, 'pausable', {'spec': {'suspend': True}})

    kubelet.wait_job(NS, 'pausable', 'Suspended')
    kubelet.wait(lambda: not any(pid_alive(p.pid) for p in before), what='suspended pods killed')
    status = wait_status(kubelet, k8s_api, 'pausable', lambda s: 'active' not in s and s['terminating'] == 0,
                         'no active pods')
    assert 'failed' not in status and condition(status, 'Suspended')['reason'] == 'JobSuspended'
    kubelet.wait(lambda: not pod_objects(k8s_api, 'pausable'), what='suspended pods deleted')

    k8s_api.patch('batch/v1', 'jobs', NS, 'pausable', {'spec': {'suspend': False}})

    after = kubelet.wait_pods('pausable', 2)
    assert not set(after) & set(before)
    status = wait_status(kubelet, k8s_api, 'pausable', lambda s: s.get('active') == 2, 'resumed')
    assert (condition(status, 'Suspended')['status'], condition(status, 'Suspended')['reason']) == (
        'False', 'JobResumed')


def test_active_deadline_fails_the_job(k8s_api: K8sApi, kubelet: Kubelet) -> None:
    k8s_api.create(job_manifest('slow', FOREVER, activeDeadlineSeconds=1))
    [pod] = kubelet.wait_pods('slow', 1)

    job = kubelet.wait_job(NS, 'slow', 'Failed', timeout=5)

    assert condition(job['status'], 'Failed')['reason'] == 'DeadlineExceeded'
    assert job['status']['failed'] == 1 and not pid_alive(pod.pid) and pod.stop_reason == 'JobFinished'


def test_stopping_the_kubelet_leaves_no_process_behind(k8s_api: K8sApi, tmp_path: Path) -> None:
    with Kubelet(k8s_api, tmp_path / 'kubelet', grace_period=0.5) as kubelet:
        k8s_api.create(job_manifest('lingering', CHILD_SCRIPT, parallelism=2))
        pods = kubelet.wait_pods('lingering', 2)
        k8s_api.create(job_manifest('stubborn', ['sh', '-c', 'trap "" TERM; sleep 60']))
        pods += kubelet.wait_pods('stubborn', 1)
        children = child_pids(kubelet, 2)
        time.sleep(0.1)  # let the stubborn one install its trap
    pids = children + [p.pid for p in pods]
    assert not [pid for pid in pids if pid_alive(pid)]
    # Pod objects are not stuck on the tracking finalizer.
    assert not any(o['metadata'].get('finalizers') for o in k8s_api.list('v1', 'pods', NS))


@pytest.mark.parametrize('command', [['no-such-binary-anywhere'], None])
def test_a_container_that_cannot_start_fails_its_pod(k8s_api: K8sApi, kubelet: Kubelet, command: Any) -> None:
    manifest = job_manifest('unstartable', command or [], backoffLimit=0)
    if command is None:
        del manifest['spec']['template']['spec']['containers'][0]['command']  # an image entrypoint we do not know
    k8s_api.create(manifest)

    job = kubelet.wait_job(NS, 'unstartable', 'Failed')

    [pod] = kubelet.pods('unstartable')
    assert (pod.phase, pod.reason, pod.exit_code) == ('Failed', 'StartError', 128)
    assert job['status']['failed'] == 1
    assert 'failed to start the container process' in kubelet.logs(pod, 'stderr')


def test_a_missing_secret_volume_is_failed_mount(k8s_api: K8sApi, kubelet: Kubelet) -> None:
    k8s_api.create(job_manifest('mounty', ['true'], mounts=[{'name': 'creds', 'mountPath': '/creds'}],
                                volumes=[{'name': 'creds', 'secret': {'secretName': 'nowhere'}}]))

    [pod] = kubelet.wait(lambda: [p for p in kubelet.pods('mounty') if p.reason == 'FailedMount'],
                         what='FailedMount')

    assert pod.pid is None and pod.phase == 'Pending'
    assert pod.message == 'MountVolume.SetUp failed for volume "creds" : secret "nowhere" not found'
    assert not condition(job_status(k8s_api, 'mounty'), 'Complete')


def test_on_failure_restarts_the_container_in_the_same_pod(k8s_api: K8sApi, kubelet: Kubelet) -> None:
    script = 'echo x >> "$DATA/runs"; [ "$(wc -l < "$DATA/runs")" -ge 3 ]'
    manifest = job_manifest('restarty', ['sh', '-c', script], backoffLimit=3, ttlSecondsAfterFinished=0)
    manifest['spec']['template']['spec']['restartPolicy'] = 'OnFailure'
    k8s_api.create(manifest)

    job = kubelet.wait_job(NS, 'restarty', 'Complete')

    assert job['status']['succeeded'] == 1 and 'failed' not in job['status']
    [pod] = kubelet.pods('restarty')
    assert pod.restart_count == 2 and len(pod.pids) == 3 and pod.exit_code == 0
    # ttlSecondsAfterFinished: 0 → the finished Job (and its pods) are deleted.
    k8s_api.wait_gone('batch/v1', 'jobs', NS, 'restarty')
    kubelet.wait(lambda: not pod_objects(k8s_api, 'restarty'), what='pods collected')
