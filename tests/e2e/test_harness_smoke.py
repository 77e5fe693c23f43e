"""Smoke tests of the emulated Kubernetes API harness with a real kopf operator and a real kubectl."""

import json
import threading

import kopf

from tests.harness.k8s import ARENA_API_VERSION, ARENA_GROUP, ARENA_VERSION, K8sApi, dig, run_operator
from tests.harness.k8s import k8s_api as k8s_api  # the fixture, re-exported for pytest

# "Basic Evaluation Job" from the ArenaJob CRD reference (seed 000_88a66f4c77ff4e4b), as written.
BASIC_EVALUATION_JOB = """\
apiVersion: omnia.altairalabs.ai/v1alpha1
kind: ArenaJob
metadata:
  name: basic-eval
  namespace: arena
spec:
  configRef:
    name: my-config
"""


def _arena_job(name: str, namespace: str = 'default') -> dict:
    return {'apiVersion': ARENA_API_VERSION, 'kind': 'ArenaJob',
            'metadata': {'name': name, 'namespace': namespace}, 'spec': {'configRef': {'name': 'cfg'}}}


def test_kopf_operator_handles_create_and_finalized_delete(k8s_api: K8sApi) -> None:
    registry = kopf.OperatorRegistry()
    deleted = threading.Event()

    @kopf.on.create(ARENA_GROUP, ARENA_VERSION, 'arenasources', registry=registry)
    def mark_ready(patch: kopf.Patch, **_: object) -> None:
        patch.status['phase'] = 'Ready'

    @kopf.on.delete(ARENA_GROUP, ARENA_VERSION, 'arenasources', registry=registry)
    def note_deletion(**_: object) -> None:  # its presence makes kopf put a finalizer on the object
        deleted.set()

    with run_operator(registry, k8s_api, namespaces=['default']):
        k8s_api.create({'apiVersion': ARENA_API_VERSION, 'kind': 'ArenaSource',
                        'metadata': {'name': 'src', 'namespace': 'default'},
                        'spec': {'type': 'configmap', 'configMap': {'name': 'bundle'}}})
        ready = k8s_api.wait_for(ARENA_API_VERSION, 'arenasources', 'default', 'src',
                                 lambda obj: dig(obj, 'status.phase') == 'Ready')
        assert dig(ready, 'metadata.finalizers') == ['kopf.zalando.org/KopfFinalizerMarker']
        assert dig(ready, 'metadata.generation') == 1  # status and finalizers are not the spec

        terminating = k8s_api.delete(ARENA_API_VERSION, 'arenasources', 'default', 'src')
        assert dig(terminating, 'metadata.deletionTimestamp')
        k8s_api.wait_gone(ARENA_API_VERSION, 'arenasources', 'default', 'src')
        assert deleted.is_set()


def test_kubectl_applies_and_gets_the_documented_arena_job(k8s_api: K8sApi) -> None:
    k8s_api.create_namespace('arena')

    applied = k8s_api.kubectl('apply', '--validate=false', '-f', '-', input=BASIC_EVALUATION_JOB)
    assert 'arenajob.omnia.altairalabs.ai/basic-eval created' in applied.stdout
    again = k8s_api.kubectl('apply', '--validate=false', '-f', '-', input=BASIC_EVALUATION_JOB)
    assert 'unchanged' in again.stdout

    listed = json.loads(k8s_api.kubectl('get', 'arenajobs', '-n', 'arena', '-o', 'json').stdout)
    [job] = listed['items']
    assert job['metadata']['name'] == 'basic-eval'
    assert job['spec'] == {'configRef': {'name': 'my-config'}}
    assert job['metadata']['uid'] and job['metadata']['resourceVersion'] and job['metadata']['creationTimestamp']
    assert 'basic-eval' in k8s_api.kubectl('get', 'arenajobs', '-n', 'arena').stdout  # the table view too


def test_deleting_an_owner_garbage_collects_its_batch_job(k8s_api: K8sApi) -> None:
    owner = k8s_api.create(_arena_job('nightly'))
    k8s_api.create({
        'apiVersion': 'batch/v1', 'kind': 'Job',
        'metadata': {'name': 'nightly-workers', 'namespace': 'default', 'ownerReferences': [{
            'apiVersion': ARENA_API_VERSION, 'kind': 'ArenaJob', 'name': 'nightly',
            'uid': owner['metadata']['uid'], 'controller': True, 'blockOwnerDeletion': True}]},
        'spec': {'template': {'spec': {'containers': [{'name': 'worker', 'image': 'arena'}]}}},
    })
    k8s_api.create({'apiVersion': 'batch/v1', 'kind': 'Job',  # not owned: must survive
                    'metadata': {'name': 'unrelated', 'namespace': 'default'}, 'spec': {}})

    k8s_api.delete(ARENA_API_VERSION, 'arenajobs', 'default', 'nightly')

    k8s_api.wait_gone('batch/v1', 'jobs', 'default', 'nightly-workers')
    assert [job['metadata']['name'] for job in k8s_api.list('batch/v1', 'jobs', 'default')] == ['unrelated']


def test_server_assigned_metadata_and_namespaces(k8s_api: K8sApi) -> None:
    created = k8s_api.create(_arena_job('meta'))
    meta = created['metadata']
    assert meta['generation'] == 1 and meta['uid'] and meta['creationTimestamp'].endswith('Z')

    status_only = k8s_api.patch(ARENA_API_VERSION, 'arenajobs', 'default', 'meta',
                                {'status': {'phase': 'Pending'}}, subresource='status')
    assert status_only['metadata']['generation'] == 1
    assert int(status_only['metadata']['resourceVersion']) > int(meta['resourceVersion'])

    changed = k8s_api.patch(ARENA_API_VERSION, 'arenajobs', 'default', 'meta', {'spec': {'workers': {'replicas': 2}}})
    assert changed['metadata']['generation'] == 2
    assert changed['status'] == {'phase': 'Pending'}  # the main endpoint keeps the status as it was

    assert [ns['metadata']['name'] for ns in k8s_api.list('v1', 'namespaces')] == ['default']
    assert dig(k8s_api.get('v1', 'namespaces', None, 'default'), 'status.phase') == 'Active'
