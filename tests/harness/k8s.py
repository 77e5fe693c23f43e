"""The emulated Kubernetes API harness as tests import it (the public names); each component has its own module:

* :mod:`tests.harness.emulator` — :class:`ClusterEmulator`, kmock made realistic for kopf and kubectl (its
  write semantics in :mod:`~tests.harness.storage`, protobuf bodies in :mod:`~tests.harness.protobuf`,
  ``kubectl get`` tables in :mod:`~tests.harness.tables` and :mod:`~tests.harness.jsonpath`);
* :mod:`tests.harness.resources` — the declared resources, the arena API group, the ``Status`` errors;
  :mod:`~tests.harness.selectors` (label/field selectors) and :mod:`~tests.harness.objects` (``dig``…);
* :mod:`tests.harness.server` — :func:`serve_k8s_api`, the ``k8s_api`` fixture and :class:`K8sApi`;
* :mod:`tests.harness.client` — :class:`ApiClient`, the one HTTP client to the emulator, and :class:`ApiError`;
* :mod:`tests.harness.kubectl` — the real kubectl against the emulator (one-shot, or streaming for ``-w``);
* :mod:`tests.harness.kopf_operator` — :func:`run_operator`, a real kopf operator against the emulator;
* :mod:`tests.harness.rbac` — :class:`RbacEnforcer`: RBAC for one bearer token (``ClusterEmulator.rbac``), with
  the :class:`Policy` a chart's rendered Roles and bindings grant a ServiceAccount;
* :mod:`tests.harness.kubelet` — Jobs run as local processes (its own modules: ``jobs``, ``runtime``,
  ``podspec``, ``pods``; not re-exported here).
"""

from __future__ import annotations

from tests.harness.client import ApiClient, ApiError, api_path
from tests.harness.emulator import ClusterEmulator
from tests.harness.kopf_operator import OperatorRun, run_operator
from tests.harness.kubectl import KubectlStream, kubectl, kubectl_binary, kubectl_stream, write_kubeconfig
from tests.harness.objects import Body, dig
from tests.harness.rbac import Policy, PolicyRule, RbacEnforcer
from tests.harness.resources import ARENA_API_VERSION, ARENA_GROUP, ARENA_KINDS, ARENA_VERSION, declare_resources
from tests.harness.server import K8sApi, k8s_api, serve_k8s_api
from tests.harness.tables import DEFAULT_PRINTER_COLUMNS, PrinterColumn

__all__ = [
    'ARENA_API_VERSION', 'ARENA_GROUP', 'ARENA_KINDS', 'ARENA_VERSION', 'DEFAULT_PRINTER_COLUMNS', 'ApiClient',
    'ApiError', 'Body', 'ClusterEmulator', 'K8sApi', 'KubectlStream', 'OperatorRun', 'Policy', 'PolicyRule',
    'PrinterColumn', 'RbacEnforcer', 'api_path',
    'declare_resources', 'dig', 'k8s_api', 'kubectl', 'kubectl_binary', 'kubectl_stream', 'run_operator',
    'serve_k8s_api', 'write_kubeconfig',
]
